//! Server-Sent Events answers: events sent as they happen, each flushed on its
//! own, with a comment line whenever the stream has been quiet for a while so
//! that proxies keep it open and a client that has gone is noticed (writing to
//! its socket fails, the body is dropped, and whoever feeds the events sees
//! their channel closed).

use super::body::Body;
use bytes::Bytes;
use http::{HeaderValue, Response, header};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use std::time::Duration;
use tokio::sync::mpsc;

/// One event: its name, its data (one JSON value) and, where the stream can be
/// resumed, its id.
pub struct Event {
    pub id: Option<String>,
    pub name: &'static str,
    pub data: String,
}

impl Event {
    pub fn new(name: &'static str, data: String) -> Event {
        Event {
            id: None,
            name,
            data,
        }
    }

    /// The event in the wire format; a data line per line of `data`.
    fn encode(&self) -> Bytes {
        let mut out = String::with_capacity(self.data.len() + 32);
        if let Some(id) = &self.id {
            out.push_str("id: ");
            out.push_str(id);
            out.push('\n');
        }
        out.push_str("event: ");
        out.push_str(self.name);
        out.push('\n');
        for line in self.data.split('\n') {
            out.push_str("data: ");
            out.push_str(line);
            out.push('\n');
        }
        out.push('\n');
        Bytes::from(out)
    }
}

/// What a quiet stream sends every `keepalive`.
const KEEPALIVE: &[u8] = b": keepalive\n\n";

/// A `200 text/event-stream` answer sending `events` until their sender is done.
pub fn response(events: mpsc::Receiver<Event>, keepalive: Duration) -> Response<Body> {
    let frames = futures_util::stream::unfold(events, move |mut events| async move {
        let bytes = match tokio::time::timeout(keepalive, events.recv()).await {
            Ok(Some(event)) => event.encode(),
            Ok(None) => return None,
            Err(_) => Bytes::from_static(KEEPALIVE),
        };
        Some((Ok(Frame::data(bytes)), events))
    });
    let mut response = Response::new(StreamBody::new(frames).boxed());
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    // Proxies that buffer answers (nginx) pass this one on as it comes.
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    response
}

/// The id of the last event a client saw: the `Last-Event-ID` header, as
/// EventSource sends it when it reconnects, else the `last_event_id` query
/// parameter, for a client that resumes from an id it kept (a reloaded page).
pub fn last_event_id<'a>(
    headers: &'a http::HeaderMap,
    query: &'a super::paging::Query,
) -> Option<&'a str> {
    headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .or_else(|| super::paging::param(query, "last_event_id"))
}

/// Whether the client asked for an event stream and nothing else.
pub fn wanted(headers: &http::HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|accept| {
            accept
                .split(',')
                .map(|kind| kind.split(';').next().unwrap_or("").trim())
                .all(|kind| kind.eq_ignore_ascii_case("text/event-stream"))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_framed_line_by_line() {
        let mut event = Event::new("stdout", "{\"text\":\"a\"}".into());
        assert_eq!(
            &event.encode()[..],
            b"event: stdout\ndata: {\"text\":\"a\"}\n\n"
        );
        event.id = Some("b.7".into());
        event.data = "one\ntwo".into();
        assert_eq!(
            &event.encode()[..],
            b"id: b.7\nevent: stdout\ndata: one\ndata: two\n\n"
        );
    }

    #[test]
    fn only_an_accept_of_event_streams_alone_asks_for_one() {
        let accept = |value: &str| {
            let mut headers = http::HeaderMap::new();
            headers.insert(header::ACCEPT, HeaderValue::from_str(value).unwrap());
            wanted(&headers)
        };
        assert!(accept("text/event-stream"));
        assert!(accept("Text/Event-Stream; q=1"));
        assert!(!accept("application/json"));
        assert!(!accept("text/event-stream, application/json"));
        assert!(!accept("*/*"));
        assert!(!wanted(&http::HeaderMap::new()));
    }
}
