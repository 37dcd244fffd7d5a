//! A slot: the component currently bound to one role (`files`, `environments`,
//! `terminals`, `policy`) and the limits its calls run under. Both sit behind
//! `ArcSwap`s, so a call takes the current ones without locking, a swap never
//! waits for calls in flight, and those finish on what they started with.

use super::{Guest, bindings};
use arc_swap::ArcSwap;
use serde::{Deserialize, Serialize};
use std::future::Future;
use std::sync::Arc;
use wasmtime::Store;
use wasmtime::component::InstancePre;

/// A WIT world a slot serves: how to check a component against it and instantiate it.
pub trait World: Sized + Send + Sync + 'static {
    /// What instantiation yields: the typed exports.
    type Instance: Send;
    /// The world's name in `wit/`.
    const NAME: &'static str;
    /// Whether its calls get the session's workspace as their preopen.
    const WORKSPACE: bool;
    /// Whether it is linked with no capability but its input (a policy).
    const SANDBOXED: bool;
    /// Checks that the component exports the world's interface.
    fn check(pre: InstancePre<Guest>) -> wasmtime::Result<Self>;
    fn instantiate(
        &self,
        store: &mut Store<Guest>,
    ) -> impl Future<Output = wasmtime::Result<Self::Instance>> + Send;
}

macro_rules! world {
    ($pre:ty, $instance:ty, $name:literal, workspace: $workspace:literal, sandboxed: $sandboxed:literal) => {
        impl World for $pre {
            type Instance = $instance;
            const NAME: &'static str = $name;
            const WORKSPACE: bool = $workspace;
            const SANDBOXED: bool = $sandboxed;
            fn check(pre: InstancePre<Guest>) -> wasmtime::Result<Self> {
                <$pre>::new(pre)
            }
            fn instantiate(
                &self,
                store: &mut Store<Guest>,
            ) -> impl Future<Output = wasmtime::Result<$instance>> + Send {
                self.instantiate_async(store)
            }
        }
    };
}

world!(bindings::FilesPre<Guest>, bindings::Files, "files", workspace: false, sandboxed: false);
world!(bindings::EnvironmentsPre<Guest>, bindings::Environments, "environments", workspace: true, sandboxed: false);
world!(bindings::TerminalsPre<Guest>, bindings::Terminals, "terminals", workspace: false, sandboxed: false);
world!(bindings::PolicyPre<Guest>, bindings::Policy, "policy", workspace: false, sandboxed: true);

/// What is bound to a slot, for operators.
#[derive(Clone, Debug, Serialize)]
pub struct ComponentInfo {
    /// sha256 of the wasm.
    pub sha256: String,
    pub bytes: usize,
    /// `embedded:<name>` or the file it was loaded from.
    pub source: String,
    pub world: &'static str,
    /// The version of the WIT package its export was built against.
    pub version: String,
    /// Unix seconds.
    pub loaded_at: u64,
}

/// What a slot's calls may use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlotLimits {
    /// Linear memory of one instance.
    pub memory_bytes: usize,
    /// Deadline of one call.
    pub timeout_ms: u64,
}

pub struct Bound<W> {
    pub pre: W,
    pub info: ComponentInfo,
}

pub struct Slot<W> {
    current: ArcSwap<Bound<W>>,
    limits: ArcSwap<SlotLimits>,
}

impl<W: World> Slot<W> {
    pub fn new(bound: Arc<Bound<W>>, limits: SlotLimits) -> Slot<W> {
        Slot {
            current: ArcSwap::new(bound),
            limits: ArcSwap::from_pointee(limits),
        }
    }

    /// The binding a new call uses; it stays alive until the call ends.
    pub fn current(&self) -> Arc<Bound<W>> {
        self.current.load_full()
    }

    pub fn limits(&self) -> SlotLimits {
        **self.limits.load()
    }

    /// Binds another component: calls from now on use it.
    pub fn swap(&self, bound: Arc<Bound<W>>) {
        self.current.store(bound);
    }

    pub fn set_limits(&self, limits: SlotLimits) {
        self.limits.store(Arc::new(limits));
    }
}
