//! Archives of environment directories: `GET …/filesystem[/{path}]?format=tar`
//! (or `tar.gz`) streams one, `POST` of the same unpacks one. The component
//! checks the directory and the format; the host packs and unpacks natively,
//! through capability-scoped directories.

use super::body::{self, Body, ok};
use super::error::{ApiError, ApiResult};
use super::paging::Query;
use super::raw;
use crate::app::{App, Ask, blocking};
use crate::archive::{self, Dest, Scratch, pack, unpack};
use crate::bindings::environments_handler::{ArchiveSpec, Compression};
use crate::runtime::EnvironmentsWorld;
use bytes::Bytes;
use cap_std::fs::Dir;
use futures_util::TryStreamExt;
use http::{HeaderMap, HeaderValue, Response, header};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::{Frame, Incoming};
use std::io::{self, Write};
use std::path::Path;
use tokio::sync::mpsc;

/// Chunks queued between the packing thread and the response: what bounds the
/// memory a download holds, whatever the tree's size.
const QUEUED_CHUNKS: usize = 8;
/// Bytes gathered into one chunk.
const CHUNK_BYTES: usize = 64 * 1024;

/// Opens (with `open`) what a component checked at `path` of the workspace, on
/// the blocking pool.
async fn opened<T: Send + 'static>(
    workspace: &Path,
    path: &str,
    open: fn(&Path, &str) -> io::Result<T>,
) -> ApiResult<T> {
    let (workspace, path) = (workspace.to_owned(), path.to_owned());
    let opened = blocking("opening a directory", move || open(&workspace, &path)).await?;
    opened.map_err(raw::open_error)
}

/// Hands what the packer writes to the response in chunks, waiting while the
/// queue is full; a client that went away ends the packing (`BrokenPipe`).
struct Sink {
    chunks: mpsc::Sender<io::Result<Bytes>>,
    gathered: Vec<u8>,
}

impl Sink {
    fn send(&mut self) -> io::Result<()> {
        if self.gathered.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::replace(
            &mut self.gathered,
            Vec::with_capacity(CHUNK_BYTES),
        ));
        self.chunks
            .blocking_send(Ok(chunk))
            .map_err(|_| io::Error::from(io::ErrorKind::BrokenPipe))
    }
}

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.gathered.extend_from_slice(buf);
        if self.gathered.len() >= CHUNK_BYTES {
            self.send()?;
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.send()
    }
}

/// Packs `dir` into `sink`, gzipped when asked.
fn pack_into(dir: Dir, compression: Compression, sink: Sink) -> io::Result<()> {
    let mut sink = match compression {
        Compression::None => pack::pack(dir, sink)?,
        Compression::Gzip => {
            pack::pack(dir, flate2::write::GzEncoder::new(sink, Default::default()))?.finish()?
        }
    };
    sink.flush()
}

/// Streams the archive of the directory `spec` names: built on a blocking
/// thread as the client reads it.
pub(super) async fn download(workspace: &Path, spec: ArchiveSpec) -> ApiResult<Response<Body>> {
    let dir = opened(workspace, &spec.path, archive::open_dir).await?;
    let (chunks, mut queued) = mpsc::channel(QUEUED_CHUNKS);
    let sink = Sink {
        chunks: chunks.clone(),
        gathered: Vec::with_capacity(CHUNK_BYTES),
    };
    // A thread of its own rather than the blocking pool's: it lives as long as
    // the client takes to read, and slow clients must not hold up storage work.
    let packing = move || {
        if let Err(e) = pack_into(dir, spec.compression, sink)
            && e.kind() != io::ErrorKind::BrokenPipe
        {
            // The answer has begun: the client sees the body end in an error.
            tracing::warn!(error = %e, "packing an archive");
            let _ = chunks.blocking_send(Err(e));
        }
    };
    std::thread::Builder::new()
        .name("reshost-archive".into())
        .spawn(packing)
        .map_err(|e| ApiError::internal("starting to pack an archive", e))?;
    let stream = futures_util::stream::poll_fn(move |cx| queued.poll_recv(cx)).map_ok(Frame::data);
    let mut response = Response::new(StreamBody::new(stream).boxed());
    let (content_type, extension) = match spec.compression {
        Compression::None => ("application/x-tar", "tar"),
        Compression::Gzip => ("application/gzip", "tar.gz"),
    };
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    let name = spec.path.rsplit('/').next().filter(|n| !n.is_empty());
    let disposition = format!(
        "attachment; filename=\"{}.{extension}\"",
        filename(name.unwrap_or("environment"))
    );
    if let Ok(value) = HeaderValue::from_str(&disposition) {
        headers.insert(header::CONTENT_DISPOSITION, value);
    }
    Ok(response)
}

/// A name safe inside a quoted `Content-Disposition` filename.
fn filename(name: &str) -> String {
    name.chars()
        .map(|c| match c {
            'a'..='z' | 'A'..='Z' | '0'..='9' | '.' | '-' | '_' => c,
            _ => '_',
        })
        .collect()
}

/// `POST …/environments/{env}/filesystem[/{path}]`: unpacks the body, an
/// archive, into the directory, all or nothing.
pub(super) async fn extract(
    app: &App,
    tenant: &str,
    session: &str,
    (env, path): (&str, &str),
    query: &Query,
    headers: &HeaderMap,
    body: Incoming,
) -> ApiResult<Response<Body>> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse().ok());
    let ask = Ask {
        path: Some(path),
        upload_bytes: declared,
        content_type,
        ..Ask::new("environments.extract", Some(session), Some(env))
    };
    let caller = app.authorize(tenant, session, ask).await?;
    let spec = app
        .call_slot::<EnvironmentsWorld, _>(&caller, async |envs, store| {
            envs.reshost_api_environments_handler()
                .call_extract(store, &caller, env, path, query, content_type)
                .await
        })
        .await?;
    let dest = opened(&app.workspace(session), &spec.path, Dest::of).await?;
    let staging = app.staging.clone();
    let (scratch, file) = blocking("making room for an archive", move || {
        let scratch = Scratch::new(&staging)?;
        let file = scratch.archive.try_clone()?;
        Ok::<_, io::Error>((scratch, file))
    })
    .await?
    .map_err(|e| ApiError::internal("making room for an archive", e))?;
    let mut file = tokio::fs::File::from_std(file);
    body::save(body, app.config.limits.max_archive_bytes, &mut file).await?;
    let limits = unpack::Limits {
        entries: app.config.limits.max_archive_entries,
        bytes: app.config.limits.max_unpacked_bytes,
    };
    let gzip = matches!(spec.compression, Compression::Gzip);
    let (scratch, dest, counts) = blocking("checking an archive", move || {
        unpack::check(&scratch, gzip, &dest, limits).map(|counts| (scratch, dest, counts))
    })
    .await??;
    app.room_for_write(tenant, counts.bytes).await?;
    blocking("unpacking an archive", move || {
        unpack::unpack(&scratch, gzip, limits, &dest)
    })
    .await??;
    ok(serde_json::json!({
        "object": "session.environment.filesystem.extraction",
        "path": spec.path,
        "extracted": counts,
    })
    .to_string())
}
