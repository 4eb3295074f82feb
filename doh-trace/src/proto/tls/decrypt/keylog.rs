//! NSS key log files (`SSLKEYLOGFILE`): the secrets TLS libraries write for each connection,
//! keyed by the connection's ClientHello random.
//!
//! A line is `LABEL <client random, 64 hex digits> <secret, hex>`; `#` starts a comment. The
//! labels kept are `CLIENT_RANDOM` (the TLS 1.2 master secret, 48 bytes) and the TLS 1.3
//! `CLIENT_HANDSHAKE_TRAFFIC_SECRET`, `SERVER_HANDSHAKE_TRAFFIC_SECRET`,
//! `CLIENT_TRAFFIC_SECRET_0` and `SERVER_TRAFFIC_SECRET_0` (32 or 48 bytes). The early-data,
//! exporter, later traffic secret (OpenSSL's `CLIENT_TRAFFIC_SECRET_N` after a KeyUpdate) and
//! `RSA` lines are well formed but not needed: counted as ignored. Anything else
//! is counted as malformed. Nothing here panics; the table holds at most [`MAX_ENTRIES`]
//! client randoms and a line longer than [`MAX_LINE`] is malformed.

use std::collections::HashMap;

/// Most client randoms kept; lines for further connections are counted as dropped.
pub const MAX_ENTRIES: usize = 262_144;
/// Longest line looked at (label, two fields and separators); longer lines are malformed.
pub const MAX_LINE: usize = 512;
/// Longest secret (SHA-384 output, the TLS 1.2 master secret).
pub const MAX_SECRET: usize = 48;

/// One secret from a key log line.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Secret {
    bytes: [u8; MAX_SECRET],
    len: u8,
}

impl Secret {
    /// A secret of 1 to [`MAX_SECRET`] bytes.
    pub fn new(bytes: &[u8]) -> Option<Self> {
        if bytes.is_empty() || bytes.len() > MAX_SECRET {
            return None;
        }
        let mut secret = Secret {
            bytes: [0; MAX_SECRET],
            len: bytes.len() as u8,
        };
        secret.bytes[..bytes.len()].copy_from_slice(bytes);
        Some(secret)
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Secret({} bytes)", self.len)
    }
}

/// What the key log holds for one connection (one client random).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Secrets {
    /// TLS 1.2 master secret (`CLIENT_RANDOM`).
    pub master_secret: Option<Secret>,
    /// TLS 1.3 `CLIENT_HANDSHAKE_TRAFFIC_SECRET`.
    pub client_handshake: Option<Secret>,
    /// TLS 1.3 `SERVER_HANDSHAKE_TRAFFIC_SECRET`.
    pub server_handshake: Option<Secret>,
    /// TLS 1.3 `CLIENT_TRAFFIC_SECRET_0`.
    pub client_traffic: Option<Secret>,
    /// TLS 1.3 `SERVER_TRAFFIC_SECRET_0`.
    pub server_traffic: Option<Secret>,
}

/// Counts of the lines read by one [`KeyLog::add_text`] call (or all of them:
/// [`KeyLog::stats`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KeyLogStats {
    /// Lines looked at, comments and blank lines included.
    pub lines: u64,
    /// Comments and blank lines.
    pub comments: u64,
    /// Secrets stored (a repeated line stores again and counts again).
    pub added: u64,
    /// Well-formed lines of labels not needed for decryption (early data, exporters, RSA).
    pub ignored: u64,
    /// Lines that are not `LABEL hex hex` with a known label and sizes.
    pub malformed: u64,
    /// Well-formed lines for new client randoms once the table held [`MAX_ENTRIES`].
    pub dropped: u64,
}

impl KeyLogStats {
    fn add(&mut self, other: &KeyLogStats) {
        self.lines += other.lines;
        self.comments += other.comments;
        self.added += other.added;
        self.ignored += other.ignored;
        self.malformed += other.malformed;
        self.dropped += other.dropped;
    }
}

/// The secrets of a key log, by client random. Feed it text with [`KeyLog::add_text`] (whole
/// lines) or [`KeyLog::add_chunk`] (pieces of a growing file, split anywhere).
#[derive(Debug, Default)]
pub struct KeyLog {
    entries: HashMap<[u8; 32], Secrets>,
    /// The unterminated end of the last [`KeyLog::add_chunk`] (at most [`MAX_LINE`] + 1 bytes).
    partial: Vec<u8>,
    stats: KeyLogStats,
}

enum Label {
    ClientRandom,
    ClientHandshake,
    ServerHandshake,
    ClientTraffic,
    ServerTraffic,
    Ignored,
}

