//! Session ids that name the runner that minted them, so that a proxy can route
//! on them. Still `conv_` and 32 lowercase hex digits, ordered by creation:
//!
//! ```text
//! conv_ 0194c7a2b3f1 9f3a61c2 04e1d5a7c3b9
//!       |            |        └ 12: counts up within the millisecond, from a random start
//!       |            └ 8: the runner's tag (first 4 bytes of sha256 of its name)
//!       └ 12: milliseconds since the Unix epoch
//! ```
//!
//! The tag sits at characters 17..25 of the id, whatever the runner.

use crate::sync::Lock;
use sha2::{Digest, Sha256};
use std::sync::Mutex;

pub const PREFIX: &str = "conv_";
/// Where the tag starts in an id, and how long it is.
pub const TAG_AT: usize = PREFIX.len() + 12;
pub const TAG_LEN: usize = 8;
/// The counter starts below this in each millisecond, leaving room to count up.
const COUNTER_START: u64 = 1 << 44;

/// A runner's tag: 8 hex digits of the sha256 of its name.
pub fn tag(runner: &str) -> String {
    hex::encode(&Sha256::digest(runner.as_bytes())[..TAG_LEN / 2])
}

/// The tag a session id carries, if it has the shape of one.
pub fn tag_of(id: &str) -> Option<&str> {
    let hex = id.strip_prefix(PREFIX)?;
    let shaped = hex.len() == 32 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    shaped.then(|| &id[TAG_AT..TAG_AT + TAG_LEN])
}

/// Mints this runner's session ids.
pub struct Minter {
    tag: String,
    /// The last millisecond used, and the counter within it.
    last: Mutex<(u64, u64)>,
}

impl Minter {
    pub fn new(runner: &str) -> Minter {
        Minter {
            tag: tag(runner),
            last: Mutex::new((0, 0)),
        }
    }

    pub fn session_id(&self) -> String {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let mut last = self.last.locked();
        // A clock stepped back keeps counting in the last millisecond: ids stay
        // in creation order.
        *last = match now > last.0 {
            true => (now, rand::random::<u64>() % COUNTER_START),
            false => (last.0, last.1 + 1),
        };
        format!("{PREFIX}{:012x}{}{:012x}", last.0, self.tag, last.1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_carry_the_runner_s_tag_and_sort_in_minting_order() {
        let minter = Minter::new("reshost-1");
        let ids: Vec<String> = (0..10_000).map(|_| minter.session_id()).collect();
        for id in &ids {
            assert_eq!(id.len(), 37, "{id}");
            assert_eq!(tag_of(id), Some(tag("reshost-1").as_str()));
        }
        assert!(
            ids.windows(2).all(|w| w[0] < w[1]),
            "not strictly increasing"
        );
        assert_ne!(tag("reshost-0"), tag("reshost-1"));
    }

    #[test]
    fn only_well_shaped_ids_have_a_tag() {
        for bad in [
            "conv_0",
            "conv_0194C7A2B3F19F3A61C204E1D5A7C3B9",
            "file_0194c7a2b3f19f3a61c204e1d5a7c3b9",
            "conv_0194c7a2b3f19f3a61c204e1d5a7c3b9x",
            "",
        ] {
            assert_eq!(tag_of(bad), None, "{bad}");
        }
        assert_eq!(
            tag_of("conv_0194c7a2b3f19f3a61c204e1d5a7c3b9"),
            Some("9f3a61c2")
        );
    }
}
