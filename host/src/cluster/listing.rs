//! A tenant's sessions across every runner, as one list: each runner's part is
//! asked for with the same scan (`GET /v1/runner/sessions`), and the parts are
//! merged by id, which orders sessions by creation whichever runner made them.
//! A runner that does not answer leaves its sessions out of the page, and is
//! named (`unreachable`) so that the answer can say it is incomplete.

use super::{Cluster, Owner, Unavailable};
use futures_util::future::join_all;
use http::HeaderValue;
use reshost_paging::Source;
use std::collections::BTreeSet;

/// What gathering a listing can fail on.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Store(#[from] crate::store::Error),
    #[error(transparent)]
    Unavailable(#[from] Unavailable),
}

/// This runner's part (`local`) and the other runners', as one page source.
/// Its methods block on the peers: call them where blocking is allowed.
pub struct Listing<'a, L> {
    pub local: L,
    pub cluster: &'a Cluster,
    pub authorization: &'a HeaderValue,
    pub runtime: tokio::runtime::Handle,
    /// The runners that did not answer a scan.
    pub unreachable: BTreeSet<String>,
}

/// The query of one runner's part: up to `limit` sessions strictly past `start`.
pub fn scan_query(start: Option<&str>, ascending: bool, limit: usize) -> String {
    let order = if ascending { "asc" } else { "desc" };
    let start = start.map_or(String::new(), |s| format!("&start={s}"));
    format!("/v1/runner/sessions?order={order}&limit={limit}{start}")
}

impl<L> Source for Listing<'_, L>
where
    L: Source<Item = String, Error = crate::store::Error>,
{
    type Item = String;
    type Error = Error;

    fn contains(&mut self, id: &str) -> Result<bool, Error> {
        match self.cluster.owner(id) {
            Owner::Here => Ok(self.local.contains(id)?),
            Owner::Peer(peer) => Ok(self.runtime.block_on(self.cluster.peer_has_session(
                peer,
                id,
                self.authorization,
            ))?),
        }
    }

    fn scan(
        &mut self,
        start: Option<&str>,
        ascending: bool,
        limit: usize,
    ) -> Result<Vec<(String, String)>, Error> {
        let mut items = self.local.scan(start, ascending, limit)?;
        let query = scan_query(start, ascending, limit);
        let (cluster, authorization, query) = (self.cluster, self.authorization, &query);
        let asked = cluster.peers.iter().map(|peer| async move {
            let answer = peer.get(query, authorization, cluster.timeout).await;
            (peer, answer)
        });
        for (peer, answer) in self.runtime.block_on(join_all(asked)) {
            match answer
                .ok()
                .and_then(|(status, body)| match status.as_u16() {
                    200 => parse_part(&body),
                    _ => None,
                }) {
                Some(part) => items.extend(part),
                None => {
                    self.unreachable.insert(peer.name.clone());
                }
            }
        }
        items.sort_unstable_by(|a, b| match ascending {
            true => a.0.cmp(&b.0),
            false => b.0.cmp(&a.0),
        });
        items.truncate(limit);
        Ok(items)
    }
}

/// The sessions of a runner's part, each with its id.
fn parse_part(body: &[u8]) -> Option<Vec<(String, String)>> {
    let list: serde_json::Value = serde_json::from_slice(body).ok()?;
    list.get("data")?
        .as_array()?
        .iter()
        .map(|session| Some((session.get("id")?.as_str()?.to_owned(), session.to_string())))
        .collect()
}
