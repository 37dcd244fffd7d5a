//! The default policy: every request is allowed.

wit_bindgen::generate!({
    path: "../../wit",
    world: "policy",
});

use exports::reshost::api::decider::{Decision, Guest, Request};

struct AllowAll;

impl Guest for AllowAll {
    fn decide(_: Request, _: String) -> Decision {
        Decision::Allow
    }
}

export!(AllowAll);
