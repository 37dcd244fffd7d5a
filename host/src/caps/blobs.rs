//! Host side of `reshost:api/blobs`: handles to sealed blobs and streaming writers.

use super::CapsView;
use crate::bindings::blobs::{Host, HostBlob, HostBlobWriter};
use crate::bindings::{BlobHandle, WriterHandle};
use crate::store::BlobWriter;
use wasmtime::component::Resource;

/// Most bytes one `blob.read` returns.
pub const MAX_READ_BYTES: u32 = 4 * 1024 * 1024;

impl Host for CapsView<'_> {}

impl crate::bindings::types::Host for CapsView<'_> {}

impl HostBlob for CapsView<'_> {
    fn size(&mut self, blob: Resource<BlobHandle>) -> wasmtime::Result<u64> {
        Ok(self.table.get(&blob)?.info.len)
    }

    fn sha256(&mut self, blob: Resource<BlobHandle>) -> wasmtime::Result<String> {
        Ok(self.table.get(&blob)?.info.sha256.clone())
    }

    fn read(
        &mut self,
        blob: Resource<BlobHandle>,
        offset: u64,
        len: u32,
    ) -> wasmtime::Result<Vec<u8>> {
        let id = self.table.get(&blob)?.info.id;
        let len = len.min(MAX_READ_BYTES) as usize;
        Ok(self.caps.store()?.read_blob(id, offset, len)?)
    }

    fn drop(&mut self, blob: Resource<BlobHandle>) -> wasmtime::Result<()> {
        self.table.delete(blob)?;
        Ok(())
    }
}

impl HostBlobWriter for CapsView<'_> {
    fn new(&mut self) -> wasmtime::Result<Resource<WriterHandle>> {
        let writer = BlobWriter::new(self.caps.store()?)?;
        Ok(self.table.push(WriterHandle(writer))?)
    }

    fn write(&mut self, writer: Resource<WriterHandle>, bytes: Vec<u8>) -> wasmtime::Result<()> {
        Ok(self.table.get_mut(&writer)?.0.write(&bytes)?)
    }

    fn finish(&mut self, writer: Resource<WriterHandle>) -> wasmtime::Result<Resource<BlobHandle>> {
        let WriterHandle(writer) = self.table.delete(writer)?;
        let staged = writer.finish()?;
        let info = staged.info.clone();
        self.caps.stage(staged);
        Ok(self.table.push(BlobHandle { info, fresh: true })?)
    }

    fn drop(&mut self, writer: Resource<WriterHandle>) -> wasmtime::Result<()> {
        // Dropping an unfinished writer discards what it wrote.
        self.table.delete(writer)?;
        Ok(())
    }
}
