//! Binding components to slots while serving: swap, rollback, limits, tenants'
//! policies, and the config file's say at start and on SIGHUP.
//!
//! Every change goes the same way: compile (the cache makes a known component
//! instant), check the world, instantiate once in a scratch store (a component
//! that fails there is refused), write the binding to redb, then swap the
//! `ArcSwap`. Any failure before the swap leaves everything as it was; calls in
//! flight finish on the component they started with.
//!
//! The config file and the admin API both bind slots. Each binding remembers
//! what the config asked for when it was last applied; at start and on SIGHUP
//! the config wins only where it says something new, so an operator's swap
//! survives a restart with an unchanged config.

use super::loader::{Loader, Refusal, one_line};
use super::slot::{Bound, ComponentInfo, Slot, Slots, World, on_slot};
use super::{CallError, Calls, PolicyWorld, Runtime, TenantPolicy};
use crate::caps::Caps;
use crate::config::{Config, LimitError, SlotLimits};
use crate::slots::SlotName;
use crate::store::{Binding, Entry, Store};
use arc_swap::ArcSwap;
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

/// Where a slot's binding is stored.
pub(crate) fn slot_key(slot: SlotName) -> String {
    format!("slot:{}", slot.as_str())
}

fn tenant_key(tenant: &str) -> String {
    format!("tenant:{tenant}")
}

