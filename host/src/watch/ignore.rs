//! What change tracking leaves out: tool and dependency directories that churn
//! without being the work itself, and editors' swap files.

/// Directories ignored wherever they are, with everything in them.
const DIRS: &[&str] = &[".git", "node_modules", "__pycache__", ".venv", "target"];

/// Whether a directory of this name is left out.
pub fn ignored_dir(name: &str) -> bool {
    DIRS.contains(&name)
}

/// Whether a file of this name is an editor's swap or backup file: vim
/// (`.x.swp`, `.x.swo`, `.x.swx`, `x~`, its `4913` write probe), emacs (`.#x`,
/// `#x#`), kate (`.x.kate-swp`); or the file an API write renames into place
/// (`.x.reshost-<16 hex>.tmp`).
pub fn ignored_file(name: &str) -> bool {
    reshost_temporary(name)
        || name.ends_with(".swp")
        || name.ends_with(".swo")
        || name.ends_with(".swx")
        || name.ends_with('~')
        || name.ends_with(".kate-swp")
        || name.starts_with(".#")
        || (name.len() > 2 && name.starts_with('#') && name.ends_with('#'))
        || name == "4913"
}

fn reshost_temporary(name: &str) -> bool {
    name.strip_suffix(".tmp")
        .and_then(|rest| rest.rsplit_once(".reshost-"))
        .is_some_and(|(before, nonce)| {
            before.starts_with('.')
                && nonce.len() == 16
                && nonce.bytes().all(|b| b.is_ascii_hexdigit())
        })
}

/// Whether a file at `path` (relative, `/`-separated) is left out: its name is a
/// swap file's, or one of its directories is ignored.
pub fn ignored(path: &str) -> bool {
    let mut parts = path.rsplit('/');
    let name = parts.next().unwrap_or_default();
    ignored_file(name) || ignored_dir(name) || parts.any(ignored_dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tool_directories_are_ignored_at_any_depth() {
        assert!(ignored(".git/config"));
        assert!(ignored("web/node_modules/x/index.js"));
        assert!(ignored("a/__pycache__/m.pyc"));
        assert!(ignored(".venv"));
        assert!(ignored("crate/target/debug/app"));
        assert!(!ignored("targets/list.txt"));
        assert!(!ignored("src/git/config"));
    }

    #[test]
    fn swap_files_are_ignored_and_lookalikes_are_not() {
        for name in [
            ".main.py.swp",
            "a/.b.swo",
            "notes.txt~",
            ".#init.el",
            "#init.el#",
            "4913",
            "src/.main.rs.reshost-0123456789abcdef.tmp",
        ] {
            assert!(ignored(name), "{name}");
        }
        for name in [
            "swp",
            "main.py",
            "#",
            "##",
            "a#b",
            "49130",
            "x.reshost-0123456789abcdef.tmp",
            ".x.reshost-0123.tmp",
        ] {
            assert!(!ignored(name), "{name}");
        }
    }
}
