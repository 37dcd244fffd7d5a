//! The per-call store state: a fresh one for every request, so nothing leaks
//! between requests or tenants.

use crate::bindings::BlobHandle;
use crate::caps::{Caps, CapsView};
use crate::deadline::Deadline;
use crate::store::{BlobInfo, StagedBlob};
use std::path::Path;
use std::sync::Arc;
use wasmtime::component::{Resource, ResourceTable};
use wasmtime::{ResourceLimiter, StoreLimits, StoreLimitsBuilder};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{FsPerms, WasiCtx, WasiCtxView, WasiView};

/// How much of a component's stderr (panic messages) is kept for the log.
const STDERR_BYTES: usize = 4096;

pub struct Guest {
    /// Without a workspace, built on the component's first WASI call: many calls
    /// (a policy's, most records-only handlers') make none, and building it is a
    /// good part of a small call's cost.
    wasi: Option<Wasi>,
    table: ResourceTable,
    pub(super) limits: Limits,
    caps: Caps,
    /// The call's deadline; host waits with their own timeouts hold it.
    deadline: Arc<Deadline>,
}

/// A call's WASI context and the stderr it writes to.
struct Wasi {
    ctx: WasiCtx,
    stderr: MemoryOutputPipe,
}

impl Wasi {
    /// No filesystem, network, environment or arguments: only clocks, randomness
    /// and a captured stderr.
    fn builder() -> (wasmtime_wasi::WasiCtxBuilder, MemoryOutputPipe) {
        let stderr = MemoryOutputPipe::new(STDERR_BYTES);
        let mut wasi = WasiCtx::builder();
        wasi.stderr(stderr.clone());
        (wasi, stderr)
    }

    fn plain() -> Wasi {
        let (mut wasi, stderr) = Wasi::builder();
        Wasi {
            ctx: wasi.build(),
            stderr,
        }
    }

    /// With the workspace `dir` as the one preopen, `/`.
    fn with_workspace(dir: &Path) -> std::io::Result<Wasi> {
        let (mut wasi, stderr) = Wasi::builder();
        // File I/O runs inline instead of hopping to the blocking pool (a thread
        // hand-off per call costs more than the I/O). Set before the preopen,
        // which takes the setting when it is made.
        wasi.allow_blocking_current_thread(true)
            .preopened_dir(dir, "/", FsPerms::ReadWrite)
            .map_err(std::io::Error::other)?;
        Ok(Wasi {
            ctx: wasi.build(),
            stderr,
        })
    }
}

impl Guest {
    /// A guest with the given capabilities, a memory limit and a deadline. A
    /// workspace in `caps` becomes its one preopen (opened now, so that a missing
    /// one fails the call before it starts).
    pub fn new(caps: Caps, memory_bytes: usize, deadline: Arc<Deadline>) -> std::io::Result<Guest> {
        let wasi = caps.workspace().map(Wasi::with_workspace).transpose()?;
        Ok(Guest {
            wasi,
            table: ResourceTable::new(),
            limits: Limits {
                limits: StoreLimitsBuilder::new()
                    .memory_size(memory_bytes)
                    .instances(64)
                    .trap_on_grow_failure(false)
                    .build(),
                peak_memory_bytes: 0,
            },
            caps,
            deadline,
        })
    }

    /// What the capability host functions see of the call.
    pub fn caps_view(&mut self) -> CapsView<'_> {
        CapsView {
            caps: &mut self.caps,
            table: &mut self.table,
            deadline: &self.deadline,
        }
    }

    /// Hands an upload the host has staged to the component as a blob handle.
    pub fn stage_upload(&mut self, blob: StagedBlob) -> wasmtime::Result<Resource<BlobHandle>> {
        let info = blob.info.clone();
        self.caps.stage(blob);
        Ok(self.table.push(BlobHandle { info, fresh: true })?)
    }

    /// Takes back a blob the component handed out (a download).
    pub fn take_blob(&mut self, blob: Resource<BlobHandle>) -> wasmtime::Result<BlobInfo> {
        Ok(self.table.delete(blob)?.info)
    }

    /// What the component wrote to stderr (e.g. a panic message), lossily decoded.
    pub fn stderr(&self) -> String {
        self.wasi.as_ref().map_or_else(String::new, |w| {
            String::from_utf8_lossy(&w.stderr.contents())
                .trim()
                .to_owned()
        })
    }

    /// The most linear memory any of the call's instances had.
    pub fn peak_memory_bytes(&self) -> usize {
        self.limits.peak_memory_bytes
    }

    /// Takes the call's capability state out of the spent store.
    pub fn take_caps(&mut self) -> Caps {
        self.caps.take()
    }
}

impl WasiView for Guest {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        let wasi = self.wasi.get_or_insert_with(Wasi::plain);
        WasiCtxView {
            ctx: &mut wasi.ctx,
            table: &mut self.table,
        }
    }
}

/// The call's resource limits, recording how much memory its instances reached
/// (what resetting them costs when the store is dropped).
pub struct Limits {
    limits: StoreLimits,
    peak_memory_bytes: usize,
}

impl ResourceLimiter for Limits {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let allowed = self.limits.memory_growing(current, desired, maximum)?;
        if allowed {
            self.peak_memory_bytes = self.peak_memory_bytes.max(desired);
        }
        Ok(allowed)
    }

    fn memory_grow_failed(&mut self, error: wasmtime::Error) -> wasmtime::Result<()> {
        self.limits.memory_grow_failed(error)
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        self.limits.table_growing(current, desired, maximum)
    }

    fn table_grow_failed(&mut self, error: wasmtime::Error) -> wasmtime::Result<()> {
        self.limits.table_grow_failed(error)
    }

    fn instances(&self) -> usize {
        self.limits.instances()
    }

    fn tables(&self) -> usize {
        self.limits.tables()
    }

    fn memories(&self) -> usize {
        self.limits.memories()
    }
}
