//! The server's shared state, and the steps every resource request takes: the
//! session must be the tenant's, the policy must allow it, and the slot's component
//! answers with its writes committed atomically. Failures are typed here
//! (`Error`); the HTTP layer maps them to the API's error body.

mod error;
mod policy;
mod quotas;
mod trees;
mod turns;
mod workspace_quota;

pub use error::Error;
pub use policy::Ask;
pub use quotas::{Exceeded, Quotas};
use quotas::{Gauge, room};

use crate::auth::{OperatorTokens, Tenants};
use crate::bindings::exec::{Command, Outcome};
use crate::bindings::types::{Caller, Error as ComponentError};
use crate::caps::exec::{self, ExecLimits, Tap};
use crate::caps::{Caps, TerminalsCap, Workspace};
use crate::config::Config;
use crate::process::{Process, Processes, Spec};
use crate::pty::Terminals;
use crate::runtime::CallError;
use crate::runtime::{EnvironmentsWorld, Guest, ResourceWorld, Runtime};
use crate::sandbox::Sandbox;
use crate::store::Store;
use crate::watch::Tracker;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use turns::{Reserve, Turn, Turns};

pub struct App {
    pub config: Config,
    pub store: Arc<Store>,
    pub runtime: Runtime,
    pub tenants: Tenants,
    pub admin: OperatorTokens,
    /// Who may read `/metrics`.
    pub metrics: OperatorTokens,
    /// Where session workspaces live.
    pub workspaces: PathBuf,
    /// Where uploaded archives are unpacked before they move into a workspace.
    pub staging: PathBuf,
    /// Change tracking of the workspaces.
    pub tracker: Arc<Tracker>,
    /// Every live terminal.
    pub terminals: Arc<Terminals>,
    /// Every background process started since the server started.
    pub processes: Arc<Processes>,
    /// Which requests use a workspace's tree at once.
    pub trees: trees::Trees,
    /// When workspaces last equalled their snapshots.
    pub moments: Arc<crate::snapshot::Moments>,
    /// Confinement of shell commands and terminals.
    pub sandbox: Arc<Sandbox>,
    /// This runner among the others.
    pub cluster: crate::cluster::Cluster,
    /// What each tenant may use, and uses.
    pub quotas: Quotas,
    /// Requests doing their work at once, tenants served in turn.
    turns: Arc<Turns>,
    /// Each tenant's workspace bytes, for its `workspace_bytes` quota.
    figures: Arc<workspace_quota::Figures>,
}

impl App {
    pub fn new(
        config: Config,
        store: Arc<Store>,
        runtime: Runtime,
        tenants: Tenants,
        tracker: Arc<Tracker>,
        sandbox: Arc<Sandbox>,
    ) -> anyhow::Result<App> {
        let workspaces = App::workspaces(&config);
        let staging = App::staging(&config);
        Ok(App {
            admin: OperatorTokens::admin(&config),
            metrics: OperatorTokens::metrics(&config),
            quotas: Quotas::new(&config)?,
            turns: Turns::new(
                config.limits.work_turns,
                Reserve {
                    turns: config.limits.reserved_turns,
                    idle: Duration::from_millis(config.limits.reserve_idle_ms),
                },
            ),
            figures: Arc::default(),
            cluster: crate::cluster::Cluster::new(&config.cluster),
            config,
            store,
            runtime,
            tenants,
            workspaces,
            staging,
            tracker,
            terminals: Arc::default(),
            processes: Arc::default(),
            trees: trees::Trees::default(),
            moments: Arc::default(),
            sandbox,
        })
    }

    /// Where the config puts session workspaces.
    pub fn workspaces(config: &Config) -> PathBuf {
        config.data_dir.join("workspaces")
    }

    /// Where the config puts archives being unpacked: beside the workspaces, on
    /// the same filesystem, so an unpacked tree moves into place by renames.
    pub fn staging(config: &Config) -> PathBuf {
        config.data_dir.join("staging")
    }

