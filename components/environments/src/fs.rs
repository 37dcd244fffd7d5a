//! The environment's filesystem operations: browse, read, write, edit, delete.
//! Paths arrive as the API gives them; each is normalized and confined (see
//! `paths`) before the filesystem is touched.

use crate::exports::reshost::api::environments_handler::ArchiveSpec;
use reshost_guest::exec::{Command, Outcome};
use crate::paths::{self, guest, normalize, resolve, resolve_stat};
use base64::Engine;
use reshost_guest::types::{Error, ErrorCode};
use reshost_guest::{error, invalid_input};
use reshost_paging::{PageError, PageRequest, STANDARD, Sorted};
use serde_json::{Map, Value, json};
use std::io::{ErrorKind, Read};

/// How much of a file is examined for a NUL byte to call it binary.
const SNIFF_BYTES: usize = 8192;

fn b64() -> base64::engine::GeneralPurpose {
    base64::engine::general_purpose::STANDARD
}

/// Maps an I/O error on `path` to the API's errors; messages name only the
/// environment-relative path.
pub fn io_error(e: std::io::Error, path: &str) -> Error {
    let shown = if path.is_empty() { "/" } else { path };
    match e.kind() {
        ErrorKind::NotFound => error(
            ErrorCode::PathNotFound,
            format!("no such file or directory: {shown}"),
        ),
        ErrorKind::PermissionDenied => error(
            ErrorCode::PathForbidden,
            format!("{shown} resolves outside the environment"),
        ),
        ErrorKind::DirectoryNotEmpty => error(
            ErrorCode::DirectoryNotEmpty,
            format!("{shown} is a non-empty directory; pass recursive=true to delete it"),
        ),
        ErrorKind::NotADirectory => error(
            ErrorCode::Conflict,
            format!("a parent of {shown} is not a directory"),
        ),
        ErrorKind::IsADirectory => error(ErrorCode::Conflict, format!("{shown} is a directory")),
        _ => error(ErrorCode::InternalError, format!("{shown}: {}", e.kind())),
    }
}

fn mtime(meta: &std::fs::Metadata) -> u64 {
    meta.modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_secs())
}

fn kind(meta: &std::fs::Metadata) -> &'static str {
    let t = meta.file_type();
    if t.is_symlink() {
        "symlink"
    } else if t.is_dir() {
        "directory"
    } else {
        "file"
    }
}

/// The entry object of `path`, from its own (not followed) metadata.
pub fn entry(path: &str, meta: &std::fs::Metadata) -> Value {
    let kind = kind(meta);
    let bytes = (kind != "directory").then_some(meta.len());
    serde_json::to_value(Entry::new(path, kind, bytes, mtime(meta))).unwrap_or_default()
}

/// The entry object (fields in the order serde_json's maps keep them, so that
/// an entry reads the same whichever way it was made). Serialized straight
/// from this struct, a listing makes no map per entry.
#[derive(serde::Serialize)]
struct Entry<'a> {
    /// `None` for a directory.
    bytes: Option<u64>,
    id: &'a str,
    modified_at: u64,
    name: &'a str,
    object: &'static str,
    path: &'a str,
    #[serde(rename = "type")]
    kind: &'a str,
}

impl<'a> Entry<'a> {
    fn new(path: &'a str, kind: &'a str, bytes: Option<u64>, modified_at: u64) -> Entry<'a> {
        Entry {
            bytes,
            id: path,
            modified_at,
            name: path.rsplit('/').next().unwrap_or(path),
            object: "session.environment.filesystem.entry",
            path,
            kind,
        }
    }
}

fn entry_of(path: &str) -> Result<Value, Error> {
    let meta = std::fs::symlink_metadata(guest(path)).map_err(|e| io_error(e, path))?;
    Ok(entry(path, &meta))
}

