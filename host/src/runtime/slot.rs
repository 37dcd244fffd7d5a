//! A slot: the component currently bound to one role (see `crate::slots`) and the
//! limits its calls run under, and the WIT world each slot serves. Both sit behind
//! `ArcSwap`s, so a call takes the current ones without locking, a swap never
//! waits for calls in flight, and those finish on what they started with.

use super::Guest;
use crate::bindings;
use crate::config::SlotLimits;
use crate::slots::SlotName;
use arc_swap::ArcSwap;
use serde::Serialize;
use std::future::Future;
use std::sync::Arc;
use wasmtime::Store;
use wasmtime::component::InstancePre;

/// A WIT world a slot serves: how to check a component against it, instantiate
/// it, and what its calls are granted.
pub trait World: Sized + Send + Sync + 'static {
    /// What instantiation yields: the typed exports.
    type Instance: Send;
    /// The slot it serves; its name is the world's in `wit/`.
    const SLOT: SlotName;
    /// Its calls get the session's workspace as their preopen.
    const WORKSPACE: bool;
    /// Its calls get the session's terminals.
    const TERMINALS: bool;
    /// It is linked with no capability but its input (a policy).
    const SANDBOXED: bool;
    /// Checks that the component exports the world's interface.
    fn check(pre: InstancePre<Guest>) -> wasmtime::Result<Self>;
    fn instantiate(
        &self,
        store: &mut Store<Guest>,
    ) -> impl Future<Output = wasmtime::Result<Self::Instance>> + Send;
    /// Its slot among the runtime's.
    fn slot(slots: &Slots) -> &Slot<Self>;
}

/// A world whose slot keeps a session's resources.
pub trait ResourceWorld: World {
    /// The records collection its calls are scoped to: the API's resource type.
    const COLLECTION: &'static str;
}

/// Binds each slot of `crate::slots` to its world: the `World` impls, the
/// runtime's `Slots`, and `on_slot!`, which runs code on a slot named at run time
/// (each slot has its own world type, so that is a match, not a lookup). A slot
/// without a row here does not compile (`on_slot!`'s match is exhaustive).
macro_rules! worlds {
    ($d:tt $(
        $variant:ident => $field:ident: $pre:ident, $instance:ident {
            workspace: $workspace:literal, terminals: $terminals:literal,
            sandboxed: $sandboxed:literal $(, collection: $collection:literal)?
        };
    )*) => {
        $(
            impl World for bindings::$pre<Guest> {
                type Instance = bindings::$instance;
                const SLOT: SlotName = SlotName::$variant;
                const WORKSPACE: bool = $workspace;
                const TERMINALS: bool = $terminals;
                const SANDBOXED: bool = $sandboxed;
                fn check(pre: InstancePre<Guest>) -> wasmtime::Result<Self> {
                    bindings::$pre::new(pre)
                }
                fn instantiate(
                    &self,
                    store: &mut Store<Guest>,
                ) -> impl Future<Output = wasmtime::Result<bindings::$instance>> + Send {
                    self.instantiate_async(store)
                }
                fn slot(slots: &Slots) -> &Slot<Self> {
                    &slots.$field
                }
            }
            $(
                impl ResourceWorld for bindings::$pre<Guest> {
                    const COLLECTION: &'static str = $collection;
                }
            )?
        )*

        /// The records collections of the resource slots: the API's resource types.
        pub const COLLECTIONS: &[&str] = &[$($($collection,)?)*];

        /// Every slot: the component bound to it and its limits.
        pub struct Slots {
            $(pub $field: Slot<bindings::$pre<Guest>>,)*
        }

        impl Slots {
            /// Every slot as stored (see `bind::Stored::slot`).
            pub(super) async fn restore(
                stored: &super::bind::Stored<'_>,
                config: &crate::config::Config,
            ) -> anyhow::Result<Slots> {
                Ok(Slots {
                    $($field: stored.slot(config).await?,)*
                })
            }
        }

        macro_rules! on_slot {
            ($d slots:expr, $d name:expr, $d slot:ident => $d body:expr) => {
                match $d name {
                    $(SlotName::$variant => {
                        let $d slot = &$d slots.$field;
                        $d body
                    })*
                }
            };
        }
        pub(super) use on_slot;
    };
}

worlds! { $
    Files => files: FilesPre, Files {
        workspace: false, terminals: false, sandboxed: false, collection: "file"
    };
    Environments => environments: EnvironmentsPre, Environments {
        workspace: true, terminals: false, sandboxed: false, collection: "environment"
    };
    Terminals => terminals: TerminalsPre, Terminals {
        workspace: false, terminals: true, sandboxed: false, collection: "terminal"
    };
    Policy => policy: PolicyPre, Policy {
        workspace: false, terminals: false, sandboxed: true
    };
}

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
