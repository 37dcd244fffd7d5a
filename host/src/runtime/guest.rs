//! The per-call store state: a fresh one for every request, so nothing leaks
//! between requests or tenants.

use crate::bindings::BlobHandle;
use crate::caps::{Caps, CapsView};
use crate::deadline::Deadline;
use crate::store::{BlobInfo, StagedBlob};
use std::sync::Arc;
use wasmtime::component::{Resource, ResourceTable};
use wasmtime::{StoreLimits, StoreLimitsBuilder};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{FsPerms, WasiCtx, WasiCtxView, WasiView};

/// How much of a component's stderr (panic messages) is kept for the log.
const STDERR_BYTES: usize = 4096;

pub struct Guest {
    wasi: WasiCtx,
    table: ResourceTable,
    pub(super) limits: StoreLimits,
    stderr: MemoryOutputPipe,
    caps: Caps,
    /// The call's deadline; host waits with their own timeouts hold it.
    deadline: Arc<Deadline>,
}

impl Guest {
    /// A guest with no filesystem, network, environment or arguments: only clocks,
    /// randomness, and the given capabilities.
    /// A workspace in `caps` becomes the guest's one preopen, `/`.
    pub fn new(caps: Caps, memory_bytes: usize, deadline: Arc<Deadline>) -> std::io::Result<Guest> {
        let stderr = MemoryOutputPipe::new(STDERR_BYTES);
        let mut wasi = WasiCtx::builder();
        wasi.stderr(stderr.clone());
        if let Some(dir) = caps.workspace() {
            // File I/O runs inline instead of hopping to the blocking pool (a thread
            // hand-off per call costs more than the I/O). Set before the preopen,
            // which takes the setting when it is made.
            wasi.allow_blocking_current_thread(true)
                .preopened_dir(dir, "/", FsPerms::ReadWrite)
                .map_err(std::io::Error::other)?;
        }
        let wasi = wasi.build();
        Ok(Guest {
            wasi,
            table: ResourceTable::new(),
            limits: StoreLimitsBuilder::new()
                .memory_size(memory_bytes)
                .instances(64)
                .trap_on_grow_failure(false)
                .build(),
            stderr,
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
        String::from_utf8_lossy(&self.stderr.contents())
            .trim()
            .to_owned()
    }

    /// Takes the call's capability state out of the spent store.
    pub fn take_caps(&mut self) -> Caps {
        self.caps.take()
    }
}

impl WasiView for Guest {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}
