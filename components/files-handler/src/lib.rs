//! The default `files` handler: uploaded binary artifacts of a session.
//!
//! Each file is one record (key: its id, value: the file object) owning the blob of
//! its bytes, so deleting the record deletes the bytes in the same transaction.
//!
//! A library, so that other handlers can wrap it: implement `Guest` by calling
//! [`Files`] where the default behaviour is wanted, then
//! `reshost_files_handler::export!(Yours with_types_in reshost_files_handler);`.

wit_bindgen::generate!({
    path: "../../wit",
    world: "files",
    with: {
        "reshost:api/types@0.1.0": reshost_guest::types,
        "reshost:api/records@0.1.0": reshost_guest::records,
        "reshost:api/blobs@0.1.0": reshost_guest::blobs,
    },
    pub_export_macro: true,
});

pub use exports::reshost::api::files_handler::{Caller, Download, Guest, Upload};
pub use reshost_guest::types::{Error, ErrorCode};
use reshost_guest::{error, not_found, records, unix_now};
use serde_json::{Map, Value, json};

/// Longest stored filename, in bytes; longer names are cut at a character boundary.
const MAX_FILENAME_BYTES: usize = 255;
const OCTET_STREAM: &str = "application/octet-stream";

/// The default handler.
pub struct Files;

impl Guest for Files {
    fn list(_: Caller, query: Vec<(String, String)>) -> Result<String, Error> {
        reshost_guest::list_records(&query, reshost_paging::STANDARD)
    }

    fn create(caller: Caller, upload: Upload) -> Result<String, Error> {
        Files::store(caller, upload, Map::new())
    }

    fn get(_: Caller, file_id: String) -> Result<String, Error> {
        records::get(&file_id).ok_or_else(|| no_such_file(&file_id))
    }

    fn content(_: Caller, file_id: String) -> Result<Download, Error> {
        let file = records::get(&file_id).ok_or_else(|| no_such_file(&file_id))?;
        let blob = records::attached_blob(&file_id).ok_or_else(|| no_such_file(&file_id))?;
        let file: Value = serde_json::from_str(&file).map_err(|e| {
            error(
                ErrorCode::InternalError,
                format!("corrupt file record: {e}"),
            )
        })?;
        let text = |key: &str| {
            file["metadata"][key]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        };
        Ok(Download {
            data: blob,
            content_type: text("content_type"),
            filename: text("filename"),
        })
    }

    fn delete(_: Caller, file_id: String) -> Result<String, Error> {
        if !records::delete(&file_id) {
            return Err(no_such_file(&file_id));
        }
        Ok(
            json!({"id": file_id, "object": "session.resource.deleted", "deleted": true})
                .to_string(),
        )
    }
}

impl Files {
    /// Stores an upload as a new file whose metadata also holds `extra`.
    pub fn store(
        caller: Caller,
        upload: Upload,
        extra: Map<String, Value>,
    ) -> Result<String, Error> {
        let id = format!("file_{}", uuid::Uuid::now_v7().simple());
        let filename = clean_filename(&upload.filename);
        let content_type = content_type(upload.content_type.as_deref(), &filename);
        let mut file = json!({
            "id": id,
            "object": "session.resource",
            "type": "file",
            "session_id": caller.session_id,
            "name": filename,
            "metadata": {
                "filename": filename,
                "bytes": upload.data.size(),
                "content_type": content_type,
                "sha256": upload.data.sha256(),
                "created_at": unix_now(),
            },
        });
        file["metadata"]
            .as_object_mut()
            .expect("metadata is an object")
            .extend(extra);
        let file = file.to_string();
        records::put(&id, &file, Some(upload.data));
        Ok(file)
    }
}

fn no_such_file(id: &str) -> Error {
    not_found(format!("no such file: {id}"))
}

/// The name a client sent, without any directory part (some browsers send
/// `C:\fakepath\x`), control characters, or excess length; `file` when nothing is left.
fn clean_filename(sent: &str) -> String {
    let base = sent.rsplit(['/', '\\']).next().unwrap_or_default();
    let mut name: String = base.chars().filter(|c| !c.is_control()).collect();
    let trimmed = name.trim();
    if trimmed.is_empty() || trimmed == "." || trimmed == ".." {
        return "file".into();
    }
    name = trimmed.to_owned();
    if name.len() > MAX_FILENAME_BYTES {
        let cut = (0..=MAX_FILENAME_BYTES)
            .rev()
            .find(|&i| name.is_char_boundary(i))
            .unwrap_or(0);
        name.truncate(cut);
    }
    name
}

/// The declared type unless absent, generic or malformed; else a guess from the
/// extension; else `application/octet-stream`.
fn content_type(declared: Option<&str>, filename: &str) -> String {
    let declared = declared.map(str::trim).filter(|t| {
        !t.is_empty()
            && !t.eq_ignore_ascii_case(OCTET_STREAM)
            && t.contains('/')
            && t.chars().all(|c| c.is_ascii_graphic() || c == ' ')
    });
    match declared {
        Some(t) => t.to_owned(),
        None => mime_guess::from_path(filename)
            .first_raw()
            .unwrap_or(OCTET_STREAM)
            .to_owned(),
    }
}
