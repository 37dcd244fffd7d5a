//! `/v1/sessions/{sid}/resources/files`, served by the `files` slot. The host
//! streams upload bytes into a staged blob and download bytes out of one; the
//! component decides everything else.

use super::answer::answer;
use super::body::{Body, DRAIN_BYTES, data, drain, json_response};
use super::download;
use super::error::{ApiError, ApiResult, Code};
use super::paging::Query;
use crate::app::App;
use crate::app::{Ask, Room};
use crate::bindings::files_handler::Upload;
use crate::runtime::FilesWorld;
use crate::store::{ChunkWriter, StagedBlob};
use bytes::Bytes;
use http::{HeaderMap, Response, StatusCode, header};
use hyper::body::Incoming;
use sha2::{Digest, Sha256};

/// Room for multipart boundaries and part headers beyond the file's own bytes when
/// judging a declared `Content-Length`.
const MULTIPART_OVERHEAD: u64 = 64 * 1024;
/// Upload pieces queued between the network and the blob writer.
const UPLOAD_QUEUE: usize = 2;

pub(super) async fn list(
    app: &App,
    tenant: &str,
    session: &str,
    query: &Query,
) -> ApiResult<Response<Body>> {
    let ask = Ask::new("files.list", Some(session), None);
    answer::<FilesWorld>(app, tenant, session, ask, async |files, store, caller| {
        files
            .reshost_api_files_handler()
            .call_list(store, caller, query)
            .await
    })
    .await
}

pub(super) async fn get(
    app: &App,
    tenant: &str,
    session: &str,
    id: &str,
) -> ApiResult<Response<Body>> {
    let ask = Ask::new("files.get", Some(session), Some(id));
    answer::<FilesWorld>(app, tenant, session, ask, async |files, store, caller| {
        files
            .reshost_api_files_handler()
            .call_get(store, caller, id)
            .await
    })
    .await
}

pub(super) async fn delete(
    app: &App,
    tenant: &str,
    session: &str,
    id: &str,
) -> ApiResult<Response<Body>> {
    let ask = Ask::new("files.delete", Some(session), Some(id));
    answer::<FilesWorld>(app, tenant, session, ask, async |files, store, caller| {
        files
            .reshost_api_files_handler()
            .call_delete(store, caller, id)
            .await
    })
    .await
}

pub(super) async fn content(
    app: &App,
    tenant: &str,
    session: &str,
    id: &str,
    request: &HeaderMap,
) -> ApiResult<Response<Body>> {
    let caller = app
        .authorize(
            tenant,
            session,
            Ask::new("files.content", Some(session), Some(id)),
        )
        .await?;
    let (blob, content_type, filename) = app
        .call_slot::<FilesWorld, _>(&caller, async |files, store| {
            let answer = files
                .reshost_api_files_handler()
                .call_content(&mut *store, &caller, id)
                .await?;
            Ok(match answer {
                Ok(d) => {
                    let blob = store.data_mut().take_blob(d.data)?;
                    Ok((blob, d.content_type, d.filename))
                }
                Err(e) => Err(e),
            })
        })
        .await?;
    download::respond(&app.store, &blob, &content_type, &filename, request)
}

fn upload_error(e: multer::Error) -> ApiError {
    ApiError::invalid(format!("malformed multipart body: {e}"))
}

fn too_large(limit: u64) -> ApiError {
    ApiError::new(
        Code::PayloadTooLarge,
        format!("uploads are limited to {limit} bytes"),
    )
}

/// The multipart boundary of an upload's `Content-Type`.
fn boundary(headers: &HeaderMap) -> ApiResult<String> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    multer::parse_boundary(content_type).map_err(|_| {
        ApiError::new(
            Code::UnsupportedMediaType,
            "uploads must be multipart/form-data with a part named \"file\"",
        )
    })
}

/// Refuses an upload whose declared length is over a limit before a byte is
/// stored. A client waiting on `Expect: 100-continue` never sends the body; one
/// already sending it gets its answer after the body is read and dropped, if that
/// is not too much.
async fn refuse_declared<E>(
    headers: &HeaderMap,
    declared: u64,
    mut error: ApiError,
    body: impl futures_util::Stream<Item = Result<Bytes, E>> + Unpin,
) -> ApiError {
    let expects_continue = headers
        .get(header::EXPECT)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
    error.close = expects_continue || declared > DRAIN_BYTES || !drain(body).await;
    error
}

/// The upload's part named `file`.
async fn file_part<'r>(multipart: &mut multer::Multipart<'r>) -> ApiResult<multer::Field<'r>> {
    loop {
        match multipart.next_field().await.map_err(upload_error)? {
            Some(field) if field.name() == Some("file") => return Ok(field),
            Some(_) => continue,
            None => {
                return Err(ApiError::invalid(
                    "the multipart body has no part named \"file\"",
                ));
            }
        }
    }
}

