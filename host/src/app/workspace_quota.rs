//! The `workspace_bytes` quota, checked at each API write without walking the
//! tenant's workspaces each time: each tenant's figure is its bytes as last walked
//! plus what API writes may have added since (their whole bodies). A write that
//! fits the figure passes at once, and a figure older than
//! `limits.workspace_usage_refresh_ms` is walked again in the background; a write
//! that does not fit is checked again on a fresh walk before it is refused, so no
//! refusal rests on an old figure (space freed by deletes counts at once).

use super::{App, Error, blocking};
use crate::sync::Lock;
use crate::workspace;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Every tenant's figure (only tenants with a `workspace_bytes` quota have one).
#[derive(Default)]
pub struct Figures(Mutex<HashMap<String, Figure>>);

#[derive(Clone, Copy)]
struct Figure {
    walked: u64,
    /// Bytes API writes were let add since the walk began.
    added: u64,
    /// When the walk began.
    at: Instant,
    refreshing: bool,
}

impl Figures {
    /// The tenant's figure, and whether it is due a refresh (which the caller
    /// then starts: it is marked as refreshing).
    fn get(&self, tenant: &str, refresh: Duration) -> Option<(u64, bool)> {
        let mut figures = self.0.locked();
        let figure = figures.get_mut(tenant)?;
        let due = !figure.refreshing && figure.at.elapsed() >= refresh;
        figure.refreshing |= due;
        Some((figure.walked.saturating_add(figure.added), due))
    }

    fn add(&self, tenant: &str, bytes: u64) {
        if let Some(figure) = self.0.locked().get_mut(tenant) {
            figure.added = figure.added.saturating_add(bytes);
        }
    }

    /// What API writes had added when a walk began, to keep what they add while
    /// it runs (the walk may or may not see it: counted, to be safe).
    fn added(&self, tenant: &str) -> u64 {
        self.0.locked().get(tenant).map_or(0, |f| f.added)
    }

    /// Records a walk that began at `at`, when writes had added `added_before`.
    fn walked(&self, tenant: &str, walked: u64, at: Instant, added_before: u64) {
        let mut figures = self.0.locked();
        let added = figures
            .get(tenant)
            .map_or(0, |f| f.added.saturating_sub(added_before));
        figures.insert(
            tenant.to_owned(),
            Figure {
                walked,
                added,
                at,
                refreshing: false,
            },
        );
    }

    /// A background refresh that failed: the next write tries again.
    fn failed(&self, tenant: &str) {
        if let Some(figure) = self.0.locked().get_mut(tenant) {
            figure.refreshing = false;
        }
    }
}

/// The bytes in `dirs` (a walk of each; a missing one holds none).
fn walk(dirs: &[PathBuf]) -> std::io::Result<u64> {
    dirs.iter()
        .try_fold(0u64, |sum, dir| Ok(sum + workspace::bytes(dir)?))
}

impl App {
    /// The tenant's session workspaces.
    fn workspaces_of(&self, tenant: &str) -> Result<Vec<PathBuf>, Error> {
        Ok(self
            .store
            .sessions_of(tenant)?
            .iter()
            .map(|s| self.workspace(s))
            .collect())
    }

    /// The bytes in all the tenant's workspaces, walked now (and kept as its
    /// figure).
    pub(super) async fn workspace_bytes(&self, tenant: &str) -> Result<u64, Error> {
        let dirs = self.workspaces_of(tenant)?;
        let (at, added_before) = (Instant::now(), self.figures.added(tenant));
        let walked = blocking("measuring workspaces", move || walk(&dirs))
            .await?
            .map_err(|e| Error::internal("measuring workspaces", e))?;
        self.figures.walked(tenant, walked, at, added_before);
        Ok(walked)
    }

    /// Walks the tenant's workspaces on the blocking pool, not waited for.
    fn refresh_workspace_bytes(&self, tenant: &str) {
        let (figures, tenant) = (self.figures.clone(), tenant.to_owned());
        let dirs = match self.workspaces_of(&tenant) {
            Ok(dirs) => dirs,
            Err(e) => {
                tracing::warn!(error = %e, "listing a tenant's workspaces");
                return figures.failed(&tenant);
            }
        };
        let (at, added_before) = (Instant::now(), figures.added(&tenant));
        tokio::task::spawn_blocking(move || match walk(&dirs) {
            Ok(walked) => figures.walked(&tenant, walked, at, added_before),
            Err(e) => {
                tracing::warn!(error = %e, "measuring workspaces");
                figures.failed(&tenant);
            }
        });
    }

    /// Refuses an API write of up to `bytes` that would take the tenant's
    /// workspaces over its `workspace_bytes` quota.
    pub async fn room_for_write(&self, tenant: &str, bytes: u64) -> Result<(), Error> {
        let limit = self.quotas.tenant(tenant).limits.workspace_bytes;
        if limit == 0 {
            return Ok(());
        }
        let refresh = Duration::from_millis(self.config.limits.workspace_usage_refresh_ms);
        if let Some((used, due)) = self.figures.get(tenant, refresh) {
            if due {
                self.refresh_workspace_bytes(tenant);
            }
            if used.saturating_add(bytes) <= limit {
                self.figures.add(tenant, bytes);
                return Ok(());
            }
        }
        if self.workspace_bytes(tenant).await?.saturating_add(bytes) > limit {
            return Err(Error::NoRoom {
                quota: "workspace_bytes",
                limit,
            });
        }
        self.figures.add(tenant, bytes);
        Ok(())
    }
}
