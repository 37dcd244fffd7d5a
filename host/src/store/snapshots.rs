//! Snapshots of environments: per snapshot, every file, symlink and directory
//! of the workspace with its mode, its stat when it was taken (so that a file
//! whose stat did not change since is not hashed again) and, for files and
//! symlinks, the sha256 of its content, held in the shared content tables.
//! Also the restore journal: the session whose workspace is being made into a
//! snapshot, so that a restore a crash cut short is finished at the next start.

use super::content::{add_references, held, put_chunk, release};
use super::{FileStat, MAX, Result, Store};
use redb::{ReadableTable, TableDefinition, WriteTransaction};
use std::collections::{BTreeMap, HashMap};

/// An entry row: (kind, mode, size, mtime ns, ctime ns, inode, sha256).
type Row = (u8, u32, u64, i64, i64, u64, [u8; 32]);

/// (session, snapshot id) → the snapshot's JSON.
const SNAPSHOTS: TableDefinition<(&str, &str), &str> = TableDefinition::new("snapshots");
/// (session, snapshot id, path) → the entry.
const ENTRIES: TableDefinition<(&str, &str, &str), Row> = TableDefinition::new("snapshot_entries");
/// session → the snapshot its workspace is being restored to.
const RESTORING: TableDefinition<&str, &str> = TableDefinition::new("restoring");

/// Entries written per lazy transaction while a snapshot is taken.
const BATCH_ENTRIES: usize = 20_000;

pub(super) fn create_tables(tx: &WriteTransaction) -> Result<()> {
    tx.open_table(SNAPSHOTS)?;
    tx.open_table(ENTRIES)?;
    tx.open_table(RESTORING)?;
    Ok(())
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EntryKind {
    File,
    Symlink,
    Dir,
}

/// One entry of a snapshot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SnapshotEntry {
    pub kind: EntryKind,
    /// Permission bits (`0o7777`).
    pub mode: u32,
    /// As `lstat` saw it when the snapshot was taken (a directory's: zeros).
    pub stat: FileStat,
    /// Of the content (a symlink's target); zeros for a directory.
    pub sha256: [u8; 32],
}

fn to_row(e: &SnapshotEntry) -> Row {
    let kind = match e.kind {
        EntryKind::File => 0,
        EntryKind::Symlink => 1,
        EntryKind::Dir => 2,
    };
    let s = e.stat;
    (
        kind, e.mode, s.size, s.mtime_ns, s.ctime_ns, s.ino, e.sha256,
    )
}

fn from_row((kind, mode, size, mtime_ns, ctime_ns, ino, sha256): Row) -> SnapshotEntry {
    let kind = match kind {
        0 => EntryKind::File,
        1 => EntryKind::Symlink,
        _ => EntryKind::Dir,
    };
    SnapshotEntry {
        kind,
        mode,
        stat: FileStat {
            symlink: kind == EntryKind::Symlink,
            size,
            mtime_ns,
            ctime_ns,
            ino,
        },
        sha256,
    }
}

/// Deletes the entries of one snapshot, releasing their contents.
fn delete_entries(tx: &WriteTransaction, session: &str, id: &str) -> Result<()> {
    let mut hashes = Vec::new();
    tx.open_table(ENTRIES)?.retain_in::<(&str, &str, &str), _>(
        (session, id, "")..(session, id, MAX),
        |_, row| {
            if row.0 != 2 {
                hashes.push(row.6);
            }
            false
        },
    )?;
    for sha256 in hashes {
        release(tx, sha256)?;
    }
    Ok(())
}

/// Deletes every snapshot of a session (it is being deleted).
pub(super) fn delete_all(tx: &WriteTransaction, session: &str) -> Result<()> {
    let ids: Vec<String> = {
        let table = tx.open_table(SNAPSHOTS)?;
        let range = table.range::<(&str, &str)>((session, "")..(session, MAX))?;
        range
            .map(|e| Ok(e?.0.value().1.to_owned()))
            .collect::<Result<_>>()?
    };
    tx.open_table(SNAPSHOTS)?
        .retain_in::<(&str, &str), _>((session, "")..(session, MAX), |_, _| false)?;
    for id in ids {
        delete_entries(tx, session, &id)?;
    }
    tx.open_table(RESTORING)?.remove(session)?;
    Ok(())
}

