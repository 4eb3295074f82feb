//! One direction of a TCP connection put back in order: segments placed by sequence number,
//! those ahead of the next expected byte held (within a bound), retransmissions and overlaps
//! resolved (what was delivered first stays), and holes — a segment never captured, bytes a
//! snap length cut — skipped and reported, so the reader above can resynchronise instead of
//! decoding across them.

use std::collections::BTreeMap;

/// Bytes held ahead of a hole per direction; beyond it the hole is given up.
pub const MAX_HELD: usize = 256 << 10;
/// Segments held ahead of a hole per direction.
const MAX_HELD_SEGMENTS: usize = 512;

/// What one direction counts.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct StreamCounters {
    /// Holes skipped, and the bytes they held.
    pub holes: u64,
    pub missing_bytes: u64,
    /// Bytes received again (retransmissions, overlaps) and dropped.
    pub duplicate_bytes: u64,
    /// Segments that came ahead of the next expected byte.
    pub out_of_order: u64,
}

/// Bytes of the stream, in order: `after_hole` when bytes before them are missing.
#[derive(Debug, PartialEq, Eq)]
pub struct Delivery<'a> {
    pub bytes: &'a [u8],
    pub after_hole: bool,
}

/// A held segment: captured bytes, and its length on the wire.
struct Held {
    bytes: Vec<u8>,
    wire_len: u64,
}

/// One direction of a TCP connection.
#[derive(Default)]
pub struct Stream {
    /// The sequence number at stream position 0, once known.
    base: Option<u32>,
    /// Next stream position expected.
    next: u64,
    /// Segments ahead of `next`, by position.
    held: BTreeMap<u64, Held>,
    held_bytes: usize,
    /// Bytes before the next delivery are missing.
    hole_pending: bool,
    /// Where the stream ends, once its FIN was seen.
    fin_at: Option<u64>,
    /// The furthest position the other side acknowledged.
    acked_to: u64,
    pub counters: StreamCounters,
}

impl Stream {
    /// The SYN (or SYN-ACK) with its sequence number: data begins after it.
    pub fn syn(&mut self, seq: u32) {
        if self.base.is_none() {
            self.base = Some(seq.wrapping_add(1));
        }
    }

    /// The FIN, at `seq` (after the segment's payload): bytes before it not seen by the
    /// stream's end are a hole.
    pub fn fin(&mut self, seq: u32) {
        self.fin_at = self.position(seq);
    }

    /// The other side acknowledged up to `ack`: bytes before it not seen by the stream's end
    /// are a hole (a segment the capture missed, with nothing after it to show it). Only
    /// judged at the end: an acknowledgement may be captured before the data it acknowledges.
    pub fn acked(&mut self, ack: u32) {
        if let Some(at) = self.position(ack) {
            if at > self.acked_to && at.saturating_sub(self.next) <= 1 << 30 {
                self.acked_to = at;
            }
        }
    }

    /// The stream is known to reach `at`: with nothing held, what lies before is missing.
    fn reached(&mut self, at: u64) {
        if at > self.next && self.held.is_empty() && at - self.next <= 1 << 30 {
            self.hole(at - self.next);
            self.next = at;
        }
    }

    /// Whether the stream's start is known (a SYN, or the first segment when joined later).
    pub fn started(&self) -> bool {
        self.base.is_some()
    }

    /// Bytes held ahead of a hole.
    pub fn held_bytes(&self) -> usize {
        self.held_bytes
    }

    /// The stream position of `seq`: the one nearest `next` (sequence numbers wrap).
    fn position(&self, seq: u32) -> Option<u64> {
        let base = self.base?;
        let next32 = (self.next as u32).wrapping_add(base);
        let delta = seq.wrapping_sub(next32) as i32;
        Some(self.next.checked_add_signed(i64::from(delta)).unwrap_or(0))
    }

