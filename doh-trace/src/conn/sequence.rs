//! Checks that the chunks of each TLS call, and the calls themselves, arrive without gaps.

/// Tracks one direction of one connection.
#[derive(Debug, Default, Clone, Copy)]
pub struct CallSequence {
    /// Next offset expected within the current call.
    next: u32,
    /// Total length of the current call.
    total: u32,
}

impl CallSequence {
    /// Records a chunk at `offset` of `len` bytes of a call of `total` bytes. Returns false if
    /// bytes are missing before it (a lost chunk, or the previous call was cut short).
    pub fn accept(&mut self, offset: u32, len: u32, total: u32) -> bool {
        let contiguous = if offset == 0 {
            self.next == self.total
        } else {
            offset == self.next && total == self.total
        };
        self.total = total;
        self.next = offset.saturating_add(len);
        contiguous
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_whole_calls_and_chunked_calls() {
        let mut s = CallSequence::default();
        assert!(s.accept(0, 10, 10));
        assert!(s.accept(0, 4096, 5000));
        assert!(s.accept(4096, 904, 5000));
        assert!(s.accept(0, 1, 1));
    }

    #[test]
    fn detects_a_lost_middle_chunk_and_a_cut_call() {
        let mut s = CallSequence::default();
        assert!(s.accept(0, 4096, 9000));
        assert!(!s.accept(8192, 808, 9000), "chunk at 4096 missing");
        let mut s = CallSequence::default();
        assert!(s.accept(0, 4096, 9000));
        assert!(!s.accept(0, 10, 10), "previous call never finished");
    }
}