/// Deletes the entries of snapshots that were never finished (a crash while
/// one was taken). Returns how many.
pub(super) fn sweep(tx: &WriteTransaction) -> Result<usize> {
    let mut orphans = Vec::new();
    {
        let entries = tx.open_table(ENTRIES)?;
        let snapshots = tx.open_table(SNAPSHOTS)?;
        let (mut session, mut id) = (String::new(), String::new());
        // One probe per snapshot: jump past each snapshot's keys.
        while let Some(entry) = entries
            .range::<(&str, &str, &str)>((session.as_str(), id.as_str(), MAX)..)?
            .next()
        {
            let key = entry?.0;
            (session, id) = (key.value().0.to_owned(), key.value().1.to_owned());
            if snapshots.get((session.as_str(), id.as_str()))?.is_none() {
                orphans.push((session.clone(), id.clone()));
            }
        }
    }
    for (session, id) in &orphans {
        delete_entries(tx, session, id)?;
    }
    Ok(orphans.len())
}

/// Records a snapshot's entries. Its transactions are lazy: `finish` makes
/// them durable with the snapshot itself; the start-up sweep removes the
/// entries of one never finished. Rows and reference counts are gathered and
/// written a batch at a time (each table opened once per batch, each content's
/// count written once): a snapshot of an unchanged tree is mostly that.
pub struct SnapshotWriter<'s> {
    store: &'s Store,
    session: String,
    id: String,
    tx: Option<WriteTransaction>,
    rows: Vec<(String, Row)>,
    /// References to add per content: (how many, its length).
    refs: HashMap<[u8; 32], (u64, u64)>,
}

impl SnapshotWriter<'_> {
    fn tx(&mut self) -> Result<&WriteTransaction> {
        let tx = match self.tx.take() {
            Some(tx) => tx,
            None => self.store.write_lazy()?,
        };
        Ok(self.tx.insert(tx))
    }

    /// Records `path`, whose content another snapshot holds (so the store has it).
    pub fn add_known(&mut self, path: &str, entry: &SnapshotEntry) -> Result<()> {
        if self.rows.len() >= BATCH_ENTRIES {
            self.flush(true)?;
        }
        self.rows.push((path.to_owned(), to_row(entry)));
        if entry.kind != EntryKind::Dir {
            self.refs
                .entry(entry.sha256)
                .or_insert((0, entry.stat.size))
                .0 += 1;
        }
        Ok(())
    }

    /// Records `path`. True when the store lacks its content: the caller then
    /// hands it over with `content`.
    pub fn add(&mut self, path: &str, entry: &SnapshotEntry) -> Result<bool> {
        let fresh = entry.kind != EntryKind::Dir
            && !self.refs.contains_key(&entry.sha256)
            && !held(self.tx()?, entry.sha256)?;
        self.add_known(path, entry)?;
        Ok(fresh)
    }

    /// Stores chunk `index` of the content `sha256`.
    pub fn content(&mut self, sha256: [u8; 32], index: u64, bytes: &[u8]) -> Result<()> {
        put_chunk(self.tx()?, sha256, index, bytes)
    }

    /// Writes the gathered rows and references; `commit`: ends the batch's
    /// transaction too.
    fn flush(&mut self, commit: bool) -> Result<()> {
        let (session, id) = (self.session.clone(), self.id.clone());
        let (rows, refs) = (
            std::mem::take(&mut self.rows),
            std::mem::take(&mut self.refs),
        );
        let tx = self.tx()?;
        {
            let mut entries = tx.open_table(ENTRIES)?;
            for (path, row) in &rows {
                entries.insert((session.as_str(), id.as_str(), path.as_str()), row)?;
            }
        }
        add_references(tx, &refs)?;
        if commit && let Some(tx) = self.tx.take() {
            tx.commit()?;
        }
        Ok(())
    }

    /// Stores the snapshot as `json`, durably, with every entry.
    pub fn finish(mut self, json: &str) -> Result<()> {
        self.flush(false)?;
        let (session, id) = (self.session.clone(), self.id.clone());
        let mut tx = self.tx.take().map_or_else(|| self.store.write(), Ok)?;
        tx.set_durability(redb::Durability::Immediate)?;
        tx.open_table(SNAPSHOTS)?
            .insert((session.as_str(), id.as_str()), json)?;
        tx.commit()?;
        Ok(())
    }
}

