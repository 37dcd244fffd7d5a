//! Recording a workspace's baseline: every tracked file's stat and content hash,
//! and the contents the store does not hold yet.

use super::files::{read, sha256, stat_of};
use super::ignore::{ignored_dir, ignored_file};
use crate::store::{BaselineFile, CHUNK_BYTES, Store};
use crate::workspace::walk::{Next, walk};
use cap_std::fs::Dir;

/// The most threads copying one template: past a few, a copy waits on the disk
/// and on the one thread recording the baseline, not on more copiers.
const MAX_COPY_THREADS: usize = 8;

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
        match add(&mut writer, (item.parent, item.name), item.path, stat, None) {
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

/// Copies the tree `from` (a template) into the empty workspace `to` and records
/// the copy's baseline in the same pass, so that no file is read twice: a file up
/// to `READ_ONCE_BYTES` is read once, written, and hashed and stored from memory;
/// a larger one is copied by the kernel, then hashed from the copy. Everything is
/// copied (names that are not UTF-8 and ignored files included); files keep their
/// modes, symlinks their targets. The directories are made first, then their
/// files are copied by one thread per core (at most `MAX_COPY_THREADS`) while
/// this one records the baseline.
/// Returns how many files the baseline holds.
pub fn copy_and_record(
    store: &Store,
    session: &str,
    from: &std::path::Path,
    to: &Dir,
    copied: &(dyn Fn(&str) + Sync),
) -> anyhow::Result<usize> {
    let source = Dir::open_ambient_dir(from, cap_std::ambient_authority())?;
    let dirs = copy_dirs(&source, to)?;
    let next = std::sync::atomic::AtomicUsize::new(0);
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get().min(MAX_COPY_THREADS));
    let (rows, recorded) = std::sync::mpsc::sync_channel::<anyhow::Result<Row>>(1024);
    std::thread::scope(|scope| {
        for _ in 0..workers {
            let (rows, dirs, next, source) = (rows.clone(), &dirs, &next, &source);
            scope.spawn(move || {
                while let Some(dir) =
                    dirs.get(next.fetch_add(1, std::sync::atomic::Ordering::Relaxed))
                {
                    if copy_files(source, to, dir, &rows).is_err() {
                        return; // The recorder failed.
                    }
                    if let Some(path) = &dir.path {
                        copied(path);
                    }
                }
            });
        }
        drop(rows);
        let mut writer = store.baseline_writer(session);
        let mut files = 0;
        for row in recorded {
            let Row {
                path,
                stat,
                content,
            } = row?;
            // Without its content in memory, it is read from the copy.
            add(&mut writer, (to, &path), &path, stat, content.as_deref())?;
            files += 1;
        }
        writer.finish()?;
        Ok(files)
    })
}

/// A directory of the template (made in the copy already) and the entries to
/// copy into it. Directories are held by path, not open, so that a template of
/// any number of directories needs no more file descriptors than a few.
struct CopiedDir {
    /// Relative to both roots.
    rel: std::path::PathBuf,
    /// The same, when tracked (UTF-8 all the way, not ignored; `""`: the root).
    path: Option<String>,
    files: Vec<Pending>,
}

/// An entry of a directory to copy: its name, and its path when it is tracked.
struct Pending {
    name: std::ffi::OsString,
    path: Option<String>,
    symlink: bool,
}

/// A tracked file, copied: its path, the copy's stat, and its content when it
/// was read into memory (else the recorder reads it from the copy).
struct Row {
    path: String,
    stat: crate::store::FileStat,
    content: Option<Vec<u8>>,
}

/// The directory `rel` below `root` (`root` itself for an empty path).
fn open_below(root: &Dir, rel: &std::path::Path) -> std::io::Result<Dir> {
    match rel.as_os_str().is_empty() {
        true => root.try_clone(),
        false => root.open_dir(rel),
    }
}

