//! What a path may be. Every API path is relative to the environment root; one that
//! is absolute, holds a NUL or a backslash, or climbs out with `..` is refused
//! lexically (`400 invalid_path`); one that leaves the root through a symlink is
//! refused by resolving the links itself (`403 path_forbidden`). The workspace is
//! also the component's only preopen, so the host's capability checks stand behind
//! these rules.

use reshost_guest::error;
use reshost_guest::types::{Error, ErrorCode};
use std::path::PathBuf;

/// Longest accepted path, in bytes.
pub const MAX_PATH_BYTES: usize = 4096;
/// Longest accepted path component, in bytes.
pub const MAX_NAME_BYTES: usize = 255;
/// Most symlinks followed while resolving one path.
const MAX_LINKS: usize = 40;

pub fn invalid(message: impl Into<String>) -> Error {
    error(ErrorCode::InvalidPath, message)
}

pub fn forbidden(path: &str) -> Error {
    error(
        ErrorCode::PathForbidden,
        format!("{path} resolves outside the environment"),
    )
}

/// The normalized form of an API path: components joined by `/`, `""` for the root.
pub fn normalize(path: &str) -> Result<String, Error> {
    if path.len() > MAX_PATH_BYTES {
        return Err(invalid(format!(
            "paths are limited to {MAX_PATH_BYTES} bytes"
        )));
    }
    if path.contains('\0') {
        return Err(invalid("paths cannot contain NUL"));
    }
    if path.contains('\\') {
        return Err(invalid("paths use / as separator; backslashes are refused"));
    }
    let lower = path.to_ascii_lowercase();
    if ["%2e", "%2f", "%5c", "%00"]
        .iter()
        .any(|e| lower.contains(e))
    {
        return Err(invalid(
            "paths cannot hold percent-encoded separators or dots (double encoding)",
        ));
    }
    if path.starts_with('/') {
        return Err(invalid(
            "paths are relative to the environment root, not absolute",
        ));
    }
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if parts.pop().is_none() {
                    return Err(invalid("the path climbs out of the environment root"));
                }
            }
            name if name.len() > MAX_NAME_BYTES => {
                return Err(invalid(format!(
                    "path components are limited to {MAX_NAME_BYTES} bytes"
                )));
            }
            name => parts.push(name),
        }
    }
    Ok(parts.join("/"))
}

/// Where a normalized path lives in the guest's filesystem (the root preopen is `/`).
pub fn guest(path: &str) -> PathBuf {
    PathBuf::from(format!("/{path}"))
}

/// Resolves every symlink along `path` (which is normalized), refusing any that
/// leads outside the root. With `follow_last` false the last component is left as
/// it is (to act on a link itself). Components that do not exist end the
/// resolution: the rest is taken as it stands.
pub fn resolve(path: &str, follow_last: bool) -> Result<String, Error> {
    resolve_stat(path, follow_last).map(|(real, _)| real)
}

/// As [`resolve`] with `follow_last`, and the metadata of what the path names
/// when the resolution learned it (the last component's, not a symlink): a
/// second stat of the same file costs two host calls.
pub fn resolve_stat(
    path: &str,
    follow_last: bool,
) -> Result<(String, Option<std::fs::Metadata>), Error> {
    let mut last = None;
    let mut done: Vec<String> = Vec::new();
    let mut todo: Vec<String> = path
        .split('/')
        .filter(|p| !p.is_empty())
        .rev()
        .map(str::to_owned)
        .collect();
    let mut links = 0;
    while let Some(part) = todo.pop() {
        match part.as_str() {
            "" | "." => continue,
            ".." => {
                if done.pop().is_none() {
                    return Err(forbidden(path));
                }
                continue;
            }
            _ => {}
        }
        done.push(part);
        if todo.is_empty() && !follow_last {
            break;
        }
        let here = guest(&done.join("/"));
        let Ok(meta) = std::fs::symlink_metadata(&here) else {
            // Absent (or unreadable): nothing more to resolve.
            done.extend(todo.drain(..).rev());
            break;
        };
        if !meta.file_type().is_symlink() {
            if todo.is_empty() {
                last = Some(meta);
            }
            continue;
        }
        links += 1;
        if links > MAX_LINKS {
            return Err(invalid(format!(
                "more than {MAX_LINKS} symlinks along {path}"
            )));
        }
        let target = std::fs::read_link(&here).map_err(|_| forbidden(path))?;
        let target = target.to_str().ok_or_else(|| forbidden(path))?;
        if target.starts_with('/') {
            return Err(forbidden(path));
        }
        done.pop();
        todo.extend(target.split('/').rev().map(str::to_owned));
    }
    Ok((done.join("/"), last))
}
