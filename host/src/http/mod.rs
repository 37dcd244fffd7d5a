//! The HTTP side: the accept loop with graceful shutdown, and the route table.

mod admin;
mod answer;
mod archive;
mod attach;
mod body;
mod console;
mod download;
mod environments;
mod error;
mod file_events;
mod files;
mod metrics;
mod output_text;
mod paging;
mod processes;
mod raw;
mod request_id;
mod resources;
mod routes;
mod sessions;
mod shell_stream;
mod snapshots;
mod sse;
mod terminals;

use crate::app::App;
use body::{Body, ok};
use error::{ApiError, ApiResult};
use http::{HeaderValue, Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
pub use routes::TABLE as ROUTES;
use routes::{Found, Route};
use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};
use terminals::One;
use tokio::net::TcpListener;
use tracing::Instrument;

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

async fn handle(app: &Arc<App>, mut req: Request<Incoming>) -> Response<Body> {
    let id = request_id::of(req.headers());
    // Handlers that answer later (event streams) read the same id from it.
    req.headers_mut().insert(request_id::HEADER, id.clone());
    let span = tracing::info_span!("request", id = %id.to_str().unwrap_or("-"));
    let mut response = answer(app, req, &id).instrument(span).await;
    response.headers_mut().insert(request_id::HEADER, id);
    response
}

