//! Everything reshost persists, in one redb database: sessions, the records
//! components keep, and blobs. Writes that must happen together share one
//! transaction, so a crash leaves either all of them or none.

mod blobs;
mod records;
mod sessions;

pub use blobs::{BlobInfo, BlobReader, BlobStats, BlobWriter, CHUNK_BYTES, StagedBlob};
pub use records::{Batch, Record};

use redb::{Database, ReadTransaction, ReadableDatabase, WriteTransaction};
use std::path::{Path, PathBuf};

/// Storage errors: redb's own, typed.
pub type Result<T> = std::result::Result<T, redb::Error>;

pub struct Store {
    db: Database,
}

impl Store {
    /// The database file inside a data directory.
    pub fn path(data_dir: &Path) -> PathBuf {
        data_dir.join("reshost.redb")
    }

    /// Opens (or creates) the database of `data_dir` and discards blobs that no record
    /// owns: uploads cut short by a crash.
    pub fn open(data_dir: &Path) -> anyhow::Result<Store> {
        std::fs::create_dir_all(data_dir)?;
        let db = Database::create(Self::path(data_dir))?;
        let store = Store { db };
        let tx = store.write()?;
        sessions::create_tables(&tx)?;
        records::create_tables(&tx)?;
        blobs::create_tables(&tx)?;
        let swept = blobs::discard_all_pending(&tx)?;
        tx.commit()?;
        if swept > 0 {
            tracing::info!(blobs = swept, "discarded blobs of unfinished uploads");
        }
        Ok(store)
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
        tx.set_durability(redb::Durability::None)
            .map_err(|e| redb::Error::from(redb::StorageError::Io(std::io::Error::other(e))))?;
        Ok(tx)
    }
}
