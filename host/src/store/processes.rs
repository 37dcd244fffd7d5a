//! The records of a session's background processes, so that they are still
//! listed (as ended) after the server restarts. What a process wrote is not
//! kept here: it lives in memory while the server runs.

use super::{MAX, Result, Store};
use redb::{TableDefinition, WriteTransaction};

/// (session, process id) → the process's JSON as last recorded.
const PROCESSES: TableDefinition<(&str, &str), &str> = TableDefinition::new("processes");

pub(super) fn create_tables(tx: &WriteTransaction) -> Result<()> {
    tx.open_table(PROCESSES)?;
    Ok(())
}

/// Deletes every process record of a session.
pub(super) fn delete_all(tx: &WriteTransaction, session: &str) -> Result<()> {
    tx.open_table(PROCESSES)?
        .retain_in::<(&str, &str), _>((session, "")..(session, MAX), |_, _| false)?;
    Ok(())
}

impl Store {
    /// Records process `id` of `session` as `json`, durably.
    pub fn put_process(&self, session: &str, id: &str, json: &str) -> Result<()> {
        let tx = self.write()?;
        tx.open_table(PROCESSES)?.insert((session, id), json)?;
        tx.commit()?;
        Ok(())
    }

    pub fn process(&self, session: &str, id: &str) -> Result<Option<String>> {
        super::get_owned(self, PROCESSES, (session, id))
    }

    /// Up to `limit` process records of the session with ids strictly past `start`.
    pub fn scan_processes(
        &self,
        session: &str,
        start: Option<&str>,
        ascending: bool,
        limit: usize,
    ) -> Result<Vec<(String, String)>> {
        super::scan_owned(self, PROCESSES, session, (start, ascending, limit))
    }

    /// The session's process ids, oldest first (ids are time-ordered).
    pub fn process_ids(&self, session: &str) -> Result<Vec<String>> {
        let tx = self.read()?;
        let table = tx.open_table(PROCESSES)?;
        let mut ids = Vec::new();
        for entry in table.range::<(&str, &str)>((session, "")..(session, MAX))? {
            ids.push(entry?.0.value().1.to_owned());
        }
        Ok(ids)
    }

    /// Forgets the records of processes `ids` of `session`.
    pub fn delete_processes(&self, session: &str, ids: &[String]) -> Result<()> {
        let tx = self.write()?;
        {
            let mut table = tx.open_table(PROCESSES)?;
            for id in ids {
                table.remove((session, id.as_str()))?;
            }
        }
        tx.commit()?;
        Ok(())
    }
}
