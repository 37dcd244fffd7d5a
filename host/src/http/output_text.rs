//! Command output as JSON: `{"text": …}` for bytes that are UTF-8,
//! `{"base64": …}` for bytes that are not. While more may follow, a character
//! cut at the end is left for the next piece to complete, so that text never
//! shows a character broken in two.

use base64::Engine;
use serde_json::{Map, Value};

/// Output bytes as one JSON member.
pub struct Encoded {
    /// `text` or `base64`.
    pub field: &'static str,
    pub value: String,
    /// The bytes it holds, from the start of those given: fewer when a cut
    /// character at the end was left for later.
    pub used: usize,
}

impl Encoded {
    /// `{"text": …}` or `{"base64": …}`.
    pub fn json(&self) -> String {
        Value::Object(self.member()).to_string()
    }

    /// The member in an object of its own, to extend.
    pub fn member(&self) -> Map<String, Value> {
        let mut object = Map::new();
        object.insert(self.field.into(), self.value.clone().into());
        object
    }
}

/// `bytes` encoded; `None` when there is nothing to send yet (no bytes, or
/// only the start of a character while `more_may_come`).
pub fn encode(bytes: &[u8], more_may_come: bool) -> Option<Encoded> {
    let text = |value: &str, used| {
        Some(Encoded {
            field: "text",
            value: value.to_owned(),
            used,
        })
    };
    match std::str::from_utf8(bytes) {
        _ if bytes.is_empty() => None,
        Ok(all) => text(all, bytes.len()),
        // Only a character cut at the end: what is whole now, the rest later.
        Err(e) if e.error_len().is_none() && more_may_come => match e.valid_up_to() {
            0 => None,
            whole => text(
                std::str::from_utf8(&bytes[..whole]).unwrap_or_default(),
                whole,
            ),
        },
        Err(_) => Some(Encoded {
            field: "base64",
            value: base64::engine::general_purpose::STANDARD.encode(bytes),
            used: bytes.len(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json(bytes: &[u8], more: bool) -> Option<(String, usize)> {
        encode(bytes, more).map(|e| (e.json(), e.used))
    }

    #[test]
    fn a_character_cut_at_the_end_waits_for_the_rest_while_more_may_come() {
        let e_acute = "é".as_bytes();
        assert_eq!(
            json(&[b'a', e_acute[0]], true),
            Some((r#"{"text":"a"}"#.into(), 1))
        );
        assert_eq!(json(&[e_acute[0]], true), None);
        assert_eq!(
            json(&[e_acute[0]], false),
            Some((r#"{"base64":"ww=="}"#.into(), 1))
        );
        assert_eq!(json(b"", false), None);
    }

    #[test]
    fn bytes_that_are_not_utf8_go_as_base64() {
        assert_eq!(
            json(&[0xff, b'a'], true),
            Some((r#"{"base64":"/2E="}"#.into(), 2))
        );
    }
}
