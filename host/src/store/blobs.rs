//! Blobs: immutable byte strings stored as fixed-size chunks, written in a stream
//! and read in a stream, so memory never grows with a blob's size.
//!
//! A blob is *pending* from its first byte until a record claims it (in the same
//! transaction that stores the record). Pending blobs are discarded when their
//! writer is dropped, when the call that staged them ends without claiming them, and
//! at start-up (a crash mid-upload): no orphaned bytes survive.

use super::{Result, Store};
use redb::{
    ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition, WriteTransaction,
};
use sha2::{Digest, Sha256};
use std::sync::Arc;

/// Bytes per stored chunk: a chunk and its B-tree leaf's few bytes of keys and
/// offsets fill one 256 KiB redb page. A chunk of exactly 256 KiB took a 512 KiB
/// page, so every byte was written to disk twice. Databases written before hold
/// 256 KiB chunks: readers take a blob's chunk size from its first chunk.
pub const CHUNK_BYTES: usize = 252 * 1024;
/// Bytes a writer buffers before writing them out in one transaction.
const FLUSH_BYTES: usize = 4 * CHUNK_BYTES;

/// blob id → (length, lowercase hex sha256), once the blob is sealed.
const BLOBS: TableDefinition<u128, (u64, &str)> = TableDefinition::new("blobs");
/// (blob id, chunk index) → bytes.
const CHUNKS: TableDefinition<(u128, u64), &[u8]> = TableDefinition::new("blob_chunks");
/// blob ids that no record owns yet.
const PENDING: TableDefinition<u128, ()> = TableDefinition::new("blobs_pending");

pub(super) fn create_tables(tx: &WriteTransaction) -> Result<()> {
    tx.open_table(BLOBS)?;
    tx.open_table(CHUNKS)?;
    tx.open_table(PENDING)?;
    Ok(())
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlobInfo {
    pub id: u128,
    pub len: u64,
    pub sha256: String,
}

/// Counts, for operators and tests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlobStats {
    pub blobs: u64,
    pub chunks: u64,
    pub pending: u64,
}

/// Makes a pending blob owned (by the record being stored in `tx`).
pub(super) fn claim(tx: &WriteTransaction, id: u128) -> Result<()> {
    let was_pending = tx.open_table(PENDING)?.remove(id)?.is_some();
    if !was_pending {
        // Only a fresh blob can be attached; the caps layer guarantees it.
        return Err(super::Error::Corrupt {
            what: format!("blob {id:x}"),
            detail: "not pending".into(),
        });
    }
    Ok(())
}

/// Deletes a blob's bytes and metadata.
pub(super) fn delete(tx: &WriteTransaction, id: u128) -> Result<()> {
    tx.open_table(BLOBS)?.remove(id)?;
    tx.open_table(PENDING)?.remove(id)?;
    tx.open_table(CHUNKS)?
        .retain_in::<(u128, u64), _>((id, 0)..=(id, u64::MAX), |_, _| false)?;
    Ok(())
}

/// Deletes every pending blob; returns how many there were.
pub(super) fn discard_all_pending(tx: &WriteTransaction) -> Result<usize> {
    let pending: Vec<u128> = {
        let table = tx.open_table(PENDING)?;
        table
            .iter()?
            .map(|e| e.map(|(k, _)| k.value()))
            .collect::<std::result::Result<_, _>>()?
    };
    for &id in &pending {
        delete(tx, id)?;
    }
    Ok(pending.len())
}

impl Store {
    pub fn blob_info(&self, id: u128) -> Result<Option<BlobInfo>> {
        let tx = self.read()?;
        let table = tx.open_table(BLOBS)?;
        Ok(table.get(id)?.map(|v| {
            let (len, sha256) = v.value();
            BlobInfo {
                id,
                len,
                sha256: sha256.to_owned(),
            }
        }))
    }

    /// A reader of a blob as it is now: a snapshot, so a download in progress is
    /// not cut short by a concurrent delete.
    pub fn blob_reader(&self, id: u128) -> Result<BlobReader> {
        let tx = self.read()?;
        let chunks = tx.open_table(CHUNKS)?;
        let stride = chunks.get((id, 0))?.map(|c| c.value().len() as u64);
        Ok(BlobReader { id, chunks, stride })
    }

