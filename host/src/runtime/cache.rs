//! Compiles components once: the compiled artifact is cached on disk, keyed by the
//! engine's compatibility hash and the wasm's sha256, so a restart loads it in
//! well under a millisecond instead of compiling again.

use anyhow::Context;
use sha2::{Digest, Sha256};
use std::hash::{Hash, Hasher};
use std::path::PathBuf;
use wasmtime::Engine;
use wasmtime::component::Component;

pub struct ComponentCache {
    dir: PathBuf,
    engine: Engine,
    /// The engine's compatibility hash: artifacts of another build or config differ.
    compat: String,
}

/// A component and the sha256 of its wasm.
pub struct Compiled {
    pub component: Component,
    pub sha256: String,
}

impl ComponentCache {
    pub fn new(engine: &Engine, dir: PathBuf) -> anyhow::Result<ComponentCache> {
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("creating the component cache {}", dir.display()))?;
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        Ok(ComponentCache {
            dir,
            engine: engine.clone(),
            compat: format!("{:016x}", hasher.finish()),
        })
    }

    pub fn load(&self, wasm: &[u8]) -> anyhow::Result<Compiled> {
        let sha256 = hex::encode(Sha256::digest(wasm));
        let path = self.dir.join(format!("{sha256}-{}.cwasm", self.compat));
        if path.exists() {
            // SAFETY: the cache directory is the operator's and holds only artifacts
            // this host serialized; wasmtime checks that the artifact matches the engine.
            match unsafe { Component::deserialize_file(&self.engine, &path) } {
                Ok(component) => return Ok(Compiled { component, sha256 }),
                Err(e) => tracing::warn!(error = %e, path = %path.display(), "recompiling"),
            }
        }
        let component = Component::new(&self.engine, wasm)?;
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        let written = component
            .serialize()
            .map_err(anyhow::Error::from)
            .and_then(|bytes| Ok(std::fs::write(&tmp, bytes)?))
            .and_then(|()| Ok(std::fs::rename(&tmp, &path)?));
        if let Err(e) = written {
            // A cache that cannot be written costs start-up time, not correctness.
            tracing::warn!(error = %e, "could not cache a compiled component");
            let _ = std::fs::remove_file(&tmp);
        }
        Ok(Compiled { component, sha256 })
    }
}
