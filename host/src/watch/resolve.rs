//! Deciding which files differ from the baseline: for the dirty paths alone, or
//! for the whole tree.

use super::files::{self, is_dir, lstat, stat_of};
use super::ignore::{ignored, ignored_dir, ignored_file};
use super::{Known, Status};
use crate::store::{BaselineFile, FileStat, Store};
use crate::workspace::walk::{Next, walk};
use cap_std::fs::Dir;
use std::collections::{BTreeMap, BTreeSet};
use std::io;

pub struct Check<'a> {
    pub store: &'a Store,
    pub session: &'a str,
    /// The workspace root.
    pub dir: &'a Dir,
}

impl Check<'_> {
    /// Compares the whole tree with the baseline: stat first, content where the
    /// stat differs but the size does not.
    pub fn everything(&self) -> anyhow::Result<BTreeMap<String, Known>> {
        let mut baseline = self.store.baseline_under(self.session, "")?;
        let mut differing = Vec::new();
        self.files_below("", |path, stat| {
            let base = baseline.remove(path);
            if base.map(|b| b.stat) != Some(stat) {
                differing.push((path.to_owned(), stat, base));
            }
        })?;
        let mut changed = BTreeMap::new();
        for (path, stat, base) in differing {
            if let Some(known) = self.judge(&path, Some(stat), base, None)? {
                changed.insert(path, known);
            }
        }
        for path in baseline.into_keys() {
            changed.insert(path, deleted());
        }
        Ok(changed)
    }

    /// Re-checks the dirty paths, and everything that is or was below those that
    /// are (or were) directories, updating `changed`.
    pub fn paths(
        &self,
        dirty: &BTreeSet<String>,
        changed: &mut BTreeMap<String, Known>,
    ) -> anyhow::Result<()> {
        let mut candidates = BTreeSet::new();
        for path in dirty {
            candidates.insert(path.clone());
            candidates.extend(self.store.baseline_under(self.session, path)?.into_keys());
            let (first, last) = (format!("{path}/"), format!("{path}0"));
            candidates.extend(changed.range(first..last).map(|(p, _)| p.clone()));
            if is_dir(self.dir, path)? {
                self.files_below(path, |p, _| {
                    candidates.insert(p.to_owned());
                })?;
            }
        }
        for path in candidates {
            if ignored(&path) {
                continue;
            }
            let now = lstat(self.dir, &path)?;
            let base = self.store.baseline_file(self.session, &path)?;
            match self.judge(&path, now, base, changed.get(&path))? {
                Some(known) => changed.insert(path, known),
                None => changed.remove(&path),
            };
        }
        Ok(())
    }

    /// Calls `each` for every tracked file below directory `at` (`""`: the root).
    fn files_below(&self, at: &str, mut each: impl FnMut(&str, FileStat)) -> io::Result<()> {
        let start = if at.is_empty() {
            self.dir.try_clone()?
        } else {
            self.dir.open_dir(at)?
        };
        walk(start, at, |item| {
            if item.kind.is_dir() {
                return if ignored_dir(item.name) {
                    Next::Skip
                } else {
                    Next::Continue
                };
            }
            if !ignored_file(item.name)
                && let Some(stat) = item.entry.metadata().ok().and_then(|m| stat_of(&m))
            {
                each(item.path, stat);
            }
            Next::Continue
        })
    }

    /// How the file at `path` (now `now`) stands against its baseline `base`;
    /// `None` when it does not differ. `known` is what the last check found.
    fn judge(
        &self,
        path: &str,
        now: Option<FileStat>,
        base: Option<BaselineFile>,
        known: Option<&Known>,
    ) -> io::Result<Option<Known>> {
        let (base, stat) = match (base, now) {
            (None, None) => return Ok(None),
            (Some(_), None) => return Ok(Some(deleted())),
            (None, Some(stat)) => {
                return Ok(Some(Known {
                    status: Status::Created,
                    now: Some(stat),
                    sha256: None,
                }));
            }
            (Some(base), Some(stat)) => (base, stat),
        };
        if base.stat == stat {
            return Ok(None);
        }
        let modified = |sha256| {
            Some(Known {
                status: Status::Modified,
                now: Some(stat),
                sha256,
            })
        };
        if base.stat.size != stat.size || base.stat.symlink != stat.symlink {
            return Ok(modified(None));
        }
        let cached = known.filter(|k| k.now == Some(stat)).and_then(|k| k.sha256);
        let sha256 = match cached {
            Some(sha256) => sha256,
            None => match files::sha256(self.dir, path, stat.symlink) {
                Ok(sha256) => sha256,
                // Gone (or no longer a file) since its stat: as if not there.
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::NotFound | io::ErrorKind::InvalidInput
                    ) =>
                {
                    return Ok(Some(deleted()));
                }
                Err(e) => return Err(e),
            },
        };
        Ok(if sha256 == base.sha256 {
            None
        } else {
            modified(Some(sha256))
        })
    }
}

fn deleted() -> Known {
    Known {
        status: Status::Deleted,
        now: None,
        sha256: None,
    }
}
