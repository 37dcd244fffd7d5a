//! `GET …/environments/{env}/events`: the workspace's file events as
//! Server-Sent Events (`created`, `modified`, `deleted`, `renamed`, and `reset`
//! when the client must re-read `changes`), filtered by the globs the component
//! checked, resumable with `Last-Event-ID` while the workspace's ring holds it.

use super::body::Body;
use super::error::{ApiError, ApiResult, Code};
use super::paging::Query;
use super::sse::{self, Event};
use crate::app::{App, Ask, blocking};
use crate::bindings::environments_handler::EventFilter;
use crate::runtime::EnvironmentsWorld;
use crate::watch::{FileEvent, Happened, Kind, Reset, Subscription};
use globset::{Glob, GlobSet, GlobSetBuilder};
use http::{HeaderMap, Response};
use std::time::Duration;
use tokio::sync::{broadcast, mpsc};

/// Events queued for one client.
const QUEUED_EVENTS: usize = 64;

pub(super) async fn events(
    app: &App,
    tenant: &str,
    session: &str,
    env: &str,
    query: &Query,
    headers: &HeaderMap,
) -> ApiResult<Response<Body>> {
    let ask = Ask::new("environments.events", Some(session), Some(env));
    let caller = app.authorize(tenant, session, ask).await?;
    let filter = app
        .call_slot::<EnvironmentsWorld, _>(&caller, async |envs, store| {
            envs.reshost_api_environments_handler()
                .call_events(store, &caller, env, query)
                .await
        })
        .await?;
    let filter = Filter::new(&filter)?;
    let after = sse::last_event_id(headers, query).map(str::to_owned);
    let (tracker, root, session) = (
        app.tracker.clone(),
        app.workspace(session),
        session.to_owned(),
    );
    // Following a workspace not tracked yet starts tracking it (a walk).
    let subscription = blocking("following file events", move || {
        tracker.subscribe(&session, &root, after.as_deref())
    })
    .await?;
    let (events, rx) = mpsc::channel(QUEUED_EVENTS);
    tokio::spawn(forward(subscription, filter, events));
    let keepalive = Duration::from_millis(app.config.limits.event_keepalive_ms);
    Ok(sse::response(rx, keepalive))
}

/// The paths a client follows.
struct Filter {
    include: Option<GlobSet>,
    exclude: Option<GlobSet>,
}

impl Filter {
    /// The component's globs, compiled; one that does not compile is the
    /// component's failure, not the client's.
    fn new(filter: &EventFilter) -> ApiResult<Filter> {
        let unusable = |e: globset::Error| {
            ApiError::new(
                Code::ComponentError,
                format!("the component's event filter: {e}"),
            )
        };
        let set = |globs: &[String]| -> ApiResult<Option<GlobSet>> {
            if globs.is_empty() {
                return Ok(None);
            }
            let mut set = GlobSetBuilder::new();
            for glob in globs {
                set.add(Glob::new(glob).map_err(unusable)?);
            }
            set.build().map(Some).map_err(unusable)
        };
        Ok(Filter {
            include: set(&filter.include)?,
            exclude: set(&filter.exclude)?,
        })
    }

    fn admits(&self, path: &str) -> bool {
        self.include.as_ref().is_none_or(|g| g.is_match(path))
            && !self.exclude.as_ref().is_some_and(|g| g.is_match(path))
    }

    /// The event as sent, unless the filter leaves it out; a rename is sent when
    /// either of its paths is followed. Resets always go.
    fn event(&self, event: FileEvent) -> Option<Event> {
        let (name, data) = match event.kind {
            Kind::Reset(why) => ("reset", serde_json::json!({ "reason": why.as_str() })),
            Kind::Path { path, happened } => {
                let from = match &happened {
                    Happened::Renamed { from } => Some(from.as_str()),
                    _ => None,
                };
                if !self.admits(&path) && !from.is_some_and(|f| self.admits(f)) {
                    return None;
                }
                let data = match from {
                    Some(from) => serde_json::json!({ "path": path, "from": from }),
                    None => serde_json::json!({ "path": path }),
                };
                let name = match happened {
                    Happened::Created => "created",
                    Happened::Modified => "modified",
                    Happened::Deleted => "deleted",
                    Happened::Renamed { .. } => "renamed",
                };
                (name, data)
            }
        };
        Some(Event {
            id: Some(event.id),
            name,
            data: data.to_string(),
        })
    }
}

/// Sends what the client missed, then events as they happen, until it leaves
/// or the session ends.
async fn forward(subscription: Subscription, filter: Filter, events: mpsc::Sender<Event>) {
    let Subscription { backlog, mut live } = subscription;
    for event in backlog {
        if let Some(event) = filter.event(event)
            && events.send(event).await.is_err()
        {
            return;
        }
    }
    loop {
        let next = tokio::select! {
            next = live.recv() => next,
            () = events.closed() => return,
        };
        let event = match next {
            Ok(event) => filter.event(event),
            // It fell behind: what it missed is gone from the live queue.
            Err(broadcast::error::RecvError::Lagged(_)) => Some(Event::new(
                "reset",
                serde_json::json!({ "reason": Reset::Expired.as_str() }).to_string(),
            )),
            Err(broadcast::error::RecvError::Closed) => return,
        };
        if let Some(event) = event
            && events.send(event).await.is_err()
        {
            return;
        }
    }
}
