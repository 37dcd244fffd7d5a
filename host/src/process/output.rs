//! What a background process wrote: per stream, the last bytes in a bounded
//! ring, addressed by byte offset from the stream's start, with pieces numbered
//! across both streams so that a reader replays them in the order they came.

use bytes::Bytes;
use std::collections::VecDeque;

pub use crate::caps::exec::Stream;

/// One read of one stream.
#[derive(Clone)]
pub struct Piece {
    /// Its place among the pieces of both streams.
    pub seq: u64,
    pub stream: Stream,
    /// The offset of its first byte in its stream.
    pub at: u64,
    pub bytes: Bytes,
}

impl Piece {
    pub fn end(&self) -> u64 {
        self.at + self.bytes.len() as u64
    }
}

/// The last `cap` bytes of one stream.
pub struct Ring {
    pieces: VecDeque<Piece>,
    /// Bytes held.
    held: usize,
    cap: usize,
    /// Bytes written to the stream, ever.
    end: u64,
}

impl Ring {
    pub fn new(cap: usize) -> Ring {
        Ring {
            pieces: VecDeque::new(),
            held: 0,
            cap,
            end: 0,
        }
    }

    /// The offset of the oldest byte held (the end when none is).
    pub fn start(&self) -> u64 {
        self.end - self.held as u64
    }

    pub fn end(&self) -> u64 {
        self.end
    }

    /// Keeps a new piece, dropping the oldest bytes past the cap.
    pub fn push(&mut self, seq: u64, stream: Stream, bytes: &[u8]) {
        self.end += bytes.len() as u64;
        // Of a piece bigger than the whole ring only its tail can be kept.
        let kept = &bytes[bytes.len().saturating_sub(self.cap)..];
        if kept.is_empty() {
            return;
        }
        self.pieces.push_back(Piece {
            seq,
            stream,
            at: self.end - kept.len() as u64,
            bytes: Bytes::copy_from_slice(kept),
        });
        self.held += kept.len();
        while self.held > self.cap {
            let Some(front) = self.pieces.front_mut() else {
                break;
            };
            let over = self.held - self.cap;
            if front.bytes.len() <= over {
                self.held -= front.bytes.len();
                self.pieces.pop_front();
            } else {
                front.bytes = front.bytes.slice(over..);
                front.at += over as u64;
                self.held -= over;
            }
        }
    }

    /// The pieces holding bytes at or past `offset`, oldest first.
    pub fn since(&self, offset: u64) -> impl Iterator<Item = &Piece> {
        let first = self.pieces.partition_point(|p| p.end() <= offset);
        self.pieces.range(first..)
    }

    /// The bytes held from `from` up to `to` (clamped to what is held).
    pub fn slice(&self, from: u64, to: u64) -> Vec<u8> {
        let from = from.max(self.start());
        let mut out = Vec::with_capacity(to.saturating_sub(from) as usize);
        for piece in self.since(from) {
            if piece.at >= to {
                break;
            }
            let lo = from.saturating_sub(piece.at) as usize;
            let hi = (to.min(piece.end()) - piece.at) as usize;
            out.extend_from_slice(&piece.bytes[lo..hi]);
        }
        out
    }
}

/// Both streams of a process.
pub struct Streams {
    pub stdout: Ring,
    pub stderr: Ring,
    /// Pieces kept so far, of both streams.
    seq: u64,
}

impl Streams {
    pub fn new(cap: usize) -> Streams {
        Streams {
            stdout: Ring::new(cap),
            stderr: Ring::new(cap),
            seq: 0,
        }
    }

    pub fn ring(&self, stream: Stream) -> &Ring {
        match stream {
            Stream::Stdout => &self.stdout,
            Stream::Stderr => &self.stderr,
        }
    }

    pub fn push(&mut self, stream: Stream, bytes: &[u8]) {
        self.seq += 1;
        let seq = self.seq;
        match stream {
            Stream::Stdout => self.stdout.push(seq, stream, bytes),
            Stream::Stderr => self.stderr.push(seq, stream, bytes),
        }
    }

    /// The pieces of both streams past the offsets of `cursor`, in the order
    /// they were written.
    pub fn since(&self, cursor: Cursor) -> Vec<Piece> {
        let mut pieces: Vec<Piece> = self
            .stdout
            .since(cursor.stdout)
            .chain(self.stderr.since(cursor.stderr))
            .cloned()
            .collect();
        pieces.sort_by_key(|p| p.seq);
        pieces
    }
}

/// A reader's place in both streams: the offsets of the next bytes it wants.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Cursor {
    pub stdout: u64,
    pub stderr: u64,
}

impl Cursor {
    /// The offset in `stream`.
    pub fn at(&self, stream: Stream) -> u64 {
        match stream {
            Stream::Stdout => self.stdout,
            Stream::Stderr => self.stderr,
        }
    }

    pub fn of(&mut self, stream: Stream) -> &mut u64 {
        match stream {
            Stream::Stdout => &mut self.stdout,
            Stream::Stderr => &mut self.stderr,
        }
    }

    /// The cursor as an event id: `<stdout offset>.<stderr offset>`.
    pub fn id(&self) -> String {
        format!("{}.{}", self.stdout, self.stderr)
    }

    /// A cursor from an event id; `None` when it is not one.
    pub fn parse(id: &str) -> Option<Cursor> {
        let (out, err) = id.split_once('.')?;
        let offset = |s: &str| match s.bytes().all(|b| b.is_ascii_digit()) {
            true => s.parse().ok(),
            false => None,
        };
        Some(Cursor {
            stdout: offset(out)?,
            stderr: offset(err)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ring_keeps_the_last_bytes_by_offset() {
        let mut ring = Ring::new(8);
        ring.push(1, Stream::Stdout, b"hello");
        ring.push(2, Stream::Stdout, b" world");
        assert_eq!((ring.start(), ring.end()), (3, 11));
        assert_eq!(ring.slice(0, 11), b"lo world");
        assert_eq!(ring.slice(5, 8), b" wo");
        assert_eq!(ring.since(5).count(), 1);
        ring.push(3, Stream::Stdout, b"0123456789abc");
        assert_eq!((ring.start(), ring.end()), (16, 24));
        assert_eq!(ring.slice(0, 24), b"56789abc");
    }

    #[test]
    fn both_streams_replay_in_the_order_they_were_written() {
        let mut streams = Streams::new(100);
        streams.push(Stream::Stdout, b"a");
        streams.push(Stream::Stderr, b"b");
        streams.push(Stream::Stdout, b"c");
        let order: Vec<_> = streams
            .since(Cursor::default())
            .iter()
            .map(|p| p.bytes.clone())
            .collect();
        assert_eq!(order, [&b"a"[..], b"b", b"c"]);
        let after = Cursor {
            stdout: 1,
            stderr: 1,
        };
        assert_eq!(streams.since(after).len(), 1);
    }

    #[test]
    fn cursors_round_trip_through_event_ids() {
        let cursor = Cursor {
            stdout: 12,
            stderr: 3,
        };
        assert_eq!(Cursor::parse(&cursor.id()), Some(cursor));
        for bad in ["", "1", "1.", ".1", "a.b", "-1.2", "1.2.3", "+1.2"] {
            assert_eq!(Cursor::parse(bad), None, "{bad}");
        }
    }
}