    /// A session's workspace directory.
    pub fn workspace(&self, session: &str) -> PathBuf {
        self.workspaces.join(session)
    }

    /// Checks that `session` is one of the tenant's (else `NoSession`, whoever owns
    /// it) and that the tenant's policy allows `ask`; returns the caller for the
    /// components.
    pub async fn authorize(
        &self,
        tenant: &str,
        session: &str,
        ask: Ask<'_>,
    ) -> Result<Caller, Error> {
        let caller = self.caller(tenant, session)?;
        self.check(tenant, ask).await?;
        Ok(caller)
    }

    /// The caller for a session of the tenant's; `NoSession` for any other session.
    pub fn caller(&self, tenant: &str, session: &str) -> Result<Caller, Error> {
        if self.store.session(tenant, session)?.is_none() {
            return Err(Error::NoSession(session.to_owned()));
        }
        Ok(Caller {
            tenant: tenant.to_owned(),
            session_id: session.to_owned(),
        })
    }

    /// What a call of world `W`'s slot for `caller` is granted.
    fn caps<W: ResourceWorld>(&self, caller: &Caller) -> Caps {
        let session = &caller.session_id;
        let mut caps = Caps::scoped(&self.store, session, W::COLLECTION);
        if W::WORKSPACE {
            caps = caps.with_workspace(Workspace {
                dir: self.workspace(session),
                exec: self.exec_limits(session),
                tracker: self.tracker.clone(),
                max_read_bytes: self.config.limits.read_cap_bytes,
                max_find_visited: self.config.limits.max_find_visited,
                grep: self.config.limits.grep_limits(),
            });
        }
        if W::TERMINALS {
            caps = caps.with_terminals(TerminalsCap {
                terminals: self.terminals.clone(),
                tenant: caller.tenant.clone(),
                workspace: self.workspace(session),
                client_buffer_bytes: self.config.limits.terminal_client_buffer_bytes,
                max_scrollback_bytes: self.config.limits.max_scrollback_bytes,
                sandbox: self.sandbox.clone(),
            });
        }
        caps
    }

    /// What a session's commands may use.
    fn exec_limits(&self, session: &str) -> ExecLimits {
        ExecLimits {
            output_bytes: self.config.limits.shell_output_bytes,
            sandbox: self.sandbox.clone(),
            session: session.to_owned(),
            max_timeout_ms: self.config.limits.max_command_timeout_ms,
        }
    }

    /// Starts a command a component planned, in the caller's workspace, confined,
    /// with no component instance held while it runs; its output also goes to
    /// `tap` when given. `Err` inside: the command was refused (a message for the
    /// client).
    pub fn launch_command(
        &self,
        caller: &Caller,
        command: &Command,
        tap: Option<Tap>,
    ) -> Result<Result<Launched, String>, Error> {
        let quota = self.quotas.shell(&caller.tenant)?;
        let session = &caller.session_id;
        let launched = exec::launch(
            &self.workspace(session),
            &self.exec_limits(session),
            command,
            tap,
        )
        .map_err(|e| Error::internal("running a command", e))?;
        Ok(launched.map(|running| Launched {
            running,
            _quota: quota,
        }))
    }

    /// Starts a background process a component planned in the caller's
    /// workspace, confined; it holds one of the tenant's `shell_commands` until
    /// it ends. `Err` inside: the command was refused (a message for the client).
    pub async fn start_process(
        &self,
        caller: &Caller,
        environment: &str,
        command: &Command,
        cwd: String,
    ) -> Result<Result<Arc<Process>, String>, Error> {
        let quota = self.quotas.shell(&caller.tenant)?;
        let session = &caller.session_id;
        let started = exec::background(
            &self.workspace(session),
            &self.exec_limits(session),
            command,
        )
        .map_err(|e| Error::internal("starting a process", e))?;
        let started = match started {
            Ok(started) => started,
            Err(refusal) => return Ok(Err(refusal)),
        };
        let spec = Spec {
            session: session.clone(),
            environment: environment.to_owned(),
            command: command.command.clone(),
            cwd,
            ring_bytes: self.config.limits.process_output_bytes,
        };
        let id = format!("proc_{}", uuid::Uuid::now_v7().simple());
        let process = self
            .processes
            .adopt(id, spec, started, self.store.clone(), quota)
            .await;
        let (processes, store) = (self.processes.clone(), self.store.clone());
        let (session, keep) = (session.clone(), self.config.limits.process_history);
        blocking("forgetting old processes", move || {
            processes.prune(&session, keep, &store)
        })
        .await??;
        Ok(Ok(process))
    }

