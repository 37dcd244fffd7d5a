//! Host side of `reshost:api/records`: the calling session's records in the slot's
//! collection. Writes go to the call's batch and are committed only when the call
//! succeeds.

use super::CapsView;
use crate::bindings::BlobHandle;
use crate::bindings::records::{Direction, Entry, Host};
use crate::store::Record;
use wasmtime::component::Resource;

/// Longest record key, in bytes.
pub const MAX_KEY_BYTES: usize = 512;
/// Largest record value, in bytes.
pub const MAX_VALUE_BYTES: usize = 1024 * 1024;
/// Most records one `scan` returns.
pub const MAX_SCAN: u32 = 10_000;

impl CapsView<'_> {
    fn scope(&self) -> wasmtime::Result<&super::Scope> {
        self.caps
            .scope
            .as_ref()
            .ok_or_else(|| wasmtime::format_err!("records are not granted to this call"))
    }

    /// The record as this call sees it: its own writes first.
    fn current(&self, key: &str) -> wasmtime::Result<Option<Record>> {
        if let Some(op) = self.caps.batch.ops.get(key) {
            return Ok(op.clone());
        }
        let scope = self.scope()?;
        Ok(self
            .caps
            .store()?
            .record(&scope.session, scope.collection, key)?)
    }
}

impl Host for CapsView<'_> {
    fn get(&mut self, key: String) -> wasmtime::Result<Option<String>> {
        Ok(self.current(&key)?.map(|r| r.value))
    }

    fn scan(
        &mut self,
        start: Option<String>,
        direction: Direction,
        limit: u32,
    ) -> wasmtime::Result<Vec<Entry>> {
        let scope = self.scope()?;
        let ascending = matches!(direction, Direction::Ascending);
        let limit = limit.min(MAX_SCAN) as usize;
        let entries = self.caps.store()?.scan_records(
            &scope.session,
            scope.collection,
            start.as_deref(),
            ascending,
            limit,
        )?;
        Ok(entries
            .into_iter()
            .map(|(key, value)| Entry { key, value })
            .collect())
    }

    fn put(
        &mut self,
        key: String,
        value: String,
        attach: Option<Resource<BlobHandle>>,
    ) -> wasmtime::Result<()> {
        self.scope()?;
        if key.is_empty() || key.len() > MAX_KEY_BYTES {
            wasmtime::bail!("record keys must be 1 to {MAX_KEY_BYTES} bytes");
        }
        if value.len() > MAX_VALUE_BYTES {
            wasmtime::bail!("record values must be at most {MAX_VALUE_BYTES} bytes");
        }
        let blob = match attach {
            Some(handle) => {
                let handle = self.table.delete(handle)?;
                if !handle.fresh {
                    wasmtime::bail!("only a blob staged in this call can be attached to a record");
                }
                Some(handle.info.id)
            }
            None => None,
        };
        self.caps
            .batch
            .ops
            .insert(key, Some(Record { value, blob }));
        Ok(())
    }

    fn delete(&mut self, key: String) -> wasmtime::Result<bool> {
        let existed = self.current(&key)?.is_some();
        if existed {
            self.caps.batch.ops.insert(key, None);
        }
        Ok(existed)
    }

    fn attached_blob(&mut self, key: String) -> wasmtime::Result<Option<Resource<BlobHandle>>> {
        let Some(id) = self.current(&key)?.and_then(|r| r.blob) else {
            return Ok(None);
        };
        let Some(info) = self.caps.store()?.blob_info(id)? else {
            return Ok(None);
        };
        Ok(Some(self.table.push(BlobHandle { info, fresh: false })?))
    }
}
