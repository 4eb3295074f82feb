//! The ClientHello of a QUIC connection, from its client Initial packets (RFC 9000 §17.2.2).
//! Their keys come from the Destination Connection ID and a published salt (RFC 9001 §5.2;
//! QUIC v2: RFC 9369 §3.3), so anyone can read them: long header parsed, header protection
//! removed (§5.4, `ring`'s AES header-protection mask), payload opened with AES-128-GCM, the
//! CRYPTO frames put back in order. The ClientHello then goes to the TLS ClientHello parser
//! for its server name and ALPN ([`client_hello_info`]).
//!
//! Input is untrusted: nothing panics, connection ids are at most 20 bytes, the CRYPTO stream
//! kept is at most [`MAX_CRYPTO`] bytes in at most [`MAX_PIECES`] pieces.

use ring::aead::{self, quic, Aad, LessSafeKey, Nonce, UnboundKey};

use super::{
    cipher::Hash,
    record,
    schedule::{expand_label, extract},
};
use crate::proto::tls::client_hello::{parse_client_hello, ClientHelloInfo, HelloParse};

/// Most CRYPTO stream bytes reassembled (a ClientHello with post-quantum key shares is ~2 KB).
pub const MAX_CRYPTO: usize = 16 * 1024;
/// Most CRYPTO frames kept.
pub const MAX_PIECES: usize = 64;

const VERSION_1: u32 = 1;
const VERSION_2: u32 = 0x6b33_43cf;
const SALT_V1: [u8; 20] = [
    0x38, 0x76, 0x2c, 0xf7, 0xf5, 0x59, 0x34, 0xb3, 0x4d, 0x17, 0x9a, 0xe6, 0xa4, 0xc8, 0x0c, 0xad,
    0xcc, 0xbb, 0x7f, 0x0a,
];
const SALT_V2: [u8; 20] = [
    0x0d, 0xed, 0xe3, 0xde, 0xf7, 0x00, 0xa6, 0xdb, 0x81, 0x93, 0x81, 0xbe, 0x6e, 0x26, 0x9d, 0xcb,
    0xf9, 0xbd, 0x2e, 0xd9,
];
const MAX_CID: usize = 20;
const SAMPLE_LEN: usize = 16;
const TAG_LEN: usize = 16;

/// The client Initial keys of one Destination Connection ID.
pub struct InitialKeys {
    pub key: [u8; 16],
    pub iv: [u8; 12],
    pub hp: [u8; 16],
}

/// The client's Initial keys for `dcid` (RFC 9001 §5.2; `v2` for QUIC version 2).
pub fn client_initial_keys(dcid: &[u8], v2: bool) -> InitialKeys {
    let (salt, labels): (&[u8], [&[u8]; 3]) = if v2 {
        (&SALT_V2, [b"quicv2 key", b"quicv2 iv", b"quicv2 hp"])
    } else {
        (&SALT_V1, [b"quic key", b"quic iv", b"quic hp"])
    };
    let initial = extract(Hash::Sha256, salt, dcid);
    let mut client = [0u8; 32];
    let mut keys = InitialKeys {
        key: [0; 16],
        iv: [0; 12],
        hp: [0; 16],
    };
    // Lengths are fixed and small: these expansions cannot fail.
    let _ = expand_label(Hash::Sha256, &initial, b"client in", b"", &mut client);
    let _ = expand_label(Hash::Sha256, &client, labels[0], b"", &mut keys.key);
    let _ = expand_label(Hash::Sha256, &client, labels[1], b"", &mut keys.iv);
    let _ = expand_label(Hash::Sha256, &client, labels[2], b"", &mut keys.hp);
    keys
}

/// Reads a QUIC variable-length integer (RFC 9000 §16).
fn varint(bytes: &[u8], pos: &mut usize) -> Option<u64> {
    let first = *bytes.get(*pos)?;
    let len = 1usize << (first >> 6);
    let raw = bytes.get(*pos..*pos + len)?;
    let mut value = u64::from(first & 0x3f);
    for &b in &raw[1..] {
        value = value << 8 | u64::from(b);
    }
    *pos += len;
    Some(value)
}

/// Where a long-header packet's fields are.
struct LongHeader {
    initial: bool,
    v2: bool,
    dcid: std::ops::Range<usize>,
    pn_offset: usize,
    /// End of this packet in the datagram.
    end: usize,
}

