//! Which paths a sandbox may see: the configured roots minus what must stay
//! hidden (the data dir, the cache, the config file). Landlock only grants, it
//! cannot carve a hole, so a root that contains a hidden path is replaced by its
//! entries, recursively, leaving the hidden path out. Computed once at start.

use std::path::{Path, PathBuf};

/// `roots` (canonical, missing ones dropped, duplicates merged) with `hidden`
/// and everything under it taken out.
pub fn visible(roots: &[PathBuf], hidden: &[PathBuf]) -> Vec<PathBuf> {
    let hidden: Vec<PathBuf> = hidden
        .iter()
        .filter_map(|h| h.canonicalize().ok())
        .collect();
    let mut out = Vec::new();
    for root in roots {
        if let Ok(root) = root.canonicalize() {
            carve(&root, &hidden, &mut out);
        }
    }
    out.sort();
    out.dedup();
    // A path under another granted one adds nothing.
    let mut kept: Vec<PathBuf> = Vec::new();
    for path in out {
        if !kept.iter().any(|k| path.starts_with(k)) {
            kept.push(path);
        }
    }
    kept
}

fn carve(path: &Path, hidden: &[PathBuf], out: &mut Vec<PathBuf>) {
    if hidden.iter().any(|h| path.starts_with(h)) {
        return;
    }
    if !hidden.iter().any(|h| h.starts_with(path)) {
        out.push(path.to_owned());
        return;
    }
    let Ok(entries) = std::fs::read_dir(path) else {
        return;
    };
    for entry in entries.flatten() {
        // A symlink needs no grant: access is judged on where it leads.
        if entry.file_type().is_ok_and(|t| !t.is_symlink()) {
            carve(&entry.path(), hidden, out);
        }
    }
}

/// What under `root` other users may not read: files without `o+r`,
/// directories without `o+rx` (not descended into). Sandboxed programs of a
/// server running as root are root to the files root owns (`/etc/shadow`, host
/// keys), so these are hidden from them as they are from any user. At most
/// `cap` entries are looked at; `false` when the walk stopped there.
pub fn private_to_owner(root: &Path, cap: usize) -> (Vec<PathBuf>, bool) {
    use std::os::unix::fs::PermissionsExt;
    let (mut found, mut seen, mut dirs) = (Vec::new(), 0, vec![root.to_owned()]);
    while let Some(dir) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            seen += 1;
            if seen > cap {
                return (found, false);
            }
            let Ok(meta) = entry.path().symlink_metadata() else {
                continue;
            };
            let mode = meta.permissions().mode();
            if meta.is_dir() {
                if mode & 0o005 != 0o005 {
                    found.push(entry.path());
                } else {
                    dirs.push(entry.path());
                }
            } else if !meta.is_symlink() && mode & 0o004 == 0 {
                found.push(entry.path());
            }
        }
    }
    (found, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_root_holding_a_hidden_path_is_granted_around_it() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().canonicalize().unwrap();
        for d in [
            "etc/ssl",
            "etc/reshost/data",
            "etc/reshost/other",
            "usr/bin",
        ] {
            std::fs::create_dir_all(root.join(d)).unwrap();
        }
        std::fs::write(root.join("etc/hosts"), "x").unwrap();
        std::fs::write(root.join("etc/reshost/config.toml"), "x").unwrap();
        std::os::unix::fs::symlink(root.join("etc/reshost/data"), root.join("etc/data-link"))
            .unwrap();
        std::os::unix::fs::symlink("/proc/self/mounts", root.join("etc/mtab")).unwrap();
        let got = visible(
            &[root.join("etc"), root.join("usr"), root.join("missing")],
            &[
                root.join("etc/reshost/data"),
                root.join("etc/reshost/config.toml"),
            ],
        );
        let want: Vec<PathBuf> = ["etc/hosts", "etc/reshost/other", "etc/ssl", "usr"]
            .iter()
            .map(|p| root.join(p))
            .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn what_others_may_not_read_is_found_and_private_dirs_are_not_entered() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().canonicalize().unwrap();
        std::fs::create_dir_all(root.join("ssl/private")).unwrap();
        std::fs::create_dir_all(root.join("open")).unwrap();
        for (file, mode) in [
            ("shadow", 0o640),
            ("passwd", 0o644),
            ("open/key", 0o600),
            ("ssl/private/k", 0o644),
        ] {
            std::fs::write(root.join(file), "x").unwrap();
            std::fs::set_permissions(root.join(file), PermissionsExt::from_mode(mode)).unwrap();
        }
        std::fs::set_permissions(root.join("ssl/private"), PermissionsExt::from_mode(0o700))
            .unwrap();
        let (mut found, complete) = private_to_owner(&root, 100);
        found.sort();
        assert!(complete);
        assert_eq!(
            found,
            ["open/key", "shadow", "ssl/private"].map(|p| root.join(p))
        );
        assert!(!private_to_owner(&root, 2).1, "a capped walk says so");
    }

    #[test]
    fn a_root_inside_a_hidden_path_is_dropped_and_nested_roots_merge() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().canonicalize().unwrap();
        std::fs::create_dir_all(root.join("data/inner")).unwrap();
        std::fs::create_dir_all(root.join("opt/tool")).unwrap();
        let got = visible(
            &[
                root.join("data/inner"),
                root.join("opt"),
                root.join("opt/tool"),
            ],
            &[root.join("data")],
        );
        assert_eq!(got, vec![root.join("opt")]);
    }
}
