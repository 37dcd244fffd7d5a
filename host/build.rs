//! Builds the guest components (their own workspace in `components/`) for
//! wasm32-wasip2, so a plain `cargo build`/`cargo test` at the root does everything,
//! and tells the host where the built `.wasm` files are:
//! `RESHOST_COMPONENT_<NAME>` for each component (the defaults are embedded with
//! `include_bytes!`, the test components are loaded by path).

use std::path::{Path, PathBuf};
use std::process::Command;

const TARGET: &str = "wasm32-wasip2";
/// Every crate of the components workspace that yields a `.wasm`, and its folder
/// (the operator examples live in `examples/`).
const COMPONENTS: &[(&str, &str)] = &[
    ("files", "components/files"),
    ("environments", "components/environments"),
    ("terminals", "components/terminals"),
    ("policy-allow", "components/policy-allow"),
    ("faulty", "components/faulty"),
    ("rules-policy", "components/rules-policy"),
    ("trap-on-start", "components/trap-on-start"),
    ("policy-read-only", "examples/policy-read-only"),
    ("policy-rules", "examples/policy-rules"),
    ("policy-uploads", "examples/policy-uploads"),
    ("files-no-executables", "examples/files-no-executables"),
];
/// Crates whose sources the components depend on.
const SOURCES: &[&str] = &["guest", "paging", "files-handler"];

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    let root = manifest.parent().unwrap();
    let components = root.join("components");
    // Their own target dir: sharing the outer one deadlocks on cargo's lock.
    let target_dir = root.join("target").join("components");

    println!("cargo:rerun-if-changed={}", root.join("wit").display());
    for file in ["Cargo.toml", "Cargo.lock", ".cargo/config.toml"] {
        println!("cargo:rerun-if-changed={}", components.join(file).display());
    }
    let sources = SOURCES.iter().map(|s| format!("components/{s}"));
    for folder in COMPONENTS.iter().map(|(_, f)| f.to_string()).chain(sources) {
        let dir = root.join(folder);
        println!("cargo:rerun-if-changed={}", dir.join("src").display());
        println!(
            "cargo:rerun-if-changed={}",
            dir.join("Cargo.toml").display()
        );
    }

    ensure_target();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .args(["build", "--release", "--target", TARGET, "--manifest-path"])
        .arg(components.join("Cargo.toml"))
        .arg("--target-dir")
        .arg(&target_dir)
        // So that `components/.cargo/config.toml` applies.
        .current_dir(&components)
        // The outer build's settings are for the host, not for the guests.
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("CARGO_BUILD_TARGET")
        .env_remove("RUSTC_WORKSPACE_WRAPPER")
        .env_remove("RUSTC_WRAPPER")
        .status()
        .expect("running cargo for the components");
    assert!(status.success(), "building the components failed");

    let out = target_dir.join(TARGET).join("release");
    for (name, _) in COMPONENTS {
        let file = out.join(format!("{}.wasm", name.replace('-', "_")));
        assert!(file.exists(), "missing {}", file.display());
        let var = name.replace('-', "_").to_uppercase();
        println!("cargo:rustc-env=RESHOST_COMPONENT_{var}={}", file.display());
    }
}

/// `rust-toolchain.toml` lists the target, but rustup adds listed targets only when it
/// installs the toolchain: add it here when an existing toolchain lacks it.
fn ensure_target() {
    let sysroot = Command::new(std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into()))
        .args(["--print", "sysroot"])
        .output()
        .expect("running rustc");
    let sysroot = String::from_utf8_lossy(&sysroot.stdout).trim().to_owned();
    if Path::new(&sysroot)
        .join("lib/rustlib")
        .join(TARGET)
        .exists()
    {
        return;
    }
    let status = Command::new("rustup")
        .args(["target", "add", TARGET])
        .status()
        .expect("the wasm32-wasip2 target is missing and rustup is not available");
    assert!(status.success(), "rustup target add {TARGET} failed");
}
