//! Streaming a blob to the client: `ETag`/`If-None-Match`, single `Range`
//! requests, `Content-Disposition`, read chunk by chunk so memory stays flat.

use super::body::{Body, empty, full};
use super::error::{ApiError, ApiResult, Code};
use crate::metrics::METRICS;
use crate::store::{BlobInfo, BlobReader, Store};
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Response, StatusCode, header};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use std::sync::Arc;

/// RFC 8187 `attr-char`s stay as they are in `filename*`; everything else is encoded.
const ATTR_CHAR: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'!')
    .remove(b'#')
    .remove(b'$')
    .remove(b'&')
    .remove(b'+')
    .remove(b'-')
    .remove(b'.')
    .remove(b'^')
    .remove(b'_')
    .remove(b'`')
    .remove(b'|')
    .remove(b'~');

/// What the client asked for of a blob of `len` bytes.
#[derive(Debug, PartialEq, Eq)]
enum Want {
    Whole,
    /// Inclusive byte range.
    Part(u64, u64),
    Unsatisfiable,
}

/// Reads a `Range` header. Anything but one well-formed byte range is ignored (the
/// whole blob is sent), as RFC 9110 allows.
fn parse_range(value: &str, len: u64) -> Want {
    let Some(spec) = value.trim().strip_prefix("bytes=") else {
        return Want::Whole;
    };
    if spec.contains(',') {
        return Want::Whole;
    }
    let Some((first, last)) = spec.trim().split_once('-') else {
        return Want::Whole;
    };
    let number = |s: &str| s.trim().parse::<u64>().ok();
    match (first.trim().is_empty(), number(first), number(last)) {
        // bytes=-N: the last N bytes.
        (true, _, Some(n)) if n > 0 && len > 0 => Want::Part(len.saturating_sub(n), len - 1),
        (true, _, Some(_)) => Want::Unsatisfiable,
        (false, Some(start), _) if start >= len => Want::Unsatisfiable,
        (false, Some(start), None) if last.trim().is_empty() => Want::Part(start, len - 1),
        (false, Some(start), Some(end)) if end >= start => Want::Part(start, end.min(len - 1)),
        _ => Want::Whole,
    }
}

fn etag_matches(header: &str, etag: &str) -> bool {
    header.split(',').map(str::trim).any(|candidate| {
        candidate == "*" || candidate.strip_prefix("W/").unwrap_or(candidate) == etag
    })
}