/// The content type shown for a file: by extension, else by what its bytes are.
fn content_type(path: &str, text: bool) -> String {
    match mime_guess::from_path(path).first_raw() {
        Some(t) => t.to_owned(),
        None if text => "text/plain".to_owned(),
        None => "application/octet-stream".to_owned(),
    }
}

/// `GET …/filesystem/{path}`: a listing for a directory, content for a file.
pub fn read(path: &str, query: &[(String, String)], cap: u64) -> Result<crate::Answer, Error> {
    let shown = normalize(path)?;
    let (real, meta) = resolve_stat(&shown, true)?;
    let meta = match meta {
        Some(meta) => meta,
        None => std::fs::metadata(guest(&real)).map_err(|e| io_error(e, &shown))?,
    };
    if path.ends_with('/') && !meta.is_dir() {
        return Err(error(
            ErrorCode::PathNotFound,
            format!("no such directory: {shown}"),
        ));
    }
    let raw = match query
        .iter()
        .find(|(k, _)| k == "format")
        .map(|(_, v)| v.as_str())
    {
        None => false,
        Some("raw") => true,
        Some(other) => {
            let Some(compression) = crate::archive::compression(other) else {
                return Err(invalid_input(format!(
                    "format must be \"raw\", \"tar\" or \"tar.gz\", not {other:?}"
                )));
            };
            return Ok(crate::Answer::Archive(ArchiveSpec {
                path: crate::archive::directory(&shown, false)?,
                compression,
            }));
        }
    };
    if meta.is_dir() {
        if raw {
            return Err(invalid_input(format!(
                "{} is a directory; format=raw is for files",
                display(&shown)
            )));
        }
        return list_dir(&shown, &real, query).map(crate::Answer::Json);
    }
    if !meta.is_file() {
        return Err(invalid_input(format!(
            "{} is not a regular file",
            display(&shown)
        )));
    }
    if raw {
        let text = !looks_binary(&real)?;
        return Ok(crate::Answer::Raw {
            path: real,
            content_type: content_type(&shown, text),
        });
    }
    let mut file = std::fs::File::open(guest(&real)).map_err(|e| io_error(e, &shown))?;
    let mut bytes = Vec::with_capacity(meta.len().min(cap) as usize);
    (&mut file)
        .take(cap)
        .read_to_end(&mut bytes)
        .map_err(|e| io_error(e, &shown))?;
    let truncated = meta.len() > bytes.len() as u64;
    let (encoding, content) = match text_of(&bytes, truncated) {
        Some(text) => ("utf-8", text),
        None => ("base64", b64().encode(&bytes)),
    };
    let answer = FileContent {
        bytes: meta.len(),
        content: &content,
        content_type: content_type(&shown, encoding == "utf-8"),
        encoding,
        object: "session.environment.filesystem.file_content",
        path: &shown,
        truncated,
    };
    Ok(crate::Answer::Json(
        serde_json::to_string(&answer).unwrap_or_default(),
    ))
}

/// A file's content object, serialized straight from this struct (fields in
/// the order serde_json's maps keep them, as for [`Entry`]).
#[derive(serde::Serialize)]
struct FileContent<'a> {
    bytes: u64,
    content: &'a str,
    content_type: String,
    encoding: &'static str,
    object: &'static str,
    path: &'a str,
    truncated: bool,
}

/// The bytes as text, unless they are binary: a NUL in the first `SNIFF_BYTES`,
/// or invalid UTF-8. A character cut by the read cap (`truncated`) is dropped.
pub fn text_of(bytes: &[u8], truncated: bool) -> Option<String> {
    if bytes[..bytes.len().min(SNIFF_BYTES)].contains(&0) {
        return None;
    }
    match std::str::from_utf8(bytes) {
        Ok(text) => Some(text.to_owned()),
        Err(e) if truncated && e.error_len().is_none() => {
            Some(String::from_utf8_lossy(&bytes[..e.valid_up_to()]).into_owned())
        }
        Err(_) => None,
    }
}

/// Base64 of binary content, as the API sends it.
pub fn base64(bytes: &[u8]) -> String {
    b64().encode(bytes)
}

