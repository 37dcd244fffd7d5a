//! This server as one runner of several behind a proxy (`docs/scale-out.md`):
//! the ids it mints name it, the proxy routes a session's requests to the runner
//! its id names, and what no one runner can answer alone (the listing of a
//! tenant's sessions) is gathered from all of them.

pub mod ids;
pub mod listing;
mod peers;
pub mod proxy_config;

pub use peers::{Peer, Unavailable};

use crate::config;
use http::HeaderValue;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

pub struct Cluster {
    /// This runner's name.
    pub runner: String,
    /// The other runners.
    pub peers: Vec<Peer>,
    pub minter: ids::Minter,
    timeout: Duration,
    draining: AtomicBool,
}

/// Where a session lives, by its id.
pub enum Owner<'a> {
    /// This runner (or no runner: an id of no known shape or tag, which is then
    /// simply unknown here).
    Here,
    Peer(&'a Peer),
}

impl Cluster {
    /// The cluster a checked config describes.
    pub fn new(config: &config::Cluster) -> Cluster {
        let peers = config
            .runners
            .iter()
            .filter(|(name, _)| **name != config.runner)
            .filter_map(|(name, url)| Peer::parse(name, url).ok())
            .collect();
        Cluster {
            runner: config.runner.clone(),
            peers,
            minter: ids::Minter::new(&config.runner),
            timeout: Duration::from_millis(config.peer_timeout_ms),
            draining: AtomicBool::new(false),
        }
    }

    pub fn owner(&self, session: &str) -> Owner<'_> {
        let tag = ids::tag_of(session);
        match self.peers.iter().find(|p| Some(p.tag.as_str()) == tag) {
            Some(peer) => Owner::Peer(peer),
            None => Owner::Here,
        }
    }

    /// Whether `session` exists on `peer` for the holder of `authorization`.
    pub async fn peer_has_session(
        &self,
        peer: &Peer,
        session: &str,
        authorization: &HeaderValue,
    ) -> Result<bool, Unavailable> {
        let path = format!("/v1/sessions/{session}");
        let (status, _) = peer.get(&path, authorization, self.timeout).await?;
        match status.as_u16() {
            200 => Ok(true),
            404 => Ok(false),
            other => Err(Unavailable {
                runner: peer.name.clone(),
                reason: format!("it answered {other}"),
            }),
        }
    }

    /// From now on this runner takes no new sessions and says it is not ready.
    pub fn drain(&self) {
        self.draining.store(true, Ordering::Relaxed);
    }

    pub fn draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }
}
