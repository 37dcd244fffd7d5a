//! Turns wasm into something a slot can bind: compiled (through the on-disk
//! cache), linked against the slot's world, and checked to implement it. Nothing
//! here touches a slot; a refusal leaves everything as it was.

use super::Guest;
use super::cache::ComponentCache;
use super::slot::{Bound, ComponentInfo, World};
use crate::bindings;
use crate::caps::HasCaps;
use wasmtime::Engine;
use wasmtime::component::Linker;

/// Why a component cannot be bound. The message is for the operator.
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    #[error("not a valid WebAssembly component: {0}")]
    Invalid(String),
    #[error("does not implement the {world} world: {reason}")]
    WrongWorld { world: &'static str, reason: String },
    #[error("failed when first instantiated: {0}")]
    Trapped(String),
}

pub struct Loader {
    engine: Engine,
    cache: ComponentCache,
    /// Every capability a resource handler may import.
    resources: Linker<Guest>,
    /// Nothing but WASI's clocks and randomness: a policy gets only its input.
    sandboxed: Linker<Guest>,
}

impl Loader {
    pub fn new(engine: &Engine, cache: ComponentCache) -> anyhow::Result<Loader> {
        let mut resources = Linker::new(engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut resources)?;
        bindings::Capabilities::add_to_linker::<Guest, HasCaps>(&mut resources, Guest::caps_view)?;
        let mut sandboxed = Linker::new(engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut sandboxed)?;
        Ok(Loader {
            engine: engine.clone(),
            cache,
            resources,
            sandboxed,
        })
    }

    /// Compiles `wasm` (or takes it from the cache) and links it for world `W`.
    /// Compiling takes a while: call it off the async executor.
    pub fn prepare<W: World>(&self, wasm: &[u8], source: String) -> Result<Bound<W>, Refusal> {
        let compiled = self
            .cache
            .load(wasm)
            .map_err(|e| Refusal::Invalid(one_line(&format!("{e:#}"))))?;
        let linker = if W::SANDBOXED {
            &self.sandboxed
        } else {
            &self.resources
        };
        let pre = linker
            .instantiate_pre(&compiled.component)
            .and_then(W::check)
            .map_err(|e| Refusal::WrongWorld {
                world: W::SLOT.as_str(),
                reason: one_line(&format!("{e:#}")),
            })?;
        let version = compiled
            .component
            .component_type()
            .exports(&self.engine)
            .find_map(|(name, _)| {
                let (package, version) = name.split_once('@')?;
                package
                    .starts_with("reshost:api/")
                    .then(|| version.to_owned())
            })
            .unwrap_or_default();
        Ok(Bound {
            pre,
            info: ComponentInfo {
                sha256: compiled.sha256,
                bytes: wasm.len(),
                source,
                world: W::SLOT.as_str(),
                version,
                loaded_at: crate::unix_now(),
            },
        })
    }
}

/// wasmtime's messages may span lines (parser dumps); an API answer holds one.
pub(super) fn one_line(message: &str) -> String {
    message.split_whitespace().collect::<Vec<_>>().join(" ")
}