    /// Calls a resource slot's component with the session's records of its
    /// collection; its writes are committed only if it answers `ok`.
    pub async fn call_slot<W: ResourceWorld, R>(
        &self,
        caller: &Caller,
        f: impl AsyncFnOnce(
            &W::Instance,
            &mut wasmtime::Store<Guest>,
        ) -> wasmtime::Result<Result<R, ComponentError>>,
    ) -> Result<R, Error> {
        let turn = self.turn(&caller.tenant).await?;
        let (answer, caps) = self.runtime.call::<W, _>(self.caps::<W>(caller), f).await?;
        drop(turn);
        let value = answer.map_err(Error::Component)?;
        if caps.has_writes() {
            let store = self.store.clone();
            blocking("committing", move || caps.commit(&store)).await??;
        }
        Ok(value)
    }

    /// A turn for one of the tenant's requests to do its work (a component call);
    /// when none comes free within `admission_wait_ms`, the server is busy.
    pub async fn turn(&self, tenant: &str) -> Result<Turn, Error> {
        let wait = Duration::from_millis(self.config.limits.admission_wait_ms);
        tokio::time::timeout(wait, self.turns.take(tenant))
            .await
            .map_err(|_| {
                Error::Call(CallError::Busy {
                    retry_after_s: self.config.limits.busy_retry_after_s,
                })
            })
    }

    /// Lets the environments component set a new session's environments up, then
    /// stores the session (`json`) with them in one transaction.
    pub async fn register(&self, tenant: &str, id: &str, json: &str) -> Result<(), Error> {
        let caller = Caller {
            tenant: tenant.to_owned(),
            session_id: id.to_owned(),
        };
        let caps = Caps::scoped(&self.store, id, EnvironmentsWorld::COLLECTION);
        let turn = self.turn(tenant).await?;
        let (answer, caps) = self
            .runtime
            .call::<EnvironmentsWorld, _>(caps, async |envs, store| {
                envs.reshost_api_environments_handler()
                    .call_init(store, &caller)
                    .await
            })
            .await?;
        drop(turn);
        answer.map_err(Error::Component)?;
        let (store, tenant, json) = (self.store.clone(), tenant.to_owned(), json.to_owned());
        blocking("storing the session", move || {
            caps.create_session(&store, &tenant, &json)
        })
        .await??;
        Ok(())
    }
}

/// A command running for a caller, counted against its tenant's
/// `shell_commands` quota until it ends (or is dropped, which kills it).
pub struct Launched {
    running: exec::Running,
    _quota: quotas::Held,
}

impl Launched {
    /// Its exit and output.
    pub async fn finish(self) -> Result<Outcome, Error> {
        self.running
            .finish()
            .await
            .map_err(|e| Error::internal("running a command", e))
    }
}

impl App {
    /// Refuses a new session when the tenant has its `sessions` quota.
    pub fn room_for_session(&self, tenant: &str) -> Result<(), Error> {
        let limit = self.quotas.tenant(tenant).limits.sessions;
        Ok(room("sessions", limit, self.store.count_sessions(tenant)?)?)
    }

