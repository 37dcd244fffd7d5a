//! The server's shared state, and the steps every resource request takes: the
//! session must be the tenant's, the policy must allow it, and the slot's component
//! answers with its writes committed atomically.

use crate::caps::Caps;
use crate::config::Config;
use crate::http::auth::{AdminTokens, Tenants};
use crate::http::body::{Body, ok};
use crate::http::error::{ApiError, ApiResult};
use crate::http::policy::{self, Ask};
use crate::pty::Terminals;
use crate::runtime::bindings::types::{Caller, Error as ComponentError};
use crate::runtime::{Guest, ResourceWorld, Runtime};
use crate::sandbox::Sandbox;
use crate::store::Store;
use crate::watch::Tracker;
use http::Response;
use std::path::PathBuf;
use std::sync::Arc;

pub struct App {
    pub config: Config,
    pub store: Arc<Store>,
    pub runtime: Runtime,
    pub tenants: Tenants,
    pub admin: AdminTokens,
    /// Where session workspaces live.
    pub workspaces: PathBuf,
    /// Change tracking of the workspaces.
    pub tracker: Arc<Tracker>,
    /// Every live terminal.
    pub terminals: Arc<Terminals>,
    /// Confinement of shell commands and terminals.
    pub sandbox: Arc<Sandbox>,
}

impl App {
    pub fn new(
        config: Config,
        store: Arc<Store>,
        runtime: Runtime,
        tenants: Tenants,
        tracker: Arc<Tracker>,
        sandbox: Arc<Sandbox>,
    ) -> App {
        let workspaces = App::workspaces(&config);
        App {
            admin: AdminTokens::new(&config),
            config,
            store,
            runtime,
            tenants,
            workspaces,
            tracker,
            terminals: Arc::default(),
            sandbox,
        }
    }

    /// Where the config puts session workspaces.
    pub fn workspaces(config: &Config) -> PathBuf {
        config.data_dir.join("workspaces")
    }

    /// A session's workspace directory.
    pub fn workspace(&self, session: &str) -> PathBuf {
        self.workspaces.join(session)
    }

    /// Checks that `session` is one of the tenant's (else `404`, whoever owns it) and
    /// that the tenant's policy allows `ask`; returns the caller for the components.
    pub async fn authorize(&self, tenant: &str, session: &str, ask: Ask<'_>) -> ApiResult<Caller> {
        let caller = self.caller(tenant, session)?;
        policy::check(self, tenant, ask).await?;
        Ok(caller)
    }

    /// The caller for a session of the tenant's; `404` for any other session.
    pub fn caller(&self, tenant: &str, session: &str) -> ApiResult<Caller> {
        if self.store.session(tenant, session)?.is_none() {
            return Err(ApiError::not_found(format!("no such session: {session}")));
        }
        Ok(Caller {
            tenant: tenant.to_owned(),
            session_id: session.to_owned(),
        })
    }

    /// Authorizes `ask` on the tenant's `session`, then lets the slot's component
    /// answer with a JSON body.
    pub async fn answer<W: ResourceWorld>(
        &self,
        tenant: &str,
        session: &str,
        ask: Ask<'_>,
        f: impl AsyncFnOnce(
            &W::Instance,
            &mut wasmtime::Store<Guest>,
            &Caller,
        ) -> wasmtime::Result<Result<String, ComponentError>>,
    ) -> ApiResult<Response<Body>> {
        let caller = self.authorize(tenant, session, ask).await?;
        let json = self
            .call_slot::<W, _>(&caller, async |instance, store| {
                f(instance, store, &caller).await
            })
            .await?;
        ok(json)
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
    ) -> ApiResult<R> {
        let mut caps = Caps::scoped(&self.store, &caller.session_id, W::COLLECTION);
        if W::WORKSPACE {
            caps = caps.with_workspace(crate::caps::Workspace {
                dir: self.workspace(&caller.session_id),
                exec: crate::caps::exec::ExecLimits {
                    output_bytes: self.config.limits.shell_output_bytes,
                    sandbox: self.sandbox.clone(),
                    session: caller.session_id.clone(),
                },
                tracker: self.tracker.clone(),
            });
        }
        if W::TERMINALS {
            caps = caps.with_terminals(crate::caps::TerminalsCap {
                terminals: self.terminals.clone(),
                tenant: caller.tenant.clone(),
                workspace: self.workspace(&caller.session_id),
                client_buffer_bytes: self.config.limits.terminal_client_buffer_bytes,
                sandbox: self.sandbox.clone(),
            });
        }
        let (answer, caps) = self.runtime.call(W::slot(&self.runtime), caps, f).await?;
        let value = answer.map_err(ApiError::from)?;
        if caps.has_writes() {
            tokio::task::spawn_blocking(move || caps.commit())
                .await
                .map_err(|e| ApiError::internal("committing", e))??;
        }
        Ok(value)
    }
}
