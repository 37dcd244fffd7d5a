//! reshost: a WebAssembly component host serving the session resources API.
//!
//! The host (this crate) owns transport and capabilities: HTTP, auth, storage,
//! the wasmtime runtime. Components (`components/`, built for wasm32-wasip2) own
//! the resource semantics behind the WIT contract in `wit/`.

mod app;
mod archive;
mod auth;
mod bindings;
mod caps;
pub mod cluster;
pub mod config;
mod deadline;
mod http;
mod metrics;
mod process;
mod pty;
mod runtime;
mod sandbox;
mod slots;
mod snapshot;
mod store;
mod sync;
#[doc(hidden)]
pub mod testing;
mod watch;
mod workspace;

pub use sandbox::{EXEC_SUBCOMMAND, exec_main};

use std::sync::Arc;

/// Seconds since the Unix epoch.
fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Starts everything the config describes and serves until SIGTERM or SIGINT.
/// On SIGHUP the config file (if there is one) is read again and its components
/// and tenant policies applied where they changed.
pub async fn run(
    config: config::Config,
    config_path: Option<std::path::PathBuf>,
) -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    let listener = tokio::net::TcpListener::bind(config.listen).await?;
    let addr = listener.local_addr()?;
    let (app, generated) = assemble(config, config_path.as_deref(), addr).await?;
    if let Some(token) = generated {
        println!("token for tenant \"default\": {token}");
    }
    let app = Arc::new(app);
    tokio::spawn(reload_on_sighup(app.clone(), config_path));
    tracing::info!(%addr, ready_ms = started.elapsed().as_millis() as u64, "reshost ready");
    println!("listening on http://{addr}");
    let stop = shutdown_signal()?;
    let drained = {
        let app = app.clone();
        async move {
            stop.await;
            drain(&app).await;
        }
    };
    http::serve(app.clone(), listener, drained).await;
    // No terminal or process outlives the server; the processes' records say
    // they ended.
    app.terminals.close_all();
    app.processes.close_all().await;
    // The last reference closes the database cleanly.
    drop(app);
    tracing::info!("stopped");
    Ok(())
}

/// Everything the config describes, ready to serve on `addr`; also the default
/// tenant's token when one was generated (to print).
async fn assemble(
    mut config: config::Config,
    config_path: Option<&std::path::Path>,
    addr: std::net::SocketAddr,
) -> anyhow::Result<(app::App, Option<String>)> {
    config.validate()?;
    // Commands start in their workspace: a relative data directory would name
    // places relative to it (the sandbox's mount points among them).
    config.data_dir = std::path::absolute(&config.data_dir)?;
    let store = Arc::new(store::Store::open(
        &config.data_dir,
        config.limits.db_cache_bytes,
    )?);
    let sessions = store.session_ids()?;
    let workspaces = app::App::workspaces(&config);
    let orphans = workspace::sweep(&workspaces, &sessions)?;
    if orphans > 0 {
        tracing::info!(workspaces = orphans, "removed workspaces of no session");
    }
    // Sessions' private temp dirs go with their sessions too.
    workspace::sweep(&sandbox::temp_root(&config), &sessions)?;
    // Archives a stop cut short while they were unpacked never reached a workspace.
    workspace::remove(&app::App::staging(&config))?;
    // A restore a crash cut short is done again, before anyone sees the workspace.
    for (session, id) in store.restoring()? {
        if !sessions.contains(&session) {
            store.set_restoring(&session, None)?;
            continue;
        }
        let root = workspaces.join(&session);
        let staging = app::App::staging(&config);
        match snapshot::restore(&store, (&session, &id), &root, &staging, None) {
            Ok(restored) => tracing::info!(
                session,
                snapshot = id,
                ?restored,
                "finished a restore a stop cut short"
            ),
            // The workspace stays as the crash left it, and is served so.
            Err(e) => {
                tracing::error!(
                    session,
                    snapshot = id,
                    error = format!("{e:#}"),
                    "could not finish a restore a stop cut short"
                );
                store.set_restoring(&session, None)?;
            }
        }
    }
    let tracker = Arc::new(watch::Tracker::new(
        store.clone(),
        &workspaces,
        &config.data_dir.join("watch"),
        config.limits.file_event_ring,
    )?);
    let runtime = runtime::Runtime::new(&config, store.clone()).await?;
    let sandbox = Arc::new(sandbox::Sandbox::start(&config, config_path, addr)?);
    let (tenants, generated) = auth::Tenants::new(&config, std::env::var("RESHOST_TOKEN").ok());
    let app = app::App::new(config, store, runtime, tenants, tracker, sandbox)?;
    Ok((app, generated))
}

async fn reload_on_sighup(app: Arc<app::App>, path: Option<std::path::PathBuf>) {
    use tokio::signal::unix::{SignalKind, signal};
    let Ok(mut hup) = signal(SignalKind::hangup()) else {
        return tracing::warn!("could not install the SIGHUP handler");
    };
    while hup.recv().await.is_some() {
        let Some(path) = &path else {
            tracing::warn!("SIGHUP: no --config file to read again");
            continue;
        };
        let config = match config::Config::load(path).and_then(|c| c.validate().map(|()| c)) {
            Ok(config) => config,
            Err(e) => {
                tracing::error!(
                    error = format!("{e:#}"),
                    "SIGHUP: config refused; nothing changed"
                );
                continue;
            }
        };
        let names = |c: &config::Config| -> Vec<String> {
            c.tenants.iter().map(|t| t.name.clone()).collect()
        };
        if names(&config) != names(&app.config) {
            tracing::warn!(
                "SIGHUP: tenants added or removed take a restart; their policies are applied for known tenants only"
            );
        }
        let outcomes = app.runtime.reload(&config).await;
        if outcomes.is_empty() {
            tracing::info!("SIGHUP: no component or tenant policy changed");
        }
        for (what, outcome) in outcomes {
            match outcome {
                Ok(()) => tracing::info!("SIGHUP: {what} applied"),
                Err(e) => tracing::error!(error = %e, "SIGHUP: {what} refused; it is unchanged"),
            }
        }
    }
}

/// A runner asked to stop first drains for `cluster.drain_ms`: it says it is not
/// ready and takes no new sessions, while its sessions are still served, so that
/// the proxy and Kubernetes move new work elsewhere before it goes.
async fn drain(app: &app::App) {
    let period = std::time::Duration::from_millis(app.config.cluster.drain_ms);
    if period.is_zero() {
        return;
    }
    app.cluster.drain();
    tracing::info!(?period, "draining");
    tokio::time::sleep(period).await;
}

/// Resolves at SIGTERM or SIGINT (installed before serving, so that neither
/// is missed).
fn shutdown_signal() -> std::io::Result<impl Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM received"),
            _ = int.recv() => tracing::info!("SIGINT received"),
        }
    })
}