/// Makes every directory of `source` in `copy`, and lists what each holds.
fn copy_dirs(source: &Dir, copy: &Dir) -> anyhow::Result<Vec<CopiedDir>> {
    let mut todo = vec![(std::path::PathBuf::new(), Some(String::new()))];
    let mut made = Vec::new();
    while let Some((rel, at)) = todo.pop() {
        let mut files = Vec::new();
        for item in open_below(source, &rel)?.entries()? {
            let item = item?;
            let name = item.file_name();
            let kind = item.file_type()?;
            let utf8 = name.to_str();
            let path = match (&at, utf8) {
                (Some(at), Some(n)) if at.is_empty() => Some(n.to_owned()),
                (Some(at), Some(n)) => Some(format!("{at}/{n}")),
                _ => None,
            };
            let ignored = |skip: fn(&str) -> bool| utf8.is_none_or(skip);
            if kind.is_dir() {
                let sub = rel.join(&name);
                copy.create_dir(&sub)?;
                todo.push((sub, path.filter(|_| !ignored(ignored_dir))));
            } else if kind.is_file() || kind.is_symlink() {
                let tracked = path.filter(|_| !ignored(ignored_file));
                files.push(Pending {
                    name,
                    path: tracked,
                    symlink: kind.is_symlink(),
                });
            }
            // Sockets, fifos, devices: not copied.
        }
        made.push(CopiedDir {
            rel,
            path: at,
            files,
        });
    }
    Ok(made)
}

/// Copies the files of `dir`, sending the row of each tracked one (or the
/// failure); Err when the recorder is gone.
fn copy_files(
    source: &Dir,
    copy: &Dir,
    dir: &CopiedDir,
    rows: &std::sync::mpsc::SyncSender<anyhow::Result<Row>>,
) -> Result<(), ()> {
    let opened = open_below(source, &dir.rel).and_then(|s| Ok((s, open_below(copy, &dir.rel)?)));
    let (from, to) = match opened {
        Ok(pair) => pair,
        Err(e) => return rows.send(Err(e.into())).map_err(drop),
    };
    for file in &dir.files {
        if let Some(row) = copy_file((&from, &to), file).transpose() {
            rows.send(row).map_err(drop)?;
        }
    }
    Ok(())
}

/// Copies one file or symlink of `source` into `copy`; its row when it is tracked.
fn copy_file((source, copy): (&Dir, &Dir), file: &Pending) -> anyhow::Result<Option<Row>> {
    use cap_std::fs::{OpenOptions, OpenOptionsExt, PermissionsExt};
    use std::io::{Read, Write};
    let name = &file.name;
    let row = |stat: &cap_std::fs::Metadata, content| {
        let stat = stat_of(stat)?;
        let path = file.path.clone()?;
        Some(Row {
            path,
            stat,
            content,
        })
    };
    if file.symlink {
        copy.symlink_contents(source.read_link_contents(name)?, name)?;
        return Ok(row(&copy.symlink_metadata(name)?, None));
    }
    let mut original = source.open(name)?;
    let meta = original.metadata()?;
    let mode = meta.permissions().mode();
    let mut made = copy.open_with(
        name,
        OpenOptions::new().write(true).create_new(true).mode(mode),
    )?;
    let content = match meta.len() <= READ_ONCE_BYTES {
        true => {
            let mut bytes = Vec::with_capacity(meta.len() as usize);
            original.read_to_end(&mut bytes)?;
            made.write_all(&bytes)?;
            Some(bytes)
        }
        false => {
            std::io::copy(&mut original, &mut made)?;
            None
        }
    };
    let mut stat = made.metadata()?;
    // The umask may have cut the mode at creation.
    if stat.permissions().mode() & 0o7777 != mode & 0o7777 {
        made.set_permissions(meta.permissions())?;
        stat = made.metadata()?;
    }
    Ok(row(&stat, content))
}

/// Records `path` (the file `name` in `dir`), with its content when it is in
/// memory already.
fn add(
    writer: &mut crate::store::BaselineWriter,
    (dir, name): (&Dir, &str),
    path: &str,
    stat: crate::store::FileStat,
    known: Option<&[u8]>,
) -> anyhow::Result<()> {
    keep_content((dir, name), stat, known, |step| match step {
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
    (dir, name): (&Dir, &str),
    stat: crate::store::FileStat,
    known: Option<&[u8]>,
    mut keep: impl FnMut(Keep) -> crate::store::Result<bool>,
) -> anyhow::Result<[u8; 32]> {
    let chunks = match known {
        Some(bytes) => Some(bytes.chunks(CHUNK_BYTES).map(<[u8]>::to_vec).collect()),
        None if stat.size <= READ_ONCE_BYTES => {
            let mut chunks = Vec::new();
            read(dir, name, stat.symlink, |bytes| chunks.push(bytes.to_vec()))?;
            Some(chunks)
        }
        None => None,
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
