//! Deciding from a connection's first bytes whether this process is an HTTP/2 client, an
//! HTTP/2 server, or neither. Keeps at most the 24 bytes of one preface per direction.

use crate::{event::Direction, http2::PREFACE};

/// What one direction's first bytes are.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum Seen {
    /// Fewer than 24 bytes, all matching the preface so far.
    #[default]
    Partial,
    /// The whole preface.
    Preface,
    /// Something else.
    Other,
}

#[derive(Debug, Default)]
struct DirectionSniff {
    matched: usize,
    seen: Seen,
}

impl DirectionSniff {
    /// Consumes bytes while undecided; returns how many of `bytes` were preface bytes.
    fn feed(&mut self, bytes: &[u8]) -> usize {
        if self.seen != Seen::Partial {
            return 0;
        }
        let n = (PREFACE.len() - self.matched).min(bytes.len());
        if bytes[..n] != PREFACE[self.matched..self.matched + n] {
            self.seen = Seen::Other;
            return 0;
        }
        self.matched += n;
        if self.matched == PREFACE.len() {
            self.seen = Seen::Preface;
        }
        n
    }
}

/// The decision for a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Need more bytes.
    Undecided,
    /// This process sent the preface; `rest` is where frames begin in the bytes just fed.
    Client { rest: usize },
    /// This process received the preface.
    Server,
    /// Not HTTP/2 (or its start was not seen).
    NotHttp2,
}

/// Both directions' first bytes.
#[derive(Debug, Default)]
pub struct Sniffer {
    egress: DirectionSniff,
    ingress: DirectionSniff,
}

impl Sniffer {
    /// Feeds bytes of `dir` and says what is known now.
    pub fn feed(&mut self, dir: Direction, bytes: &[u8]) -> Verdict {
        let used = match dir {
            Direction::Egress => self.egress.feed(bytes),
            Direction::Ingress => self.ingress.feed(bytes),
        };
        match (self.egress.seen, self.ingress.seen) {
            (Seen::Preface, _) => Verdict::Client { rest: used },
            (_, Seen::Preface) => Verdict::Server,
            // A server may send its SETTINGS before reading the client's preface: wait.
            (Seen::Other, Seen::Partial) => Verdict::Undecided,
            // A client sends the preface before anything can arrive.
            (Seen::Partial, Seen::Other) | (Seen::Other, Seen::Other) => Verdict::NotHttp2,
            (Seen::Partial, Seen::Partial) => Verdict::Undecided,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_preface_in_pieces_makes_a_client() {
        let mut s = Sniffer::default();
        assert_eq!(
            s.feed(Direction::Egress, &PREFACE[..10]),
            Verdict::Undecided
        );
        let mut rest = PREFACE[10..].to_vec();
        rest.extend_from_slice(b"\x00\x00\x00\x04");
        assert_eq!(
            s.feed(Direction::Egress, &rest),
            Verdict::Client { rest: 14 }
        );
    }

    #[test]
    fn a_server_that_speaks_first_is_still_a_server() {
        let mut s = Sniffer::default();
        assert_eq!(
            s.feed(Direction::Egress, b"\x00\x00\x06\x04\x00\x00\x00\x00\x00"),
            Verdict::Undecided
        );
        assert_eq!(s.feed(Direction::Ingress, PREFACE), Verdict::Server);
    }

    #[test]
    fn http1_is_not_http2() {
        let mut s = Sniffer::default();
        s.feed(Direction::Egress, b"GET / HTTP/1.1\r\n");
        assert_eq!(
            s.feed(Direction::Ingress, b"HTTP/1.1 200 OK\r\n"),
            Verdict::NotHttp2
        );
    }
}
