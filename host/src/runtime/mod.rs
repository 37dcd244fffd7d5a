//! The wasmtime runtime: one engine, a compiled-component cache, one linker per
//! kind of world, and the slots. Every call gets a fresh `Store` with its slot's
//! memory limit and deadline, and an outer timeout; a component that traps or
//! runs late fails only its own request. Slots are rebound while serving (`bind`).

mod admission;
mod bind;
mod cache;
mod engine;
mod guest;
mod loader;
mod reaper;
mod slot;

pub use bind::BindError;
pub(crate) use bind::{new_entry, slot_key};
pub use guest::Guest;
pub use slot::{Bound, COLLECTIONS, ResourceWorld, World};

use crate::bindings;
use crate::caps::Caps;
use crate::config::{Config, SlotLimits};
use crate::deadline::Deadline;
use crate::metrics::METRICS;
use admission::{Admission, Admitted};
use arc_swap::ArcSwap;
use cache::ComponentCache;
use loader::Loader;
use reaper::Reaper;
use slot::Slots;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use wasmtime::{Engine, Store, Trap, UpdateDeadline};

/// The world of the `files` slot, as the host instantiates it.
pub type FilesWorld = bindings::FilesPre<Guest>;
/// The world of the `environments` slot.
pub type EnvironmentsWorld = bindings::EnvironmentsPre<Guest>;
/// The world of the `terminals` slot.
pub type TerminalsWorld = bindings::TerminalsPre<Guest>;
/// The world of the `policy` slot and of tenants' policies.
pub type PolicyWorld = bindings::PolicyPre<Guest>;

/// Extra time the outer timeout allows beyond the epoch deadline, so that the
/// epoch (which yields a precise trap) fires first for code running in wasm.
const OUTER_GRACE: Duration = Duration::from_millis(100);

