//! Everything reshost persists, in one redb database: sessions, the records
//! components keep, blobs, and the records of background processes. Writes that must happen together share one
//! transaction, so a crash leaves either all of them or none.

mod baseline;
mod bindings;
mod blobs;
mod content;
mod processes;
mod records;
mod sessions;
mod snapshots;

pub use baseline::{BaselineFile, BaselineWriter, FileStat};
pub use bindings::{Binding, Entry};
pub use blobs::{
    BlobInfo, BlobReader, BlobStats, BlobWriter, CHUNK_BYTES, ChunkWriter, StagedBlob,
};
pub use records::{Batch, Move, Record};
pub use snapshots::{EntryKind, SnapshotEntry};

use redb::{Database, Key, ReadTransaction, ReadableDatabase, Value, WriteTransaction};
use std::ops::Bound;
use std::path::{Path, PathBuf};

/// Why the store could not do what it was asked.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("database: {0}")]
    Database(#[from] redb::Error),
    #[error("corrupt {what}: {detail}")]
    Corrupt { what: String, detail: String },
    #[error("a write outside any session")]
    Unscoped,
}

/// redb's operations each have their own error type: all become `Database`.
macro_rules! from_redb {
    ($($error:ty),*) => {$(
        impl From<$error> for Error {
            fn from(e: $error) -> Error {
                Error::Database(e.into())
            }
        }
    )*};
}

from_redb!(
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError,
    redb::SetDurabilityError
);

pub type Result<T> = std::result::Result<T, Error>;

/// Upper bound for string key parts: ids and collection names are ASCII.
const MAX: &str = "\u{10FFFF}";

/// The key range of one page: keys strictly past `start` in the direction of
/// travel, within `first..last`.
fn window<T>(first: T, last: T, start: Option<T>, ascending: bool) -> (Bound<T>, Bound<T>) {
    match (start, ascending) {
        (Some(s), true) => (Bound::Excluded(s), Bound::Excluded(last)),
        (Some(s), false) => (Bound::Included(first), Bound::Excluded(s)),
        (None, _) => (Bound::Included(first), Bound::Excluded(last)),
    }
}

/// Up to `limit` entries of `range`, in the direction of travel, each mapped by `f`.
fn take<K: Key + 'static, V: Value + 'static, T>(
    range: redb::Range<'static, K, V>,
    ascending: bool,
    limit: usize,
    mut f: impl FnMut(K::SelfType<'_>, V::SelfType<'_>) -> Result<Option<T>>,
) -> Result<Vec<T>> {
    let iter: Box<dyn Iterator<Item = _>> = if ascending {
        Box::new(range)
    } else {
        Box::new(range.rev())
    };
    let mut out = Vec::new();
    for entry in iter.take(limit) {
        let (k, v) = entry?;
        out.extend(f(k.value(), v.value())?);
    }
    Ok(out)
}

/// The JSON text of `id` in a table keyed by (owner, id).
fn get_owned(
    store: &Store,
    table: redb::TableDefinition<(&str, &str), &str>,
    (owner, id): (&str, &str),
) -> Result<Option<String>> {
    let tx = store.read()?;
    let table = tx.open_table(table)?;
    Ok(table.get((owner, id))?.map(|v| v.value().to_owned()))
}

/// The JSON texts of a table keyed by (owner, id): up to `limit` of the
/// owner's with ids strictly past `start`, as (id, JSON).
fn scan_owned(
    store: &Store,
    table: redb::TableDefinition<(&str, &str), &str>,
    owner: &str,
    (start, ascending, limit): (Option<&str>, bool, usize),
) -> Result<Vec<(String, String)>> {
    let tx = store.read()?;
    let table = tx.open_table(table)?;
    let range = window(
        (owner, ""),
        (owner, MAX),
        start.map(|s| (owner, s)),
        ascending,
    );
    let range = table.range::<(&str, &str)>(range)?;
    take(range, ascending, limit, |(_, id), json| {
        Ok(Some((id.to_owned(), json.to_owned())))
    })
}

pub struct Store {
    db: Database,
}

impl Store {
    /// The database file inside a data directory.
    pub fn path(data_dir: &Path) -> PathBuf {
        data_dir.join("reshost.redb")
    }

    /// Opens (or creates) the database of `data_dir` and discards blobs that no record
    /// owns: uploads cut short by a crash. `cache_bytes` bounds redb's page cache,
    /// which would otherwise grow to 1 GiB while large blobs stream through it.
    pub fn open(data_dir: &Path, cache_bytes: usize) -> anyhow::Result<Store> {
        std::fs::create_dir_all(data_dir)?;
        let db = Database::builder()
            .set_cache_size(cache_bytes)
            .create(Self::path(data_dir))?;
        let store = Store { db };
        let tx = store.write()?;
        sessions::create_tables(&tx)?;
        records::create_tables(&tx)?;
        blobs::create_tables(&tx)?;
        baseline::create_tables(&tx)?;
        content::create_tables(&tx)?;
        bindings::create_tables(&tx)?;
        processes::create_tables(&tx)?;
        snapshots::create_tables(&tx)?;
        let swept = blobs::discard_all_pending(&tx)?;
        let live = sessions::ids(&tx.open_table(sessions::SESSIONS)?)?;
        let baselines = baseline::sweep(&tx, &|s| live.contains(s))?;
        let unfinished = snapshots::sweep(&tx)?;
        tx.commit()?;
        if swept > 0 {
            tracing::info!(blobs = swept, "discarded blobs of unfinished uploads");
        }
        if unfinished > 0 {
            tracing::info!(snapshots = unfinished, "discarded snapshots never finished");
        }
        if baselines > 0 {
            tracing::info!(baselines, "discarded baselines of no session");
        }
        Ok(store)
    }

    /// Makes every earlier lazy commit durable.
    fn flush(&self) -> Result<()> {
        self.write()?.commit()?;
        Ok(())
    }

    fn read(&self) -> Result<ReadTransaction> {
        Ok(self.db.begin_read()?)
    }

    /// A durable write transaction.
    fn write(&self) -> Result<WriteTransaction> {
        Ok(self.db.begin_write()?)
    }

    /// A write transaction that is made durable only by the next durable commit:
    /// for intermediate upload chunks, which are worthless until their file is
    /// recorded.
    fn write_lazy(&self) -> Result<WriteTransaction> {
        let mut tx = self.db.begin_write()?;
        tx.set_durability(redb::Durability::None)?;
        Ok(tx)
    }
}

impl Drop for Store {
    /// Closes the database cleanly: lazy commits (upload chunks, discards) are made
    /// durable, so the next start needs no repair.
    fn drop(&mut self) {
        if let Err(e) = self.flush() {
            tracing::error!(error = %e, "closing the database");
        }
    }
}
