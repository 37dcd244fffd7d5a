//! `changes` and `diff`: what differs from the environment's baseline (the
//! workspace as the session began), as the host's change tracking reports it.

use crate::fs::{base64, io_error, text_of};
use crate::paths::{forbidden, guest, normalize, resolve};
use reshost_guest::types::{Error, ErrorCode};
use reshost_guest::snapshots;
use reshost_guest::watch::{self, Change, Original, Status};
use reshost_guest::{error, invalid_input, not_found};
use serde_json::{Value, json};
use std::io::Read;
use std::time::Duration;

/// How long a unified diff may search for the smallest edit before it settles for
/// a larger one.
const DIFF_TIMEOUT: Duration = Duration::from_secs(2);

fn tracking_failed(message: String) -> Error {
    error(ErrorCode::InternalError, message)
}

fn status(status: Status) -> &'static str {
    match status {
        Status::Created => "created",
        Status::Modified => "modified",
        Status::Deleted => "deleted",
    }
}

/// `GET …/changes`: every changed file, sorted by path.
pub fn list() -> Result<String, Error> {
    render_list(&watch::changes().map_err(tracking_failed)?)
}

/// The snapshot a query's `to` names; `None` for the workspace now (`current`,
/// the default).
pub fn to(query: &[(String, String)]) -> Option<&str> {
    query
        .iter()
        .find(|(k, _)| k == "to")
        .map(|(_, v)| v.as_str())
        .filter(|v| *v != "current")
}

/// `GET …/snapshots/{id}/changes`: what differs from the snapshot in `to`.
pub fn snapshot_list(snapshot: &str, query: &[(String, String)]) -> Result<String, Error> {
    let changes = snapshots::changes(snapshot, to(query), None).map_err(tracking_failed)?;
    render_list(&changes)
}

fn render_list(changes: &[Change]) -> Result<String, Error> {
    // Written out as it goes: a JSON value per change would not let a change set of
    // 100,000 files fit in the instance's memory.
    let number = |n: Option<u64>| n.map_or_else(|| "null".to_owned(), |n| n.to_string());
    let mut out = String::with_capacity(64 + changes.len() * 96);
    out.push_str("{\"data\":[");
    for (i, c) in changes.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&format!(
            "{{\"bytes\":{},\"modified_at\":{},\"path\":{},\"status\":\"{}\"}}",
            number(c.bytes),
            number(c.modified_at),
            Value::from(c.path.as_str()),
            status(c.status)
        ));
    }
    out.push_str("],\"has_more\":false,\"object\":\"list\"}");
    Ok(out)
}

/// One side of a diff: up to the cap of the content, and its whole length.
struct Side {
    bytes: Vec<u8>,
    size: u64,
}

/// Refuses a symlink side whose target leads outside the root: showing the target
/// would reveal what lies outside.
fn confined_link(real: &str, shown: &str, side: Side) -> Result<Side, Error> {
    let target = String::from_utf8_lossy(&side.bytes);
    // Depth below the root of the link's directory, then of each step of the target.
    let mut depth = real.matches('/').count() as i64;
    let inside = !target.starts_with('/')
        && target.split('/').all(|part| {
            match part {
                "" | "." => {}
                ".." => depth -= 1,
                _ => depth += 1,
            }
            depth >= 0
        });
    if inside {
        Ok(side)
    } else {
        Err(forbidden(shown))
    }
}

impl Side {
    fn truncated(&self) -> bool {
        self.size > self.bytes.len() as u64
    }
}

/// The file's content now (a symlink's target), up to `cap` bytes.
fn current(real: &str, shown: &str, cap: u64) -> Result<Side, Error> {
    let at = guest(real);
    let meta = std::fs::symlink_metadata(&at).map_err(|e| io_error(e, shown))?;
    if meta.file_type().is_symlink() {
        let target = std::fs::read_link(&at).map_err(|e| io_error(e, shown))?;
        let bytes = target.to_string_lossy().into_owned().into_bytes();
        let size = bytes.len() as u64;
        let bytes = bytes.into_iter().take(cap as usize).collect();
        return confined_link(real, shown, Side { bytes, size });
    }
    let mut bytes = Vec::with_capacity(meta.len().min(cap) as usize);
    std::fs::File::open(&at)
        .and_then(|f| f.take(cap).read_to_end(&mut bytes))
        .map_err(|e| io_error(e, shown))?;
    Ok(Side {
        bytes,
        size: meta.len(),
    })
}

/// Where a diff's two sides come from.
#[derive(Clone, Copy)]
pub enum Sides<'a> {
    /// The baseline and the workspace now (`GET …/diff/{path}`).
    Session,
    /// A snapshot, and another (`Some`) or the workspace now
    /// (`GET …/snapshots/{id}/diff/{path}`).
    Snapshot(&'a str, Option<&'a str>),
}

