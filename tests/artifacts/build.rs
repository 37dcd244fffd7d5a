//! Builds the test components (`tests/components/`) and the operator examples
//! (`examples/*/`) into `OUT_DIR`: a dev-dependency, so they are built for the
//! tests and benchmarks only.

fn main() {
    reshost_component_builder::build("tests/components", &["examples"]);
}
