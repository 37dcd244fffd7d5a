//! Host side of `reshost:api/watch`: the session workspace's changes since its
//! baseline, and baseline contents for diffs.

use super::CapsView;
use crate::bindings::watch::{Change, Host, Original, Status};
use crate::watch;

/// Runs tracker (or snapshot) work on the blocking pool. Failures are logged here and reach the
/// component as a message that names no host path.
pub(super) async fn blocking<T: Send + 'static>(
    what: &'static str,
    f: impl FnOnce() -> anyhow::Result<T> + Send + 'static,
) -> wasmtime::Result<Result<T, String>> {
    Ok(tokio::task::spawn_blocking(f).await?.map_err(|e| {
        tracing::error!(error = format!("{e:#}"), "{what}");
        format!("{what} failed")
    }))
}

impl From<watch::Status> for Status {
    fn from(status: watch::Status) -> Status {
        match status {
            watch::Status::Created => Status::Created,
            watch::Status::Modified => Status::Modified,
            watch::Status::Deleted => Status::Deleted,
        }
    }
}

pub(super) fn seconds(ns: i64) -> u64 {
    u64::try_from(ns / 1_000_000_000).unwrap_or(0)
}

impl Host for CapsView<'_> {
    async fn changes(&mut self) -> wasmtime::Result<Result<Vec<Change>, String>> {
        let Some((tracker, session, dir, _)) = self.caps.watch() else {
            wasmtime::bail!("change tracking is not granted to this call");
        };
        blocking("change tracking", move || {
            let changes = tracker.changes(&session, &dir)?;
            Ok(changes
                .into_iter()
                .map(|c| Change {
                    path: c.path,
                    status: c.status.into(),
                    bytes: c.now.map(|s| s.size),
                    modified_at: c.now.map(|s| seconds(s.mtime_ns)),
                })
                .collect())
        })
        .await
    }

    async fn baseline(
        &mut self,
        path: String,
        max_bytes: u64,
    ) -> wasmtime::Result<Result<Option<Original>, String>> {
        let Some((tracker, session, _, max_read_bytes)) = self.caps.watch() else {
            wasmtime::bail!("change tracking is not granted to this call");
        };
        blocking("reading the baseline", move || {
            let found = tracker.baseline(&session, &path, max_bytes.min(max_read_bytes))?;
            Ok(found.map(|(file, bytes)| Original {
                bytes,
                size: file.stat.size,
                symlink: file.stat.symlink,
            }))
        })
        .await
    }
}
