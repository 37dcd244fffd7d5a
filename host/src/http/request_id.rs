//! Request ids: the client's `X-Request-Id` when it sent a usable one, else one
//! made here; echoed on the answer, carried by every log line of the request (its
//! tracing span) and by error bodies, so one id follows a request from the
//! client through the logs.

use http::{HeaderMap, HeaderName, HeaderValue};

pub const HEADER: HeaderName = HeaderName::from_static("x-request-id");

/// The longest client id kept; longer ones are replaced.
const MAX_LEN: usize = 128;

/// The request's id: the client's if it is 1–128 visible ASCII characters (no
/// spaces or controls, so it is safe in logs and headers), else a new UUIDv7
/// (time-ordered, so ids sort by arrival).
pub fn of(headers: &HeaderMap) -> HeaderValue {
    headers
        .get(&HEADER)
        .filter(|v| {
            let bytes = v.as_bytes();
            (1..=MAX_LEN).contains(&bytes.len()) && bytes.iter().all(u8::is_ascii_graphic)
        })
        .cloned()
        .unwrap_or_else(|| {
            HeaderValue::from_str(&uuid::Uuid::now_v7().simple().to_string())
                .unwrap_or_else(|_| HeaderValue::from_static("-"))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(value: &[u8]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(
            HEADER,
            HeaderValue::from_bytes(value).unwrap_or(HeaderValue::from_static("")),
        );
        headers
    }

    #[test]
    fn a_usable_client_id_is_kept_and_anything_else_replaced() {
        assert_eq!(of(&with(b"abc-123_X.y")), "abc-123_X.y");
        for bad in [&b""[..], b"has space", &[b'a'; 129], b"tab\there"] {
            let id = of(&with(bad));
            assert_ne!(id.as_bytes(), bad);
            assert_eq!(id.len(), 32, "{id:?}");
        }
        assert_eq!(of(&HeaderMap::new()).len(), 32);
    }
}
