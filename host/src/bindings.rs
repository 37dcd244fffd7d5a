//! Host bindings of the WIT worlds in `wit/`. The capability interfaces are bound
//! once (world `capabilities`) and every slot's world reuses them, so each host
//! trait has exactly one implementation (in `caps`).

use crate::store::{BlobInfo, BlobWriter};

/// A component's handle to a sealed blob (`reshost:api/blobs.blob`).
pub struct BlobHandle {
    pub info: BlobInfo,
    /// Staged in this call and not yet owned by a record: only such a blob may be
    /// attached to a record (a record never shares another's blob).
    pub fresh: bool,
}

/// A component's handle to a blob being written (`reshost:api/blobs.blob-writer`).
pub struct WriterHandle(pub BlobWriter);

mod generated {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "capabilities",
        imports: {
            "reshost:api/exec.run": async | trappable,
            "reshost:api/tree.find": async | trappable,
            "reshost:api/tree.list": async | trappable,
            "reshost:api/tree.grep": async | trappable,
            "reshost:api/watch.changes": async | trappable,
            "reshost:api/watch.baseline": async | trappable,
            "reshost:api/snapshots.changes": async | trappable,
            "reshost:api/snapshots.file": async | trappable,
            default: trappable,
        },
        with: {
            "reshost:api/blobs.blob": super::BlobHandle,
            "reshost:api/blobs.blob-writer": super::WriterHandle,
        },
    });

    pub mod files {
        wasmtime::component::bindgen!({
            path: "../wit",
            world: "files",
            exports: { default: async },
            with: {
                "reshost:api/types": super::reshost::api::types,
                "reshost:api/records": super::reshost::api::records,
                "reshost:api/blobs": super::reshost::api::blobs,
            },
        });
    }

    pub mod environments {
        wasmtime::component::bindgen!({
            path: "../wit",
            world: "environments",
            exports: { default: async },
            with: {
                "reshost:api/types": super::reshost::api::types,
                "reshost:api/records": super::reshost::api::records,
                "reshost:api/exec": super::reshost::api::exec,
                "reshost:api/tree": super::reshost::api::tree,
                "reshost:api/watch": super::reshost::api::watch,
                "reshost:api/snapshots": super::reshost::api::snapshots,
            },
        });
    }

    pub mod terminals {
        wasmtime::component::bindgen!({
            path: "../wit",
            world: "terminals",
            exports: { default: async },
            with: {
                "reshost:api/types": super::reshost::api::types,
                "reshost:api/records": super::reshost::api::records,
                "reshost:api/pty": super::reshost::api::pty,
            },
        });
    }

    pub mod policy {
        wasmtime::component::bindgen!({
            path: "../wit",
            world: "policy",
            exports: { default: async },
        });
    }
}

pub use generated::Capabilities;
pub use generated::environments::{Environments, EnvironmentsPre};
pub use generated::files::{Files, FilesPre};
pub use generated::policy::{Policy, PolicyPre};
pub use generated::reshost::api::{blobs, exec, pty, records, snapshots, tree, types, watch};
pub use generated::terminals::{Terminals, TerminalsPre};

pub mod files_handler {
    pub use super::generated::files::exports::reshost::api::files_handler::*;
}
pub mod environments_handler {
    pub use super::generated::environments::exports::reshost::api::environments_handler::*;
}
pub mod decider {
    pub use super::generated::policy::exports::reshost::api::decider::*;
}