/// Parses the long header at the start of `packet`; `None` when it is not one of QUIC v1 or
/// v2 (or a Retry, which has no length), or is cut short.
fn long_header(packet: &[u8]) -> Option<LongHeader> {
    let first = *packet.first()?;
    if first & 0x80 == 0 {
        return None;
    }
    let version = u32::from_be_bytes(packet.get(1..5)?.try_into().ok()?);
    let v2 = match version {
        VERSION_1 => false,
        VERSION_2 => true,
        _ => return None,
    };
    let packet_type = (first >> 4) & 3;
    let (initial, retry) = if v2 {
        (packet_type == 1, packet_type == 0)
    } else {
        (packet_type == 0, packet_type == 3)
    };
    if retry {
        return None;
    }
    let mut pos = 5;
    let dcid_len = usize::from(*packet.get(pos)?);
    if dcid_len > MAX_CID {
        return None;
    }
    let dcid = pos + 1..pos + 1 + dcid_len;
    pos = dcid.end;
    let scid_len = usize::from(*packet.get(pos)?);
    if scid_len > MAX_CID {
        return None;
    }
    pos += 1 + scid_len;
    if initial {
        let token_len = usize::try_from(varint(packet, &mut pos)?).ok()?;
        pos = pos.checked_add(token_len)?;
    }
    let length = usize::try_from(varint(packet, &mut pos)?).ok()?;
    let end = pos.checked_add(length)?;
    if end > packet.len() {
        return None;
    }
    Some(LongHeader {
        initial,
        v2,
        dcid,
        pn_offset: pos,
        end,
    })
}

/// Removes header protection from `packet` (one packet, `pn_offset` from its header) in
/// place; returns the packet number's length. `None` if the packet is too short for a sample.
pub fn remove_header_protection(
    packet: &mut [u8],
    pn_offset: usize,
    hp: &[u8; 16],
) -> Option<usize> {
    let sample = packet.get(pn_offset + 4..pn_offset + 4 + SAMPLE_LEN)?;
    let key = quic::HeaderProtectionKey::new(&quic::AES_128, hp).ok()?;
    let mask = key.new_mask(sample).ok()?;
    packet[0] ^= mask[0] & 0x0f;
    let pn_len = usize::from(packet[0] & 3) + 1;
    for (b, m) in packet
        .get_mut(pn_offset..pn_offset + pn_len)?
        .iter_mut()
        .zip(&mask[1..])
    {
        *b ^= m;
    }
    Some(pn_len)
}

/// Opens one client Initial packet (its bytes only, modified in place): the payload's range.
fn open_initial(packet: &mut [u8], header: &LongHeader) -> Option<std::ops::Range<usize>> {
    let keys = client_initial_keys(&packet[header.dcid.clone()], header.v2);
    let pn_len = remove_header_protection(packet, header.pn_offset, &keys.hp)?;
    let payload_start = header.pn_offset + pn_len;
    if packet.len() < payload_start + TAG_LEN {
        return None;
    }
    let mut pn = 0u64;
    for &b in &packet[header.pn_offset..payload_start] {
        pn = pn << 8 | u64::from(b);
    }
    let mut nonce = keys.iv;
    for (n, p) in nonce[4..].iter_mut().zip(pn.to_be_bytes()) {
        *n ^= p;
    }
    let key = LessSafeKey::new(UnboundKey::new(&aead::AES_128_GCM, &keys.key).ok()?);
    let (head, body) = packet.split_at_mut(payload_start);
    let plain = key
        .open_in_place(Nonce::assume_unique_for_key(nonce), Aad::from(&*head), body)
        .ok()?;
    Some(payload_start..payload_start + plain.len())
}

/// The CRYPTO stream of a connection's client Initial packets, reassembled across frames,
/// packets and datagrams.
#[derive(Debug, Default)]
pub struct InitialCrypto {
    pieces: Vec<(u64, Vec<u8>)>,
    stored: usize,
    /// Client Initial packets opened.
    pub packets: u64,
}

impl InitialCrypto {
    /// Reads the client Initial packets of one UDP datagram (coalesced packets included);
    /// returns how many were opened.
    pub fn push_datagram(&mut self, datagram: &[u8]) -> usize {
        let mut opened = 0;
        let mut rest = datagram;
        while let Some(header) = long_header(rest) {
            if header.initial {
                let mut packet = rest[..header.end].to_vec();
                if let Some(payload) = open_initial(&mut packet, &header) {
                    opened += 1;
                    self.frames(&packet[payload]);
                }
            }
            rest = &rest[header.end..];
        }
        self.packets += opened as u64;
        opened
    }