    /// Up to `len` bytes of a blob from `offset`.
    pub fn read_blob(&self, id: u128, offset: u64, len: usize) -> Result<Vec<u8>> {
        let reader = self.blob_reader(id)?;
        let mut out = Vec::with_capacity(len.min(FLUSH_BYTES));
        while out.len() < len {
            let pos = offset + out.len() as u64;
            match reader.read_at(pos, (len - out.len()) as u64)? {
                Some(piece) => out.extend_from_slice(&piece),
                None => break,
            }
        }
        Ok(out)
    }

    /// The bytes of every blob a record of the tenant's sessions owns (its uploads).
    pub fn stored_bytes(&self, tenant: &str) -> Result<u64> {
        let tx = self.read()?;
        let sessions = tx.open_table(super::sessions::SESSIONS)?;
        let records = tx.open_table(super::records::RECORDS)?;
        let blobs = tx.open_table(BLOBS)?;
        let mut total = 0;
        for session in sessions.range::<(&str, &str)>((tenant, "")..(tenant, super::MAX))? {
            let (key, _) = session?;
            let (_, id) = key.value();
            for record in records.range::<(&str, &str, &str)>((id, "", "")..(id, super::MAX, ""))? {
                let (_, value) = record?;
                if let (_, Some(blob)) = value.value()
                    && let Some(found) = blobs.get(blob)?
                {
                    total += found.value().0;
                }
            }
        }
        Ok(total)
    }

    /// Counts the blobs of a stopped server's database, reading it as it is (no
    /// start-up sweep): pending blobs left behind show up.
    pub fn inspect_blobs(data_dir: &std::path::Path) -> anyhow::Result<BlobStats> {
        let db = redb::ReadOnlyDatabase::open(Self::path(data_dir))?;
        let tx = db.begin_read()?;
        Ok(BlobStats {
            blobs: tx.open_table(BLOBS)?.len()?,
            chunks: tx.open_table(CHUNKS)?.len()?,
            pending: tx.open_table(PENDING)?.len()?,
        })
    }

    /// Deletes a blob if it is still pending (never one a record owns).
    fn discard(&self, id: u128) -> Result<()> {
        let tx = self.write_lazy()?;
        let pending = tx.open_table(PENDING)?.get(id)?.is_some();
        if !pending {
            tx.abort()?;
            return Ok(());
        }
        delete(&tx, id)?;
        tx.commit()?;
        Ok(())
    }
}

pub struct BlobReader {
    id: u128,
    chunks: redb::ReadOnlyTable<(u128, u64), &'static [u8]>,
    /// The length of every chunk but the last: the first one's (`None`: an
    /// empty blob).
    stride: Option<u64>,
}

impl BlobReader {
    /// The bytes from `pos` to the end of the chunk that holds it, at most
    /// `max`; `None` at or past the end of the blob.
    pub fn read_at(&self, pos: u64, max: u64) -> Result<Option<Vec<u8>>> {
        let Some(stride) = self.stride.filter(|s| *s > 0) else {
            return Ok(None);
        };
        let Some(chunk) = self.chunks.get((self.id, pos / stride))? else {
            return Ok(None);
        };
        let chunk = chunk.value();
        let from = (pos % stride) as usize;
        let to = chunk
            .len()
            .min(from.saturating_add(max.try_into().unwrap_or(usize::MAX)));
        Ok((from < to).then(|| chunk[from..to].to_vec()))
    }
}

/// A blob no record owns yet: discarded when dropped, unless a record claimed it.
pub struct StagedBlob {
    store: Arc<Store>,
    pub info: BlobInfo,
}

impl Drop for StagedBlob {
    fn drop(&mut self) {
        // A no-op for a claimed blob: `discard` only touches pending ones.
        let store = self.store.clone();
        let id = self.info.id;
        let discard = move || {
            if let Err(e) = store.discard(id) {
                tracing::error!(error = %e, "discarding an unclaimed blob");
            }
        };
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => drop(rt.spawn_blocking(discard)),
            Err(_) => discard(),
        }
    }
}

