//! The one wasmtime `Engine`: component model, epoch interruption, and the pooling
//! allocator (instantiation in tens of microseconds), falling back to on-demand
//! allocation where the pool's address-space reservation is refused.

use crate::config::Limits;
use std::time::Duration;
use wasmtime::{Config, Enabled, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

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

/// The engine, and how cheaply it resets a freed instance.
pub struct Built {
    pub engine: Engine,
    /// The most memory an instance may have reached and still be reset in a few
    /// microseconds: only its written pages are reset (`PAGEMAP_SCAN`, Linux ≥ 6.7),
    /// up to what is kept resident. 0 where every kept page would be reset.
    pub cheap_reset_bytes: usize,
}

/// Builds the engine and starts its epoch ticker.
pub fn engine(limits: &Limits) -> anyhow::Result<Built> {
    let (engine, cheap_reset_bytes) = match Engine::new(&pooled(limits, Enabled::Yes)) {
        Ok(engine) => (engine, KEEP_RESIDENT_BYTES),
        Err(_) => match Engine::new(&pooled(limits, Enabled::No)) {
            Ok(engine) => (engine, 0),
            Err(e) => {
                tracing::warn!(error = %e, "pooling allocator unavailable, allocating on demand");
                (Engine::new(&base_config())?, 0)
            }
        },
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
    Ok(Built {
        engine,
        cheap_reset_bytes,
    })
}

/// The pooling allocator's config; `pagemap`: whether freed memory is reset by
/// the pages written (refused where the kernel cannot tell).
fn pooled(limits: &Limits, pagemap: Enabled) -> Config {
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
        .table_keep_resident(KEEP_RESIDENT_BYTES)
        // Reset only the pages an instance wrote rather than every page it may
        // keep: a policy call writes a few pages of its 192 KiB.
        .pagemap_scan(pagemap);
    pooled.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    pooled
}
