//! Environment baselines: what every tracked file of a session's workspace was
//! when the session began (its stat and content hash), and the content itself,
//! stored once per distinct sha256 however many sessions share it (sessions made
//! from one template share nearly all of it).

use super::content::{claim, put_chunk, release};
use super::{MAX, Result, Store};
use redb::{ReadableTable, TableDefinition, WriteTransaction};
use std::collections::HashMap;

/// A baseline row: (is a symlink, size, mtime ns, ctime ns, inode, sha256).
type Row = (u8, u64, i64, i64, u64, [u8; 32]);

/// (session, path) → the file as the session began.
const BASELINE: TableDefinition<(&str, &str), Row> = TableDefinition::new("baseline");

/// Entries written per lazy transaction while a baseline is recorded.
const BATCH_ENTRIES: usize = 20_000;

pub(super) fn create_tables(tx: &WriteTransaction) -> Result<()> {
    tx.open_table(BASELINE)?;
    Ok(())
}

/// What change tracking compares: a file (or symlink) as `lstat` sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileStat {
    pub symlink: bool,
    pub size: u64,
    pub mtime_ns: i64,
    pub ctime_ns: i64,
    pub ino: u64,
}

/// A file of the baseline: its stat then, and the sha256 of its content (a
/// symlink's content is its target).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BaselineFile {
    pub stat: FileStat,
    pub sha256: [u8; 32],
}

fn to_row(f: &BaselineFile) -> Row {
    let s = f.stat;
    (
        s.symlink as u8,
        s.size,
        s.mtime_ns,
        s.ctime_ns,
        s.ino,
        f.sha256,
    )
}

fn from_row((symlink, size, mtime_ns, ctime_ns, ino, sha256): Row) -> BaselineFile {
    BaselineFile {
        stat: FileStat {
            symlink: symlink != 0,
            size,
            mtime_ns,
            ctime_ns,
            ino,
        },
        sha256,
    }
}

/// Deletes a session's baseline, and the contents no other baseline shares.
pub(super) fn delete_all(tx: &WriteTransaction, session: &str) -> Result<()> {
    let mut hashes = Vec::new();
    tx.open_table(BASELINE)?.retain_in::<(&str, &str), _>(
        (session, "")..(session, MAX),
        |_, row| {
            hashes.push(row.5);
            false
        },
    )?;
    for sha256 in hashes {
        release(tx, sha256)?;
    }
    Ok(())
}

/// Deletes the baselines of sessions that do not exist: recorded just before a
/// crash, or for a session whose creation failed. Returns how many.
pub(super) fn sweep(tx: &WriteTransaction, live: &dyn Fn(&str) -> bool) -> Result<usize> {
    let mut orphans = Vec::new();
    {
        let table = tx.open_table(BASELINE)?;
        let mut from = String::new();
        // One probe per session: jump past each session's keys.
        while let Some(entry) = table.range::<(&str, &str)>((from.as_str(), "")..)?.next() {
            let session = entry?.0.value().0.to_owned();
            if !live(&session) {
                orphans.push(session.clone());
            }
            from = session + "\0";
        }
    }
    for session in &orphans {
        delete_all(tx, session)?;
    }
    Ok(orphans.len())
}

/// Records a session's baseline. Its transactions are lazy: they become durable
/// with the session's creation, and the start-up sweep removes them if that never
/// happens.
pub struct BaselineWriter<'s> {
    store: &'s Store,
    session: String,
    tx: Option<WriteTransaction>,
    entries: usize,
}

impl Store {
    pub fn baseline_writer(&self, session: &str) -> BaselineWriter<'_> {
        BaselineWriter {
            store: self,
            session: session.to_owned(),
            tx: None,
            entries: 0,
        }
    }

    /// Deletes a session's baseline (a session whose creation failed).
    pub fn delete_baseline(&self, session: &str) -> Result<()> {
        let tx = self.write_lazy()?;
        delete_all(&tx, session)?;
        tx.commit()?;
        Ok(())
    }

    /// The baseline of one file.
    pub fn baseline_file(&self, session: &str, path: &str) -> Result<Option<BaselineFile>> {
        let tx = self.read()?;
        let table = tx.open_table(BASELINE)?;
        Ok(table.get((session, path))?.map(|v| from_row(v.value())))
    }

    /// The baseline files strictly inside directory `dir` (`""`: all of them).
    pub fn baseline_under(
        &self,
        session: &str,
        dir: &str,
    ) -> Result<HashMap<String, BaselineFile>> {
        let tx = self.read()?;
        let table = tx.open_table(BASELINE)?;
        // Paths inside `dir` sort between "dir/" and "dir0" ('0' follows '/').
        let (first, last) = if dir.is_empty() {
            (String::new(), MAX.to_owned())
        } else {
            (format!("{dir}/"), format!("{dir}0"))
        };
        let range =
            table.range::<(&str, &str)>((session, first.as_str())..(session, last.as_str()))?;
        range
            .map(|e| {
                let (k, v) = e?;
                Ok((k.value().1.to_owned(), from_row(v.value())))
            })
            .collect()
    }
}

impl BaselineWriter<'_> {
    fn tx(&mut self) -> Result<&WriteTransaction> {
        let tx = match self.tx.take() {
            Some(tx) => tx,
            None => self.store.write_lazy()?,
        };
        Ok(self.tx.insert(tx))
    }

    /// Records `path`. True when the store lacks its content: the caller then hands
    /// it over with `content`.
    pub fn add(&mut self, path: &str, file: &BaselineFile) -> Result<bool> {
        if self.entries >= BATCH_ENTRIES {
            self.commit()?;
        }
        self.entries += 1;
        let session = self.session.clone();
        let tx = self.tx()?;
        tx.open_table(BASELINE)?
            .insert((session.as_str(), path), to_row(file))?;
        claim(tx, file.sha256, file.stat.size)
    }

    /// Stores chunk `index` of the content `sha256`.
    pub fn content(&mut self, sha256: [u8; 32], index: u64, bytes: &[u8]) -> Result<()> {
        put_chunk(self.tx()?, sha256, index, bytes)
    }

    fn commit(&mut self) -> Result<()> {
        if let Some(tx) = self.tx.take() {
            tx.commit()?;
        }
        self.entries = 0;
        Ok(())
    }

    pub fn finish(mut self) -> Result<()> {
        self.commit()
    }
}
