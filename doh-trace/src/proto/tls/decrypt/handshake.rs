//! Handshake messages of one direction (RFC 8446 §4): split out of the handshake records'
//! (decrypted) content however the records cut them, and the few fields a passive reader
//! needs from the ClientHello, ServerHello and EncryptedExtensions. Only the bodies of those
//! and of KeyUpdate are kept (at most [`MAX_KEPT`] bytes each); the rest are counted and
//! skipped, so a large Certificate costs nothing.

pub const CLIENT_HELLO: u8 = 1;
pub const SERVER_HELLO: u8 = 2;
pub const ENCRYPTED_EXTENSIONS: u8 = 8;
pub const FINISHED: u8 = 20;
pub const KEY_UPDATE: u8 = 24;

/// Largest kept message body.
pub const MAX_KEPT: usize = 64 * 1024;

/// The ServerHello.random of a HelloRetryRequest (RFC 8446 §4.1.3): SHA-256 of
/// "HelloRetryRequest".
pub const HRR_RANDOM: [u8; 32] = [
    0xcf, 0x21, 0xad, 0x74, 0xe5, 0x9a, 0x61, 0x11, 0xbe, 0x1d, 0x8c, 0x02, 0x1e, 0x65, 0xb8, 0x91,
    0xc2, 0xa2, 0x11, 0x16, 0x7a, 0xbb, 0x8c, 0x5e, 0x07, 0x9e, 0x09, 0xe2, 0xc8, 0xa8, 0x33, 0x9c,
];

const EXT_ALPN: u16 = 16;
const EXT_PRE_SHARED_KEY: u16 = 41;
const EXT_SUPPORTED_VERSIONS: u16 = 43;

/// A handshake message: its type and, for the kept types, its body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub msg_type: u8,
    pub len: usize,
    /// The body for ClientHello, ServerHello, EncryptedExtensions and KeyUpdate; empty
    /// otherwise.
    pub body: Vec<u8>,
}

/// A kept message longer than [`MAX_KEPT`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TooLarge;

/// Splits one direction's handshake bytes into messages.
#[derive(Debug, Default)]
pub struct HandshakeReader {
    header: [u8; 4],
    header_len: usize,
    /// Body bytes still to come of the current message.
    remaining: usize,
    body: Vec<u8>,
    keep: bool,
}

impl HandshakeReader {
    /// Heap bytes held.
    pub fn held_bytes(&self) -> usize {
        self.body.capacity()
    }

    /// Whether a message is part-way through (a key change must not fall inside one).
    pub fn in_message(&self) -> bool {
        self.header_len > 0
    }

    pub fn push(&mut self, mut bytes: &[u8], out: &mut Vec<Message>) -> Result<(), TooLarge> {
        while !bytes.is_empty() {
            if self.header_len < 4 {
                let take = (4 - self.header_len).min(bytes.len());
                self.header[self.header_len..self.header_len + take]
                    .copy_from_slice(&bytes[..take]);
                self.header_len += take;
                bytes = &bytes[take..];
                if self.header_len < 4 {
                    return Ok(());
                }
                let h = self.header;
                self.remaining =
                    usize::from(h[1]) << 16 | usize::from(h[2]) << 8 | usize::from(h[3]);
                self.keep = matches!(
                    h[0],
                    CLIENT_HELLO | SERVER_HELLO | ENCRYPTED_EXTENSIONS | KEY_UPDATE
                );
                if self.keep && self.remaining > MAX_KEPT {
                    return Err(TooLarge);
                }
                self.body.clear();
            }
            let take = self.remaining.min(bytes.len());
            if self.keep {
                self.body.extend_from_slice(&bytes[..take]);
            }
            self.remaining -= take;
            bytes = &bytes[take..];
            if self.remaining == 0 {
                let h = self.header;
                out.push(Message {
                    msg_type: h[0],
                    len: usize::from(h[1]) << 16 | usize::from(h[2]) << 8 | usize::from(h[3]),
                    body: std::mem::take(&mut self.body),
                });
                self.header_len = 0;
            }
        }
        Ok(())
    }
}

/// A malformed hello.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Malformed;

struct Cursor<'a>(&'a [u8]);

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], Malformed> {
        if n > self.0.len() {
            return Err(Malformed);
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Ok(head)
    }
    fn u8(&mut self) -> Result<u8, Malformed> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<u16, Malformed> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }
    fn vec8(&mut self) -> Result<&'a [u8], Malformed> {
        let n = self.u8()?;
        self.take(usize::from(n))
    }
    fn vec16(&mut self) -> Result<&'a [u8], Malformed> {
        let n = self.u16()?;
        self.take(usize::from(n))
    }
}

/// What the ClientHello says that decryption needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientHello {
    pub random: [u8; 32],
    pub session_id: Vec<u8>,
}

pub fn parse_client_hello(body: &[u8]) -> Result<ClientHello, Malformed> {
    let mut c = Cursor(body);
    c.u16()?;
    let random = c.take(32)?.try_into().map_err(|_| Malformed)?;
    let session_id = c.vec8()?.to_vec();
    Ok(ClientHello { random, session_id })
}