/// Why a component call failed.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    #[error("the {world} component failed")]
    Trapped { world: &'static str, detail: String },
    #[error("the {0} component ran past its deadline")]
    Timeout(&'static str),
    #[error("storage: {0}")]
    Storage(#[from] crate::store::Error),
    #[error("opening the workspace: {0}")]
    Workspace(std::io::Error),
    /// No component instance came free in time: try again after `retry_after_s`.
    #[error("the server is busy: no component instance is free; retry in {retry_after_s} s")]
    Busy { retry_after_s: u64 },
}

pub struct Runtime {
    calls: Calls,
    loader: Loader,
    store: Arc<crate::store::Store>,
    /// Every slot; the `policy` slot's limits apply to every tenant's policy.
    slots: Slots,
    /// Every configured tenant's own policy and `policy_config`.
    tenants: HashMap<String, ArcSwap<TenantPolicy>>,
    /// Operator changes (swaps, rollbacks, limits, SIGHUP) one at a time, so each
    /// reads and writes a binding's history without interleaving.
    changing: tokio::sync::Mutex<()>,
    /// Components kept per binding for rollback.
    history: usize,
    /// The most memory a slot may be given: the pooling allocator's memory size.
    max_memory_bytes: usize,
}

/// What decides a tenant's requests.
pub struct TenantPolicy {
    /// Its own component; `None`: the `policy` slot's.
    pub own: Option<Arc<Bound<PolicyWorld>>>,
    /// Its `policy_config` as a JSON object.
    pub config: String,
}

impl Runtime {
    /// The runtime with every slot bound as the stored bindings and the config say
    /// (see `bind::restore`).
    pub async fn new(config: &Config, store: Arc<crate::store::Store>) -> anyhow::Result<Runtime> {
        let built = engine::engine(&config.limits)?;
        let engine = &built.engine;
        let loader = Loader::new(engine, ComponentCache::new(engine, config.cache_dir())?)?;
        let calls = Calls::new(built, &config.limits)?;
        bind::restore(calls, loader, store, config).await
    }

    /// The policy that decides a tenant's requests: its component and config.
    pub fn policy(&self, tenant: &str) -> (Arc<Bound<PolicyWorld>>, Arc<TenantPolicy>) {
        let choice = match self.tenants.get(tenant) {
            Some(t) => t.load_full(),
            None => Arc::new(TenantPolicy {
                own: None,
                config: "{}".into(),
            }),
        };
        let bound = choice
            .own
            .clone()
            .unwrap_or_else(|| self.slots.policy.current());
        (bound, choice)
    }

    /// Component instances in use, and how many the pool holds.
    pub fn instances(&self) -> (usize, usize) {
        self.calls.admission.in_use()
    }

    /// Runs `f` against a fresh instance of the current component of world `W`'s
    /// slot, within the slot's limits. Returns `f`'s answer and the call's
    /// capability state (whose writes the caller commits, or drops to discard).
    pub async fn call<W: World, R>(
        &self,
        caps: Caps,
        f: impl AsyncFnOnce(&W::Instance, &mut Store<Guest>) -> wasmtime::Result<R>,
    ) -> Result<(R, Caps), CallError> {
        let slot = W::slot(&self.slots);
        self.calls
            .call_bound(&slot.current(), slot.limits(), caps, f)
            .await
    }

    /// Runs `f` against a fresh instance of a policy, within the `policy` slot's
    /// limits (they apply to every tenant's policy).
    pub async fn call_policy<R>(
        &self,
        bound: &Bound<PolicyWorld>,
        caps: Caps,
        f: impl AsyncFnOnce(&bindings::Policy, &mut Store<Guest>) -> wasmtime::Result<R>,
    ) -> Result<(R, Caps), CallError> {
        self.calls
            .call_bound(bound, self.slots.policy.limits(), caps, f)
            .await
    }
}

/// Runs component calls: one engine, an instance from the pool for each call
/// (admitted when one is free), a fresh store per call, spent stores dropped
/// where it is cheapest.
pub struct Calls {
    engine: Engine,
    admission: Admission,
    retry_after_s: u64,
    reaper: Reaper,
}

impl Calls {
    fn new(built: engine::Built, limits: &crate::config::Limits) -> anyhow::Result<Calls> {
        Ok(Calls {
            engine: built.engine,
            admission: Admission::new(
                limits.max_instances,
                limits.admission_queue,
                Duration::from_millis(limits.admission_wait_ms),
            ),
            retry_after_s: limits.busy_retry_after_s,
            reaper: Reaper::start(built.cheap_reset_bytes)?,
        })
    }

    fn busy(&self) -> CallError {
        CallError::Busy {
            retry_after_s: self.retry_after_s,
        }
    }

    /// Runs `f` against a fresh instance of `bound` within `limits`, counted
    /// in the metrics by slot and outcome.
    pub async fn call_bound<W: World, R>(
        &self,
        bound: &Bound<W>,
        limits: SlotLimits,
        caps: Caps,
        f: impl AsyncFnOnce(&W::Instance, &mut Store<Guest>) -> wasmtime::Result<R>,
    ) -> Result<(R, Caps), CallError> {
        let started = std::time::Instant::now();
        let result = self.run(bound, limits, caps, f).await;
        let outcome = match &result {
            Ok(_) => "ok",
            Err(CallError::Trapped { .. }) => "trap",
            Err(CallError::Timeout(_)) => "timeout",
            Err(CallError::Busy { .. }) => "busy",
            Err(CallError::Storage(_)) => "storage",
            Err(CallError::Workspace(_)) => "workspace",
        };
        METRICS.call(W::SLOT.as_str(), outcome, started.elapsed());
        result
    }

    async fn run<W: World, R>(
        &self,
        bound: &Bound<W>,
        limits: SlotLimits,
        caps: Caps,
        f: impl AsyncFnOnce(&W::Instance, &mut Store<Guest>) -> wasmtime::Result<R>,
    ) -> Result<(R, Caps), CallError> {
        // Waiting for an instance does not count against the call's deadline.
        let admitted = self.admission.admit().await.map_err(|_| self.busy())?;
        let deadline = Arc::new(Deadline::new(Duration::from_millis(limits.timeout_ms)));
        let guest = Guest::new(caps, limits.memory_bytes, deadline.clone())
            .map_err(CallError::Workspace)?;
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
        let world = W::SLOT.as_str();
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
                Err(match e.downcast::<crate::store::Error>() {
                    Ok(storage) => CallError::Storage(storage),
                    Err(e) => self.failed(world, e, store.data()),
                })
            }
        };
        self.reaper.reap(store, admitted);
        result
    }

    /// What a component call that failed in wasm (or in a host function) failed of.
    fn failed(&self, world: &'static str, e: wasmtime::Error, guest: &Guest) -> CallError {
        // Another of the pool's limits (memories, tables, core instances) ran out.
        if e.downcast_ref::<wasmtime::PoolConcurrencyLimitError>()
            .is_some()
        {
            tracing::warn!(world, error = %e, "the instance pool is exhausted");
            return self.busy();
        }
        if e.downcast_ref::<Trap>() == Some(&Trap::Interrupt) {
            tracing::warn!(world, "component ran past its deadline");
            return CallError::Timeout(world);
        }
        let stderr = guest.stderr();
        tracing::warn!(world, error = ?e, stderr, "component failed");
        let detail = match stderr.is_empty() {
            true => format!("{e:#}"),
            false => format!("{e:#}: {stderr}"),
        };
        CallError::Trapped { world, detail }
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
