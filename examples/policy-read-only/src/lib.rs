//! A tenant policy that makes the tenant read-only: it may list, read, search,
//! download archives, review changes, look at background processes and their
//! output, list and compare snapshots, and watch terminals, and nothing else.
//! Every write, edit, delete, upload, archive extraction, shell command, process
//! start, stdin, signal or deletion, snapshot taken, restored or deleted,
//! terminal launch or transfer, and interactive terminal attach is denied with a
//! reason the client sees.
//!
//! Deploy it for a tenant with the admin API:
//!
//! ```sh
//! curl -X PUT -H "Authorization: Bearer $ADMIN" \
//!      -F component=@policy_read_only.wasm localhost:6767/admin/v1/tenants/acme/policy
//! ```

wit_bindgen::generate!({
    path: "../../wit",
    world: "policy",
});

use exports::reshost::api::decider::{Decision, Guest, Request};

/// Operations that only read.
const READS: &[&str] = &[
    "sessions.list",
    "sessions.get",
    "resources.list",
    "resources.get",
    "files.list",
    "files.get",
    "files.content",
    "environments.list",
    "environments.get",
    "environments.read",
    "environments.archive",
    "environments.search",
    "environments.grep",
    "environments.changes",
    "environments.events",
    "environments.diff",
    "environments.processes.list",
    "environments.processes.get",
    "environments.processes.output",
    "environments.snapshots.list",
    "environments.snapshots.get",
    "environments.snapshots.changes",
    "environments.snapshots.diff",
    "terminals.list",
    "terminals.get",
    "terminals.watch",
];

struct ReadOnly;

impl Guest for ReadOnly {
    fn decide(request: Request, _config: String) -> Decision {
        if READS.contains(&request.operation.as_str()) {
            Decision::Allow
        } else {
            Decision::Deny(format!(
                "tenant {} is read-only: {} is not allowed",
                request.tenant, request.operation
            ))
        }
    }
}

export!(ReadOnly);
