//! A tenant policy for uploads, from its `policy_config`:
//!
//! - `max_bytes`: the largest upload request (its declared `Content-Length`).
//!   An upload that does not declare its size is refused.
//! - `content_types`: the part content types allowed, exact (`application/pdf`)
//!   or by family (`image/*`), ignoring case and parameters. An upload whose
//!   file part declares no type is refused.
//!
//! ```toml
//! policy_config = { max_bytes = 10485760, content_types = ["image/*", "text/plain", "application/pdf"] }
//! ```
//!
//! Both are what the client declares; the host still enforces its own
//! `max_upload_bytes` on the bytes that arrive. A declared type is a claim, not
//! a fact: pair this with a handler that sniffs content (see
//! `examples/files-no-executables`) when that matters. Other operations are
//! allowed. A `policy_config` that cannot be read denies uploads (fail closed).

wit_bindgen::generate!({
    path: "../../wit",
    world: "policy",
});

use exports::reshost::api::decider::{Decision, Guest, Request};
use serde::Deserialize;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Rules {
    max_bytes: Option<u64>,
    content_types: Option<Vec<String>>,
}

/// Whether `declared` (e.g. `Image/PNG; x=y`) is allowed by `pattern`.
fn matches(pattern: &str, declared: &str) -> bool {
    let declared = declared.split(';').next().unwrap_or_default().trim();
    match pattern.strip_suffix("/*") {
        Some(family) => declared
            .split_once('/')
            .is_some_and(|(f, _)| f.eq_ignore_ascii_case(family)),
        None => declared.eq_ignore_ascii_case(pattern),
    }
}

fn check(request: &Request, rules: &Rules) -> Result<(), String> {
    if let Some(max) = rules.max_bytes {
        match request.upload_bytes {
            None => return Err("uploads must declare their size (Content-Length)".into()),
            Some(n) if n > max => {
                return Err(format!(
                    "uploads are limited to {max} bytes; this one is {n}"
                ));
            }
            Some(_) => {}
        }
    }
    if let Some(allowed) = &rules.content_types {
        let Some(declared) = &request.content_type else {
            return Err("the file part must declare its content type".into());
        };
        if !allowed.iter().any(|p| matches(p, declared)) {
            return Err(format!(
                "{declared} uploads are not allowed (allowed: {})",
                allowed.join(", ")
            ));
        }
    }
    Ok(())
}

struct Uploads;

impl Guest for Uploads {
    fn decide(request: Request, config: String) -> Decision {
        if request.operation != "files.upload" {
            return Decision::Allow;
        }
        let outcome = serde_json::from_str::<Rules>(&config)
            .map_err(|e| format!("the tenant's policy_config is invalid: {e}"))
            .and_then(|rules| check(&request, &rules));
        match outcome {
            Ok(()) => Decision::Allow,
            Err(reason) => Decision::Deny(reason),
        }
    }
}

export!(Uploads);