    /// Goes through an Initial payload's frames, keeping CRYPTO data; stops at a frame not
    /// allowed in an Initial packet.
    fn frames(&mut self, payload: &[u8]) {
        let mut pos = 0;
        while pos < payload.len() {
            let Some(frame_type) = varint(payload, &mut pos) else {
                return;
            };
            match frame_type {
                0x00 | 0x01 => {} // PADDING, PING
                0x02 | 0x03 => {
                    // ACK: largest, delay, range count, first range, ranges, [ECN counts].
                    let mut fields = || varint(payload, &mut pos);
                    let (Some(_), Some(_), Some(count), Some(_)) =
                        (fields(), fields(), fields(), fields())
                    else {
                        return;
                    };
                    let extra = if frame_type == 0x03 { 3 } else { 0 };
                    for _ in 0..count
                        .saturating_mul(2)
                        .saturating_add(extra)
                        .min(payload.len() as u64)
                    {
                        if varint(payload, &mut pos).is_none() {
                            return;
                        }
                    }
                }
                0x06 => {
                    let (Some(offset), Some(len)) =
                        (varint(payload, &mut pos), varint(payload, &mut pos))
                    else {
                        return;
                    };
                    let Some(data) = usize::try_from(len)
                        .ok()
                        .and_then(|len| payload.get(pos..pos.checked_add(len)?))
                    else {
                        return;
                    };
                    pos += data.len();
                    self.add_piece(offset, data);
                }
                _ => return, // CONNECTION_CLOSE or a frame an Initial may not carry
            }
        }
    }

    fn add_piece(&mut self, offset: u64, data: &[u8]) {
        let fits = offset
            .checked_add(data.len() as u64)
            .is_some_and(|end| end <= MAX_CRYPTO as u64);
        if data.is_empty()
            || !fits
            || self.pieces.len() >= MAX_PIECES
            || self.stored + data.len() > 4 * MAX_CRYPTO
        {
            return;
        }
        self.stored += data.len();
        self.pieces.push((offset, data.to_vec()));
    }

    /// The CRYPTO stream from offset 0 as far as it is contiguous.
    fn contiguous(&self) -> Vec<u8> {
        let mut pieces: Vec<&(u64, Vec<u8>)> = self.pieces.iter().collect();
        pieces.sort_by_key(|(offset, _)| *offset);
        let mut out: Vec<u8> = Vec::new();
        for (offset, data) in pieces {
            let offset = *offset as usize;
            if offset > out.len() {
                break;
            }
            let skip = out.len() - offset;
            if skip < data.len() {
                out.extend_from_slice(&data[skip..]);
            }
        }
        out
    }

    /// The whole ClientHello handshake message (4-byte header included), once the CRYPTO
    /// stream holds all of it.
    pub fn client_hello(&self) -> Option<Vec<u8>> {
        let mut stream = self.contiguous();
        let header = stream.get(..4)?;
        if header[0] != 1 {
            return None;
        }
        let len = 4
            + (usize::from(header[1]) << 16 | usize::from(header[2]) << 8 | usize::from(header[3]));
        if stream.len() < len {
            return None;
        }
        stream.truncate(len);
        Some(stream)
    }
}

/// The ClientHello message (4-byte handshake header included) of the client Initial packets in
/// one datagram, if they hold all of it.
pub fn initial_client_hello(datagram: &[u8]) -> Option<Vec<u8>> {
    let mut crypto = InitialCrypto::default();
    crypto.push_datagram(datagram);
    crypto.client_hello()
}

