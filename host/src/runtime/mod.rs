//! The wasmtime runtime: one engine, a compiled-component cache, one linker per
//! kind of world, and the slots. Every call gets a fresh `Store` with a memory
//! limit, an epoch deadline and an outer timeout; a component that traps or runs
//! late fails only its own request.

pub mod bindings;
mod cache;
mod deadline;
mod engine;
mod guest;
mod reaper;
mod slot;

pub use guest::Guest;
pub use slot::{Bound, ComponentInfo, Slot, World};

use crate::caps::Caps;
use crate::config::Config;
use anyhow::Context;
use cache::ComponentCache;
use deadline::Deadline;
use reaper::Reaper;
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use wasmtime::component::{HasSelf, Linker};
use wasmtime::{Engine, Store, Trap, UpdateDeadline};

/// The components built into the binary, used for slots the config leaves out.
pub mod embedded {
    pub const FILES: &[u8] = include_bytes!(env!("RESHOST_COMPONENT_FILES"));
    pub const ENVIRONMENTS: &[u8] = include_bytes!(env!("RESHOST_COMPONENT_ENVIRONMENTS"));
    pub const TERMINALS: &[u8] = include_bytes!(env!("RESHOST_COMPONENT_TERMINALS"));
    pub const POLICY: &[u8] = include_bytes!(env!("RESHOST_COMPONENT_POLICY_ALLOW"));
}

/// The world of the `files` slot, as the host instantiates it.
pub type FilesWorld = bindings::FilesPre<Guest>;
/// The world of the `environments` slot.
pub type EnvironmentsWorld = bindings::EnvironmentsPre<Guest>;
/// The world of the `terminals` slot.
pub type TerminalsWorld = bindings::TerminalsPre<Guest>;

/// A world whose slot keeps a session's resources.
pub trait ResourceWorld: World {
    /// The records collection its calls are scoped to: the API's resource type.
    const COLLECTION: &'static str;
    /// Its calls get the session's terminals.
    const TERMINALS: bool = false;
    fn slot(runtime: &Runtime) -> &Slot<Self>;
}

impl ResourceWorld for FilesWorld {
    const COLLECTION: &'static str = "file";
    fn slot(runtime: &Runtime) -> &Slot<Self> {
        &runtime.files
    }
}

impl ResourceWorld for EnvironmentsWorld {
    const COLLECTION: &'static str = "environment";
    fn slot(runtime: &Runtime) -> &Slot<Self> {
        &runtime.environments
    }
}

impl ResourceWorld for TerminalsWorld {
    const COLLECTION: &'static str = "terminal";
    const TERMINALS: bool = true;
    fn slot(runtime: &Runtime) -> &Slot<Self> {
        &runtime.terminals
    }
}

/// Extra time the outer timeout allows beyond the epoch deadline, so that the
/// epoch (which yields a precise trap) fires first for code running in wasm.
const OUTER_GRACE: Duration = Duration::from_millis(100);