pub fn display(path: &str) -> &str {
    if path.is_empty() { "/" } else { path }
}

fn looks_binary(real: &str) -> Result<bool, Error> {
    let mut head = Vec::with_capacity(SNIFF_BYTES);
    std::fs::File::open(guest(real))
        .and_then(|f| f.take(SNIFF_BYTES as u64).read_to_end(&mut head))
        .map_err(|e| io_error(e, real))?;
    Ok(head.contains(&0) || std::str::from_utf8(&head).is_err_and(|e| e.error_len().is_some()))
}

fn list_dir(shown: &str, real: &str, query: &[(String, String)]) -> Result<String, Error> {
    use reshost_guest::tree::{EntryKind, ListFailure};
    let pairs = query.iter().map(|(k, v)| (k.as_str(), v.as_str()));
    let request = PageRequest::from_query(pairs, STANDARD).map_err(invalid_input)?;
    // One host call reads the whole directory natively.
    let listed = reshost_guest::tree::list(real).map_err(|failure| {
        let kind = match failure {
            ListFailure::NotFound => ErrorKind::NotFound,
            ListFailure::PermissionDenied => ErrorKind::PermissionDenied,
            ListFailure::NotADirectory => ErrorKind::NotADirectory,
            ListFailure::Other => ErrorKind::Other,
        };
        io_error(kind.into(), shown)
    })?;
    let mut entries: Vec<_> = listed
        .into_iter()
        .map(|item| {
            let path = if shown.is_empty() {
                item.name.clone()
            } else {
                format!("{shown}/{}", item.name)
            };
            (path, item)
        })
        .collect();
    entries.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    let mut source = Sorted(entries);
    let page = reshost_paging::page(&mut source, &request).map_err(|e| match e {
        PageError::UnknownCursor(m) => invalid_input(m),
        PageError::Source(never) => match never {},
    })?;
    let rendered = reshost_paging::Page {
        items: page
            .items
            .into_iter()
            .map(|(path, item)| {
                let kind = match item.kind {
                    EntryKind::File => "file",
                    EntryKind::Directory => "directory",
                    EntryKind::Symlink => "symlink",
                };
                let bytes = (item.kind != EntryKind::Directory).then_some(item.bytes);
                let entry = Entry::new(&path, kind, bytes, item.modified_at);
                let shown = serde_json::to_string(&entry).unwrap_or_default();
                (path, shown)
            })
            .collect(),
        has_more: page.has_more,
    };
    Ok(rendered.render(&format!("\"base\":{},", Value::from(shown))))
}

/// A JSON object body with only the given fields.
fn object(body: &str, fields: &[&str]) -> Result<Map<String, Value>, Error> {
    let value: Value =
        serde_json::from_str(body).map_err(|e| invalid_input(format!("invalid JSON: {e}")))?;
    let Value::Object(map) = value else {
        return Err(invalid_input("the body must be a JSON object"));
    };
    if let Some(unknown) = map.keys().find(|k| !fields.contains(&k.as_str())) {
        return Err(invalid_input(format!("unknown field {unknown:?}")));
    }
    Ok(map)
}

fn text_field<'a>(map: &'a Map<String, Value>, name: &str) -> Result<&'a str, Error> {
    match map.get(name) {
        Some(Value::String(s)) => Ok(s),
        Some(_) => Err(invalid_input(format!("{name} must be a string"))),
        None => Err(invalid_input(format!("{name} is required"))),
    }
}

/// A path that names something below the root (not the root itself), with its
/// parents resolved and the last component as given.
fn target(path: &str, what: &str) -> Result<(String, String), Error> {
    let shown = normalize(path)?;
    if shown.is_empty() {
        return Err(invalid(format!("the environment root cannot be {what}")));
    }
    Ok((resolve(&shown, true)?, shown))
}

fn invalid(message: String) -> Error {
    paths::invalid(message)
}

