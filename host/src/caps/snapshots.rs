//! Host side of `reshost:api/snapshots`: the calling session's snapshots,
//! compared with each other and with its workspace now.

use super::CapsView;
use super::watch::{blocking, seconds};
use crate::bindings::snapshots::Host;
use crate::bindings::watch::{Change, Original};
use crate::snapshot;
use crate::store::EntryKind;

impl Host for CapsView<'_> {
    async fn changes(
        &mut self,
        base: String,
        other: Option<String>,
        path: Option<String>,
    ) -> wasmtime::Result<Result<Vec<Change>, String>> {
        let Some((_, session, root, _)) = self.caps.watch() else {
            wasmtime::bail!("snapshots are not granted to this call");
        };
        let store = self.caps.store()?.clone();
        blocking("comparing snapshots", move || {
            let found = snapshot::compare(
                &store,
                (&session, &root),
                (&base, other.as_deref()),
                path.as_deref(),
            )?;
            Ok(found
                .into_iter()
                .map(|d| Change {
                    path: d.path,
                    status: d.status.into(),
                    bytes: d.other.map(|e| e.stat.size),
                    modified_at: d.other.map(|e| seconds(e.stat.mtime_ns)),
                })
                .collect())
        })
        .await
    }

    async fn file(
        &mut self,
        id: String,
        path: String,
        max_bytes: u64,
    ) -> wasmtime::Result<Result<Option<Original>, String>> {
        let Some((_, session, _, max_read_bytes)) = self.caps.watch() else {
            wasmtime::bail!("snapshots are not granted to this call");
        };
        let store = self.caps.store()?.clone();
        blocking("reading a snapshot", move || {
            let found = snapshot::file(
                &store,
                (&session, &id),
                &path,
                max_bytes.min(max_read_bytes),
            )?;
            Ok(found.map(|(entry, bytes)| Original {
                bytes,
                size: entry.stat.size,
                symlink: entry.kind == EntryKind::Symlink,
            }))
        })
        .await
    }
}