impl KeyLog {
    /// Reads key log text made of whole lines; a last line without a newline is read too.
    pub fn add_text(&mut self, text: &[u8]) -> KeyLogStats {
        let mut stats = KeyLogStats::default();
        for line in text.split(|&b| b == b'\n') {
            self.add_line(line, &mut stats);
        }
        // `split` yields one empty piece after a final newline (or for empty text): not a line.
        if text.is_empty() || text.ends_with(b"\n") {
            stats.lines -= 1;
            stats.comments -= 1;
        }
        self.stats.add(&stats);
        stats
    }

    /// Reads the next piece of a growing key log: whole lines are read now, an unterminated
    /// end is kept until the rest of its line arrives.
    pub fn add_chunk(&mut self, chunk: &[u8]) -> KeyLogStats {
        let mut stats = KeyLogStats::default();
        let mut rest = chunk;
        while let Some(end) = rest.iter().position(|&b| b == b'\n') {
            let (line, after) = rest.split_at(end);
            if self.partial.is_empty() {
                self.add_line(line, &mut stats);
            } else {
                let mut whole = std::mem::take(&mut self.partial);
                extend_bounded(&mut whole, line);
                self.add_line(&whole, &mut stats);
            }
            rest = &after[1..];
        }
        extend_bounded(&mut self.partial, rest);
        self.stats.add(&stats);
        stats
    }

    /// The secrets logged for the connection whose ClientHello carried `client_random`.
    pub fn get(&self, client_random: &[u8; 32]) -> Option<&Secrets> {
        self.entries.get(client_random)
    }

    /// How many connections (client randoms) have secrets.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Counts over every line read so far.
    pub fn stats(&self) -> KeyLogStats {
        self.stats
    }

    fn add_line(&mut self, line: &[u8], stats: &mut KeyLogStats) {
        stats.lines += 1;
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let trimmed = line.trim_ascii();
        if trimmed.is_empty() || trimmed.starts_with(b"#") {
            stats.comments += 1;
            return;
        }
        if line.len() > MAX_LINE {
            stats.malformed += 1;
            return;
        }
        let mut fields = trimmed
            .split(|b| b.is_ascii_whitespace())
            .filter(|f| !f.is_empty());
        let (Some(label), Some(random), Some(secret), None) =
            (fields.next(), fields.next(), fields.next(), fields.next())
        else {
            stats.malformed += 1;
            return;
        };
        let label = match label {
            b"CLIENT_RANDOM" => Label::ClientRandom,
            b"CLIENT_HANDSHAKE_TRAFFIC_SECRET" => Label::ClientHandshake,
            b"SERVER_HANDSHAKE_TRAFFIC_SECRET" => Label::ServerHandshake,
            b"CLIENT_TRAFFIC_SECRET_0" => Label::ClientTraffic,
            b"SERVER_TRAFFIC_SECRET_0" => Label::ServerTraffic,
            b"CLIENT_EARLY_TRAFFIC_SECRET"
            | b"EARLY_EXPORTER_SECRET"
            | b"EARLY_EXPORTER_MASTER_SECRET"
            | b"EXPORTER_SECRET"
            | b"RSA" => Label::Ignored,
            // OpenSSL logs the secrets after each KeyUpdate as `…_TRAFFIC_SECRET_N`; they are
            // derived here from `…_0`.
            l if l.starts_with(b"CLIENT_TRAFFIC_SECRET_")
                || l.starts_with(b"SERVER_TRAFFIC_SECRET_") =>
            {
                Label::Ignored
            }
            _ => {
                stats.malformed += 1;
                return;
            }
        };
        let mut secret_bytes = [0u8; MAX_SECRET];
        let secret_len = match decode_hex(secret, &mut secret_bytes) {
            Some(len) => len,
            None => {
                stats.malformed += 1;
                return;
            }
        };
        if matches!(label, Label::Ignored) {
            // RSA lines carry 8 bytes of the encrypted premaster secret, not a client random.
            stats.ignored += 1;
            return;
        }
        let mut client_random = [0u8; 32];
        if decode_hex(random, &mut client_random) != Some(32) {
            stats.malformed += 1;
            return;
        }
        let size_ok = match label {
            Label::ClientRandom => secret_len == 48,
            _ => secret_len == 32 || secret_len == 48,
        };
        let Some(secret) = Secret::new(&secret_bytes[..secret_len]).filter(|_| size_ok) else {
            stats.malformed += 1;
            return;
        };
        if !self.entries.contains_key(&client_random) && self.entries.len() >= MAX_ENTRIES {
            stats.dropped += 1;
            return;
        }
        let entry = self.entries.entry(client_random).or_default();
        let slot = match label {
            Label::ClientRandom => &mut entry.master_secret,
            Label::ClientHandshake => &mut entry.client_handshake,
            Label::ServerHandshake => &mut entry.server_handshake,
            Label::ClientTraffic => &mut entry.client_traffic,
            Label::ServerTraffic | Label::Ignored => &mut entry.server_traffic,
        };
        *slot = Some(secret);
        stats.added += 1;
    }
}