/// Replaces the file at `real` with `bytes` atomically: written beside it, then
/// renamed over it, so a reader sees the old or the new content, never a mix.
fn replace(real: &str, shown: &str, bytes: &[u8]) -> Result<(), Error> {
    let (dir, name) = real.rsplit_once('/').unwrap_or(("", real));
    let tmp = format!(
        "{}.{name}.reshost-{:016x}.tmp",
        if dir.is_empty() {
            String::new()
        } else {
            format!("{dir}/")
        },
        nonce()
    );
    let written =
        std::fs::write(guest(&tmp), bytes).and_then(|()| std::fs::rename(guest(&tmp), guest(real)));
    if let Err(e) = written {
        let _ = std::fs::remove_file(guest(&tmp));
        return Err(io_error(e, shown));
    }
    Ok(())
}

/// A random name part for temporary files (std's hasher keys come from WASI's
/// random source).
fn nonce() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish()
}

/// `PUT …/filesystem/{path}`.
pub fn write(path: &str, body: &str) -> Result<String, Error> {
    let (real, shown) = target(path, "written")?;
    let map = object(body, &["content", "encoding"])?;
    let content = text_field(&map, "content")?;
    let bytes = match map.get("encoding") {
        None | Some(Value::Null) => content.as_bytes().to_vec(),
        Some(Value::String(e)) if e == "utf-8" => content.as_bytes().to_vec(),
        Some(Value::String(e)) if e == "base64" => b64()
            .decode(content)
            .map_err(|e| invalid_input(format!("content is not valid base64: {e}")))?,
        Some(_) => return Err(invalid_input("encoding must be \"utf-8\" or \"base64\"")),
    };
    let existing = std::fs::metadata(guest(&real));
    if existing.as_ref().is_ok_and(|m| m.is_dir()) {
        return Err(error(
            ErrorCode::Conflict,
            format!("{shown} is a directory"),
        ));
    }
    if let Some((parent, _)) = real.rsplit_once('/') {
        // A file where a directory must be: WASI's errors for it are uncategorized.
        let mut at = String::new();
        for part in parent.split('/') {
            at = if at.is_empty() {
                part.to_owned()
            } else {
                format!("{at}/{part}")
            };
            match std::fs::metadata(guest(&at)) {
                Ok(m) if !m.is_dir() => {
                    return Err(io_error(ErrorKind::NotADirectory.into(), &shown));
                }
                Ok(_) => {}
                Err(_) => break,
            }
        }
        std::fs::create_dir_all(guest(parent)).map_err(|e| io_error(e, &shown))?;
    }
    replace(&real, &shown, &bytes)?;
    Ok(json!({
        "object": "session.environment.filesystem.write_result",
        "operation": "write",
        "path": shown,
        "created": existing.is_err(),
        "bytes_written": bytes.len(),
        "entry": entry_of(&real).map(|mut e| { rename_entry(&mut e, &shown); e })?,
    })
    .to_string())
}

/// An entry read through a symlink is shown under the path the client used.
fn rename_entry(entry: &mut Value, shown: &str) {
    entry["id"] = shown.into();
    entry["path"] = shown.into();
    entry["name"] = shown.rsplit('/').next().unwrap_or(shown).into();
}

