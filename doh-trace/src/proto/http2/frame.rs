//! HTTP/2 frame heads: the 9-byte header, frame kinds and flags (RFC 9113 §4.1, §6).

/// Bytes in a frame header.
pub const HEAD_LEN: usize = 9;

/// Frame flag: END_STREAM (DATA, HEADERS).
pub const END_STREAM: u8 = 0x1;
/// Frame flag: ACK (SETTINGS, PING).
pub const ACK: u8 = 0x1;
/// Frame flag: END_HEADERS (HEADERS, PUSH_PROMISE, CONTINUATION).
pub const END_HEADERS: u8 = 0x4;
/// Frame flag: PADDED (DATA, HEADERS, PUSH_PROMISE).
pub const PADDED: u8 = 0x8;
/// Frame flag: PRIORITY (HEADERS).
pub const PRIORITY: u8 = 0x20;

/// SETTINGS identifier of SETTINGS_HEADER_TABLE_SIZE.
pub const SETTINGS_HEADER_TABLE_SIZE: u16 = 0x1;
/// SETTINGS identifier of SETTINGS_MAX_FRAME_SIZE.
pub const SETTINGS_MAX_FRAME_SIZE: u16 = 0x5;
/// The initial SETTINGS_MAX_FRAME_SIZE (RFC 9113 §6.5.2).
pub const DEFAULT_MAX_FRAME_SIZE: u32 = 16_384;
/// The largest value SETTINGS_MAX_FRAME_SIZE may take.
pub const LARGEST_MAX_FRAME_SIZE: u32 = (1 << 24) - 1;

/// Frame type, with a fallback for types this decoder does not know (skipped, per §4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Data,
    Headers,
    Priority,
    RstStream,
    Settings,
    PushPromise,
    Ping,
    GoAway,
    WindowUpdate,
    Continuation,
    Unknown(u8),
}

impl From<u8> for Kind {
    fn from(v: u8) -> Self {
        match v {
            0 => Kind::Data,
            1 => Kind::Headers,
            2 => Kind::Priority,
            3 => Kind::RstStream,
            4 => Kind::Settings,
            5 => Kind::PushPromise,
            6 => Kind::Ping,
            7 => Kind::GoAway,
            8 => Kind::WindowUpdate,
            9 => Kind::Continuation,
            other => Kind::Unknown(other),
        }
    }
}

/// A parsed frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Head {
    /// Payload length (24 bits).
    pub len: u32,
    pub kind: Kind,
    pub flags: u8,
    /// Stream identifier, reserved bit cleared.
    pub stream: u32,
}

impl Head {
    /// Parses a frame header from exactly [`HEAD_LEN`] bytes.
    pub fn parse(b: &[u8; HEAD_LEN]) -> Head {
        Head {
            len: u32::from_be_bytes([0, b[0], b[1], b[2]]),
            kind: Kind::from(b[3]),
            flags: b[4],
            stream: u32::from_be_bytes([b[5], b[6], b[7], b[8]]) & 0x7fff_ffff,
        }
    }

    /// Whether `flag` is set.
    pub fn has(&self, flag: u8) -> bool {
        self.flags & flag != 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_headers_frame_head_and_clears_the_reserved_bit() {
        let h = Head::parse(&[0x00, 0x01, 0x02, 0x01, 0x25, 0x80, 0x00, 0x00, 0x03]);
        assert_eq!(h.len, 258);
        assert_eq!(h.kind, Kind::Headers);
        assert!(h.has(END_STREAM) && h.has(END_HEADERS) && h.has(PRIORITY) && !h.has(PADDED));
        assert_eq!(h.stream, 3);
    }

    #[test]
    fn unknown_kinds_are_kept_not_rejected() {
        assert_eq!(Kind::from(0xfa), Kind::Unknown(0xfa));
    }
}
