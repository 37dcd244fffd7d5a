//! The components the tests and benchmarks load besides the defaults, each as
//! its wasm and the path of its file (for configs that name one).

/// A built component.
pub struct Component {
    /// Where its `.wasm` file is.
    pub path: &'static str,
    pub wasm: &'static [u8],
}

macro_rules! components {
    ($($(#[$doc:meta])* $name:ident = $file:literal;)*) => {
        $(
            $(#[$doc])*
            pub const $name: Component = Component {
                path: concat!(env!("OUT_DIR"), "/", $file),
                wasm: include_bytes!(concat!(env!("OUT_DIR"), "/", $file)),
            };
        )*
        /// Every one, with its file's name.
        pub const ALL: &[(&str, Component)] = &[$(($file, $name)),*];
    };
}

components! {
    /// A `files` handler that misbehaves on request (traps, loops, allocates).
    FAULTY = "faulty.wasm";
    /// A policy driven by rules in its `policy_config`.
    RULES_POLICY = "rules_policy.wasm";
    /// A component that traps when it is first instantiated.
    TRAP_ON_START = "trap_on_start.wasm";
    /// A `terminals` handler asking the host for far more than it allows.
    HOSTILE_TERMINALS = "hostile_terminals.wasm";
    /// An `environments` handler asking the host for far more than it allows.
    HOSTILE_ENVIRONMENTS = "hostile_environments.wasm";
    /// The example policy that allows reads only.
    POLICY_READ_ONLY = "policy_read_only.wasm";
    /// The example rules policy (shell allow-list, denied paths).
    POLICY_RULES = "policy_rules.wasm";
    /// The example policy that limits uploads.
    POLICY_UPLOADS = "policy_uploads.wasm";
    /// The example `files` handler that refuses executables.
    FILES_NO_EXECUTABLES = "files_no_executables.wasm";
}