/// `PATCH …/filesystem/{path}`: replace `old_text` by `new_text`.
pub fn edit(path: &str, body: &str) -> Result<String, Error> {
    let (real, shown) = target(path, "edited")?;
    let map = object(body, &["old_text", "new_text", "replace_all"])?;
    let old = text_field(&map, "old_text")?;
    let new = text_field(&map, "new_text")?;
    let replace_all = match map.get("replace_all") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err(invalid_input("replace_all must be a boolean")),
    };
    if old.is_empty() {
        return Err(invalid_input("old_text must not be empty"));
    }
    if old == new {
        return Err(invalid_input("old_text and new_text are the same"));
    }
    let meta = std::fs::metadata(guest(&real)).map_err(|e| io_error(e, &shown))?;
    if !meta.is_file() {
        return Err(invalid_input(format!("{shown} is not a regular file")));
    }
    let bytes = std::fs::read(guest(&real)).map_err(|e| io_error(e, &shown))?;
    let text = String::from_utf8(bytes)
        .map_err(|_| invalid_input(format!("{shown} is not UTF-8 text")))?;
    let starts: Vec<usize> = text.match_indices(old).map(|(i, _)| i).collect();
    match starts.len() {
        0 => {
            return Err(error(
                ErrorCode::NoMatch,
                format!("old_text does not occur in {shown}"),
            ));
        }
        1 => {}
        n if !replace_all => {
            let mut lines: Vec<String> = starts
                .iter()
                .map(|&i| (text[..i].matches('\n').count() + 1).to_string())
                .collect();
            lines.dedup();
            return Err(error(
                ErrorCode::AmbiguousMatch,
                format!(
                    "old_text occurs {n} times in {shown}, on lines {}; pass replace_all or give more context",
                    lines.join(", ")
                ),
            ));
        }
        _ => {}
    }
    let edited = text.replace(old, new);
    replace(&real, &shown, edited.as_bytes())?;
    let mut entry = entry_of(&real)?;
    rename_entry(&mut entry, &shown);
    Ok(json!({
        "object": "session.environment.filesystem.edit_result",
        "operation": "edit",
        "path": shown,
        "replacements": starts.len(),
        "bytes_before": text.len(),
        "bytes_after": edited.len(),
        "entry": entry,
    })
    .to_string())
}

/// `DELETE …/filesystem/{path}[?recursive=true]`. A symlink is removed itself,
/// never what it points at.
pub fn remove(path: &str, query: &[(String, String)]) -> Result<String, Error> {
    let shown = normalize(path)?;
    if shown.is_empty() {
        return Err(invalid("the environment root cannot be deleted".into()));
    }
    let recursive = match query
        .iter()
        .find(|(k, _)| k == "recursive")
        .map(|(_, v)| v.as_str())
    {
        None | Some("false") => false,
        Some("true") => true,
        Some(other) => {
            return Err(invalid_input(format!(
                "recursive must be true or false, not {other:?}"
            )));
        }
    };
    let real = resolve(&shown, false)?;
    let meta = std::fs::symlink_metadata(guest(&real)).map_err(|e| io_error(e, &shown))?;
    let kind = kind(&meta);
    let removed = match kind {
        "directory" if recursive => std::fs::remove_dir_all(guest(&real)),
        "directory" => {
            // WASI reports ENOTEMPTY as an uncategorized error: look for ourselves.
            let has_entries = std::fs::read_dir(guest(&real))
                .map_err(|e| io_error(e, &shown))?
                .next()
                .is_some();
            if has_entries {
                return Err(io_error(ErrorKind::DirectoryNotEmpty.into(), &shown));
            }
            std::fs::remove_dir(guest(&real))
        }
        _ => std::fs::remove_file(guest(&real)),
    };
    removed.map_err(|e| io_error(e, &shown))?;
    Ok(json!({
        "object": "session.environment.filesystem.delete_result",
        "operation": "delete",
        "path": shown,
        "deleted": true,
        "type": kind,
    })
    .to_string())
}

/// Longest accepted shell timeout, in seconds.
const MAX_TIMEOUT_SECS: u64 = 3600;
/// Shell timeout when the request gives none, in seconds.
const DEFAULT_TIMEOUT_SECS: u64 = 30;

/// A checked `POST …/shell` body: its command, its `cwd` as the client sees it
/// (handed back with the outcome) and how the answer is delivered.
pub struct Planned {
    pub command: Command,
    pub shown_cwd: String,
    pub stream: bool,
    pub kill_on_disconnect: bool,
}

/// An optional boolean field, false when absent or null.
fn flag(map: &Map<String, Value>, name: &str) -> Result<bool, Error> {
    match map.get(name) {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(_) => Err(invalid_input(format!("{name} must be a boolean"))),
    }
}