/// A side held by the host (the baseline, a snapshot): `None` when it has no
/// file there; a symlink's target leading outside is refused.
fn held(original: Option<Original>, real: &str, shown: &str) -> Result<Option<Side>, Error> {
    let Some(o) = original else { return Ok(None) };
    let side = Side {
        bytes: o.bytes,
        size: o.size,
    };
    Ok(Some(match o.symlink {
        true => confined_link(real, shown, side)?,
        false => side,
    }))
}

/// `GET …/diff/{path}` and `GET …/snapshots/{id}/diff/{path}`: the file on both sides.
pub fn diff(
    path: &str,
    query: &[(String, String)],
    cap: u64,
    sides: Sides,
) -> Result<String, Error> {
    let unified = match query
        .iter()
        .find(|(k, _)| k == "format")
        .map(|(_, v)| v.as_str())
    {
        None => false,
        Some("unified") => true,
        Some(other) => {
            return Err(invalid_input(format!(
                "format must be \"unified\", not {other:?}"
            )));
        }
    };
    let shown = normalize(path)?;
    if shown.is_empty() {
        return Err(invalid_input("diff needs a file path"));
    }
    // A diff shows a symlink itself, not what it leads to, yet a path that reading
    // refuses is refused alike, with the same error: a link in a loop (or one taking
    // more than 40 links to resolve) is `400 invalid_path`, one leading outside,
    // directly or through another link, `403 path_forbidden`.
    resolve(&shown, true)?;
    // Changes are tracked by real paths; links inside the root lead to them.
    let real = resolve(&shown, false)?;
    let (change, unchanged) = match sides {
        Sides::Session => (
            watch::changes()
                .map_err(tracking_failed)?
                .into_iter()
                .find(|c| c.path == real),
            "in this session",
        ),
        Sides::Snapshot(base, other) => (
            snapshots::changes(base, other, Some(&real))
                .map_err(tracking_failed)?
                .into_iter()
                .next(),
            "since the snapshot",
        ),
    };
    let Some(change) = change else {
        return Err(not_found(format!("{shown} has not changed {unchanged}")));
    };
    let before = match (change.status, sides) {
        (Status::Created, _) => None,
        (_, Sides::Session) => held(watch::baseline(&real, cap).map_err(tracking_failed)?, &real, &shown)?,
        (_, Sides::Snapshot(base, _)) => held(
            snapshots::file(base, &real, cap).map_err(tracking_failed)?,
            &real,
            &shown,
        )?,
    };
    let after = match (change.status, sides) {
        (Status::Deleted, _) => None,
        (_, Sides::Snapshot(_, Some(other))) => held(
            snapshots::file(other, &real, cap).map_err(tracking_failed)?,
            &real,
            &shown,
        )?,
        _ => Some(current(&real, &shown, cap)?),
    };
    Ok(render(&shown, &change, before, after, unified).to_string())
}

fn render(
    shown: &str,
    change: &Change,
    before: Option<Side>,
    after: Option<Side>,
    unified: bool,
) -> Value {
    let truncated = [&before, &after]
        .iter()
        .any(|s| s.as_ref().is_some_and(Side::truncated));
    let text = |side: &Option<Side>| side.as_ref().map(|s| text_of(&s.bytes, s.truncated()));
    let (old, new) = (text(&before), text(&after));
    let binary = matches!(old, Some(None)) || matches!(new, Some(None));
    let (a, b) = (
        if before.is_some() {
            format!("a/{shown}")
        } else {
            "/dev/null".into()
        },
        if after.is_some() {
            format!("b/{shown}")
        } else {
            "/dev/null".into()
        },
    );
    let mut body = json!({
        "object": "session.environment.filesystem.file_diff",
        "path": shown,
        "status": status(change.status),
        "truncated": truncated,
    });
    if binary {
        let encode = |side: &Option<Side>| side.as_ref().map(|s| base64(&s.bytes));
        body["encoding"] = "base64".into();
        body["before"] = encode(&before).into();
        body["after"] = encode(&after).into();
        if unified {
            body["unified"] = format!("Binary files {a} and {b} differ\n").into();
        }
    } else {
        let (old, new) = (old.flatten(), new.flatten());
        if unified {
            let diff = similar::TextDiff::configure()
                .timeout(DIFF_TIMEOUT)
                .diff_lines(old.as_deref().unwrap_or(""), new.as_deref().unwrap_or(""));
            body["unified"] = diff.unified_diff().header(&a, &b).to_string().into();
        }
        body["encoding"] = "utf-8".into();
        body["before"] = old.into();
        body["after"] = new.into();
    }
    body
}
