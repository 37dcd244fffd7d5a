//! Streaming a workspace file's raw bytes (`?format=raw`). The component has
//! checked the path; the host opens it through a capability-scoped directory all
//! the same, so nothing outside the workspace can be served whatever the path.

use super::body::Body;
use super::error::{ApiError, ApiResult};
use bytes::Bytes;
use futures_util::TryStreamExt;
use http::{HeaderValue, Response, header};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use std::path::Path;

/// Read size when streaming a file.
const READ_BYTES: usize = 256 * 1024;

/// An error opening what a component checked in the workspace (it may have
/// changed since, or the component was wrong).
pub fn open_error(e: std::io::Error) -> ApiError {
    match e.kind() {
        std::io::ErrorKind::NotFound => {
            ApiError::new(super::error::Code::PathNotFound, "no such file")
        }
        std::io::ErrorKind::PermissionDenied => ApiError::new(
            super::error::Code::PathForbidden,
            "the path resolves outside the environment",
        ),
        std::io::ErrorKind::InvalidInput => ApiError::invalid("not a regular file"),
        std::io::ErrorKind::NotADirectory => ApiError::invalid("not a directory"),
        _ => ApiError::internal("opening a workspace path", e),
    }
}

pub async fn respond(
    workspace: &Path,
    path: &str,
    content_type: &str,
) -> ApiResult<Response<Body>> {
    let (workspace, path) = (workspace.to_owned(), path.to_owned());
    let opened = crate::app::blocking("opening a file", move || -> std::io::Result<_> {
        let dir = cap_std::fs::Dir::open_ambient_dir(&workspace, cap_std::ambient_authority())?;
        let file = crate::workspace::open_file(&dir, &path)?;
        let meta = file.metadata()?;
        Ok((file.into_std(), meta.len()))
    })
    .await?;
    let (file, len) = opened.map_err(open_error)?;
    let stream =
        tokio_util::io::ReaderStream::with_capacity(tokio::fs::File::from_std(file), READ_BYTES)
            .map_ok(|bytes: Bytes| Frame::data(bytes));
    let mut response = Response::new(StreamBody::new(stream).boxed());
    let headers = response.headers_mut();
    let content_type = HeaderValue::from_str(content_type)
        .unwrap_or_else(|_| HeaderValue::from_static("application/octet-stream"));
    headers.insert(header::CONTENT_TYPE, content_type);
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    headers.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    Ok(response)
}
