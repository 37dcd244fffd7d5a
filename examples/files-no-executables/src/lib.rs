//! A `files` handler that refuses executables, whatever the client calls them.
//!
//! Uploads are the default handler's in every way but one: the first bytes are
//! sniffed, and native executables (ELF, Windows PE, Mach-O) and scripts with a
//! `#!` line are refused with `415 unsupported_media_type`, so an agent cannot
//! smuggle a binary in as `notes.txt` with `text/plain`. Accepted files carry
//! `"screened": "no-executables"` in their metadata, which tells an auditor (and
//! the host's tests) which handler stored them.
//!
//! Deploy it with the admin API:
//!
//! ```sh
//! curl -X PUT -H "Authorization: Bearer $ADMIN" --data-binary @files_no_executables.wasm \
//!      localhost:6767/admin/v1/slots/files
//! ```

use reshost_files_handler::{Caller, Download, Error, ErrorCode, Files, Guest, Upload};

/// Enough bytes for every signature below.
const SNIFF_BYTES: u32 = 8;

/// The kind of executable `head` starts, if any.
fn executable(head: &[u8]) -> Option<&'static str> {
    const SIGNATURES: &[(&[u8], &str)] = &[
        (b"\x7fELF", "an ELF executable"),
        (b"MZ", "a Windows executable"),
        (b"\xfe\xed\xfa\xce", "a Mach-O executable"),
        (b"\xfe\xed\xfa\xcf", "a Mach-O executable"),
        (b"\xce\xfa\xed\xfe", "a Mach-O executable"),
        (b"\xcf\xfa\xed\xfe", "a Mach-O executable"),
        (b"#!", "a script with a #! line"),
    ];
    SIGNATURES
        .iter()
        .find(|(magic, _)| head.starts_with(magic))
        .map(|(_, kind)| *kind)
}

struct NoExecutables;

impl Guest for NoExecutables {
    fn list(caller: Caller, query: Vec<(String, String)>) -> Result<String, Error> {
        Files::list(caller, query)
    }

    fn create(caller: Caller, upload: Upload) -> Result<String, Error> {
        if let Some(kind) = executable(&upload.data.read(0, SNIFF_BYTES)) {
            return Err(Error {
                code: ErrorCode::UnsupportedMediaType,
                message: format!("executables are not accepted: this upload is {kind}"),
            });
        }
        let mut screened = serde_json::Map::new();
        screened.insert("screened".into(), "no-executables".into());
        Files::store(caller, upload, screened)
    }

    fn get(caller: Caller, file_id: String) -> Result<String, Error> {
        Files::get(caller, file_id)
    }

    fn content(caller: Caller, file_id: String) -> Result<Download, Error> {
        Files::content(caller, file_id)
    }

    fn delete(caller: Caller, file_id: String) -> Result<String, Error> {
        Files::delete(caller, file_id)
    }
}

reshost_files_handler::export!(NoExecutables with_types_in reshost_files_handler);