/// Writes a new blob in a stream, hashing it: a [`ChunkWriter`] and the hash of
/// what went through it.
pub struct BlobWriter {
    chunks: ChunkWriter,
    hasher: Sha256,
}

impl BlobWriter {
    pub fn new(store: &Arc<Store>) -> Result<BlobWriter> {
        Ok(BlobWriter {
            chunks: ChunkWriter::new(store)?,
            hasher: Sha256::new(),
        })
    }

    pub fn write(&mut self, bytes: &[u8]) -> Result<()> {
        self.hasher.update(bytes);
        self.chunks.write(bytes)
    }

    /// Seals the blob. It stays pending until a record claims it.
    pub fn finish(self) -> Result<StagedBlob> {
        self.chunks.seal(self.hasher.finalize().into())
    }
}

/// Writes a new blob's bytes in a stream, stored in chunk-sized pieces; at most
/// `FLUSH_BYTES` are held in memory. Its caller hashes the bytes (an upload does
/// so as they arrive, on another thread than these writes).
pub struct ChunkWriter {
    staged: StagedBlob,
    buffer: Vec<u8>,
    next_chunk: u64,
}

impl ChunkWriter {
    pub fn new(store: &Arc<Store>) -> Result<ChunkWriter> {
        let id: u128 = rand::random();
        let tx = store.write_lazy()?;
        tx.open_table(PENDING)?.insert(id, ())?;
        tx.commit()?;
        let info = BlobInfo {
            id,
            len: 0,
            sha256: String::new(),
        };
        Ok(ChunkWriter {
            staged: StagedBlob {
                store: store.clone(),
                info,
            },
            buffer: Vec::with_capacity(FLUSH_BYTES),
            next_chunk: 0,
        })
    }

