//! `POST …/shell` answered as Server-Sent Events: `stdout` and `stderr` events
//! as the command writes, then one `exit` event carrying the answer the
//! component shapes from the outcome (the body a plain `POST …/shell` gets), or
//! one `error` event with the API's error body. The command runs in a task of
//! its own, so a client that goes away leaves it running to its end or timeout,
//! unless it asked for `kill_on_disconnect`.

use super::body::Body;
use super::error::ApiError;
use super::output_text::encode;
use super::sse::{self, Event};
use crate::app::{App, Launched};
use crate::bindings::types::Caller;
use crate::caps::exec::{Piece, Stream};
use http::Response;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// Output pieces queued between the command's readers and its client; a full
/// queue holds the reading (and so the command's writes) back.
pub const TAP_PIECES: usize = 64;

/// Events queued for the client.
const QUEUED_EVENTS: usize = 16;

/// A planned command: what answering it needs.
pub struct ShellCall {
    pub app: Arc<App>,
    pub caller: Caller,
    pub env: String,
    /// The component's context for `shell-result`.
    pub context: String,
    pub kill_on_disconnect: bool,
    pub request_id: String,
}

/// The event stream of `launched`, whose output arrives as `pieces`.
pub fn respond(
    call: ShellCall,
    launched: Launched,
    pieces: mpsc::Receiver<Piece>,
) -> Response<Body> {
    let keepalive = Duration::from_millis(call.app.config.limits.event_keepalive_ms);
    let (events, rx) = mpsc::channel(QUEUED_EVENTS);
    tokio::spawn(forward(call, launched, pieces, events));
    sse::response(rx, keepalive)
}

/// Sends the output as it comes, then the answer. Once the client is gone
/// nothing more is sent; the command is killed then only if it asked.
async fn forward(
    call: ShellCall,
    launched: Launched,
    mut pieces: mpsc::Receiver<Piece>,
    events: mpsc::Sender<Event>,
) {
    let mut texts = Texts::default();
    let send = async |event: Option<Event>| match event {
        Some(event) => events.send(event).await.is_ok(),
        None => true,
    };
    let finished = launched.finish();
    tokio::pin!(finished);
    let mut present = true;
    let outcome = loop {
        tokio::select! {
            Some(piece) = pieces.recv() => {
                if present {
                    present = send(texts.event(&piece)).await;
                }
            }
            () = events.closed(), if present => present = false,
            outcome = &mut finished => break outcome,
        }
        if !present && call.kill_on_disconnect {
            // Dropping the command kills it and everything it started.
            return;
        }
    };
    if !present {
        return;
    }
    // What was read before the command ended, then what was held back of a
    // character cut at the end.
    pieces.close();
    while let Some(piece) = pieces.recv().await {
        send(texts.event(&piece)).await;
    }
    send(texts.out.rest(Stream::Stdout)).await;
    send(texts.err.rest(Stream::Stderr)).await;
    let answer = match outcome {
        Ok(outcome) => super::environments::shell_answer(&call, Ok(outcome)).await,
        Err(e) => Err(ApiError::from(e)),
    };
    let last = match answer {
        Ok(json) => Event::new("exit", json),
        Err(e) => Event::new("error", e.body(&call.request_id)),
    };
    send(Some(last)).await;
}

/// Both output streams' text.
#[derive(Default)]
struct Texts {
    out: Utf8Pieces,
    err: Utf8Pieces,
}

impl Texts {
    fn event(&mut self, piece: &Piece) -> Option<Event> {
        let text = match piece.stream {
            Stream::Stdout => &mut self.out,
            Stream::Stderr => &mut self.err,
        };
        text.event(piece.stream, &piece.bytes)
    }
}

/// One output stream turned into event data (see `output_text`): a character
/// cut between two pieces is held back until the rest of it comes.
#[derive(Default)]
struct Utf8Pieces {
    held: Vec<u8>,
}

impl Utf8Pieces {
    fn event(&mut self, stream: Stream, bytes: &[u8]) -> Option<Event> {
        self.held.extend_from_slice(bytes);
        let encoded = encode(&self.held, true)?;
        self.held.drain(..encoded.used);
        Some(Event::new(name(stream), encoded.json()))
    }

    /// What was held back when the stream ended: a cut character, as base64.
    fn rest(&mut self, stream: Stream) -> Option<Event> {
        let encoded = encode(&self.held, false)?;
        self.held.clear();
        Some(Event::new(name(stream), encoded.json()))
    }
}

/// The event name of output from `stream`.
pub fn name(stream: Stream) -> &'static str {
    match stream {
        Stream::Stdout => "stdout",
        Stream::Stderr => "stderr",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(event: Option<Event>) -> Option<String> {
        event.map(|e| e.data)
    }

    #[test]
    fn a_character_cut_between_pieces_is_sent_whole_with_the_next() {
        let mut text = Utf8Pieces::default();
        let e_acute = "é".as_bytes();
        assert_eq!(
            data(text.event(Stream::Stdout, &[b'a', e_acute[0]])),
            Some(r#"{"text":"a"}"#.into())
        );
        assert_eq!(
            data(text.event(Stream::Stdout, &e_acute[1..])),
            Some(r#"{"text":"é"}"#.into())
        );
        assert_eq!(data(text.event(Stream::Stdout, &[e_acute[0]])), None);
        assert_eq!(
            data(text.rest(Stream::Stdout)),
            Some(r#"{"base64":"ww=="}"#.into())
        );
        assert_eq!(data(text.rest(Stream::Stdout)), None);
    }
}
