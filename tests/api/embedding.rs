//! What the server binary carries: the default components, and none of the
//! test or example ones (those are built by the dev-only `tests/artifacts`).

use reshost::testing::SlotName;
use reshost_test_artifacts as artifacts;

/// Whether `wasm` is in `binary`, whole (components share library code, so no
/// smaller piece tells them apart).
fn embeds(binary: &[u8], wasm: &[u8]) -> bool {
    memchr::memmem::find(binary, wasm).is_some()
}

#[test]
fn the_server_binary_embeds_the_defaults_and_no_test_or_example_component() {
    let binary = std::fs::read(env!("CARGO_BIN_EXE_reshost")).unwrap();
    for &slot in SlotName::ALL {
        let (name, wasm) = slot.embedded();
        assert!(embeds(&binary, wasm), "the default {name} is not embedded");
    }
    for (name, component) in artifacts::ALL {
        assert!(
            !embeds(&binary, component.wasm),
            "{name} is embedded in the server binary"
        );
    }
}
