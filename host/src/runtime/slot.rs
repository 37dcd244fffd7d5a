//! A slot: the component currently bound to one role (`files`, `environments`, a
//! tenant's `policy`). The binding sits behind an `ArcSwap`, so a call takes the
//! current one without locking and a swap never waits for calls in flight.

use super::{Guest, bindings};
use arc_swap::ArcSwap;
use serde::Serialize;
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
    /// Checks that the component exports the world's interface.
    fn check(pre: InstancePre<Guest>) -> wasmtime::Result<Self>;
    fn instantiate(
        &self,
        store: &mut Store<Guest>,
    ) -> impl Future<Output = wasmtime::Result<Self::Instance>> + Send;
}

macro_rules! world {
    ($pre:ty, $instance:ty, $name:literal, workspace: $workspace:literal) => {
        impl World for $pre {
            type Instance = $instance;
            const NAME: &'static str = $name;
            const WORKSPACE: bool = $workspace;
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

world!(bindings::FilesPre<Guest>, bindings::Files, "files", workspace: false);
world!(bindings::EnvironmentsPre<Guest>, bindings::Environments, "environments", workspace: true);
world!(bindings::TerminalsPre<Guest>, bindings::Terminals, "terminals", workspace: false);
world!(bindings::PolicyPre<Guest>, bindings::Policy, "policy", workspace: false);

/// What is bound to a slot, for operators.
#[derive(Clone, Debug, Serialize)]
pub struct ComponentInfo {
    /// sha256 of the wasm.
    pub sha256: String,
    pub bytes: usize,
    /// `embedded:<name>` or the file it was loaded from.
    pub source: String,
    pub world: &'static str,
    /// Unix seconds.
    pub loaded_at: u64,
}

pub struct Bound<W> {
    pub pre: W,
    pub info: ComponentInfo,
}

pub struct Slot<W> {
    current: ArcSwap<Bound<W>>,
}

impl<W: World> Slot<W> {
    pub fn new(bound: Bound<W>) -> Slot<W> {
        Slot {
            current: ArcSwap::from_pointee(bound),
        }
    }

    /// The binding a new call uses; it stays alive until the call ends.
    pub fn current(&self) -> Arc<Bound<W>> {
        self.current.load_full()
    }
}