    pub fn write(&mut self, mut bytes: &[u8]) -> Result<()> {
        self.staged.info.len += bytes.len() as u64;
        while !bytes.is_empty() {
            let room = FLUSH_BYTES - self.buffer.len();
            let (now, later) = bytes.split_at(room.min(bytes.len()));
            self.buffer.extend_from_slice(now);
            bytes = later;
            if self.buffer.len() == FLUSH_BYTES {
                self.flush()?;
            }
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        let tx = self.staged.store.write_lazy()?;
        {
            let mut chunks = tx.open_table(CHUNKS)?;
            for piece in self.buffer.chunks(CHUNK_BYTES) {
                chunks.insert((self.staged.info.id, self.next_chunk), piece)?;
                self.next_chunk += 1;
            }
        }
        tx.commit()?;
        self.buffer.clear();
        Ok(())
    }

    /// Seals the blob with the sha256 of every byte written. It stays pending
    /// until a record claims it.
    pub fn seal(mut self, sha256: [u8; 32]) -> Result<StagedBlob> {
        self.flush()?;
        let info = &mut self.staged.info;
        info.sha256 = hex::encode(sha256);
        let tx = self.staged.store.write_lazy()?;
        tx.open_table(BLOBS)?
            .insert(info.id, (info.len, info.sha256.as_str()))?;
        tx.commit()?;
        Ok(self.staged)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Batch, Record};

    /// A session of `tenant` whose record `key` owns a blob of `len` bytes.
    fn session_with_blob(store: &Arc<Store>, tenant: &str, id: &str, len: usize) {
        let mut writer = BlobWriter::new(store).unwrap();
        writer.write(&vec![1u8; len]).unwrap();
        let staged = writer.finish().unwrap();
        let mut batch = Batch::default();
        let record = Record {
            value: "{}".into(),
            blob: Some(staged.info.id),
        };
        batch.ops.insert(format!("file_{id}"), Some(record));
        store
            .create_session(tenant, id, "{}", "file", &batch)
            .unwrap();
    }

    /// Bytes whose every position is told apart.
    fn pattern(len: usize) -> Vec<u8> {
        (0..len)
            .map(|i| (i % 251) as u8 ^ (i / 251) as u8)
            .collect()
    }

    /// Offsets and lengths around every chunk edge of a blob cut every `stride`.
    fn reads(len: usize, stride: usize) -> Vec<(usize, usize)> {
        let mut reads = vec![(0, len), (0, 1), (len - 1, 1), (len - 1, 10), (len, 5)];
        for edge in (stride..len).step_by(stride) {
            reads.extend([(edge - 1, 2), (edge - 3, stride + 7), (edge, stride)]);
        }
        reads
    }

    #[test]
    fn a_blob_written_before_in_256_kib_chunks_reads_byte_exact() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), 1 << 20).unwrap();
        let (id, old_stride) = (7u128, 256 * 1024);
        let bytes = pattern(3 * old_stride + 1000);
        // As the writer before this chunk size stored it.
        let tx = store.write().unwrap();
        {
            let mut chunks = tx.open_table(CHUNKS).unwrap();
            for (i, piece) in bytes.chunks(old_stride).enumerate() {
                chunks.insert((id, i as u64), piece).unwrap();
            }
        }
        tx.commit().unwrap();
        for (offset, len) in reads(bytes.len(), old_stride) {
            let want = &bytes[offset.min(bytes.len())..(offset + len).min(bytes.len())];
            let got = store.read_blob(id, offset as u64, len).unwrap();
            assert!(got == want, "{offset}+{len}: {} bytes", got.len());
        }
    }

    #[test]
    fn a_new_blob_reads_byte_exact_at_every_chunk_edge() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(dir.path(), 1 << 20).unwrap());
        let bytes = pattern(2 * FLUSH_BYTES + 3 * CHUNK_BYTES + 5);
        let mut writer = BlobWriter::new(&store).unwrap();
        // In uneven pieces, as they come off the network.
        for piece in bytes.chunks(100_003) {
            writer.write(piece).unwrap();
        }
        let staged = writer.finish().unwrap();
        assert_eq!(staged.info.len, bytes.len() as u64);
        let id = staged.info.id;
        for (offset, len) in reads(bytes.len(), CHUNK_BYTES) {
            let want = &bytes[offset.min(bytes.len())..(offset + len).min(bytes.len())];
            assert!(
                store.read_blob(id, offset as u64, len).unwrap() == want,
                "{offset}+{len}"
            );
        }
        let reader = store.blob_reader(id).unwrap();
        let first = reader.read_at(10, u64::MAX).unwrap().unwrap();
        assert_eq!(first, bytes[10..CHUNK_BYTES]);
        assert_eq!(reader.read_at(bytes.len() as u64, 1).unwrap(), None);
        assert_eq!(
            store.blob_reader(12345).unwrap().read_at(0, 1).unwrap(),
            None
        );
    }

    #[test]
    fn a_stored_chunk_takes_one_page_of_its_own_size() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(dir.path(), 1 << 20).unwrap());
        let pages = |store: &Store| {
            let stats = store.write().unwrap().stats().unwrap();
            stats.allocated_pages() * stats.page_size() as u64
        };
        let before = pages(&store);
        let len = 64 * CHUNK_BYTES;
        let mut writer = BlobWriter::new(&store).unwrap();
        writer.write(&pattern(len)).unwrap();
        let _staged = writer.finish().unwrap();
        let grown = pages(&store) - before;
        // Keys, branch pages and the blob's row: well under 2% more. A chunk
        // that overflowed its page took twice its size.
        assert!(grown < len as u64 * 102 / 100, "{len} bytes took {grown}");
        assert!(grown >= len as u64);
    }

    #[test]
    fn stored_bytes_counts_the_blobs_of_every_session_of_the_tenant_only() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(dir.path(), 1 << 20).unwrap());
        session_with_blob(&store, "small", "conv_1", 1000);
        session_with_blob(&store, "small", "conv_2", 24);
        session_with_blob(&store, "other", "conv_3", 5000);
        assert_eq!(store.stored_bytes("small").unwrap(), 1024);
        assert_eq!(store.stored_bytes("other").unwrap(), 5000);
        assert_eq!(store.stored_bytes("nobody").unwrap(), 0);
    }
}
