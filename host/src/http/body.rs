//! Response bodies and reading request bodies within limits.

use super::error::{ApiError, ApiResult, Code};
use bytes::Bytes;
use futures_util::{Stream, StreamExt, TryStreamExt};
use http::{HeaderValue, Response, StatusCode, header};
use http_body_util::{BodyExt, BodyStream, Full, combinators::BoxBody};
use hyper::body::Incoming;

/// Every response body: a whole buffer or a stream.
pub type Body = BoxBody<Bytes, std::io::Error>;

pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed()
}

pub fn empty() -> Body {
    full(Bytes::new())
}

/// A JSON answer; `json` is already serialized.
pub fn json_response(status: StatusCode, json: String) -> Response<Body> {
    let mut response = Response::new(full(json));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

pub fn ok(json: String) -> ApiResult<Response<Body>> {
    Ok(json_response(StatusCode::OK, json))
}

/// How much of an oversized body is read and thrown away so that the client gets
/// its `413` instead of a reset connection; beyond it the answer closes the
/// connection.
pub const DRAIN_BYTES: u64 = 64 * 1024 * 1024;

/// A request body's data, chunk by chunk (trailers are dropped).
pub fn data(body: Incoming) -> impl Stream<Item = Result<Bytes, hyper::Error>> + Unpin {
    BodyStream::new(body).try_filter_map(|frame| std::future::ready(Ok(frame.into_data().ok())))
}

/// Reads and drops the rest of a body, up to `DRAIN_BYTES`: true when it ended
/// within that, so the connection can carry another request.
pub async fn drain<E>(mut rest: impl Stream<Item = Result<Bytes, E>> + Unpin) -> bool {
    let mut drained = 0u64;
    while let Some(piece) = rest.next().await {
        let Ok(bytes) = piece else {
            return false;
        };
        drained += bytes.len() as u64;
        if drained > DRAIN_BYTES {
            return false;
        }
    }
    true
}

/// A body's chunks while they stay within `limit` bytes in all; past it, `413`
/// (the rest drained up to `DRAIN_BYTES`, so that the client gets it).
struct Within<S> {
    stream: S,
    taken: u64,
    limit: u64,
}

impl<S: Stream<Item = Result<Bytes, hyper::Error>> + Unpin> Within<S> {
    async fn next(&mut self) -> ApiResult<Option<Bytes>> {
        let Some(piece) = self.stream.next().await else {
            return Ok(None);
        };
        let piece =
            piece.map_err(|e| ApiError::invalid(format!("could not read the body: {e}")))?;
        self.taken += piece.len() as u64;
        if self.taken > self.limit {
            let mut error = ApiError::new(
                Code::PayloadTooLarge,
                format!("this request's body is limited to {} bytes", self.limit),
            );
            error.close = !drain(&mut self.stream).await;
            return Err(error);
        }
        Ok(Some(piece))
    }
}

fn within(
    body: Incoming,
    limit: u64,
) -> Within<impl Stream<Item = Result<Bytes, hyper::Error>> + Unpin> {
    Within {
        stream: data(body),
        taken: 0,
        limit,
    }
}

/// Reads a whole body of at most `limit` bytes.
pub async fn read_bytes(body: Incoming, limit: usize) -> ApiResult<Bytes> {
    let mut body = within(body, limit as u64);
    let mut bytes = Vec::new();
    while let Some(piece) = body.next().await? {
        bytes.extend_from_slice(&piece);
    }
    Ok(Bytes::from(bytes))
}

/// Writes a whole body of at most `limit` bytes to `file`.
pub async fn save(body: Incoming, limit: u64, file: &mut tokio::fs::File) -> ApiResult<()> {
    use tokio::io::AsyncWriteExt;
    let saving = |e| ApiError::internal("saving the body", e);
    let mut body = within(body, limit);
    while let Some(piece) = body.next().await? {
        file.write_all(&piece).await.map_err(saving)?;
    }
    file.flush().await.map_err(saving)
}

/// Reads a whole body of at most `limit` bytes as UTF-8 text.
pub async fn read_text(body: Incoming, limit: usize) -> ApiResult<String> {
    let bytes = read_bytes(body, limit).await?;
    String::from_utf8(bytes.to_vec()).map_err(|_| ApiError::invalid("the body is not UTF-8"))
}

/// Reads a whole JSON body of at most `limit` bytes; an empty body reads as `{}`.
pub async fn read_json(body: Incoming, limit: usize) -> ApiResult<serde_json::Value> {
    let bytes = read_bytes(body, limit).await?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(serde_json::Value::Object(Default::default()));
    }
    serde_json::from_slice(&bytes).map_err(|e| ApiError::invalid(format!("invalid JSON: {e}")))
}

/// A string field of a JSON body, for the policy's view of the request; the
/// component validates the body itself, so anything else is just absent here.
pub fn string_field(body: &str, field: &str) -> Option<String> {
    serde_json::from_str::<serde_json::Value>(body)
        .ok()?
        .get(field)?
        .as_str()
        .map(str::to_owned)
}
