//! A policy that fails while it is being instantiated, so the host's tests can
//! check that such a component is refused before it is bound. The component
//! model runs a module's `_initialize` export at instantiation (C and TinyGo
//! components do their set-up there); this one aborts.

wit_bindgen::generate!({
    path: "../../../wit",
    world: "policy",
});

use exports::reshost::api::decider::{Decision, Guest, Request};

#[unsafe(no_mangle)]
pub extern "C" fn _initialize() {
    std::process::abort();
}

struct TrapOnStart;

impl Guest for TrapOnStart {
    fn decide(_: Request, _: String) -> Decision {
        Decision::Allow
    }
}

export!(TrapOnStart);
