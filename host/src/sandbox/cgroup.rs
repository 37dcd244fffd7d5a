//! The resource layer's cgroups: one group per launch (shell command or
//! terminal), under `reshost-<server pid>` in the server's own cgroup of each
//! hierarchy it may write to with the pids or memory controller (cgroup v1, or
//! v2 where they are delegated). A group caps the processes and memory of
//! everything the launch starts, together, and can kill all of it. The v2
//! hierarchy's `reshost-<server pid>` also carries the network connect filter.

use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// One hierarchy's directory for this server, and what it can do there.
#[derive(Debug, Clone)]
struct Root {
    dir: PathBuf,
    pids: bool,
    memory: bool,
    /// cgroup v2: `cgroup.kill`, the connect filter, `memory.max`.
    unified: bool,
    /// Whether each launch gets a group of its own here. A v2 hierarchy that
    /// carries no controller for us (beside v1 ones) only holds the connect
    /// filter: the server moves itself into its directory once, so launches
    /// are born there; moving each into a group of its own would take v2's
    /// `cgroup.procs`, whose global lock waits out an RCU grace period (~10 ms).
    per_launch: bool,
}

/// Per-launch limits a group enforces.
#[derive(Debug, Clone, Copy)]
pub struct GroupLimits {
    pub processes: u64,
    pub memory_bytes: u64,
}

#[derive(Debug, Default)]
pub struct Cgroups {
    roots: Vec<Root>,
}

impl Cgroups {
    /// Finds the hierarchies this server may create groups in, makes its own
    /// directory in each, and removes what servers that died left behind.
    pub fn detect() -> Cgroups {
        let Ok(own) = std::fs::read_to_string("/proc/self/cgroup") else {
            return Cgroups::default();
        };
        let Ok(mounts) = std::fs::read_to_string("/proc/self/mountinfo") else {
            return Cgroups::default();
        };
        let name = format!("reshost-{}", std::process::id());
        let mut roots = Vec::new();
        for line in own.lines() {
            let mut parts = line.splitn(3, ':');
            let (Some(_), Some(controllers), Some(path)) =
                (parts.next(), parts.next(), parts.next())
            else {
                continue;
            };
            let unified = controllers.is_empty();
            let wanted = |c: &str| controllers.split(',').any(|x| x == c);
            if !unified && !wanted("pids") && !wanted("memory") {
                continue;
            }
            let Some(own_dir) = mount_dir(&mounts, unified, controllers, path) else {
                continue;
            };
            sweep(&own_dir);
            let dir = own_dir.join(&name);
            if std::fs::create_dir(&dir).is_err() && !dir.is_dir() {
                continue;
            }
            let (pids, memory) = if unified {
                (
                    delegate(&own_dir, &dir, "pids"),
                    delegate(&own_dir, &dir, "memory"),
                )
            } else {
                (wanted("pids"), wanted("memory"))
            };
            let per_launch = pids || memory;
            if !per_launch {
                let _ = std::fs::write(dir.join("cgroup.procs"), "0");
            }
            roots.push(Root {
                dir,
                pids,
                memory,
                unified,
                per_launch,
            });
        }
        Cgroups { roots }
    }

    pub fn processes(&self) -> Option<&'static str> {
        self.mechanism(|r| r.pids)
    }

    pub fn memory(&self) -> Option<&'static str> {
        self.mechanism(|r| r.memory)
    }

    fn mechanism(&self, has: impl Fn(&Root) -> bool) -> Option<&'static str> {
        self.roots.iter().find(|r| has(r)).map(
            |r| {
                if r.unified { "cgroup v2" } else { "cgroup v1" }
            },
        )
    }

    /// This server's directory in the v2 hierarchy (for the connect filter).
    pub fn unified_dir(&self) -> Option<&Path> {
        self.roots
            .iter()
            .find(|r| r.unified)
            .map(|r| r.dir.as_path())
    }

    /// Makes the group `name` with `limits` in every hierarchy.
    pub fn create(&self, name: &str, limits: GroupLimits) -> std::io::Result<Group> {
        let mut group = Group { dirs: Vec::new() };
        for root in self.roots.iter().filter(|r| r.per_launch) {
            let dir = root.dir.join(name);
            std::fs::create_dir(&dir)?;
            group.dirs.push((dir.clone(), root.unified));
            if root.pids {
                std::fs::write(dir.join("pids.max"), limits.processes.to_string())?;
            }
            if root.memory {
                let bytes = limits.memory_bytes.to_string();
                if root.unified {
                    std::fs::write(dir.join("memory.max"), &bytes)?;
                    // Swap would let a launch go past its memory limit.
                    write_if_present(&dir.join("memory.swap.max"), "0")?;
                } else {
                    std::fs::write(dir.join("memory.limit_in_bytes"), &bytes)?;
                    write_if_present(&dir.join("memory.memsw.limit_in_bytes"), &bytes)?;
                }
            }
        }
        Ok(group)
    }
}

