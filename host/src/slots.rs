//! The slots, declared once: each role a component can be bound to, with the
//! component the binary embeds for it (and the file the components build makes). The config's `[components]` and `[slots.*]`
//! keys and the admin API's `/admin/v1/slots/{slot}` follow from this table; the
//! runtime binds each to its WIT world (`runtime::worlds`).

macro_rules! slots {
    ($($(#[$doc:meta])* $variant:ident = $name:literal, embedded $embedded:literal from $file:literal;)*) => {
        /// A slot, by name.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Deserialize)]
        pub enum SlotName {
            $($(#[$doc])* #[serde(rename = $name)] $variant,)*
        }

        impl SlotName {
            pub const ALL: &[SlotName] = &[$(SlotName::$variant),*];

            /// Its name in configs, routes and the WIT package.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(SlotName::$variant => $name,)*
                }
            }

            /// The component built into the binary for it, and that component's name.
            pub const fn embedded(self) -> (&'static str, &'static [u8]) {
                match self {
                    $(SlotName::$variant => (
                        $embedded,
                        include_bytes!(concat!(env!("OUT_DIR"), "/", $file, ".wasm")),
                    ),)*
                }
            }
        }
    };
}

slots! {
    /// Uploaded files.
    Files = "files", embedded "files" from "files";
    /// Sandboxed workspaces.
    Environments = "environments", embedded "environments" from "environments";
    /// Interactive terminals.
    Terminals = "terminals", embedded "terminals" from "terminals";
    /// The policy of tenants that have none of their own.
    Policy = "policy", embedded "policy-allow" from "policy_allow";
}

impl SlotName {
    pub fn parse(name: &str) -> Option<SlotName> {
        SlotName::ALL.iter().copied().find(|s| s.as_str() == name)
    }

    /// Every slot's name, for messages.
    pub fn names() -> Vec<&'static str> {
        SlotName::ALL.iter().map(|s| s.as_str()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_slot_is_found_by_its_name_and_embeds_a_component() {
        for &slot in SlotName::ALL {
            assert_eq!(SlotName::parse(slot.as_str()), Some(slot));
            let (_, wasm) = slot.embedded();
            assert_eq!(&wasm[..4], b"\0asm", "{slot:?}");
        }
        assert_eq!(SlotName::parse("file"), None);
        assert_eq!(
            SlotName::names(),
            ["files", "environments", "terminals", "policy"]
        );
    }
}