    /// A segment at `seq` of `wire_len` bytes of which `bytes` were captured: what it makes
    /// deliverable goes to `out`, in order.
    pub fn segment(
        &mut self,
        seq: u32,
        bytes: &[u8],
        wire_len: usize,
        out: &mut dyn FnMut(Delivery<'_>),
    ) {
        if wire_len == 0 {
            return;
        }
        if self.base.is_none() {
            // Joined mid-stream: this segment is where the stream starts.
            self.base = Some(seq);
        }
        let Some(at) = self.position(seq) else { return };
        let wire_len = wire_len as u64;
        let end = at + wire_len;
        if end <= self.next {
            self.counters.duplicate_bytes += wire_len;
            return;
        }
        if at > self.next {
            self.hold(at, bytes, wire_len, out);
            return;
        }
        self.deliver(at, bytes, wire_len, out);
        self.drain(out);
    }

    /// Delivers what of a segment starting at or before `next` is new.
    fn deliver(&mut self, at: u64, bytes: &[u8], wire_len: u64, out: &mut dyn FnMut(Delivery<'_>)) {
        let skip = (self.next - at) as usize;
        self.counters.duplicate_bytes += skip as u64;
        if let Some(new) = bytes.get(skip..).filter(|b| !b.is_empty()) {
            out(Delivery {
                bytes: new,
                after_hole: std::mem::take(&mut self.hole_pending),
            });
        }
        let captured_end = at + bytes.len() as u64;
        let end = at + wire_len;
        if captured_end < end {
            // The capture cut the segment: its tail is a hole.
            let missing = end - captured_end.max(self.next);
            self.hole(missing);
        }
        self.next = end;
    }

    /// Delivers held segments that now follow on.
    fn drain(&mut self, out: &mut dyn FnMut(Delivery<'_>)) {
        while let Some(entry) = self.held.first_entry() {
            if *entry.key() > self.next {
                break;
            }
            let (at, h) = entry.remove_entry();
            self.held_bytes -= h.bytes.len();
            if at + h.wire_len <= self.next {
                self.counters.duplicate_bytes += h.wire_len;
                continue;
            }
            self.deliver(at, &h.bytes, h.wire_len, out);
        }
    }

    /// Keeps a segment that came ahead of a hole; when too much is held the hole is given up.
    fn hold(&mut self, at: u64, bytes: &[u8], wire_len: u64, out: &mut dyn FnMut(Delivery<'_>)) {
        self.counters.out_of_order += 1;
        if self.held.contains_key(&at) {
            // The first copy wins.
            self.counters.duplicate_bytes += wire_len;
            return;
        }
        self.held.insert(
            at,
            Held {
                bytes: bytes.to_vec(),
                wire_len,
            },
        );
        self.held_bytes += bytes.len();
        while self.held_bytes > MAX_HELD || self.held.len() > MAX_HELD_SEGMENTS {
            self.skip_hole(out);
        }
    }

    /// Gives up the hole before the first held segment and delivers what follows it.
    fn skip_hole(&mut self, out: &mut dyn FnMut(Delivery<'_>)) {
        let Some((&at, _)) = self.held.first_key_value() else {
            return;
        };
        if at > self.next {
            self.hole(at - self.next);
            self.next = at;
        }
        self.drain(out);
    }

    fn hole(&mut self, missing: u64) {
        if missing == 0 {
            return;
        }
        self.counters.holes += 1;
        self.counters.missing_bytes += missing;
        self.hole_pending = true;
    }

    /// The stream ends (FIN, RST, the flow evicted, the file's end): whatever is held is
    /// delivered, across the holes before it.
    pub fn finish(&mut self, out: &mut dyn FnMut(Delivery<'_>)) {
        while !self.held.is_empty() {
            self.skip_hole(out);
        }
        // The FIN takes a sequence number of its own, which the other side acknowledges.
        let end = match self.fin_at {
            Some(fin) => fin.max(self.acked_to.saturating_sub(1)),
            None => self.acked_to,
        };
        self.reached(end);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(s: &mut Stream, seq: u32, bytes: &[u8]) -> Vec<(Vec<u8>, bool)> {
        let mut got = Vec::new();
        s.segment(seq, bytes, bytes.len(), &mut |d| {
            got.push((d.bytes.to_vec(), d.after_hole))
        });
        got
    }

    #[test]
    fn reorders_drops_duplicates_and_first_copy_wins() {
        let mut s = Stream::default();
        s.syn(999);
        assert_eq!(run(&mut s, 1000, b"abc"), vec![(b"abc".to_vec(), false)]);
        assert!(run(&mut s, 1006, b"ghi").is_empty(), "held");
        assert!(run(&mut s, 1006, b"XXX").is_empty(), "a second copy");
        // Overlapping: "bcdef" → only "def" is new, then "ghi" follows.
        assert_eq!(
            run(&mut s, 1001, b"bcdef"),
            vec![(b"def".to_vec(), false), (b"ghi".to_vec(), false)]
        );
        assert!(run(&mut s, 1000, b"abc").is_empty());
        assert_eq!(s.counters.duplicate_bytes, 3 + 2 + 3);
        assert_eq!(s.counters.holes, 0);
    }

    #[test]
    fn a_lost_segment_is_a_hole_reported_once() {
        let mut s = Stream::default();
        // Joined mid-stream near the wrap of sequence numbers.
        assert_eq!(
            run(&mut s, u32::MAX - 1, b"ab"),
            vec![(b"ab".to_vec(), false)]
        );
        assert!(run(&mut s, 3, b"xyz").is_empty());
        let mut got = Vec::new();
        s.finish(&mut |d| got.push((d.bytes.to_vec(), d.after_hole)));
        assert_eq!(got, vec![(b"xyz".to_vec(), true)]);
        assert_eq!((s.counters.holes, s.counters.missing_bytes), (1, 3));
    }

    #[test]
    fn a_cut_segment_leaves_a_hole_before_the_next() {
        let mut s = Stream::default();
        s.syn(0);
        let mut got = Vec::new();
        s.segment(1, b"ab", 5, &mut |d| {
            got.push((d.bytes.to_vec(), d.after_hole))
        });
        s.segment(6, b"cd", 2, &mut |d| {
            got.push((d.bytes.to_vec(), d.after_hole))
        });
        assert_eq!(got, vec![(b"ab".to_vec(), false), (b"cd".to_vec(), true)]);
        assert_eq!(s.counters.missing_bytes, 3);
    }

    #[test]
    fn holding_is_bounded() {
        let mut s = Stream::default();
        s.syn(0);
        let chunk = vec![1u8; 1000];
        let mut delivered = 0;
        for i in 0..(MAX_HELD / 1000 + 10) as u32 {
            s.segment(1 + 1000 + i * 1000, &chunk, 1000, &mut |d| {
                delivered += d.bytes.len()
            });
            assert!(s.held_bytes() <= MAX_HELD);
        }
        assert!(delivered > 0);
        assert_eq!(s.counters.holes, 1);
    }
}