impl Drop for Cgroups {
    fn drop(&mut self) {
        for root in &self.roots {
            if !root.per_launch
                && let Some(parent) = root.dir.parent()
            {
                // Out of the directory the server moved itself into, to remove it.
                let _ = std::fs::write(parent.join("cgroup.procs"), "0");
            }
            let _ = std::fs::remove_dir(&root.dir);
        }
    }
}

/// The directory of our cgroup `path` in the hierarchy mounted for `controllers`.
fn mount_dir(mounts: &str, unified: bool, controllers: &str, path: &str) -> Option<PathBuf> {
    for line in mounts.lines() {
        // id parent dev root mountpoint options [optional…] - fstype source superoptions
        let Some((left, right)) = line.split_once(" - ") else {
            continue;
        };
        let fields: Vec<&str> = left.split(' ').collect();
        let sys: Vec<&str> = right.split(' ').collect();
        let (Some(root), Some(point), Some(fstype)) = (fields.get(3), fields.get(4), sys.first())
        else {
            continue;
        };
        let matches = if unified {
            *fstype == "cgroup2"
        } else {
            *fstype == "cgroup"
                && sys.get(2).is_some_and(|opts| {
                    let opts: Vec<&str> = opts.split(',').collect();
                    controllers.split(',').all(|c| opts.contains(&c))
                })
        };
        if !matches {
            continue;
        }
        let relative = path
            .strip_prefix(root)
            .unwrap_or(path)
            .trim_start_matches('/');
        let dir = Path::new(point).join(relative);
        return dir.is_dir().then_some(dir);
    }
    None
}

/// Enables `controller` for the children of `dir` (and so in `own`'s subtree):
/// only possible where the controller is delegated to us.
fn delegate(own: &Path, dir: &Path, controller: &str) -> bool {
    let enable = format!("+{controller}");
    let on = |d: &Path| {
        std::fs::read_to_string(d.join("cgroup.subtree_control"))
            .is_ok_and(|s| s.split_whitespace().any(|c| c == controller))
    };
    if !on(own) && std::fs::write(own.join("cgroup.subtree_control"), &enable).is_err() {
        return false;
    }
    std::fs::write(dir.join("cgroup.subtree_control"), &enable).is_ok() && on(dir)
}

fn write_if_present(file: &Path, value: &str) -> std::io::Result<()> {
    match std::fs::write(file, value) {
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

/// Removes the directories of servers that are gone (a crash leaves them).
fn sweep(own: &Path) {
    let Ok(entries) = std::fs::read_dir(own) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix("reshost-"))
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if Path::new(&format!("/proc/{pid}")).exists() {
            continue;
        }
        let dir = entry.path();
        if let Ok(groups) = std::fs::read_dir(&dir) {
            for group in groups.flatten().filter(|g| g.path().is_dir()) {
                kill_all(&group.path(), false);
                let _ = std::fs::remove_dir(group.path());
            }
        }
        let _ = std::fs::remove_dir(&dir);
    }
}

/// SIGKILLs every process in the group directory `dir`.
fn kill_all(dir: &Path, unified: bool) {
    if unified && std::fs::write(dir.join("cgroup.kill"), "1").is_ok() {
        return;
    }
    if let Ok(procs) = std::fs::read_to_string(dir.join("cgroup.procs")) {
        for pid in procs.lines().filter_map(|l| l.trim().parse::<i32>().ok()) {
            // SAFETY: kill has no memory-safety preconditions.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
    }
}

/// One launch's group; dropping it kills what is left in it and removes it.
#[derive(Debug)]
pub struct Group {
    dirs: Vec<(PathBuf, bool)>,
}

impl Group {
    /// The directories the launch joins.
    pub fn dirs(&self) -> Vec<PathBuf> {
        self.dirs.iter().map(|(d, _)| d.clone()).collect()
    }

    /// SIGKILLs everything in the group.
    pub fn kill(&self) {
        for (dir, unified) in &self.dirs {
            kill_all(dir, *unified);
        }
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        self.kill();
        let mut left: Vec<PathBuf> = std::mem::take(&mut self.dirs)
            .into_iter()
            .map(|(d, _)| d)
            .filter(|d| std::fs::remove_dir(d).is_err())
            .collect();
        if left.is_empty() {
            return;
        }
        // Killed processes take a moment to leave: retry off the caller's thread.
        let _ = std::thread::Builder::new()
            .name("cgroup-rmdir".into())
            .spawn(move || {
                for _ in 0..50 {
                    std::thread::sleep(Duration::from_millis(40));
                    left.retain(|d| {
                        kill_all(d, false);
                        std::fs::remove_dir(d).is_err() && d.exists()
                    });
                    if left.is_empty() {
                        return;
                    }
                }
                tracing::warn!(groups = ?left, "cgroups still busy; left in place");
            });
    }
}
