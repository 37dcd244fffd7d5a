//! Sessions, keyed by (tenant, id) so that a tenant can only ever name its own.

use super::{MAX, Result, Store, baseline, records};
use redb::{ReadableTable, TableDefinition, WriteTransaction};
use std::collections::HashSet;

/// (tenant, session id) → the session object as JSON.
pub(super) const SESSIONS: TableDefinition<(&str, &str), &str> = TableDefinition::new("sessions");

pub(super) fn create_tables(tx: &WriteTransaction) -> Result<()> {
    tx.open_table(SESSIONS)?;
    Ok(())
}

/// Every session id of every tenant, in `table`.
pub(super) fn ids(
    table: &impl ReadableTable<(&'static str, &'static str), &'static str>,
) -> Result<HashSet<String>> {
    table
        .iter()?
        .map(|e| Ok(e?.0.value().1.to_owned()))
        .collect()
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
        super::get_owned(self, SESSIONS, (tenant, id))
    }

    /// Up to `limit` of the tenant's sessions with ids strictly past `start`.
    pub fn scan_sessions(
        &self,
        tenant: &str,
        start: Option<&str>,
        ascending: bool,
        limit: usize,
    ) -> Result<Vec<(String, String)>> {
        super::scan_owned(self, SESSIONS, tenant, (start, ascending, limit))
    }

    /// How many sessions the tenant has.
    pub fn count_sessions(&self, tenant: &str) -> Result<u64> {
        Ok(self.sessions_of(tenant)?.len() as u64)
    }

    /// The ids of the tenant's sessions.
    pub fn sessions_of(&self, tenant: &str) -> Result<Vec<String>> {
        let tx = self.read()?;
        let table = tx.open_table(SESSIONS)?;
        let mut ids = Vec::new();
        for entry in table.range::<(&str, &str)>((tenant, "")..(tenant, MAX))? {
            ids.push(entry?.0.value().1.to_owned());
        }
        Ok(ids)
    }

    /// How many sessions there are, of every tenant.
    pub fn session_count(&self) -> Result<u64> {
        let tx = self.read()?;
        Ok(redb::ReadableTableMetadata::len(&tx.open_table(SESSIONS)?)?)
    }

    /// Every session id of every tenant.
    pub fn session_ids(&self) -> Result<HashSet<String>> {
        let tx = self.read()?;
        ids(&tx.open_table(SESSIONS)?)
    }

    /// Deletes the session with everything it owns (records and their blobs, its
    /// baseline) in one transaction. False when there was no such session.
    pub fn delete_session(&self, tenant: &str, id: &str) -> Result<bool> {
        let tx = self.write()?;
        let existed = tx.open_table(SESSIONS)?.remove((tenant, id))?.is_some();
        if existed {
            records::delete_all(&tx, id)?;
            baseline::delete_all(&tx, id)?;
            super::processes::delete_all(&tx, id)?;
            super::snapshots::delete_all(&tx, id)?;
        }
        tx.commit()?;
        Ok(existed)
    }
}