impl Store {
    pub fn snapshot_writer(&self, session: &str, id: &str) -> SnapshotWriter<'_> {
        SnapshotWriter {
            store: self,
            session: session.to_owned(),
            id: id.to_owned(),
            tx: None,
            rows: Vec::new(),
            refs: HashMap::new(),
        }
    }

    /// A snapshot's JSON.
    pub fn snapshot(&self, session: &str, id: &str) -> Result<Option<String>> {
        super::get_owned(self, SNAPSHOTS, (session, id))
    }

    /// Up to `limit` snapshots of the session with ids strictly past `start`.
    pub fn scan_snapshots(
        &self,
        session: &str,
        start: Option<&str>,
        ascending: bool,
        limit: usize,
    ) -> Result<Vec<(String, String)>> {
        super::scan_owned(self, SNAPSHOTS, session, (start, ascending, limit))
    }

    /// Every entry of a snapshot, by path.
    pub fn snapshot_entries(
        &self,
        session: &str,
        id: &str,
    ) -> Result<BTreeMap<String, SnapshotEntry>> {
        let tx = self.read()?;
        let table = tx.open_table(ENTRIES)?;
        let range = table.range::<(&str, &str, &str)>((session, id, "")..(session, id, MAX))?;
        range
            .map(|e| {
                let (k, v) = e?;
                Ok((k.value().2.to_owned(), from_row(v.value())))
            })
            .collect()
    }

    /// The entries of a snapshot at `paths`, and of everything under those
    /// that are directories.
    pub fn snapshot_subtrees<'a>(
        &self,
        session: &str,
        id: &str,
        paths: impl IntoIterator<Item = &'a str>,
    ) -> Result<BTreeMap<String, SnapshotEntry>> {
        let tx = self.read()?;
        let table = tx.open_table(ENTRIES)?;
        let mut found = BTreeMap::new();
        for path in paths {
            let Some(entry) = table.get((session, id, path))?.map(|v| from_row(v.value())) else {
                continue;
            };
            found.insert(path.to_owned(), entry);
            if entry.kind != EntryKind::Dir {
                continue;
            }
            // Below `path/`: up to `path0` ('0' follows '/').
            let (first, past) = (format!("{path}/"), format!("{path}0"));
            for row in table.range::<(&str, &str, &str)>(
                (session, id, first.as_str())..(session, id, past.as_str()),
            )? {
                let (k, v) = row?;
                found.insert(k.value().2.to_owned(), from_row(v.value()));
            }
        }
        Ok(found)
    }

    /// One entry of a snapshot.
    pub fn snapshot_entry(
        &self,
        session: &str,
        id: &str,
        path: &str,
    ) -> Result<Option<SnapshotEntry>> {
        let tx = self.read()?;
        let table = tx.open_table(ENTRIES)?;
        Ok(table.get((session, id, path))?.map(|v| from_row(v.value())))
    }

    /// Deletes a snapshot and the contents nothing else refers to; false when
    /// there was no such snapshot.
    pub fn delete_snapshot(&self, session: &str, id: &str) -> Result<bool> {
        let tx = self.write()?;
        let existed = tx.open_table(SNAPSHOTS)?.remove((session, id))?.is_some();
        if existed {
            delete_entries(&tx, session, id)?;
        }
        tx.commit()?;
        Ok(existed)
    }

    /// Notes, durably, that the session's workspace is being restored to
    /// snapshot `id` (`None`: it no longer is).
    pub fn set_restoring(&self, session: &str, id: Option<&str>) -> Result<()> {
        let tx = self.write()?;
        {
            let mut table = tx.open_table(RESTORING)?;
            match id {
                Some(id) => table.insert(session, id)?,
                None => table.remove(session)?,
            };
        }
        tx.commit()?;
        Ok(())
    }

    /// How many snapshots the tenant keeps, and the bytes of new contents they
    /// stored (the sum of their `new_bytes`).
    pub fn snapshot_usage(&self, tenant: &str) -> Result<(u64, u64)> {
        let sessions = self.sessions_of(tenant)?;
        let tx = self.read()?;
        let table = tx.open_table(SNAPSHOTS)?;
        let (mut count, mut bytes) = (0u64, 0u64);
        for session in &sessions {
            let range =
                table.range::<(&str, &str)>((session.as_str(), "")..(session.as_str(), MAX))?;
            for entry in range {
                let json = entry?.1;
                let snapshot: serde_json::Value =
                    serde_json::from_str(json.value()).unwrap_or_default();
                count += 1;
                bytes = bytes.saturating_add(snapshot["new_bytes"].as_u64().unwrap_or(0));
            }
        }
        Ok((count, bytes))
    }

    /// The restores a crash cut short: (session, snapshot id).
    pub fn restoring(&self) -> Result<Vec<(String, String)>> {
        let tx = self.read()?;
        let table = tx.open_table(RESTORING)?;
        table
            .iter()?
            .map(|e| {
                let (k, v) = e?;
                Ok((k.value().to_owned(), v.value().to_owned()))
            })
            .collect()
    }
}
