//! Sessions, keyed by (tenant, id) so that a tenant can only ever name its own.

use super::{Result, Store, records};
use redb::{ReadableTable, TableDefinition, WriteTransaction};
use std::ops::Bound;

/// (tenant, session id) → the session object as JSON.
const SESSIONS: TableDefinition<(&str, &str), &str> = TableDefinition::new("sessions");

pub(super) fn create_tables(tx: &WriteTransaction) -> Result<()> {
    tx.open_table(SESSIONS)?;
    Ok(())
}

impl Store {
    /// Stores a new session together with the records its creation wrote, in one
    /// transaction: a session never exists half made.
    pub fn create_session(
        &self,
        tenant: &str,
        id: &str,
        json: &str,
        collection: &str,
        batch: &records::Batch,
    ) -> Result<()> {
        let tx = self.write()?;
        tx.open_table(SESSIONS)?.insert((tenant, id), json)?;
        records::apply(&tx, id, collection, batch)?;
        tx.commit()?;
        Ok(())
    }

    /// The session's JSON, if `tenant` has a session `id`.
    pub fn session(&self, tenant: &str, id: &str) -> Result<Option<String>> {
        let tx = self.read()?;
        let table = tx.open_table(SESSIONS)?;
        Ok(table.get((tenant, id))?.map(|v| v.value().to_owned()))
    }

    /// Up to `limit` of the tenant's sessions with ids strictly past `start`.
    pub fn scan_sessions(
        &self,
        tenant: &str,
        start: Option<&str>,
        ascending: bool,
        limit: usize,
    ) -> Result<Vec<(String, String)>> {
        let tx = self.read()?;
        let table = tx.open_table(SESSIONS)?;
        let (low, high) = match (start, ascending) {
            (Some(s), true) => (
                Bound::Excluded((tenant, s)),
                Bound::Excluded((tenant, "\u{10FFFF}")),
            ),
            (Some(s), false) => (Bound::Included((tenant, "")), Bound::Excluded((tenant, s))),
            (None, _) => (
                Bound::Included((tenant, "")),
                Bound::Excluded((tenant, "\u{10FFFF}")),
            ),
        };
        let range = table.range::<(&str, &str)>((low, high))?;
        let entry = |e: std::result::Result<_, redb::StorageError>| -> Result<(String, String)> {
            let (k, v): (redb::AccessGuard<(&str, &str)>, redb::AccessGuard<&str>) = e?;
            Ok((k.value().1.to_owned(), v.value().to_owned()))
        };
        if ascending {
            range.take(limit).map(entry).collect()
        } else {
            range.rev().take(limit).map(entry).collect()
        }
    }

    /// Every session id of every tenant.
    pub fn session_ids(&self) -> Result<std::collections::HashSet<String>> {
        let tx = self.read()?;
        let table = tx.open_table(SESSIONS)?;
        table
            .iter()?
            .map(|e| Ok(e?.0.value().1.to_owned()))
            .collect()
    }

    /// Deletes the session with everything it owns (records and their blobs) in one
    /// transaction. False when there was no such session.
    pub fn delete_session(&self, tenant: &str, id: &str) -> Result<bool> {
        let tx = self.write()?;
        let existed = tx.open_table(SESSIONS)?.remove((tenant, id))?.is_some();
        if existed {
            records::delete_all(&tx, id)?;
        }
        tx.commit()?;
        Ok(existed)
    }
}