/// Server name and ALPN of a ClientHello message (as [`initial_client_hello`] returns it).
pub fn client_hello_info(message: &[u8]) -> Option<ClientHelloInfo> {
    match parse_client_hello(&record::wrap_handshake(message)) {
        HelloParse::Complete(info) => Some(info),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::tls::decrypt::schedule::tests::hex;

    const DCID: &str = "8394c8f03e515708";

    fn a2_packet() -> Vec<u8> {
        hex(include_str!(
            "../../../../tests/fixtures/tls/rfc9001-a2-client-initial.hex"
        ))
    }

    #[test]
    fn rfc9001_a1_client_initial_keys() {
        let keys = client_initial_keys(&hex(DCID), false);
        assert_eq!(keys.key.to_vec(), hex("1f369613dd76d5467730efcbe3b1a22d"));
        assert_eq!(keys.iv.to_vec(), hex("fa044b2f42a3fd3b46fb255c"));
        assert_eq!(keys.hp.to_vec(), hex("9f50449e04a0e810283a1e9933adedd2"));
    }

    #[test]
    fn rfc9001_a2_header_protection() {
        let mut packet = a2_packet();
        assert_eq!(packet.len(), 1200);
        assert_eq!(
            packet[..22],
            hex("c000000001088394c8f03e5157080000449e7b9aec34")
        );
        assert_eq!(packet[22..38], hex("d1b1c98dd7689fb8ec11d242b123dc9b"));
        let keys = client_initial_keys(&hex(DCID), false);
        assert_eq!(remove_header_protection(&mut packet, 18, &keys.hp), Some(4));
        assert_eq!(
            packet[..22],
            hex("c300000001088394c8f03e5157080000449e00000002")
        );
    }

    #[test]
    fn rfc9001_a2_client_hello() {
        let packet = a2_packet();
        let hello = initial_client_hello(&packet).unwrap();
        assert_eq!(hello.len(), 0xf1);
        assert_eq!(hello[..8], hex("010000ed0303ebf8"));
        let info = client_hello_info(&hello).unwrap();
        assert_eq!(info.server_name.as_deref(), Some("example.com"));
        assert_eq!(info.alpn, vec!["alpn".to_owned()]);
        // Any flipped byte: no ClientHello, no panic.
        for i in [0, 5, 17, 18, 21, 30, 600, 1199] {
            let mut bad = packet.clone();
            bad[i] ^= 0x40;
            assert_eq!(initial_client_hello(&bad), None, "{i}");
        }
        for cut in [0, 1, 6, 20, 40, 1199] {
            assert_eq!(initial_client_hello(&packet[..cut]), None, "{cut}");
        }
    }

    /// A client Initial packet holding `frames`, protected as a client would (for tests).
    fn seal_initial(dcid: &[u8], pn: u8, frames: &[u8]) -> Vec<u8> {
        let keys = client_initial_keys(dcid, false);
        let mut payload = frames.to_vec();
        payload.resize(payload.len().max(20), 0); // PADDING, so there is a sample
        let mut packet = vec![0xc0, 0, 0, 0, 1, dcid.len() as u8];
        packet.extend_from_slice(dcid);
        let length = (1 + payload.len() + TAG_LEN) as u16 | 0x4000;
        packet.extend_from_slice(&[0, 0]); // no source connection id, no token
        packet.extend_from_slice(&length.to_be_bytes());
        let pn_offset = packet.len();
        packet.push(pn);
        let mut nonce = keys.iv;
        nonce[11] ^= pn;
        let key = LessSafeKey::new(UnboundKey::new(&aead::AES_128_GCM, &keys.key).unwrap());
        let tag = key
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(&packet),
                &mut payload,
            )
            .unwrap();
        packet.extend_from_slice(&payload);
        packet.extend_from_slice(tag.as_ref());
        let hp = quic::HeaderProtectionKey::new(&quic::AES_128, &keys.hp).unwrap();
        let mask = hp.new_mask(&packet[pn_offset + 4..pn_offset + 20]).unwrap();
        packet[0] ^= mask[0] & 0x0f;
        packet[pn_offset] ^= mask[1];
        packet
    }

    #[test]
    fn client_hello_over_two_datagrams_out_of_order() {
        let hello = initial_client_hello(&a2_packet()).unwrap();
        let dcid = hex("0011223344556677");
        let crypto = |offset: usize, data: &[u8]| {
            let mut f = vec![0x06, 0x40 | (offset >> 8) as u8, offset as u8];
            f.extend_from_slice(&[0x40 | (data.len() >> 8) as u8, data.len() as u8]);
            f.extend_from_slice(data);
            f
        };
        let second = seal_initial(&dcid, 1, &crypto(100, &hello[100..]));
        let first = seal_initial(&dcid, 0, &[&[0x01][..], &crypto(0, &hello[..100])].concat());
        assert_eq!(initial_client_hello(&second), None);
        let mut reassembly = InitialCrypto::default();
        assert_eq!(reassembly.push_datagram(&second), 1);
        assert_eq!(reassembly.client_hello(), None);
        // The first packet coalesced with a Handshake packet after it (skipped).
        let mut datagram = first.clone();
        datagram.extend_from_slice(&[0xe0, 0, 0, 0, 1, 0, 0, 0x40, 0x02, 0xaa, 0xbb]);
        assert_eq!(reassembly.push_datagram(&datagram), 1);
        assert_eq!(reassembly.client_hello(), Some(hello.clone()));
        let info = client_hello_info(&hello).unwrap();
        assert_eq!(info.server_name.as_deref(), Some("example.com"));
    }

    #[test]
    fn crypto_frames_out_of_order() {
        let mut crypto = InitialCrypto::default();
        let message = [1u8, 0, 0, 3, 9, 8, 7];
        crypto.frames(&[
            0x06, 0x05, 0x02, 8, 7, 0x01, 0x00, 0x06, 0x00, 0x05, 1, 0, 0, 3, 9,
        ]);
        assert_eq!(crypto.client_hello(), Some(message.to_vec()));
        let mut partial = InitialCrypto::default();
        partial.frames(&[0x06, 0x00, 0x04, 1, 0, 0, 3]);
        assert_eq!(partial.client_hello(), None);
    }
}
