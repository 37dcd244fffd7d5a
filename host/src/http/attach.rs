//! `GET …/terminals/{tid}/attach`: a WebSocket onto a terminal. The client first
//! gets the scrollback, then live output, as binary frames; its binary frames are
//! input (dropped when `read_only`), its text frames JSON commands (`resize`).
//! When the process ends the client gets `{"type": "exit", "exit_code": n}` and
//! close code 4404; a client too slow to keep up is closed with 1008.

use super::body::Body;
use super::error::{ApiError, ApiResult};
use super::paging::{Query, param};
use crate::app::App;
use crate::app::{self, Ask};
use crate::pty::{Attachment, MAX_DIMENSION, Output, Terminal};
use crate::runtime::CallError;
use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http::{HeaderValue, Request, Response, StatusCode, header};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::sync::mpsc::UnboundedReceiver as Receiver;
use tokio::time::{Instant, timeout};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role, WebSocketConfig};

/// Largest binary frame of output sent at once (the scrollback is split into these).
const FRAME_BYTES: usize = 64 * 1024;
/// The socket's read buffer: client input is keystrokes and resizes.
const INPUT_BUFFER_BYTES: usize = 4096;
/// Largest message a client may send (a paste, at most).
const MAX_INPUT_BYTES: usize = 1024 * 1024;
/// The terminal is unknown or has ended.
const GONE: u16 = 4404;
/// The policy refused, or the client is too slow.
const POLICY: u16 = 1008;
/// The most a close frame's reason may hold.
const REASON_BYTES: usize = 123;

fn close(code: u16, reason: &str) -> Message {
    let cut = (0..=reason.len().min(REASON_BYTES))
        .rev()
        .find(|&i| reason.is_char_boundary(i))
        .unwrap_or(0);
    Message::Close(Some(CloseFrame {
        code: CloseCode::from(code),
        reason: reason[..cut].to_owned().into(),
    }))
}

/// Checks the request, answers `101 Switching Protocols` and serves the socket in
/// a task of its own.
/// The `Sec-WebSocket-Key` of a well-formed opening handshake (RFC 6455 §4.2.1:
/// `Upgrade: websocket`, `Connection: upgrade`, version 13, a key); anything else
/// is refused before the upgrade.
fn handshake_key(headers: &http::HeaderMap) -> ApiResult<HeaderValue> {
    let text = |name| headers.get(name).and_then(|v| v.to_str().ok());
    let lists = |name, token: &str| {
        text(name).is_some_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
    };
    let upgrade = lists(header::UPGRADE, "websocket") && lists(header::CONNECTION, "upgrade");
    let Some(key) = headers.get(header::SEC_WEBSOCKET_KEY).filter(|_| upgrade) else {
        return Err(ApiError::invalid(
            "attach is a WebSocket endpoint: send an upgrade (Upgrade: websocket, \
             Connection: upgrade, Sec-WebSocket-Key, Sec-WebSocket-Version: 13)",
        ));
    };
    if text(header::SEC_WEBSOCKET_VERSION) != Some("13") {
        return Err(ApiError::invalid("only WebSocket version 13 is spoken")
            .with_header(header::SEC_WEBSOCKET_VERSION, "13"));
    }
    Ok(key.clone())
}

pub async fn attach(
    app: &App,
    tenant: &str,
    (session, id): (&str, &str),
    query: &Query,
    mut req: Request<Incoming>,
) -> ApiResult<Response<Body>> {
    let key = handshake_key(req.headers())?;
    let read_only = match param(query, "read_only") {
        None | Some("false") => false,
        Some("true") => true,
        Some(other) => {
            return Err(ApiError::invalid(format!(
                "read_only must be true or false, not {other:?}"
            )));
        }
    };
    // A watcher cannot type: policies may let more tenants watch than attach.
    let operation = match read_only {
        true => "terminals.watch",
        false => "terminals.attach",
    };
    app.caller(tenant, session)?;
    // A policy's refusal is said on the socket (close 1008 with its reason), as
    // the API's close codes have it; only a bad token is refused before the upgrade.
    let denied = match app
        .check(tenant, Ask::new(operation, Some(session), Some(id)))
        .await
    {
        Ok(()) => None,
        // A capacity problem is no refusal: `503` before the upgrade.
        Err(busy @ app::Error::Call(CallError::Busy { .. })) => return Err(busy.into()),
        Err(e) => Some(e.to_string()),
    };
    // A terminal the session does not own (or no longer has a process) is refused
    // on the socket, with 4404.
    let known = app.store.record(session, "terminal", id)?.is_some();
    let terminal = app.terminals.get(session, id).filter(|_| known);
    let ping = Duration::from_millis(app.config.limits.terminal_ping_interval_ms);
    let upgrade = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        let io = match upgrade.await {
            Ok(io) => TokioIo::new(io),
            Err(e) => return tracing::debug!(error = %e, "a terminal upgrade failed"),
        };
        let mut ws =
            WebSocketStream::from_raw_socket(io, Role::Server, Some(socket_config())).await;
        match denied {
            Some(reason) => {
                let _ = ws.send(close(POLICY, &reason)).await;
            }
            None => {
                let attached = &crate::metrics::METRICS.attached_clients;
                attached.inc();
                serve(ws, terminal, read_only, ping).await;
                attached.dec();
            }
        }
    });
    let accept = tokio_tungstenite::tungstenite::handshake::derive_accept_key(key.as_bytes());
    let mut response = Response::new(http_body_util::Empty::new().map_err(|e| match e {}).boxed());
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let headers = response.headers_mut();
    headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    headers.insert(
        header::SEC_WEBSOCKET_ACCEPT,
        HeaderValue::from_str(&accept).map_err(|e| ApiError::internal("accepting", e))?,
    );
    Ok(response)
}