    /// Refuses a snapshot when the tenant keeps its `snapshots` quota or has
    /// used up its `snapshot_bytes`; what the latter leaves (`None`: no quota).
    /// One count of the tenant's snapshots serves both.
    pub async fn room_for_snapshot(&self, tenant: &str) -> Result<Option<Room>, Error> {
        let limits = self.quotas.tenant(tenant).limits;
        let (store, owner) = (self.store.clone(), tenant.to_owned());
        let (kept, bytes) =
            blocking("counting snapshots", move || store.snapshot_usage(&owner)).await??;
        room("snapshots", limits.snapshots, kept)?;
        let room = (limits.snapshot_bytes > 0).then_some(Room {
            left: limits.snapshot_bytes.saturating_sub(bytes),
            limit: limits.snapshot_bytes,
            quota: "snapshot_bytes",
        });
        match room {
            Some(room) if room.left == 0 => Err(room.refusal()),
            room => Ok(room),
        }
    }

    /// Refuses a terminal launch when the tenant has its `terminals` quota running.
    pub fn room_for_terminal(&self, tenant: &str) -> Result<(), Error> {
        let limit = self.quotas.tenant(tenant).limits.terminals;
        Ok(room("terminals", limit, self.running_terminals(tenant))?)
    }

    /// How many more bytes of uploads the tenant may store (`None`: no quota).
    pub async fn upload_room(&self, tenant: &str) -> Result<Option<Room>, Error> {
        let limit = self.quotas.tenant(tenant).limits.upload_bytes;
        if limit == 0 {
            return Ok(None);
        }
        let (store, owner) = (self.store.clone(), tenant.to_owned());
        let used = blocking("measuring stored bytes", move || store.stored_bytes(&owner)).await??;
        Ok(Some(Room {
            left: limit.saturating_sub(used),
            limit,
            quota: "upload_bytes",
        }))
    }

    /// The tenant's terminals whose process runs.
    fn running_terminals(&self, tenant: &str) -> u64 {
        self.terminals
            .running(|session| matches!(self.store.session(tenant, session), Ok(Some(_))))
    }

    /// The tenant's quotas beside what it uses of each.
    pub async fn usage(&self, tenant: &str) -> Result<serde_json::Value, Error> {
        let quotas = self.quotas.tenant(tenant);
        let limits = quotas.limits;
        let figure = |used: u64, limit: u64| serde_json::json!({"used": used, "limit": limit});
        let (snapshots, snapshot_bytes) = self.store.snapshot_usage(tenant)?;
        Ok(serde_json::json!({
            "object": "tenant.usage",
            "tenant": tenant,
            "requests_in_flight": figure(quotas.used(Gauge::RequestsInFlight), limits.requests_in_flight),
            "shell_commands": figure(quotas.used(Gauge::ShellCommands), limits.shell_commands),
            "terminals": figure(self.running_terminals(tenant), limits.terminals),
            "sessions": figure(self.store.count_sessions(tenant)?, limits.sessions),
            "upload_bytes": figure(self.store.stored_bytes(tenant)?, limits.upload_bytes),
            "workspace_bytes": figure(self.workspace_bytes(tenant).await?, limits.workspace_bytes),
            "snapshot_bytes": figure(snapshot_bytes, limits.snapshot_bytes),
            "snapshots": figure(snapshots, limits.snapshots),
            "requests_per_second": {"limit": limits.requests_per_second, "burst": limits.request_burst},
        }))
    }
}

/// What one of the tenant's storage quotas (`upload_bytes`, `snapshot_bytes`)
/// leaves.
#[derive(Clone, Copy)]
pub struct Room {
    pub left: u64,
    limit: u64,
    quota: &'static str,
}

impl Room {
    /// The refusal of what outgrew `left`.
    pub fn refusal(self) -> Error {
        Error::NoRoom {
            quota: self.quota,
            limit: self.limit,
        }
    }
}

/// Runs blocking work (storage) on the blocking pool.
pub async fn blocking<T: Send + 'static>(
    what: &'static str,
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, Error> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::internal(what, e))
}
