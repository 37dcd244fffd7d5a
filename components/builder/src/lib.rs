//! Builds a workspace of guest components for `wasm32-wasip2` from a build script
//! (the host's, for the components it embeds; `tests/artifacts`', for the test
//! and example components) and copies each `<name>.wasm` into `OUT_DIR`.
//!
//! The guest build settings live here, once, for every component workspace.

use std::path::{Path, PathBuf};
use std::process::Command;

const TARGET: &str = "wasm32-wasip2";

/// Settings of every guest build, as cargo's environment overrides.
const SETTINGS: &[(&str, &str)] = &[
    // Small components: instantiation cost grows with their size.
    ("CARGO_PROFILE_RELEASE_OPT_LEVEL", "s"),
    ("CARGO_PROFILE_RELEASE_LTO", "true"),
    ("CARGO_PROFILE_RELEASE_CODEGEN_UNITS", "1"),
    ("CARGO_PROFILE_RELEASE_PANIC", "unwind"),
    ("CARGO_PROFILE_RELEASE_STRIP", "debuginfo"),
    // A component's linear memory starts with its stack; Rust's default 1 MiB
    // stack makes every fresh instance touch (and the host reset) a megabyte it
    // rarely needs.
    (
        "CARGO_TARGET_WASM32_WASIP2_RUSTFLAGS",
        "-C link-arg=-zstack-size=131072",
    ),
];

/// The outer build's settings are for the host, not for the guests.
const OUTER: &[&str] = &[
    "CARGO_ENCODED_RUSTFLAGS",
    "RUSTFLAGS",
    "CARGO_TARGET_DIR",
    "CARGO_BUILD_TARGET",
    "RUSTC_WORKSPACE_WRAPPER",
    "RUSTC_WRAPPER",
];

/// Builds every component of the workspace at `workspace` (a path relative to the
/// repository root) and copies each into `OUT_DIR` as `<crate_name>.wasm`. Cargo
/// runs the build script again when anything under `watch` (also relative to the
/// root), `wit/` or `components/` (the shared guest libraries) changes.
///
/// # Panics
/// When the build fails: a build script has no other way to fail the build.
pub fn build(workspace: &str, watch: &[&str]) {
    let root = repository_root();
    let out = PathBuf::from(env("OUT_DIR"));
    for dir in ["wit", "components", workspace].iter().chain(watch) {
        println!("cargo:rerun-if-changed={}", root.join(dir).display());
    }
    let workspace = root.join(workspace);
    // A target dir of its own: sharing the outer one deadlocks on cargo's lock.
    let target_dir = out.join("target");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut command = Command::new(cargo);
    command
        .args(["build", "--release", "--workspace", "--target", TARGET])
        .arg("--manifest-path")
        .arg(workspace.join("Cargo.toml"))
        .arg("--target-dir")
        .arg(&target_dir)
        .current_dir(&workspace)
        .envs(SETTINGS.iter().copied());
    for name in OUTER {
        command.env_remove(name);
    }
    let status = command
        .status()
        .unwrap_or_else(|e| panic!("running cargo for the components: {e}"));
    // rust-toolchain.toml makes rustup install the target; a toolchain without
    // rustup must have it already.
    assert!(
        status.success(),
        "building the components in {} failed (is the {TARGET} target installed?)",
        workspace.display()
    );
    let built = target_dir.join(TARGET).join("release");
    let entries =
        std::fs::read_dir(&built).unwrap_or_else(|e| panic!("listing {}: {e}", built.display()));
    for entry in entries.flatten() {
        let path = entry.path();
        if path.extension().is_some_and(|e| e == "wasm") {
            let name = entry.file_name();
            std::fs::copy(&path, out.join(&name))
                .unwrap_or_else(|e| panic!("copying {}: {e}", path.display()));
        }
    }
}

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("{name} is not set: not in a build script?"))
}

/// The repository root: the nearest ancestor of the calling package with a
/// `wit/` folder.
fn repository_root() -> PathBuf {
    let manifest = PathBuf::from(env("CARGO_MANIFEST_DIR"));
    manifest
        .ancestors()
        .find(|dir| dir.join("wit").is_dir())
        .map(Path::to_path_buf)
        .unwrap_or_else(|| panic!("no wit/ folder above {}", manifest.display()))
}
