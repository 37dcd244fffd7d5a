//! A policy whose rules are its tenant's `policy_config`, used by the host's tests:
//! operations listed in `deny` are denied with `reason`, an operation listed in
//! `panic` makes the policy trap (which the host must treat as a denial), and one
//! listed in `spin` makes it loop until its deadline.
//!
//! ```toml
//! policy_config = { deny = ["files.upload"], reason = "uploads are closed", panic = [], spin = [] }
//! ```

wit_bindgen::generate!({
    path: "../../../wit",
    world: "policy",
});

use exports::reshost::api::decider::{Decision, Guest, Request};
use serde_json::Value;

struct Rules;

fn listed(config: &Value, list: &str, operation: &str) -> bool {
    config[list]
        .as_array()
        .is_some_and(|ops| ops.iter().any(|op| op == operation))
}

impl Guest for Rules {
    fn decide(request: Request, config: String) -> Decision {
        let config: Value = serde_json::from_str(&config).unwrap_or(Value::Null);
        if listed(&config, "panic", &request.operation) {
            panic!("rules-policy told to fail on {}", request.operation);
        }
        if listed(&config, "spin", &request.operation) {
            loop {
                std::hint::black_box(());
            }
        }
        if listed(&config, "deny", &request.operation) {
            let reason = config["reason"].as_str().unwrap_or("denied by policy");
            return Decision::Deny(format!(
                "{reason} ({} for tenant {})",
                request.operation, request.tenant
            ));
        }
        Decision::Allow
    }
}

export!(Rules);
