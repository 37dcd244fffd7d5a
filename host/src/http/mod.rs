//! The HTTP side: the accept loop with graceful shutdown, and the route table.

mod admin;
mod answer;
mod attach;
mod body;
mod download;
mod environments;
mod error;
mod files;
mod paging;
mod raw;
mod resources;
mod sessions;
mod terminals;

use crate::app::App;
use body::{Body, ok};
use error::{ApiError, ApiResult};
use http::{Method, Request, Response};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::TcpListener;

/// Serves until `shutdown` resolves, then lets in-flight requests finish (up to the
/// configured grace period).
pub async fn serve(app: Arc<App>, listener: TcpListener, shutdown: impl Future<Output = ()>) {
    // Connections are told to stop through `stopping` and awaited through
    // `connections` (hyper-util's GracefulShutdown does not take connections that
    // can upgrade, which terminal attach needs).
    let (stop, stopping) = tokio::sync::watch::channel(false);
    let connections = tokio_util::task::TaskTracker::new();
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(e) => {
                    // Out of file descriptors and the like: back off, keep serving.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        let service = service_fn(move |req| {
            let app = app.clone();
            async move { Ok::<_, Infallible>(handle(&app, req).await) }
        });
        let conn = http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(Duration::from_secs(30))
            .serve_connection(TokioIo::new(stream), service)
            .with_upgrades();
        let mut stopping = stopping.clone();
        connections.spawn(async move {
            tokio::pin!(conn);
            let ended = tokio::select! {
                ended = conn.as_mut() => ended,
                _ = async { stopping.wait_for(|stop| *stop).await.map(|_| ()) } => {
                    // Finish the request in flight, then close.
                    conn.as_mut().graceful_shutdown();
                    conn.await
                }
            };
            if let Err(e) = ended {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    let _ = stop.send(true);
    connections.close();
    let grace = Duration::from_millis(app.config.limits.shutdown_grace_ms);
    tracing::info!("shutting down: waiting for in-flight requests");
    if tokio::time::timeout(grace, connections.wait())
        .await
        .is_err()
    {
        tracing::warn!(?grace, "in-flight requests did not finish in time");
    }
}

async fn handle(app: &App, req: Request<Incoming>) -> Response<Body> {
    let started = Instant::now();
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let sent_body = !hyper::body::Body::is_end_stream(req.body());
    let response = match route(app, req).await {
        Ok(response) => response,
        Err(mut e) => {
            // A request refused before its body was read leaves the rest of the
            // body on the connection, which then cannot carry another request:
            // say so, rather than let the client find a reset.
            e.close |= sent_body;
            e.into_response()
        }
    };
    tracing::debug!(%method, path, status = response.status().as_u16(), elapsed_us = started.elapsed().as_micros() as u64, "request");
    response
}

/// Splits a path into percent-decoded segments.
fn segments(path: &str) -> ApiResult<Vec<String>> {
    path.trim_start_matches('/')
        .split('/')
        .map(|s| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8()
                .map(|s| s.into_owned())
                .map_err(|_| ApiError::invalid("the path is not valid UTF-8"))
        })
        .collect()
}

async fn route(app: &App, req: Request<Incoming>) -> ApiResult<Response<Body>> {
    let segments = segments(req.uri().path())?;
    let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
    match segments.as_slice() {
        ["healthz"] => match *req.method() {
            Method::GET | Method::HEAD => ok(r#"{"status":"ok"}"#.to_owned()),
            _ => Err(ApiError::method_not_allowed("GET")),
        },
        ["v1", rest @ ..] => {
            // Browsers cannot set headers on a WebSocket: attach also takes `?token=`.
            let query_token = if rest.last() == Some(&"attach") {
                paging::param(&paging::parse_query(req.uri()), "token").map(str::to_owned)
            } else {
                None
            };
            let tenant = app
                .tenants
                .authenticate(req.headers(), query_token.as_deref())?
                .to_owned();
            let _in_flight = app.quotas.request(&tenant)?;
            v1(app, &tenant, rest, req).await
        }
        ["admin", "v1", rest @ ..] => admin::route(app, rest, req).await,
        _ => Err(no_route()),
    }
}

fn no_route() -> ApiError {
    ApiError::not_found("no such route")
}

/// An authenticated `/v1` request on its way to the module that serves its path;
/// each module routes the rest of the path itself.
pub struct V1<'a> {
    pub app: &'a App,
    pub tenant: &'a str,
    pub method: Method,
    pub headers: http::HeaderMap,
    pub query: paging::Query,
    pub body: Incoming,
}

async fn v1(
    app: &App,
    tenant: &str,
    path: &[&str],
    req: Request<Incoming>,
) -> ApiResult<Response<Body>> {
    let query = paging::parse_query(req.uri());
    // The upgrade needs the whole request.
    if let ["sessions", sid, "resources", "terminals", tid, "attach"] = path {
        return match *req.method() {
            Method::GET => attach::attach(app, tenant, (sid, tid), &query, req).await,
            _ => Err(ApiError::method_not_allowed("GET")),
        };
    }
    let (parts, body) = req.into_parts();
    let req = V1 {
        app,
        tenant,
        method: parts.method,
        headers: parts.headers,
        query,
        body,
    };
    match path {
        ["sessions", rest @ ..] => sessions::route(req, rest).await,
        _ => Err(no_route()),
    }
}
