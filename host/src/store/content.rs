//! Contents by sha256, each stored once however many baseline files and
//! snapshot entries refer to it, counted by reference: the bytes go with the
//! last reference.

use super::Result;
use redb::{ReadableTable, TableDefinition, WriteTransaction};

/// sha256 → (references to it, length).
const CONTENT: TableDefinition<[u8; 32], (u64, u64)> = TableDefinition::new("baseline_content");
/// (sha256, chunk index) → bytes, `CHUNK_BYTES` per chunk.
const CONTENT_CHUNKS: TableDefinition<([u8; 32], u64), &[u8]> =
    TableDefinition::new("baseline_chunks");

pub(super) fn create_tables(tx: &WriteTransaction) -> Result<()> {
    tx.open_table(CONTENT)?;
    tx.open_table(CONTENT_CHUNKS)?;
    Ok(())
}

/// Adds one reference to the content `sha256` of `len` bytes; true when the
/// store lacked it (its chunks must then be stored with `put_chunk`).
pub(super) fn claim(tx: &WriteTransaction, sha256: [u8; 32], len: u64) -> Result<bool> {
    let mut content = tx.open_table(CONTENT)?;
    let known = content.get(sha256)?.map(|v| v.value());
    let (refs, fresh) = match known {
        Some((refs, _)) => (refs + 1, false),
        None => (1, true),
    };
    content.insert(sha256, (refs, len))?;
    Ok(fresh)
}

/// Whether the store holds the content `sha256`.
pub(super) fn held(tx: &WriteTransaction, sha256: [u8; 32]) -> Result<bool> {
    Ok(tx.open_table(CONTENT)?.get(sha256)?.is_some())
}

/// Adds references to contents, many at once: per sha256, (how many, its length).
pub(super) fn add_references(
    tx: &WriteTransaction,
    refs: &std::collections::HashMap<[u8; 32], (u64, u64)>,
) -> Result<()> {
    let mut content = tx.open_table(CONTENT)?;
    for (sha256, &(more, len)) in refs {
        let refs = content.get(*sha256)?.map_or(0, |v| v.value().0);
        content.insert(*sha256, (refs + more, len))?;
    }
    Ok(())
}

/// Stores chunk `index` of the content `sha256`.
pub(super) fn put_chunk(
    tx: &WriteTransaction,
    sha256: [u8; 32],
    index: u64,
    bytes: &[u8],
) -> Result<()> {
    tx.open_table(CONTENT_CHUNKS)?
        .insert((sha256, index), bytes)?;
    Ok(())
}

/// Drops one reference to a content; the bytes go with the last one.
pub(super) fn release(tx: &WriteTransaction, sha256: [u8; 32]) -> Result<()> {
    let mut content = tx.open_table(CONTENT)?;
    let refs = content.get(sha256)?.map(|v| v.value());
    match refs {
        Some((refs, len)) if refs > 1 => {
            content.insert(sha256, (refs - 1, len))?;
        }
        Some(_) => {
            content.remove(sha256)?;
            tx.open_table(CONTENT_CHUNKS)?
                .retain_in::<([u8; 32], u64), _>((sha256, 0)..=(sha256, u64::MAX), |_, _| false)?;
        }
        None => {}
    }
    Ok(())
}

impl super::Store {
    /// Up to `max` bytes of a stored content.
    pub fn content(&self, sha256: [u8; 32], max: u64) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        self.content_chunks(sha256, |bytes| {
            let room = max as usize - out.len();
            out.extend_from_slice(&bytes[..bytes.len().min(room)]);
            (out.len() as u64) < max
        })?;
        Ok(out)
    }

    /// Hands the chunks of content `sha256` to `each`, in order, until it
    /// returns false.
    pub fn content_chunks(
        &self,
        sha256: [u8; 32],
        mut each: impl FnMut(&[u8]) -> bool,
    ) -> Result<()> {
        let tx = self.read()?;
        let chunks = tx.open_table(CONTENT_CHUNKS)?;
        for chunk in chunks.range::<([u8; 32], u64)>((sha256, 0)..=(sha256, u64::MAX))? {
            if !each(chunk?.1.value()) {
                break;
            }
        }
        Ok(())
    }
}
