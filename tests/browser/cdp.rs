//! A minimal Chrome DevTools Protocol client: one WebSocket to the browser, commands
//! matched to their answers by id, every event kept in arrival order so a test can
//! both wait for one and read the whole log afterwards (requests, exceptions).

use anyhow::{Context, Result, anyhow, bail};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{Notify, mpsc, oneshot};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;

/// How long a single command may take: generous, for a loaded 2-core machine.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

/// One event as the browser sent it; `session` is the target's flat session id.
#[derive(Debug)]
pub struct Event {
    pub session: Option<String>,
    pub method: String,
    pub params: Value,
}

type Reply = std::result::Result<Value, String>;

#[derive(Default)]
struct Shared {
    pending: Mutex<HashMap<u64, oneshot::Sender<Reply>>>,
    events: Mutex<Vec<Arc<Event>>>,
    /// Woken on every event and when the connection ends.
    arrived: Notify,
    /// Why the connection ended, once it has.
    closed: Mutex<Option<String>>,
}

/// A connection to the browser endpoint; cheap to clone.
#[derive(Clone)]
pub struct Cdp {
    out: mpsc::UnboundedSender<Message>,
    next_id: Arc<AtomicU64>,
    shared: Arc<Shared>,
}

impl Cdp {
    /// Connects to `ws://…/devtools/browser/…` and starts the reader and writer tasks.
    pub async fn connect(url: &str) -> Result<Cdp> {
        let (ws, _) = tokio_tungstenite::connect_async(url)
            .await
            .with_context(|| format!("connecting to the DevTools endpoint {url}"))?;
        let (mut sink, mut stream) = ws.split();
        let (out, mut outgoing) = mpsc::unbounded_channel::<Message>();
        tokio::spawn(async move {
            while let Some(message) = outgoing.recv().await {
                if sink.send(message).await.is_err() {
                    break;
                }
            }
        });
        let shared = Arc::new(Shared::default());
        let reader = shared.clone();
        tokio::spawn(async move {
            let why = loop {
                match stream.next().await {
                    Some(Ok(Message::Text(text))) => reader.dispatch(&text),
                    Some(Ok(Message::Close(frame))) => break format!("closed: {frame:?}"),
                    Some(Ok(_)) => {}
                    Some(Err(e)) => break format!("error: {e}"),
                    None => break "ended".to_owned(),
                }
            };
            *reader.closed.lock().unwrap() = Some(format!("DevTools connection {why}"));
            // Dropping the senders fails every command still waiting.
            reader.pending.lock().unwrap().clear();
            reader.arrived.notify_waiters();
        });
        Ok(Cdp {
            out,
            next_id: Arc::new(AtomicU64::new(1)),
            shared,
        })
    }

    /// Sends `method` (to the target of `session`, or to the browser) and waits for
    /// its result; a protocol error is an `Err` naming the method.
    pub async fn call(&self, session: Option<&str>, method: &str, params: Value) -> Result<Value> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let mut message = json!({"id": id, "method": method, "params": params});
        if let Some(session) = session {
            message["sessionId"] = json!(session);
        }
        let (tx, rx) = oneshot::channel();
        self.shared.pending.lock().unwrap().insert(id, tx);
        if let Some(why) = self.shared.closed.lock().unwrap().clone() {
            bail!("{method}: {why}");
        }
        self.out
            .send(Message::text(message.to_string()))
            .map_err(|_| anyhow!("{method}: the DevTools connection is gone"))?;
        match tokio::time::timeout(COMMAND_TIMEOUT, rx).await {
            Err(_) => bail!("{method}: no answer within {COMMAND_TIMEOUT:?}"),
            Ok(Err(_)) => bail!("{method}: {}", self.closed_reason()),
            Ok(Ok(Err(error))) => bail!("{method}: {error}"),
            Ok(Ok(Ok(result))) => Ok(result),
        }
    }

    fn closed_reason(&self) -> String {
        self.shared
            .closed
            .lock()
            .unwrap()
            .clone()
            .unwrap_or_else(|| "the DevTools connection is gone".to_owned())
    }

    /// How many events have arrived so far: a mark to wait for later ones from.
    pub fn event_count(&self) -> usize {
        self.shared.events.lock().unwrap().len()
    }

    /// Every event from index `from` on.
    pub fn events_since(&self, from: usize) -> Vec<Arc<Event>> {
        let events = self.shared.events.lock().unwrap();
        events.get(from..).unwrap_or_default().to_vec()
    }

    /// The first event from index `from` on that `matches`, waiting up to `within`.
    pub async fn wait_event(
        &self,
        from: usize,
        within: Duration,
        what: &str,
        matches: impl Fn(&Event) -> bool,
    ) -> Result<Arc<Event>> {
        let deadline = Instant::now() + within;
        let mut seen = from;
        loop {
            // Registered before looking, so an event arriving in between still wakes us.
            let arrived = self.shared.arrived.notified();
            tokio::pin!(arrived);
            arrived.as_mut().enable();
            for event in self.events_since(seen) {
                if matches(&event) {
                    return Ok(event);
                }
                seen += 1;
            }
            if self.shared.closed.lock().unwrap().is_some() {
                bail!("waiting for {what}: {}", self.closed_reason());
            }
            if tokio::time::timeout_at(deadline, arrived).await.is_err() {
                bail!("no {what} within {within:?}");
            }
        }
    }
}

impl Shared {
    fn dispatch(&self, text: &str) {
        let Ok(message) = serde_json::from_str::<Value>(text) else {
            return;
        };
        if let Some(id) = message["id"].as_u64() {
            let reply = match message.get("error") {
                Some(error) => Err(error.to_string()),
                None => Ok(message["result"].clone()),
            };
            if let Some(tx) = self.pending.lock().unwrap().remove(&id) {
                let _ = tx.send(reply);
            }
        } else if let Some(method) = message["method"].as_str() {
            let event = Event {
                session: message["sessionId"].as_str().map(str::to_owned),
                method: method.to_owned(),
                params: message["params"].clone(),
            };
            self.events.lock().unwrap().push(Arc::new(event));
            self.arrived.notify_waiters();
        }
    }
}
