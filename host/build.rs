//! Builds the components the host embeds as the slots' defaults (the `components/`
//! workspace) into `OUT_DIR`, so a plain `cargo build` does everything.

fn main() {
    reshost_component_builder::build("components", &[]);
}
