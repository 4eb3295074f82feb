//! TLS record framing of one direction (RFC 8446 §5.1, RFC 5246 §6.2): bytes come in split
//! anywhere, whole records go out. A record longer than [`MAX_FRAGMENT`] or with a header that
//! is not TLS is an error; what is buffered is bounded by the caller through
//! [`RecordReader::buffered`].

/// Largest record fragment accepted: 2^14 plus the 256 bytes TLS 1.3 allows for the inner
/// content type, padding and tag (RFC 8446 §5.2); TLS 1.2 AEAD records need at most 2^14 + 24.
pub const MAX_FRAGMENT: usize = (1 << 14) + 256;
pub const HEADER_LEN: usize = 5;

pub const CHANGE_CIPHER_SPEC: u8 = 20;
pub const ALERT: u8 = 21;
pub const HANDSHAKE: u8 = 22;
pub const APPLICATION_DATA: u8 = 23;

/// A record header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub content_type: u8,
    pub version: u16,
    pub len: usize,
}

impl Header {
    pub fn bytes(&self) -> [u8; HEADER_LEN] {
        let v = self.version.to_be_bytes();
        let l = (self.len as u16).to_be_bytes();
        [self.content_type, v[0], v[1], l[0], l[1]]
    }
}

/// Why the bytes are not TLS records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FramingError {
    /// A content type outside 20..=23 (heartbeat, 24, is not expected either).
    ContentType,
    /// A record version other than 3.0..=3.4.
    Version,
    /// A fragment longer than [`MAX_FRAGMENT`].
    TooLong,
}

/// Checks a record header; `Ok(None)` if fewer than 5 bytes are there yet.
pub fn parse_header(bytes: &[u8]) -> Result<Option<Header>, FramingError> {
    if let Some(&t) = bytes.first() {
        if !(CHANGE_CIPHER_SPEC..=APPLICATION_DATA).contains(&t) {
            return Err(FramingError::ContentType);
        }
    }
    if bytes.get(1).is_some_and(|&major| major != 3) || bytes.get(2).is_some_and(|&minor| minor > 4)
    {
        return Err(FramingError::Version);
    }
    let Some(h) = bytes.get(..HEADER_LEN) else {
        return Ok(None);
    };
    let len = usize::from(u16::from_be_bytes([h[3], h[4]]));
    if len > MAX_FRAGMENT {
        return Err(FramingError::TooLong);
    }
    Ok(Some(Header {
        content_type: h[0],
        version: u16::from_be_bytes([h[1], h[2]]),
        len,
    }))
}

/// The unconsumed bytes of one direction.
#[derive(Debug, Default)]
pub struct RecordReader {
    buf: Vec<u8>,
    /// Bytes of `buf` already handed out as records.
    pos: usize,
}

impl RecordReader {
    pub fn push(&mut self, bytes: &[u8]) {
        self.compact();
        self.buf.extend_from_slice(bytes);
    }

    /// The next whole record, without consuming it: its header and fragment.
    pub fn peek(&self) -> Result<Option<(Header, &[u8])>, FramingError> {
        let rest = &self.buf[self.pos..];
        let Some(header) = parse_header(rest)? else {
            return Ok(None);
        };
        Ok(rest
            .get(HEADER_LEN..HEADER_LEN + header.len)
            .map(|fragment| (header, fragment)))
    }

    /// Consumes the record [`RecordReader::peek`] returned.
    pub fn consume(&mut self, header: &Header) {
        self.pos = (self.pos + HEADER_LEN + header.len).min(self.buf.len());
    }

    /// Bytes waiting: a partial record, or whole records not consumed yet.
    pub fn buffered(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// Heap bytes held.
    pub fn held_bytes(&self) -> usize {
        self.buf.capacity()
    }

    /// Drops everything buffered.
    pub fn clear(&mut self) {
        self.buf = Vec::new();
        self.pos = 0;
    }

    /// Drops the consumed bytes (and a large buffer with nothing in it).
    pub fn compact(&mut self) {
        if self.pos == self.buf.len() && self.buf.capacity() > 4096 {
            // Nothing waits: give a large buffer back rather than hold it per connection.
            self.clear();
        } else if self.pos > 0 {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
    }
}

/// Frames a handshake message as plaintext handshake records (for the ClientHello parser,
/// which reads records).
pub fn wrap_handshake(message: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(message.len() + HEADER_LEN * (1 + message.len() / (1 << 14)));
    for fragment in message.chunks(1 << 14) {
        out.extend_from_slice(&[HANDSHAKE, 3, 1]);
        out.extend_from_slice(&(fragment.len() as u16).to_be_bytes());
        out.extend_from_slice(fragment);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_across_any_split() {
        let stream = [
            &[22u8, 3, 1, 0, 2, 1, 2][..],
            &[20, 3, 3, 0, 1, 1],
            &[23, 3, 3, 0, 0],
        ]
        .concat();
        for split in 0..stream.len() {
            let mut reader = RecordReader::default();
            let mut seen = Vec::new();
            for part in [&stream[..split], &stream[split..]] {
                reader.push(part);
                while let Some((header, fragment)) = reader.peek().unwrap() {
                    seen.push((header.content_type, fragment.to_vec()));
                    reader.consume(&header);
                }
            }
            assert_eq!(seen, vec![(22, vec![1, 2]), (20, vec![1]), (23, vec![])]);
            assert_eq!(reader.buffered(), 0);
        }
    }

    #[test]
    fn bad_headers() {
        assert_eq!(parse_header(&[0x80]), Err(FramingError::ContentType));
        assert_eq!(parse_header(&[22, 2]), Err(FramingError::Version));
        assert_eq!(
            parse_header(&[23, 3, 3, 0xff, 0xff]),
            Err(FramingError::TooLong)
        );
        assert_eq!(parse_header(&[23, 3, 3, 0x41]), Ok(None));
        let ok = parse_header(&[23, 3, 3, 0x41, 0x00]).unwrap().unwrap();
        assert_eq!(ok.bytes(), [23, 3, 3, 0x41, 0x00]);
    }

    #[test]
    fn wraps_long_messages() {
        let message = vec![1u8; (1 << 14) + 3];
        let records = wrap_handshake(&message);
        assert_eq!(records.len(), message.len() + 10);
        assert_eq!(&records[..5], &[22, 3, 1, 0x40, 0]);
    }
}