/// Why an operator's change was not made; nothing changed.
#[derive(Debug, thiserror::Error)]
pub enum BindError {
    #[error("the component was refused: {0}")]
    Refused(#[from] Refusal),
    #[error("no such tenant: {0}")]
    UnknownTenant(String),
    #[error("slot {0} has no earlier component to roll back to")]
    NoPrevious(&'static str),
    #[error(transparent)]
    InvalidLimits(#[from] LimitError),
    #[error("storage: {0}")]
    Storage(#[from] crate::store::Error),
    #[error("{0}")]
    Config(String),
    /// No instance was free to check the component with.
    #[error(transparent)]
    Busy(CallError),
}

/// A slot as operators see it.
#[derive(Serialize)]
pub struct SlotView {
    pub object: &'static str,
    pub slot: &'static str,
    pub component: ComponentInfo,
    /// Earlier components, oldest first: what rollback returns to.
    pub previous: Vec<Entry>,
    pub limits: SlotLimits,
}

/// A tenant's policy as operators see it.
#[derive(Serialize)]
pub struct TenantView {
    pub object: &'static str,
    pub tenant: String,
    /// Its own component; `null`: the `policy` slot's.
    pub component: Option<ComponentInfo>,
    pub policy_config: serde_json::Value,
}

/// What the config file asks of one slot: its wasm and limits.
struct Wanted {
    wasm: Vec<u8>,
    source: String,
    limits: SlotLimits,
}

impl Wanted {
    fn of(config: &Config, slot: SlotName) -> Result<Wanted, BindError> {
        let (wasm, source) = match config.components.get(&slot) {
            Some(path) => (read(path)?, path.display().to_string()),
            None => {
                let (name, bytes) = slot.embedded();
                (bytes.to_vec(), format!("embedded:{name}"))
            }
        };
        Ok(Wanted {
            wasm,
            source,
            limits: config.slot_limits(slot),
        })
    }

    /// Identifies what the config asks, to tell whether it changed.
    fn fingerprint(&self) -> String {
        format!(
            "{}/{}/{}",
            sha256(&self.wasm),
            self.limits.memory_bytes,
            self.limits.timeout_ms
        )
    }
}

/// What the config file asks of one tenant's policy.
struct WantedPolicy {
    wasm: Option<(Vec<u8>, String)>,
    config: serde_json::Value,
}

impl WantedPolicy {
    fn of(tenant: &crate::config::Tenant) -> Result<WantedPolicy, BindError> {
        let wasm = match &tenant.policy {
            Some(path) => Some((read(path)?, path.display().to_string())),
            None => None,
        };
        let config = serde_json::to_value(&tenant.policy_config)
            .map_err(|e| BindError::Config(format!("policy_config of {}: {e}", tenant.name)))?;
        Ok(WantedPolicy { wasm, config })
    }

    fn fingerprint(&self) -> String {
        let sha = self
            .wasm
            .as_ref()
            .map_or("default".into(), |(w, _)| sha256(w));
        format!("{sha}/{}", self.config)
    }
}

fn read(path: &Path) -> Result<Vec<u8>, BindError> {
    std::fs::read(path).map_err(|e| BindError::Config(format!("reading {}: {e}", path.display())))
}

fn sha256(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Compiling and storing block: off the async executor's core threads.
fn blocking<T>(f: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current() {
        Ok(handle) if handle.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(f)
        }
        _ => f(),
    }
}

/// Compiles, checks and test-instantiates a component for world `W`.
async fn prepare<W: World>(
    loader: &Loader,
    calls: &Calls,
    store: &Arc<Store>,
    wasm: &[u8],
    entry: &Entry,
    limits: SlotLimits,
) -> Result<Arc<Bound<W>>, BindError> {
    let mut bound = blocking(|| loader.prepare::<W>(wasm, entry.source.clone()))?;
    bound.info.loaded_at = entry.loaded_at;
    probe(calls, store, &bound, limits).await?;
    Ok(Arc::new(bound))
}

/// Instantiates `bound` once under `limits`, in a scratch store with no
/// capabilities: a component that cannot start there is refused.
async fn probe<W: World>(
    calls: &Calls,
    store: &Arc<Store>,
    bound: &Bound<W>,
    limits: SlotLimits,
) -> Result<(), BindError> {
    match calls
        .call_bound(bound, limits, Caps::none(store), async |_, _| Ok(()))
        .await
    {
        Ok(_) => Ok(()),
        Err(CallError::Trapped { detail, .. }) => Err(Refusal::Trapped(one_line(&detail)).into()),
        Err(busy @ CallError::Busy { .. }) => Err(BindError::Busy(busy)),
        Err(e) => Err(Refusal::Trapped(e.to_string()).into()),
    }
}

/// Builds the runtime: every slot and tenant policy bound as stored (or, where
/// nothing is stored yet, to what the config names), then the config applied with
/// `reload` where it says something new — the same path SIGHUP takes, except that
/// here a refusal stops the start.
pub(super) async fn restore(
    calls: Calls,
    loader: Loader,
    store: Arc<Store>,
    config: &Config,
) -> anyhow::Result<Runtime> {
    let stored = Stored {
        loader: &loader,
        calls: &calls,
        store: &store,
    };
    let slots = Slots::restore(&stored, config).await?;
    let mut tenants = HashMap::new();
    for tenant in &config.tenants {
        let choice = stored.tenant(&tenant.name, slots.policy.limits()).await?;
        tenants.insert(tenant.name.clone(), ArcSwap::from_pointee(choice));
    }
    let runtime = Runtime {
        calls,
        loader,
        store,
        slots,
        tenants,
        changing: tokio::sync::Mutex::new(()),
        history: config.limits.component_history,
        max_memory_bytes: config.limits.component_memory_bytes,
    };
    for (what, outcome) in runtime.reload(config).await {
        outcome.map_err(|e| anyhow::anyhow!("{what}: {e}"))?;
    }
    Ok(runtime)
}

/// What the store says is bound, ready to serve.
pub(super) struct Stored<'a> {
    loader: &'a Loader,
    calls: &'a Calls,
    store: &'a Arc<Store>,
}

impl Stored<'_> {
    /// The slot's stored component and limits; the config's where none is stored
    /// (`reload` records it).
    pub(super) async fn slot<W: World>(&self, config: &Config) -> anyhow::Result<Slot<W>> {
        let name = W::SLOT;
        let wanted = Wanted::of(config, name)?;
        let binding = self.store.binding(&slot_key(name))?.unwrap_or_default();
        let stored = match binding.history.last() {
            Some(entry) => self.store.wasm(&entry.sha256)?.map(|w| (w, entry.clone())),
            None => None,
        };
        let (wasm, entry) = stored.unwrap_or_else(|| {
            (
                wanted.wasm.clone(),
                new_entry(&wanted.wasm, wanted.source.clone()),
            )
        });
        let limits = stored_limits(&binding).unwrap_or(wanted.limits);
        // A short deadline an operator set may not fit a busy start: the start
        // checks with the config's deadline if that is longer.
        let start = SlotLimits {
            timeout_ms: limits.timeout_ms.max(wanted.limits.timeout_ms),
            ..limits
        };
        let prepared =
            prepare::<W>(self.loader, self.calls, self.store, &wasm, &entry, start).await;
        let refused =
            |entry: &Entry, e| anyhow::anyhow!("slot {} ({}): {e}", name.as_str(), entry.source);
        let bound = match prepared {
            Ok(bound) => bound,
            // Bound by an older host whose contract it no longer fits (a new
            // export, say): the config's component takes its place (`reload`
            // records the change) rather than the server not starting.
            Err(e) if wasm != wanted.wasm => {
                tracing::warn!(slot = name.as_str(), source = %entry.source, error = %e,
                    "the stored component does not fit this host; binding the config's");
                let entry = new_entry(&wanted.wasm, wanted.source);
                prepare::<W>(
                    self.loader,
                    self.calls,
                    self.store,
                    &wanted.wasm,
                    &entry,
                    start,
                )
                .await
                .map_err(|e| refused(&entry, e))?
            }
            Err(e) => return Err(refused(&entry, e)),
        };
        Ok(Slot::new(bound, limits))
    }

    /// The tenant's stored policy and config (none stored: the default policy and
    /// `{}` until `reload` applies the config's).
    async fn tenant(&self, tenant: &str, limits: SlotLimits) -> anyhow::Result<TenantPolicy> {
        let binding = self.store.binding(&tenant_key(tenant))?.unwrap_or_default();
        let own = match binding.history.last() {
            None => None,
            Some(entry) => {
                let wasm = self.store.wasm(&entry.sha256)?.ok_or_else(|| {
                    anyhow::anyhow!("policy of tenant {tenant}: its wasm is missing")
                })?;
                let bound = prepare(self.loader, self.calls, self.store, &wasm, entry, limits)
                    .await
                    .map_err(|e| anyhow::anyhow!("policy of tenant {tenant}: {e}"))?;
                Some(bound)
            }
        };
        let config = binding
            .policy_config
            .unwrap_or_else(|| serde_json::json!({}));
        Ok(TenantPolicy {
            own,
            config: config.to_string(),
        })
    }
}

pub(crate) fn new_entry(wasm: &[u8], source: String) -> Entry {
    Entry {
        sha256: sha256(wasm),
        source,
        loaded_at: crate::unix_now(),
    }
}

fn stored_limits(binding: &Binding) -> Option<SlotLimits> {
    serde_json::from_value(binding.limits.clone()?).ok()
}

impl Runtime {
    fn prepare<W: World>(
        &self,
        wasm: &[u8],
        entry: &Entry,
        limits: SlotLimits,
    ) -> impl Future<Output = Result<Arc<Bound<W>>, BindError>> {
        prepare(&self.loader, &self.calls, &self.store, wasm, entry, limits)
    }

    fn save(&self, key: &str, binding: &mut Binding, wasm: Option<&[u8]>) -> Result<(), BindError> {
        Ok(blocking(|| {
            self.store.save_binding(key, binding, wasm, self.history)
        })?)
    }

    fn view<W: World>(&self, name: SlotName, slot: &Slot<W>) -> Result<SlotView, BindError> {
        let mut previous = self
            .store
            .binding(&slot_key(name))?
            .unwrap_or_default()
            .history;
        previous.pop();
        Ok(SlotView {
            object: "slot",
            slot: name.as_str(),
            component: slot.current().info.clone(),
            previous,
            limits: slot.limits(),
        })
    }

    pub fn slot_view(&self, name: SlotName) -> Result<SlotView, BindError> {
        on_slot!(self.slots, name, slot => self.view(name, slot))
    }

    /// Binds `wasm` to a slot, after checking it; `source` says where it came from.
    pub async fn swap(
        &self,
        name: SlotName,
        wasm: &[u8],
        source: &str,
    ) -> Result<SlotView, BindError> {
        let _one = self.changing.lock().await;
        on_slot!(self.slots, name, slot => self.swap_in(name, slot, wasm, source, None).await)
    }

    async fn swap_in<W: World>(
        &self,
        name: SlotName,
        slot: &Slot<W>,
        wasm: &[u8],
        source: &str,
        config: Option<(String, SlotLimits)>,
    ) -> Result<SlotView, BindError> {
        let key = slot_key(name);
        let mut binding = self.store.binding(&key)?.unwrap_or_default();
        let limits = config.as_ref().map_or(slot.limits(), |(_, l)| *l);
        let entry = new_entry(wasm, source.to_owned());
        let bound = self.prepare::<W>(wasm, &entry, limits).await?;
        binding.history.push(entry);
        if let Some((fingerprint, _)) = config {
            binding.config = Some(fingerprint);
            binding.limits = None;
        }
        self.save(&key, &mut binding, Some(wasm))?;
        slot.set_limits(limits);
        slot.swap(bound);
        self.view(name, slot)
    }

    /// Binds the slot's previous component again.
    pub async fn rollback(&self, name: SlotName) -> Result<SlotView, BindError> {
        let _one = self.changing.lock().await;
        on_slot!(self.slots, name, slot => {
            let key = slot_key(name);
            let mut binding = self.store.binding(&key)?.unwrap_or_default();
            if binding.history.len() < 2 {
                return Err(BindError::NoPrevious(name.as_str()));
            }
            binding.history.pop();
            let no_previous = || BindError::NoPrevious(name.as_str());
            let entry = binding.history.last_mut().ok_or_else(no_previous)?;
            let wasm = self.store.wasm(&entry.sha256)?.ok_or_else(no_previous)?;
            entry.loaded_at = crate::unix_now();
            let bound = self.prepare(&wasm, entry, slot.limits()).await?;
            self.save(&key, &mut binding, None)?;
            slot.swap(bound);
            self.view(name, slot)
        })
    }

    /// Sets the limits of a slot's calls from now on.
    pub async fn set_limits(
        &self,
        name: SlotName,
        limits: SlotLimits,
    ) -> Result<SlotView, BindError> {
        limits.check(self.max_memory_bytes)?;
        let _one = self.changing.lock().await;
        on_slot!(self.slots, name, slot => {
            // The bound component must still start under them.
            probe(&self.calls, &self.store, &slot.current(), limits).await?;
            let key = slot_key(name);
            let mut binding = self.store.binding(&key)?.unwrap_or_default();
            binding.limits = serde_json::to_value(limits).ok();
            self.save(&key, &mut binding, None)?;
            slot.set_limits(limits);
            self.view(name, slot)
        })
    }

    fn tenant_slot(&self, tenant: &str) -> Result<&ArcSwap<TenantPolicy>, BindError> {
        self.tenants
            .get(tenant)
            .ok_or_else(|| BindError::UnknownTenant(tenant.to_owned()))
    }

    pub fn tenant_view(&self, tenant: &str) -> Result<TenantView, BindError> {
        let current = self.tenant_slot(tenant)?.load_full();
        Ok(TenantView {
            object: "tenant.policy",
            tenant: tenant.to_owned(),
            component: current.own.as_ref().map(|b| b.info.clone()),
            policy_config: serde_json::from_str(&current.config).unwrap_or_default(),
        })
    }

    /// Gives a tenant its own policy component, a new `policy_config`, or both
    /// at once; what is not given stays.
    pub async fn set_tenant_policy(
        &self,
        tenant: &str,
        wasm: Option<&[u8]>,
        policy_config: Option<serde_json::Value>,
    ) -> Result<TenantView, BindError> {
        let _one = self.changing.lock().await;
        self.set_tenant_policy_in(tenant, wasm.map(|w| (w, "admin")), policy_config, None)
            .await
    }

    async fn set_tenant_policy_in(
        &self,
        tenant: &str,
        wasm: Option<(&[u8], &str)>,
        policy_config: Option<serde_json::Value>,
        config: Option<String>,
    ) -> Result<TenantView, BindError> {
        let cell = self.tenant_slot(tenant)?;
        let current = cell.load_full();
        let key = tenant_key(tenant);
        let mut binding = self.store.binding(&key)?.unwrap_or_default();
        let own = match wasm {
            Some((wasm, source)) => {
                let entry = new_entry(wasm, source.to_owned());
                let bound = self
                    .prepare::<PolicyWorld>(wasm, &entry, self.slots.policy.limits())
                    .await?;
                binding.history = vec![entry];
                Some(bound)
            }
            None if config.is_some() => {
                // The config names no component of its own: the default.
                binding.history.clear();
                None
            }
            None => current.own.clone(),
        };
        let policy_config = match policy_config {
            Some(value) => value,
            None => serde_json::from_str(&current.config).unwrap_or_default(),
        };
        binding.policy_config = Some(policy_config.clone());
        if config.is_some() {
            binding.config = config;
        }
        self.save(&key, &mut binding, wasm.map(|(w, _)| w))?;
        cell.store(Arc::new(TenantPolicy {
            own,
            config: policy_config.to_string(),
        }));
        self.tenant_view(tenant)
    }

    /// Applies what the (re-read) config file says anew: each slot or tenant
    /// policy whose config changed is checked and swapped like an admin change.
    /// Returns what was changed and what was refused.
    pub async fn reload(&self, config: &Config) -> Vec<(String, Result<(), BindError>)> {
        let _one = self.changing.lock().await;
        let mut outcomes = Vec::new();
        for &name in SlotName::ALL {
            let outcome = async {
                let wanted = Wanted::of(config, name)?;
                let fingerprint = wanted.fingerprint();
                let binding = self.store.binding(&slot_key(name))?.unwrap_or_default();
                if binding.config.as_ref() == Some(&fingerprint) {
                    return Ok(false);
                }
                let change = Some((fingerprint, wanted.limits));
                on_slot!(self.slots, name, slot => {
                    self.swap_in(name, slot, &wanted.wasm, &wanted.source, change).await
                })?;
                Ok(true)
            }
            .await;
            outcomes.push((format!("slot {}", name.as_str()), outcome));
        }
        for tenant in &config.tenants {
            let outcome = async {
                let wanted = WantedPolicy::of(tenant)?;
                let fingerprint = wanted.fingerprint();
                let binding = self.store.binding(&tenant_key(&tenant.name))?;
                if binding.and_then(|b| b.config).as_ref() == Some(&fingerprint) {
                    return Ok(false);
                }
                let wasm = wanted
                    .wasm
                    .as_ref()
                    .map(|(w, s)| (w.as_slice(), s.as_str()));
                self.set_tenant_policy_in(
                    &tenant.name,
                    wasm,
                    Some(wanted.config.clone()),
                    Some(fingerprint),
                )
                .await?;
                Ok(true)
            }
            .await;
            outcomes.push((format!("policy of tenant {}", tenant.name), outcome));
        }
        outcomes
            .into_iter()
            .filter_map(|(what, outcome)| match outcome {
                Ok(false) => None,
                Ok(true) => Some((what, Ok(()))),
                Err(e) => Some((what, Err(e))),
            })
            .collect()
    }
}