/// Why a component call failed.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    #[error("the {0} component failed")]
    Trapped(&'static str),
    #[error("the {0} component ran past its deadline")]
    Timeout(&'static str),
    #[error("storage: {0}")]
    Storage(#[from] redb::Error),
    #[error("opening the workspace: {0}")]
    Workspace(std::io::Error),
}

pub struct Runtime {
    engine: Engine,
    reaper: Reaper,
    timeout: Duration,
    memory_bytes: usize,
    pub files: Slot<bindings::FilesPre<Guest>>,
    pub environments: Slot<bindings::EnvironmentsPre<Guest>>,
    pub terminals: Slot<bindings::TerminalsPre<Guest>>,
    default_policy: Slot<bindings::PolicyPre<Guest>>,
    policies: HashMap<String, Slot<bindings::PolicyPre<Guest>>>,
}

/// Where a slot's wasm comes from.
enum Source<'a> {
    Embedded(&'static str, &'static [u8]),
    File(&'a Path),
}

struct Loader {
    cache: ComponentCache,
    resources: Linker<Guest>,
    policy: Linker<Guest>,
}

impl Loader {
    fn bind<W: World>(
        &self,
        source: Source<'_>,
        linker: &Linker<Guest>,
    ) -> anyhow::Result<Bound<W>> {
        let (wasm, name) = match source {
            Source::Embedded(name, bytes) => (bytes.to_vec(), format!("embedded:{name}")),
            Source::File(path) => (
                std::fs::read(path).with_context(|| format!("reading {}", path.display()))?,
                path.display().to_string(),
            ),
        };
        let compiled = self
            .cache
            .load(&wasm)
            .with_context(|| format!("{name} is not a valid component"))?;
        let pre = linker
            .instantiate_pre(&compiled.component)
            .and_then(W::check)
            .map_err(|e| {
                anyhow::anyhow!("{name} does not implement the {} world: {e:#}", W::NAME)
            })?;
        Ok(Bound {
            pre,
            info: ComponentInfo {
                sha256: compiled.sha256,
                bytes: wasm.len(),
                source: name,
                world: W::NAME,
                loaded_at: crate::unix_now(),
            },
        })
    }
}

impl Runtime {
    pub fn new(config: &Config) -> anyhow::Result<Runtime> {
        let engine = engine::engine(&config.limits)?;
        let mut resources = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut resources)?;
        bindings::Capabilities::add_to_linker::<Guest, HasSelf<Guest>>(&mut resources, |g| g)?;
        // A policy gets nothing but its input (and WASI's clocks and randomness).
        let mut policy = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut policy)?;
        let loader = Loader {
            cache: ComponentCache::new(&engine, config.cache_dir())?,
            resources,
            policy,
        };
        let c = &config.components;
        fn source<'a>(
            path: &'a Option<std::path::PathBuf>,
            name: &'static str,
            bytes: &'static [u8],
        ) -> Source<'a> {
            match path {
                Some(p) => Source::File(p.as_path()),
                None => Source::Embedded(name, bytes),
            }
        }
        let files = loader.bind(
            source(&c.files, "files", embedded::FILES),
            &loader.resources,
        )?;
        let environments = loader.bind(
            source(&c.environments, "environments", embedded::ENVIRONMENTS),
            &loader.resources,
        )?;
        let terminals = loader.bind(
            source(&c.terminals, "terminals", embedded::TERMINALS),
            &loader.resources,
        )?;
        let default_policy = loader.bind(
            source(&c.policy, "policy-allow", embedded::POLICY),
            &loader.policy,
        )?;
        let mut policies = HashMap::new();
        for tenant in &config.tenants {
            if let Some(path) = &tenant.policy {
                let bound = loader
                    .bind(Source::File(path), &loader.policy)
                    .with_context(|| format!("policy of tenant {}", tenant.name))?;
                policies.insert(tenant.name.clone(), Slot::new(bound));
            }
        }
        Ok(Runtime {
            engine,
            reaper: Reaper::start()?,
            timeout: Duration::from_millis(config.limits.component_timeout_ms),
            memory_bytes: config.limits.component_memory_bytes,
            files: Slot::new(files),
            environments: Slot::new(environments),
            terminals: Slot::new(terminals),
            default_policy: Slot::new(default_policy),
            policies,
        })
    }

    /// The policy slot of a tenant.
    pub fn policy(&self, tenant: &str) -> &Slot<bindings::PolicyPre<Guest>> {
        self.policies.get(tenant).unwrap_or(&self.default_policy)
    }

    /// Runs `f` against a fresh instance of the slot's component, within the memory
    /// limit and deadline. Returns `f`'s answer and the call's capability state
    /// (whose writes the caller commits, or drops to discard).
    pub async fn call<W: World, R>(
        &self,
        slot: &Slot<W>,
        caps: Caps,
        f: impl AsyncFnOnce(&W::Instance, &mut Store<Guest>) -> wasmtime::Result<R>,
    ) -> Result<(R, Caps), CallError> {
        let bound = slot.current();
        let deadline = Arc::new(Deadline::new(self.timeout));
        let guest =
            Guest::new(caps, self.memory_bytes, deadline.clone()).map_err(CallError::Workspace)?;
        let mut store = Store::new(&self.engine, guest);
        store.limiter(|g| &mut g.limits);
        // At every epoch tick, code still running in wasm either yields (so a busy
        // component never holds an executor thread that other requests need) or,
        // past its deadline, traps.
        store.set_epoch_deadline(1);
        let epoch_deadline = deadline.clone();
        store.epoch_deadline_callback(move |_| {
            Ok(if epoch_deadline.expired() {
                UpdateDeadline::Interrupt
            } else {
                UpdateDeadline::Yield(1)
            })
        });
        let work = async {
            let instance = bound.pre.instantiate(&mut store).await?;
            f(&instance, &mut store).await
        };
        let outcome = outer_timeout(&deadline, work).await;
        let world = W::NAME;
        // The call's state leaves the store here, on the runtime: blobs it staged
        // are discarded by the runtime's blocking pool, which shutdown waits for,
        // never on the reaper thread, which it does not.
        let caps = store.data_mut().take_caps();
        let result = match outcome {
            Ok(Ok(answer)) => Ok((answer, caps)),
            Err(_) => {
                tracing::warn!(world, "component call timed out (blocked outside wasm)");
                Err(CallError::Timeout(world))
            }
            Ok(Err(e)) => {
                drop(caps);
                Err(if let Some(storage) = e.downcast_ref::<redb::Error>() {
                    tracing::error!(world, error = %storage, "storage failed during a component call");
                    CallError::Storage(redb::Error::from(redb::StorageError::Io(
                        std::io::Error::other(storage.to_string()),
                    )))
                } else if e.downcast_ref::<Trap>() == Some(&Trap::Interrupt) {
                    tracing::warn!(world, "component ran past its deadline");
                    CallError::Timeout(world)
                } else {
                    let stderr = store.data().stderr();
                    tracing::warn!(world, error = ?e, stderr, "component failed");
                    CallError::Trapped(world)
                })
            }
        };
        self.reaper.reap(store);
        result
    }
}

/// Runs `work` until it ends or the deadline has passed by `OUTER_GRACE` (the
/// deadline may move while it runs).
async fn outer_timeout<T>(deadline: &Deadline, work: impl Future<Output = T>) -> Result<T, ()> {
    tokio::pin!(work);
    loop {
        tokio::select! {
            done = &mut work => return Ok(done),
                        () = tokio::time::sleep(deadline.remaining() + OUTER_GRACE) => {
                if deadline.expired() {
                    return Err(());
                }
            }
        }
    }
}
