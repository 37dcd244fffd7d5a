//! Recording a workspace's baseline: every tracked file's stat and content hash,
//! and the contents the store does not hold yet.

use super::files::{read, sha256, stat_of};
use super::ignore::{ignored_dir, ignored_file};
use crate::store::{BaselineFile, CHUNK_BYTES, Store};
use crate::workspace::walk::{Next, walk};
use cap_std::fs::Dir;

/// Files up to this size are read once, hashed and stored from memory; larger
/// ones are read again to be stored, so memory stays bounded.
const READ_ONCE_BYTES: u64 = 4 * CHUNK_BYTES as u64;

/// Records the baseline of the workspace `root` for `session`; returns how many
/// files it holds.
pub fn record(store: &Store, session: &str, root: &Dir) -> anyhow::Result<usize> {
    let mut writer = store.baseline_writer(session);
    let mut files = 0;
    let mut failure = None;
    walk(root.try_clone()?, "", |item| {
        if item.kind.is_dir() {
            return if ignored_dir(item.name) {
                Next::Skip
            } else {
                Next::Continue
            };
        }
        if ignored_file(item.name) {
            return Next::Continue;
        }
        let Some(stat) = item.entry.metadata().ok().and_then(|m| stat_of(&m)) else {
            return Next::Continue;
        };
        match add(&mut writer, item.parent, item.name, item.path, stat) {
            Ok(()) => {
                files += 1;
                Next::Continue
            }
            Err(e) => {
                failure = Some(e);
                Next::Stop
            }
        }
    })?;
    if let Some(e) = failure {
        return Err(e);
    }
    writer.finish()?;
    Ok(files)
}

fn add(
    writer: &mut crate::store::BaselineWriter,
    dir: &Dir,
    name: &str,
    path: &str,
    stat: crate::store::FileStat,
) -> anyhow::Result<()> {
    keep_content(dir, name, stat, |step| match step {
        Keep::Claim(sha256) => writer.add(path, &BaselineFile { stat, sha256 }),
        Keep::Chunk(sha256, index, bytes) => writer.content(sha256, index, bytes).map(|()| true),
    })?;
    Ok(())
}

/// What [`keep_content`] asks of the store.
pub enum Keep<'a> {
    /// Refer to this content: true when the store lacks it.
    Claim([u8; 32]),
    /// Store this chunk of it.
    Chunk([u8; 32], u64, &'a [u8]),
}

/// Hashes the content of `name` in `dir` (a symlink's: its target), claims it,
/// and stores it when the store lacked it; its sha256.
pub fn keep_content(
    dir: &Dir,
    name: &str,
    stat: crate::store::FileStat,
    mut keep: impl FnMut(Keep) -> crate::store::Result<bool>,
) -> anyhow::Result<[u8; 32]> {
    let chunks = if stat.size <= READ_ONCE_BYTES {
        let mut chunks = Vec::new();
        read(dir, name, stat.symlink, |bytes| chunks.push(bytes.to_vec()))?;
        Some(chunks)
    } else {
        None
    };
    let sha256 = match &chunks {
        Some(chunks) => {
            use sha2::Digest;
            let mut hasher = sha2::Sha256::new();
            chunks.iter().for_each(|c| hasher.update(c));
            hasher.finalize().into()
        }
        None => sha256(dir, name, stat.symlink)?,
    };
    if !keep(Keep::Claim(sha256))? {
        return Ok(sha256);
    }
    let mut index = 0;
    let mut stored = Ok(true);
    let mut store_chunk = |bytes: &[u8]| {
        if stored.is_ok() {
            stored = keep(Keep::Chunk(sha256, index, bytes));
        }
        index += 1;
    };
    match chunks {
        Some(chunks) => chunks.iter().for_each(|c| store_chunk(c)),
        None => read(dir, name, stat.symlink, store_chunk)?,
    }
    stored?;
    Ok(sha256)
}
