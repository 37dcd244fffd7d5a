//! The one wasmtime `Engine`: component model, epoch interruption, and the pooling
//! allocator (instantiation in tens of microseconds), falling back to on-demand
//! allocation where the pool's address-space reservation is refused.

use crate::config::Limits;
use std::time::Duration;
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

/// How often the epoch advances: the granularity of component deadlines.
pub const EPOCH_TICK: Duration = Duration::from_millis(5);

/// Bytes of each pooled memory and table kept resident between instances.
const KEEP_RESIDENT_BYTES: usize = 1024 * 1024;

fn base_config() -> Config {
    let mut config = Config::new();
    config.wasm_component_model(true);
    config.epoch_interruption(true);
    config
}

/// Builds the engine and starts its epoch ticker.
pub fn engine(limits: &Limits) -> anyhow::Result<Engine> {
    let mut pooled = base_config();
    let n = limits.max_instances;
    let mut pool = PoolingAllocationConfig::default();
    pool.total_component_instances(n)
        .total_core_instances(n.saturating_mul(4))
        .total_memories(n.saturating_mul(2))
        .total_tables(n.saturating_mul(4))
        .max_memory_size(limits.component_memory_bytes)
        // Reset a freed instance's first pages with memset rather than madvise, so
        // the next instance does not page-fault them in again.
        .linear_memory_keep_resident(KEEP_RESIDENT_BYTES)
        .table_keep_resident(KEEP_RESIDENT_BYTES);
    pooled.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    let engine = match Engine::new(&pooled) {
        Ok(engine) => engine,
        Err(e) => {
            tracing::warn!(error = %e, "pooling allocator unavailable, allocating on demand");
            Engine::new(&base_config())?
        }
    };
    let ticker = engine.weak();
    std::thread::Builder::new()
        .name("epoch-ticker".into())
        .spawn(move || {
            while let Some(engine) = ticker.upgrade() {
                engine.increment_epoch();
                drop(engine);
                std::thread::sleep(EPOCH_TICK);
            }
        })?;
    Ok(engine)
}