type Socket = WebSocketStream<TokioIo<hyper::upgrade::Upgraded>>;

/// Clients send keystrokes and resizes: a small read buffer (the library's 128 KiB
/// default is memory per client, and zeroed on every read) and a bound on what
/// one message may make the server hold.
fn socket_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(INPUT_BUFFER_BYTES)
        .max_message_size(Some(MAX_INPUT_BYTES))
        .max_frame_size(Some(MAX_INPUT_BYTES))
}

/// Takes what else is already queued for the client into the same frame (up to
/// `FRAME_BYTES`), so a burst of small PTY reads costs one write, not many.
/// What does not fit, or ends the output, is left in `carry` for next time.
fn gather(first: Bytes, output: &mut Receiver<Output>, carry: &mut Option<Output>) -> Bytes {
    let mut frame: Option<Vec<u8>> = None;
    let mut len = first.len();
    while len < FRAME_BYTES {
        match output.try_recv() {
            Ok(Output::Data(more)) if len + more.len() <= FRAME_BYTES => {
                len += more.len();
                frame
                    .get_or_insert_with(|| first.to_vec())
                    .extend_from_slice(&more);
            }
            Ok(other) => {
                *carry = Some(other);
                break;
            }
            Err(_) => break,
        }
    }
    frame.map_or(first, Bytes::from)
}

/// The next output for the client: what `gather` left over, else the queue's.
async fn next(output: &mut Receiver<Output>, carry: &mut Option<Output>) -> Option<Output> {
    match carry.take() {
        Some(out) => Some(out),
        None => output.recv().await,
    }
}

async fn serve(mut ws: Socket, terminal: Option<Arc<Terminal>>, read_only: bool, ping: Duration) {
    let Some(terminal) = terminal else {
        let _ = ws.send(close(GONE, "no such terminal")).await;
        return;
    };
    let Attachment {
        replay,
        mut output,
        queued,
        slow,
        exited,
    } = terminal.attach();
    for chunk in replay.chunks(FRAME_BYTES) {
        if ws.send(Message::binary(chunk.to_vec())).await.is_err() {
            return;
        }
    }
    if let Some(code) = exited {
        let _ = finish(&mut ws, code).await;
        return;
    }
    let (mut sink, mut stream) = ws.split();
    let mut pings = tokio::time::interval(ping);
    pings.tick().await;
    // Anything from the client (a pong included) shows it is still there.
    let mut heard = Instant::now();
    let mut carry = None;
    loop {
        tokio::select! {
            out = next(&mut output, &mut carry) => match out {
                // Cut off for being too slow: what is still queued for it is dropped.
                _ if slow.load(Ordering::SeqCst) => {
                    let _ = timeout(ping, sink.send(close(POLICY, "client too slow"))).await;
                    return;
                }
                Some(Output::Data(bytes)) => {
                    let bytes = gather(bytes, &mut output, &mut carry);
                    let len = bytes.len();
                    // A frame that cannot be written in two ping intervals: the
                    // peer is gone, or as good as.
                    let sent = timeout(2 * ping, sink.send(Message::Binary(bytes))).await;
                    if !matches!(sent, Ok(Ok(()))) {
                        return;
                    }
                    queued.fetch_sub(len, Ordering::SeqCst);
                }
                Some(Output::Exit(code)) => {
                    let mut ws = match sink.reunite(stream) {
                        Ok(ws) => ws,
                        Err(_) => return,
                    };
                    let _ = finish(&mut ws, code).await;
                    return;
                }
                None => {
                    let _ = sink.send(close(GONE, "terminal closed")).await;
                    return;
                }
            },
            input = stream.next() => {
                heard = Instant::now();
                match input {
                    Some(Ok(Message::Binary(bytes))) => {
                        if !read_only && terminal.write(&bytes).is_err() {
                            return;
                        }
                    }
                    Some(Ok(Message::Text(text))) => {
                        if !read_only {
                            command(&terminal, &text);
                        }
                    }
                    Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
                    Some(Ok(_)) => {} // Pings are answered by the library; pongs need nothing.
                }
            },
            _ = pings.tick() => {
                // Two pings unanswered: the peer is gone without a word.
                if heard.elapsed() > 2 * ping {
                    return;
                }
                if sink.send(Message::Ping(Default::default())).await.is_err() {
                    return;
                }
            }
        }
    }
}

/// A JSON command from the client; unknown ones are ignored.
fn command(terminal: &Terminal, text: &str) {
    let Ok(value) = serde_json::from_str::<serde_json::Value>(text) else {
        return;
    };
    if value["type"] == "resize" {
        let size = |field: &str| {
            value[field]
                .as_u64()
                .filter(|n| (1..=u64::from(MAX_DIMENSION)).contains(n))
                .map(|n| n as u16)
        };
        if let (Some(cols), Some(rows)) = (size("cols"), size("rows"))
            && let Err(e) = terminal.resize(cols, rows)
        {
            tracing::warn!(error = %e, "resizing a terminal");
        }
    }
}

/// Sends the exit event and closes with 4404.
async fn finish(ws: &mut Socket, code: i32) -> Result<(), tokio_tungstenite::tungstenite::Error> {
    let event = serde_json::json!({"type": "exit", "exit_code": code}).to_string();
    ws.send(Message::text(event)).await?;
    ws.send(close(GONE, "terminal ended")).await
}