/// The answer to a request, logged.
async fn answer(app: &Arc<App>, req: Request<Incoming>, id: &HeaderValue) -> Response<Body> {
    let started = Instant::now();
    let method = req.method().clone();
    let sent_body = !hyper::body::Body::is_end_stream(req.body());
    let path = req.uri().path();
    let decoded = segments(path);
    // A path that does not decode is still authenticated first, by its raw
    // first segment.
    let first = match &decoded {
        Ok(segments) => segments.first().cloned(),
        Err(_) => path
            .trim_start_matches('/')
            .split('/')
            .next()
            .map(str::to_owned),
    };
    let found = decoded.and_then(|segments| routes::find(&method, &segments));
    let template = found.as_ref().map_or("-", |found| found.template);
    let answer = route(app, first.as_deref(), found, req).await;
    let response = match answer {
        Ok(response) => response,
        Err(mut e) => {
            // A request refused before its body was read leaves the rest of the
            // body on the connection, which then cannot carry another request:
            // say so, rather than let the client find a reset.
            e.close |= sent_body;
            e.into_response(id.to_str().unwrap_or_default())
        }
    };
    let (status, took) = (response.status().as_u16(), started.elapsed());
    let elapsed_us = took.as_micros() as u64;
    tracing::debug!(%method, route = template, status, elapsed_us, "request");
    let method = method.as_str().to_owned();
    let labels = crate::metrics::RequestLabels {
        route: template,
        method,
        status,
    };
    crate::metrics::METRICS.request(labels, took);
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

/// Serves a request whose path starts with segment `first` and whose route is
/// `found` (or why there is none).
async fn route(
    app: &Arc<App>,
    first: Option<&str>,
    found: ApiResult<Found>,
    req: Request<Incoming>,
) -> ApiResult<Response<Body>> {
    match first {
        Some("v1") => {
            // Browsers cannot set headers on a WebSocket: attach also takes `?token=`.
            let query_token = match &found {
                Ok(found) if found.route == Route::AttachTerminal => {
                    paging::param(&paging::parse_query(req.uri()), "token").map(str::to_owned)
                }
                _ => None,
            };
            // Authenticated before routing: an unknown `/v1` path without a token is 401.
            let tenant = app
                .tenants
                .authenticate(req.headers(), query_token.as_deref())?
                .to_owned();
            let _in_flight = app.quotas.request(&tenant)?;
            v1(app, &tenant, &found?, req).await
        }
        Some("admin") => admin::route(app, found, req).await,
        _ => {
            let found = found?;
            match found.route {
                Route::Healthz => Ok(health(app)),
                Route::OpenApi => ok(OPENAPI.to_owned()),
                Route::Metrics => metrics::scrape(app, req.headers()).await,
                Route::Console => console::index(req.headers()),
                Route::ConsoleAsset => console::asset(found.param("path"), req.headers()),
                _ => Err(no_route()),
            }
        }
    }
}

/// `/healthz`: ready, or draining (`503`: send new work elsewhere).
fn health(app: &App) -> Response<Body> {
    match app.cluster.draining() {
        false => body::json_response(StatusCode::OK, r#"{"status":"ok"}"#.to_owned()),
        true => body::json_response(
            StatusCode::SERVICE_UNAVAILABLE,
            r#"{"status":"draining"}"#.to_owned(),
        ),
    }
}

/// The API's OpenAPI description, served as committed (a test checks it
/// against the route table).
const OPENAPI: &str = include_str!("../../../docs/openapi.json");

fn no_route() -> ApiError {
    ApiError::not_found("no such route")
}

/// Serves an authenticated `/v1` request: the route's handler, with the
/// template's parameters.
async fn v1(
    app: &Arc<App>,
    tenant: &str,
    found: &Found,
    req: Request<Incoming>,
) -> ApiResult<Response<Body>> {
    use Route::*;
    let query = paging::parse_query(req.uri());
    let (session, path) = (found.param("session_id"), found.param("path"));
    let (env, terminal) = (found.param("env_id"), found.param("terminal_id"));
    let (file, process) = (found.param("file_id"), found.param("process_id"));
    let snapshot = found.param("snapshot_id");
    if found.route == AttachTerminal {
        // The upgrade needs the whole request.
        return attach::attach(app, tenant, (session, terminal), &query, req).await;
    }
    let (parts, body) = req.into_parts();
    let headers = &parts.headers;
    // Requests that read or change the workspace's tree share it; snapshots
    // and restores wait for them, and they for those.
    let _tree = match found.route {
        ReadPath | WritePath | EditPath | DeletePath | ExtractPath | Search | Grep | Changes
        | Diff => Some(app.trees.share(session).await),
        _ => None,
    };
    match found.route {
        ListSessions => sessions::list(app, tenant, &query, headers).await,
        RunnerSessions => sessions::runner_part(app, tenant, &query).await,
        CreateSession => sessions::create(app, tenant, headers, body).await,
        GetSession => sessions::get(app, tenant, session).await,
        DeleteSession => sessions::delete(app, tenant, session).await,
        ListResources => resources::list(app, tenant, session, &query).await,
        GetResource => resources::get(app, tenant, session, found.param("resource_id")).await,
        ListFiles => files::list(app, tenant, session, &query).await,
        UploadFile => files::upload(app, tenant, session, headers, body).await,
        GetFile => files::get(app, tenant, session, file).await,
        DeleteFile => files::delete(app, tenant, session, file).await,
        GetFileContent => files::content(app, tenant, session, file, headers).await,
        ListEnvironments => environments::list(app, tenant, session, &query).await,
        GetEnvironment => environments::get(app, tenant, session, env).await,
        Search | Grep => {
            let lookup = match found.route {
                Search => environments::Lookup::Paths,
                _ => environments::Lookup::Contents,
            };
            environments::search(app, tenant, session, env, &query, lookup).await
        }
        Shell => environments::shell(app, tenant, session, env, headers, body).await,
        Changes => environments::changes(app, tenant, session, env, &query).await,
        FileEvents => file_events::events(app, tenant, session, env, &query, headers).await,
        Diff => environments::diff(app, tenant, session, env, path, &query).await,
        ListProcesses => processes::list(app, tenant, (session, env), &query).await,
        StartProcess => processes::start(app, tenant, (session, env), body).await,
        GetProcess => processes::get(app, tenant, (session, env), process).await,
        DeleteProcess => processes::delete(app, tenant, (session, env), process).await,
        ProcessStdin => processes::stdin(app, tenant, (session, env), process, &query, body).await,
        SignalProcess => processes::signal(app, tenant, (session, env), process, body).await,
        ProcessOutput => processes::output(app, tenant, (session, env), process, &query).await,
        ProcessEvents => {
            processes::events(app, tenant, (session, env), process, &query, headers).await
        }
        ListSnapshots => snapshots::list(app, tenant, (session, env), &query).await,
        CreateSnapshot => snapshots::create(app, tenant, (session, env), body).await,
        GetSnapshot => snapshots::get(app, tenant, (session, env), snapshot).await,
        DeleteSnapshot => snapshots::delete(app, tenant, (session, env), snapshot).await,
        RestoreSnapshot => snapshots::restore(app, tenant, (session, env), snapshot).await,
        SnapshotChanges | SnapshotDiff => {
            let path = (found.route == SnapshotDiff).then_some(path);
            snapshots::compare(app, tenant, (session, env), (snapshot, path), &query).await
        }
        ReadPath => environments::read(app, tenant, session, (env, path), &query).await,
        WritePath | EditPath => {
            let change = match found.route {
                WritePath => environments::Change::Write,
                _ => environments::Change::Edit,
            };
            environments::change(app, tenant, session, (env, path), body, change).await
        }
        DeletePath => environments::remove(app, tenant, session, (env, path), &query).await,
        ExtractPath => {
            archive::extract(app, tenant, session, (env, path), &query, headers, body).await
        }
        ListTerminals => terminals::list(app, tenant, session, &query).await,
        LaunchTerminal => terminals::launch(app, tenant, session, body).await,
        GetTerminal => terminals::one(app, tenant, session, terminal, One::Get).await,
        CloseTerminal => terminals::one(app, tenant, session, terminal, One::Close).await,
        TransferTerminal => {
            terminals::transfer(app, tenant, (session, terminal), headers, body).await
        }
        _ => Err(no_route()),
    }
}