/// Streams the file part into a staged blob. The writer runs on a blocking
/// thread; the network side feeds it through a short queue, so memory stays
/// bounded whatever the file's size. A part over `limit`, or over the `room` the
/// tenant's storage quota leaves, is refused; what was written is discarded.
async fn stage(
    app: &App,
    field: &mut multer::Field<'_>,
    multipart: &mut multer::Multipart<'_>,
    limit: u64,
    room: Option<Room>,
) -> ApiResult<StagedBlob> {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Bytes>(UPLOAD_QUEUE);
    let store = app.store.clone();
    // The bytes are hashed here as they arrive while the writer stores the
    // earlier ones: on two cores, a 1 GiB upload is ~1.6x as fast as hashing
    // on the writer's thread (`examples/bench_fast.rs`).
    let (sealed_tx, sealed_rx) = tokio::sync::oneshot::channel::<[u8; 32]>();
    let writer =
        tokio::task::spawn_blocking(move || -> crate::store::Result<Option<StagedBlob>> {
            let mut writer = ChunkWriter::new(&store)?;
            while let Some(bytes) = rx.blocking_recv() {
                writer.write(&bytes)?;
            }
            // No digest: the stream failed, and the blob is discarded.
            match sealed_rx.blocking_recv() {
                Ok(sha256) => writer.seal(sha256).map(Some),
                Err(_) => Ok(None),
            }
        });
    let mut received = 0u64;
    let mut hasher = Sha256::new();
    let streamed: ApiResult<()> = async {
        while let Some(bytes) = field.chunk().await.map_err(upload_error)? {
            received += bytes.len() as u64;
            if received > limit {
                return Err(too_large(limit));
            }
            if let Some(room) = room.filter(|room| received > room.left) {
                return Err(room.refusal().into());
            }
            hasher.update(&bytes);
            if tx.send(bytes).await.is_err() {
                break; // The writer failed; its error is reported below.
            }
        }
        Ok(())
    }
    .await;
    drop(tx);
    // The writer waits for the digest, or for its sender to go (discard).
    match streamed {
        Ok(()) => drop(sealed_tx.send(hasher.finalize().into())),
        Err(_) => drop(sealed_tx),
    }
    let staged = writer
        .await
        .map_err(|e| ApiError::internal("storing an upload", e));
    if let Err(mut e) = streamed {
        drop(staged); // Discards what was written.
        if matches!(e.code, Code::PayloadTooLarge | Code::InsufficientStorage) {
            // The file part is read; what follows it (the closing boundary, maybe
            // other parts) decides whether the connection can be kept.
            e.close = !drain(field).await || !matches!(multipart.next_field().await, Ok(None));
        }
        return Err(e);
    }
    let staged = staged??.ok_or_else(|| {
        ApiError::internal(
            "storing an upload",
            "the upload's writer ended without its digest",
        )
    })?;
    crate::metrics::METRICS.uploaded_bytes.inc_by(received);
    Ok(staged)
}

pub(super) async fn upload(
    app: &App,
    tenant: &str,
    session: &str,
    headers: &HeaderMap,
    body: Incoming,
) -> ApiResult<Response<Body>> {
    let caller = app.caller(tenant, session)?;
    let limit = app.config.limits.max_upload_bytes;
    let boundary = boundary(headers)?;
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let mut stream = data(body);
    if let Some(declared) = declared.filter(|&n| n > limit.saturating_add(MULTIPART_OVERHEAD)) {
        return Err(refuse_declared(headers, declared, too_large(limit), &mut stream).await);
    }
    let mut multipart = multer::Multipart::new(stream, boundary);
    let mut field = file_part(&mut multipart).await?;
    let filename = field.file_name().unwrap_or_default().to_owned();
    let part_type = field.content_type().map(|m| m.to_string());
    let ask = Ask {
        upload_bytes: declared,
        content_type: part_type.as_deref(),
        ..Ask::new("files.upload", Some(session), None)
    };
    app.check(tenant, ask).await?;
    let room = app.upload_room(tenant).await?;
    let staged = stage(app, &mut field, &mut multipart, limit, room).await?;

    let mut staged = Some(staged);
    let json = app
        .call_slot::<FilesWorld, _>(&caller, async |files, store| {
            let staged = staged
                .take()
                .ok_or_else(|| wasmtime::format_err!("the upload was handed over already"))?;
            let data = store.data_mut().stage_upload(staged)?;
            let upload = Upload {
                data,
                filename: filename.clone(),
                content_type: part_type.clone(),
            };
            files
                .reshost_api_files_handler()
                .call_create(store, &caller, &upload)
                .await
        })
        .await?;
    Ok(json_response(StatusCode::CREATED, json))
}
