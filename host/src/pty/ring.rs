//! A terminal's scrollback: the last `capacity` bytes of its output.

use std::collections::VecDeque;

pub struct Ring {
    bytes: VecDeque<u8>,
    capacity: usize,
}

impl Ring {
    pub fn new(capacity: usize) -> Ring {
        Ring {
            bytes: VecDeque::new(),
            capacity,
        }
    }

    /// Appends output, dropping the oldest bytes beyond the capacity. The cut never
    /// leaves half a UTF-8 character at the front, so a replay decodes cleanly.
    pub fn push(&mut self, data: &[u8]) {
        let skipped = data.len().saturating_sub(self.capacity);
        let data = &data[skipped..];
        let over = (self.bytes.len() + data.len()).saturating_sub(self.capacity);
        self.bytes.drain(..over);
        self.bytes.extend(data);
        if over > 0 || skipped > 0 {
            let partial = self
                .bytes
                .iter()
                .take(3)
                .take_while(|&&b| b & 0xC0 == 0x80)
                .count();
            self.bytes.drain(..partial);
        }
    }

    pub fn contents(&self) -> Vec<u8> {
        let (a, b) = self.bytes.as_slices();
        [a, b].concat()
    }
}

/// How many bytes at the end of `data` start a UTF-8 character that is not complete
/// yet: held back until the next read, so every frame ends on a character boundary.
pub fn incomplete_tail(data: &[u8]) -> usize {
    for back in 1..=data.len().min(3) {
        let b = data[data.len() - back];
        if b & 0xC0 == 0x80 {
            continue; // A continuation byte: look further back for the lead byte.
        }
        let needed = match b {
            0xC0..=0xDF => 2,
            0xE0..=0xEF => 3,
            0xF0..=0xF7 => 4,
            _ => return 0,
        };
        return if needed > back { back } else { 0 };
    }
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_last_bytes_and_never_starts_mid_character() {
        let mut ring = Ring::new(5);
        ring.push(b"ab");
        ring.push("cé€".as_bytes()); // c, é (2 bytes), € (3 bytes)
        assert_eq!(ring.contents(), "é€".as_bytes());
        ring.push(b"0123456789");
        assert_eq!(ring.contents(), b"56789");
        let mut small = Ring::new(2);
        small.push("€".as_bytes());
        assert_eq!(small.contents(), b"");
    }

    #[test]
    fn an_incomplete_character_at_the_end_is_held_back() {
        let euro = "€".as_bytes();
        assert_eq!(incomplete_tail(b"abc"), 0);
        assert_eq!(incomplete_tail(&euro[..1]), 1);
        assert_eq!(incomplete_tail(&[b'a', euro[0], euro[1]]), 2);
        assert_eq!(incomplete_tail(euro), 0);
        assert_eq!(incomplete_tail(&[0xF0, 0x9F, 0x98]), 3);
        assert_eq!(incomplete_tail(&[0x80, 0x80, 0x80, 0x80]), 0);
    }
}