/// `attachment; filename="<ASCII fallback>"; filename*=UTF-8''<percent-encoded>`.
fn content_disposition(filename: &str) -> HeaderValue {
    let fallback: String = filename
        .chars()
        .map(|c| {
            if (c.is_ascii_graphic() || c == ' ') && c != '"' && c != '\\' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let encoded = utf8_percent_encode(filename, ATTR_CHAR);
    HeaderValue::from_str(&format!(
        "attachment; filename=\"{fallback}\"; filename*=UTF-8''{encoded}"
    ))
    .unwrap_or_else(|_| HeaderValue::from_static("attachment"))
}

/// A header value the server composed (hex digits, numbers).
fn header_value(value: &str) -> ApiResult<HeaderValue> {
    HeaderValue::from_str(value).map_err(|e| ApiError::internal("composing a header", e))
}

/// The answer to a `GET …/content` of `blob`.
pub fn respond(
    store: &Arc<Store>,
    blob: &BlobInfo,
    content_type: &str,
    filename: &str,
    request: &HeaderMap,
) -> ApiResult<Response<Body>> {
    let etag = format!("\"{}\"", blob.sha256);
    let header_str = |name| {
        request
            .get(name)
            .and_then(|v: &HeaderValue| v.to_str().ok())
    };
    let mut response = Response::new(empty());
    let mut headers = HeaderMap::new();
    headers.insert(header::ETAG, header_value(&etag)?);
    headers.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    if header_str(header::IF_NONE_MATCH).is_some_and(|h| etag_matches(h, &etag)) {
        *response.status_mut() = StatusCode::NOT_MODIFIED;
        *response.headers_mut() = headers;
        return Ok(response);
    }
    let range_applies = header_str(header::IF_RANGE).is_none_or(|h| h.trim() == etag);
    let want = match header_str(header::RANGE) {
        Some(range) if range_applies => parse_range(range, blob.len),
        _ => Want::Whole,
    };
    let (start, end) = match want {
        Want::Whole => (0, blob.len),
        Want::Part(first, last) => (first, last + 1),
        Want::Unsatisfiable => {
            let message = format!("the range is outside the file's {} bytes", blob.len);
            return Err(ApiError::new(Code::RangeNotSatisfiable, message)
                .with_header(header::CONTENT_RANGE, &format!("bytes */{}", blob.len)));
        }
    };
    if let Want::Part(..) = want {
        *response.status_mut() = StatusCode::PARTIAL_CONTENT;
        let range = format!("bytes {start}-{}/{}", end - 1, blob.len);
        headers.insert(header::CONTENT_RANGE, header_value(&range)?);
    }
    let content_type = HeaderValue::from_str(content_type)
        .unwrap_or_else(|_| HeaderValue::from_static("application/octet-stream"));
    headers.insert(header::CONTENT_TYPE, content_type);
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(end - start));
    headers.insert(header::CONTENT_DISPOSITION, content_disposition(filename));
    headers.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    *response.headers_mut() = headers;
    if end > start {
        let reader = store.blob_reader(blob.id)?;
        *response.body_mut() = if blob.len <= INLINE_BYTES {
            let (bytes, _) =
                piece(&reader, start, end).map_err(|e| ApiError::internal("reading a file", e))?;
            METRICS.downloaded_bytes.inc_by(bytes.len() as u64);
            full(bytes)
        } else {
            stream(Arc::new(reader), start, end)
        };
    }
    Ok(response)
}

/// Blobs up to this size are read at once, on the async thread: one small read
/// costs less than handing it to a blocking thread and back, two wake-ups that
/// each wait for a core when the server is busy.
const INLINE_BYTES: u64 = 64 * 1024;

/// The bytes from `pos` (before `end`) of the chunk that holds `pos`, and where
/// the next piece starts.
fn piece(reader: &BlobReader, pos: u64, end: u64) -> std::io::Result<(Bytes, u64)> {
    let data = reader
        .read_at(pos, end - pos)
        .map_err(std::io::Error::other)?
        .ok_or_else(|| std::io::Error::other("blob shorter than recorded"))?;
    let next = pos + data.len() as u64;
    Ok((Bytes::from(data), next))
}

/// Bytes `start..end` of a blob, one chunk read (off the async threads) at a time.
fn stream(reader: Arc<BlobReader>, start: u64, end: u64) -> Body {
    let frames = futures_util::stream::try_unfold(start, move |pos| {
        let reader = reader.clone();
        async move {
            if pos >= end {
                return Ok(None);
            }
            let (bytes, next) = tokio::task::spawn_blocking(move || piece(&reader, pos, end))
                .await
                .map_err(std::io::Error::other)??;
            METRICS.downloaded_bytes.inc_by(bytes.len() as u64);
            Ok(Some((Frame::data(bytes), next)))
        }
    });
    StreamBody::new(frames).boxed()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_follow_rfc_9110() {
        assert_eq!(parse_range("bytes=0-9", 100), Want::Part(0, 9));
        assert_eq!(parse_range("bytes=90-200", 100), Want::Part(90, 99));
        assert_eq!(parse_range("bytes=10-", 100), Want::Part(10, 99));
        assert_eq!(parse_range("bytes=-5", 100), Want::Part(95, 99));
        assert_eq!(parse_range("bytes=-500", 100), Want::Part(0, 99));
        assert_eq!(parse_range("bytes=100-", 100), Want::Unsatisfiable);
        assert_eq!(parse_range("bytes=-0", 100), Want::Unsatisfiable);
        assert_eq!(parse_range("bytes=0-0", 0), Want::Unsatisfiable);
        assert_eq!(parse_range("bytes=5-2", 100), Want::Whole);
        assert_eq!(parse_range("bytes=0-1,5-6", 100), Want::Whole);
        assert_eq!(parse_range("items=0-1", 100), Want::Whole);
    }

    #[test]
    fn disposition_has_an_ascii_fallback_and_utf8_name() {
        let v = content_disposition("résumé \"1\".txt");
        assert_eq!(
            v.to_str().unwrap(),
            "attachment; filename=\"r_sum_ _1_.txt\"; filename*=UTF-8''r%C3%A9sum%C3%A9%20%221%22.txt"
        );
    }
}
