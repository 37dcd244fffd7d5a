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
        // A symlink is granted as what it points to, so judge that.
        if let Ok(target) = entry.path().canonicalize() {
            carve(&target, hidden, out);
        }
    }
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
