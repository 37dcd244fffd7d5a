//! `GET /metrics`: the Prometheus text exposition, for the `[metrics]` tokens
//! (off, `404`, without any). The figures that are states rather than events are
//! read here, at each scrape.

use super::body::Body;
use super::error::{ApiError, ApiResult};
use crate::app::App;
use crate::metrics::{METRICS, set};
use crate::store::Store;
use http::{HeaderValue, Response, header};

pub async fn scrape(app: &App, headers: &http::HeaderMap) -> ApiResult<Response<Body>> {
    if !app.metrics.enabled() {
        return Err(super::no_route());
    }
    app.metrics.authenticate(headers)?;
    let (in_use, capacity) = app.runtime.instances();
    set(&METRICS.instances_in_use, in_use as u64);
    set(&METRICS.instances_capacity, capacity as u64);
    set(&METRICS.sessions, app.store.session_count()?);
    set(&METRICS.terminals_running, app.terminals.running(|_| true));
    let database = std::fs::metadata(Store::path(&app.config.data_dir)).map_or(0, |m| m.len());
    set(&METRICS.database_bytes, database);
    let text = METRICS
        .encode()
        .map_err(|e| ApiError::internal("encoding the metrics", e))?;
    let mut response = Response::new(super::body::full(text));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
    );
    Ok(response)
}
