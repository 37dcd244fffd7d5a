//! What the tests and benchmarks reach inside the server for: not an API.

use crate::app::{App, Ask};
use crate::config::Config;
pub use crate::http::ROUTES;
pub use crate::slots::SlotName;
pub use crate::store::{BlobStats, CHUNK_BYTES};

/// Counts the blobs, chunks and pending uploads in a stopped server's data dir.
pub fn inspect_blobs(data_dir: &std::path::Path) -> anyhow::Result<BlobStats> {
    crate::store::Store::inspect_blobs(data_dir)
}

/// Binds `wasm` to `slot` in a stopped server's data dir, as an earlier host
/// (or an operator through it) would have left it.
pub fn bind_stored(data_dir: &std::path::Path, slot: SlotName, wasm: &[u8]) -> anyhow::Result<()> {
    let store = crate::store::Store::open(data_dir, 1 << 20)?;
    let mut binding = crate::store::Binding {
        history: vec![crate::runtime::new_entry(wasm, "admin".into())],
        ..Default::default()
    };
    store.save_binding(&crate::runtime::slot_key(slot), &mut binding, Some(wasm), 1)?;
    Ok(())
}

/// The server's state without its HTTP side, for measuring what a step costs.
pub struct InProcess {
    app: App,
}

impl InProcess {
    pub async fn start(config: Config) -> anyhow::Result<InProcess> {
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
        let (app, _) = crate::assemble(config, None, addr).await?;
        Ok(InProcess { app })
    }

    /// Puts an `environments.read` of `path` to the tenant's policy; the
    /// denial's message when it is refused.
    pub async fn check_read(&self, tenant: &str, session: &str, path: &str) -> Result<(), String> {
        let ask = Ask {
            path: Some(path),
            ..Ask::new("environments.read", Some(session), Some("default"))
        };
        self.app.check(tenant, ask).await.map_err(|e| e.to_string())
    }
}