/// `POST …/shell`: runs a command in the workspace (or a directory inside it).
/// Checks a `POST …/shell` body and plans its command.
pub fn plan_shell(body: &str) -> Result<Planned, Error> {
    let map = object(
        body,
        &["command", "timeout", "cwd", "env", "stream", "kill_on_disconnect"],
    )?;
    let (stream, kill_on_disconnect) = (flag(&map, "stream")?, flag(&map, "kill_on_disconnect")?);
    let (command, shown_cwd) = plan_command(&map, Some(DEFAULT_TIMEOUT_SECS))?;
    Ok(Planned {
        command,
        shown_cwd,
        stream,
        kill_on_disconnect,
    })
}

/// A background process's command from the JSON body of `POST …/processes`,
/// and its `cwd` as named; without a `timeout` it runs as long as the host
/// lets any command run.
pub fn plan_process(body: &str) -> Result<(Command, String), Error> {
    let map = object(body, &["command", "timeout", "cwd", "env"])?;
    plan_command(&map, None)
}

/// The command a body's `command`, `timeout` (seconds; `default` when absent,
/// else the host's longest), `cwd` and `env` describe, and its `cwd` as named.
fn plan_command(
    map: &Map<String, Value>,
    default: Option<u64>,
) -> Result<(Command, String), Error> {
    let command = text_field(map, "command")?;
    if command.trim().is_empty() {
        return Err(invalid_input("command must not be blank"));
    }
    let timeout_ms = match map.get("timeout") {
        None | Some(Value::Null) => default.map_or(u64::MAX, |secs| secs * 1000),
        Some(v) => {
            v.as_u64()
                .filter(|t| (1..=MAX_TIMEOUT_SECS).contains(t))
                .ok_or_else(|| {
                    invalid_input(format!(
                        "timeout must be an integer from 1 to {MAX_TIMEOUT_SECS} (seconds)"
                    ))
                })?
                * 1000
        }
    };
    let (cwd, shown) = match map.get("cwd") {
        None | Some(Value::Null) => (String::new(), String::new()),
        Some(Value::String(cwd)) => {
            let shown = normalize(cwd)?;
            let real = resolve(&shown, true)?;
            let meta = std::fs::metadata(guest(&real)).map_err(|e| io_error(e, &shown))?;
            if !meta.is_dir() {
                return Err(invalid_input(format!("cwd {shown} is not a directory")));
            }
            (real, shown)
        }
        Some(_) => return Err(invalid_input("cwd must be a string")),
    };
    let env = match map.get("env") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Object(vars)) => vars
            .iter()
            .map(|(k, v)| match v {
                Value::String(v) if valid_env_name(k) && !v.contains('\0') => {
                    Ok((k.clone(), v.clone()))
                }
                _ => Err(invalid_input(format!(
                    "env.{k}: names are [A-Za-z_][A-Za-z0-9_]* and values strings without NUL"
                ))),
            })
            .collect::<Result<_, _>>()?,
        Some(_) => return Err(invalid_input("env must be an object of strings")),
    };
    let command = Command {
        command: command.to_owned(),
        cwd,
        env,
        timeout_ms,
    };
    Ok((command, shown))
}

/// The answer to a planned command; `shown` is its `cwd` as the client sees it.
pub fn shell_result(shown: &str, outcome: Result<Outcome, String>) -> Result<String, Error> {
    let outcome = outcome.map_err(invalid_input)?;
    Ok(json!({
        "object": "session.environment.shell_result",
        "exit_code": outcome.exit_code,
        "stdout": outcome.stdout,
        "stderr": outcome.stderr,
        "stdout_truncated": outcome.stdout_truncated,
        "stderr_truncated": outcome.stderr_truncated,
        "timed_out": outcome.timed_out,
        "cwd": shown,
    })
    .to_string())
}

fn valid_env_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}