/// Appends to a partial line, keeping at most one byte past [`MAX_LINE`] (enough to know the
/// line is too long).
fn extend_bounded(partial: &mut Vec<u8>, more: &[u8]) {
    let room = (MAX_LINE + 1).saturating_sub(partial.len());
    partial.extend_from_slice(&more[..more.len().min(room)]);
}

/// Decodes hex digits into `out`; `None` for an odd count, a non-hex digit or more bytes than
/// `out` holds. Returns how many bytes were written.
pub(crate) fn decode_hex(text: &[u8], out: &mut [u8]) -> Option<usize> {
    if !text.len().is_multiple_of(2) || text.len() / 2 > out.len() {
        return None;
    }
    let digit = |c: u8| char::from(c).to_digit(16).map(|d| d as u8);
    for (slot, pair) in out.iter_mut().zip(text.chunks_exact(2)) {
        *slot = digit(pair[0])? << 4 | digit(pair[1])?;
    }
    Some(text.len() / 2)
}

#[cfg(test)]
mod tests {
    use super::*;

    const RANDOM: &str = "cb34ecb1e78163ba1c38c6dacb196a6dffa21a8d9912ec18a2ef6283024dece7";

    #[test]
    fn reads_labels_comments_and_counts_malformed() {
        let secret32 = "ab".repeat(32);
        let master = "cd".repeat(48);
        let text = format!(
            "# SSL/TLS secrets log file\n\n\
             CLIENT_RANDOM {RANDOM} {master}\r\n\
             CLIENT_HANDSHAKE_TRAFFIC_SECRET {RANDOM} {secret32}\n\
             SERVER_HANDSHAKE_TRAFFIC_SECRET {RANDOM} {secret32}\n\
             CLIENT_TRAFFIC_SECRET_0 {RANDOM} {secret32}\n\
             SERVER_TRAFFIC_SECRET_0 {RANDOM} {secret32}\n\
             EXPORTER_SECRET {RANDOM} {secret32}\n\
             CLIENT_EARLY_TRAFFIC_SECRET {RANDOM} {secret32}\n\
             CLIENT_RANDOM {RANDOM} {secret32}\n\
             CLIENT_RANDOM abcd {master}\n\
             SOMETHING {RANDOM} {secret32}\n\
             CLIENT_RANDOM {RANDOM}\n\
             CLIENT_RANDOM {RANDOM} zz{}",
            &master[2..]
        );
        let mut log = KeyLog::default();
        let stats = log.add_text(text.as_bytes());
        assert_eq!(
            stats,
            KeyLogStats {
                lines: 14,
                comments: 2,
                added: 5,
                ignored: 2,
                malformed: 5,
                dropped: 0
            }
        );
        let mut random = [0; 32];
        decode_hex(RANDOM.as_bytes(), &mut random).unwrap();
        let entry = log.get(&random).unwrap();
        assert_eq!(entry.master_secret.unwrap().as_bytes(), &[0xcd; 48]);
        assert_eq!(entry.server_traffic.unwrap().as_bytes(), &[0xab; 32]);
        assert_eq!(log.len(), 1);
        assert_eq!(log.stats(), stats);
    }

    #[test]
    fn chunks_split_anywhere_read_as_whole_text() {
        let text = format!("CLIENT_RANDOM {RANDOM} {}\nbad line\n", "01".repeat(48));
        for split in 0..text.len() {
            let mut log = KeyLog::default();
            let mut stats = log.add_chunk(&text.as_bytes()[..split]);
            stats.add(&log.add_chunk(&text.as_bytes()[split..]));
            assert_eq!(
                (stats.added, stats.malformed, stats.lines),
                (1, 1, 2),
                "{split}"
            );
            assert_eq!(log.len(), 1);
        }
    }

    #[test]
    fn long_lines_are_bounded_and_malformed() {
        let mut log = KeyLog::default();
        let long = vec![b'a'; 100_000];
        assert_eq!(log.add_chunk(&long).lines, 0);
        assert!(log.partial.len() <= MAX_LINE + 1);
        assert_eq!(log.add_chunk(b"\n").malformed, 1);
        assert_eq!(log.add_text(&long).malformed, 1);
    }
}