/// What the ServerHello (or HelloRetryRequest) says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerHello {
    pub random: [u8; 32],
    pub legacy_version: u16,
    pub session_id: Vec<u8>,
    pub cipher_suite: u16,
    /// The `supported_versions` extension's selected version (TLS 1.3: 0x0304).
    pub selected_version: Option<u16>,
    /// The ALPN protocol the server chose (TLS 1.2 puts it here).
    pub alpn: Option<String>,
    /// A `pre_shared_key` extension: TLS 1.3 resumption.
    pub pre_shared_key: bool,
}

impl ServerHello {
    pub fn is_hello_retry_request(&self) -> bool {
        self.random == HRR_RANDOM
    }
}

pub fn parse_server_hello(body: &[u8]) -> Result<ServerHello, Malformed> {
    let mut c = Cursor(body);
    let legacy_version = c.u16()?;
    let random = c.take(32)?.try_into().map_err(|_| Malformed)?;
    let session_id = c.vec8()?.to_vec();
    let cipher_suite = c.u16()?;
    c.u8()?; // legacy_compression_method
    let mut hello = ServerHello {
        random,
        legacy_version,
        session_id,
        cipher_suite,
        selected_version: None,
        alpn: None,
        pre_shared_key: false,
    };
    if c.0.is_empty() {
        return Ok(hello);
    }
    for_each_extension(c.vec16()?, |ext, data| {
        match ext {
            EXT_SUPPORTED_VERSIONS => {
                hello.selected_version = Some(Cursor(data).u16()?);
            }
            EXT_ALPN => hello.alpn = parse_alpn(data)?,
            EXT_PRE_SHARED_KEY => hello.pre_shared_key = true,
            _ => {}
        }
        Ok(())
    })?;
    Ok(hello)
}

/// The ALPN protocol in an EncryptedExtensions body, if any.
pub fn encrypted_extensions_alpn(body: &[u8]) -> Result<Option<String>, Malformed> {
    let mut alpn = None;
    for_each_extension(Cursor(body).vec16()?, |ext, data| {
        if ext == EXT_ALPN {
            alpn = parse_alpn(data)?;
        }
        Ok(())
    })?;
    Ok(alpn)
}

fn for_each_extension(
    mut list: &[u8],
    mut f: impl FnMut(u16, &[u8]) -> Result<(), Malformed>,
) -> Result<(), Malformed> {
    while !list.is_empty() {
        let mut c = Cursor(list);
        let ext = c.u16()?;
        let data = c.vec16()?;
        f(ext, data)?;
        list = c.0;
    }
    Ok(())
}

/// The first protocol of an ALPN extension, if it is printable ASCII.
fn parse_alpn(data: &[u8]) -> Result<Option<String>, Malformed> {
    let mut list = Cursor(Cursor(data).vec16()?);
    let name = list.vec8()?;
    Ok(std::str::from_utf8(name)
        .ok()
        .filter(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_graphic()))
        .map(str::to_owned))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_across_any_split() {
        let stream = [
            &[8u8, 0, 0, 2, 0, 0][..],
            &[11, 0, 0, 3, 1, 2, 3],
            &[20, 0, 0, 0],
        ]
        .concat();
        for split in 0..stream.len() {
            let mut reader = HandshakeReader::default();
            let mut out = Vec::new();
            reader.push(&stream[..split], &mut out).unwrap();
            reader.push(&stream[split..], &mut out).unwrap();
            let types: Vec<_> = out
                .iter()
                .map(|m| (m.msg_type, m.len, m.body.len()))
                .collect();
            assert_eq!(types, vec![(8, 2, 2), (11, 3, 0), (20, 0, 0)]);
            assert!(!reader.in_message());
        }
        let mut reader = HandshakeReader::default();
        assert_eq!(
            reader.push(&[1, 0xff, 0xff, 0xff], &mut Vec::new()),
            Err(TooLarge)
        );
    }

    #[test]
    fn hellos() {
        assert_eq!(parse_server_hello(&[3, 3, 1]), Err(Malformed));
        let mut body = vec![3, 3];
        body.extend_from_slice(&HRR_RANDOM);
        body.extend_from_slice(&[0, 0x13, 0x02, 0]);
        body.extend_from_slice(&[0, 6, 0, 43, 0, 2, 3, 4]);
        let hello = parse_server_hello(&body).unwrap();
        assert!(hello.is_hello_retry_request());
        assert_eq!(
            (hello.cipher_suite, hello.selected_version),
            (0x1302, Some(0x0304))
        );
        let ee = [0, 9, 0, 16, 0, 5, 0, 3, 2, b'h', b'2'];
        assert_eq!(encrypted_extensions_alpn(&ee), Ok(Some("h2".into())));
        assert_eq!(encrypted_extensions_alpn(&ee[..8]), Err(Malformed));
    }
}
