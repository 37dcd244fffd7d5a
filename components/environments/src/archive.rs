//! Tar archives of directories: which formats and content types there are, and
//! which directory an archive is made of or unpacked into. The host packs and
//! unpacks; this decides what may be asked.

use crate::exports::reshost::api::environments_handler::{ArchiveSpec, Compression};
use crate::fs::{display, io_error};
use crate::paths::{guest, normalize, resolve};
use reshost_guest::invalid_input;
use reshost_guest::types::{Error, ErrorCode};

/// The compression of an archive `format`; `None` for a format that is no archive.
pub fn compression(format: &str) -> Option<Compression> {
    match format {
        "tar" => Some(Compression::None),
        "tar.gz" => Some(Compression::Gzip),
        _ => None,
    }
}

/// The directory at `path`, its symlinks resolved; `400` for anything else.
/// With `may_be_missing`, nothing there yet is accepted too (an extraction
/// creates it, with its missing parents, once the archive is accepted).
pub fn directory(path: &str, may_be_missing: bool) -> Result<String, Error> {
    let shown = normalize(path)?;
    let real = resolve(&shown, true)?;
    match std::fs::metadata(guest(&real)) {
        Ok(meta) if meta.is_dir() => Ok(real),
        Ok(_) => Err(invalid_input(format!(
            "{} is not a directory; archives are of directories",
            display(&shown)
        ))),
        Err(e) if may_be_missing && e.kind() == std::io::ErrorKind::NotFound => Ok(real),
        Err(e) => Err(io_error(e, &shown)),
    }
}

/// The content types an upload of each compression may declare (besides none and
/// `application/octet-stream`).
fn content_types(compression: Compression) -> &'static [&'static str] {
    match compression {
        Compression::None => &["application/x-tar", "application/tar"],
        Compression::Gzip => &["application/gzip", "application/x-gzip"],
    }
}

/// `POST …/filesystem[/{path}]?format=tar|tar.gz`: the directory to unpack into.
pub fn extract(
    path: &str,
    query: &[(String, String)],
    content_type: Option<&str>,
) -> Result<ArchiveSpec, Error> {
    let format = query
        .iter()
        .find(|(k, _)| k == "format")
        .map(|(_, v)| v.as_str())
        .ok_or_else(|| invalid_input("format is required: \"tar\" or \"tar.gz\""))?;
    let compression = compression(format).ok_or_else(|| {
        invalid_input(format!("format must be \"tar\" or \"tar.gz\", not {format:?}"))
    })?;
    if let Some(declared) = content_type {
        let essence = declared
            .split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase();
        let accepted = content_types(compression);
        if essence != "application/octet-stream" && !accepted.contains(&essence.as_str()) {
            return Err(reshost_guest::error(
                ErrorCode::UnsupportedMediaType,
                format!(
                    "format={format} takes a body of type {} or application/octet-stream, not {declared:?}",
                    accepted.join(", ")
                ),
            ));
        }
    }
    Ok(ArchiveSpec {
        path: directory(path, true)?,
        compression,
    })
}

