//! The decryptor end to end: RFC 8448's simple 1-RTT handshake record by record and as a
//! connection, fed whole, a byte at a time and with keys arriving late; hostile variations.

use super::{
    cipher::{Suite, Version},
    keylog::Secret,
    schedule::{
        record_key,
        tests::{hex, C_AP, C_HS, S_AP, S_HS},
    },
    DecryptStatus, FailReason, KeyLog, Plaintext, TlsDecryptor,
};

const TRACE: &str = include_str!("../../../../tests/fixtures/tls/rfc8448-simple-1rtt.txt");
const CLIENT_RANDOM: &str = "cb34ecb1e78163ba1c38c6dacb196a6dffa21a8d9912ec18a2ef6283024dece7";

/// The RFC's records: (from_client, bytes).
fn records() -> Vec<(bool, Vec<u8>)> {
    TRACE
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| (l.starts_with('c'), hex(&l[2..])))
        .collect()
}

fn key_log() -> KeyLog {
    let mut log = KeyLog::default();
    let text = format!(
        "CLIENT_HANDSHAKE_TRAFFIC_SECRET {CLIENT_RANDOM} {}\n\
         SERVER_HANDSHAKE_TRAFFIC_SECRET {CLIENT_RANDOM} {}\n\
         CLIENT_TRAFFIC_SECRET_0 {CLIENT_RANDOM} {}\n\
         SERVER_TRAFFIC_SECRET_0 {CLIENT_RANDOM} {}\n",
        C_HS.replace(' ', ""),
        S_HS.replace(' ', ""),
        C_AP.replace(' ', ""),
        S_AP.replace(' ', "")
    );
    assert_eq!(log.add_text(text.as_bytes()).added, 4);
    log
}

fn expected() -> Vec<Plaintext> {
    let payload: Vec<u8> = (0..50).collect();
    vec![
        Plaintext {
            from_client: true,
            bytes: payload.clone(),
        },
        Plaintext {
            from_client: false,
            bytes: payload,
        },
    ]
}

fn joined(out: Vec<Plaintext>) -> Vec<Plaintext> {
    let mut joinedup: Vec<Plaintext> = Vec::new();
    for p in out {
        match joinedup.last_mut() {
            Some(last) if last.from_client == p.from_client => last.bytes.extend(p.bytes),
            _ => joinedup.push(p),
        }
    }
    joinedup
}

#[test]
fn rfc8448_server_handshake_record() {
    let records = records();
    let (_, flight) = &records[2];
    let suite = Suite::find(Version::Tls13, 0x1301).unwrap();
    let mut key = record_key(&suite, &Secret::new(&hex(S_HS)).unwrap()).unwrap();
    let mut fragment = flight[5..].to_vec();
    let header: [u8; 5] = flight[..5].try_into().unwrap();
    let range = key.open(header, &mut fragment).unwrap();
    let inner = &fragment[range];
    // EncryptedExtensions first, the server Finished last, then the inner content type.
    assert_eq!(inner[..4], hex("08 00 00 24"));
    let finished = hex(
        "14 00 00 20 9b 9b 14 1d 90 63 37 fb d2 cb dc e7 1d f4 de da 4a b4 2c 30 95 72 cb 7f ff ee
         54 54 b7 8f 07 18",
    );
    assert_eq!(inner[inner.len() - 37..inner.len() - 1], finished[..]);
    assert_eq!(inner[inner.len() - 1], 22);
    assert_eq!(key.seq(), 1);
}

#[test]
fn rfc8448_application_records() {
    let records = records();
    let suite = Suite::find(Version::Tls13, 0x1301).unwrap();
    // The server's first record under its application key is the NewSessionTicket.
    for (secret, record, seq) in [(C_AP, &records[5].1, 0), (S_AP, &records[6].1, 1)] {
        let mut key = record_key(&suite, &Secret::new(&hex(secret)).unwrap()).unwrap();
        if seq == 1 {
            let ticket = &records[4].1;
            key.open(ticket[..5].try_into().unwrap(), &mut ticket[5..].to_vec())
                .unwrap();
        }
        let mut fragment = record[5..].to_vec();
        let range = key
            .open(record[..5].try_into().unwrap(), &mut fragment)
            .unwrap();
        let mut want: Vec<u8> = (0..50).collect();
        want.push(23);
        assert_eq!(fragment[range], want[..]);
    }
}

#[test]
fn rfc8448_connection() {
    let keys = key_log();
    let mut tls = TlsDecryptor::new();
    let mut out = Vec::new();
    for (from_client, record) in records() {
        tls.feed(from_client, &record, &keys, &mut out);
    }
    assert_eq!(out, expected());
    assert_eq!(tls.status(), DecryptStatus::Decrypting);
    assert_eq!(tls.sni(), Some("server"));
    assert_eq!(tls.cipher_suite(), Some(0x1301));
    assert_eq!(tls.version(), Some(Version::Tls13));
    assert_eq!(
        tls.client_random().map(|r| r.to_vec()),
        Some(hex(CLIENT_RANDOM))
    );
    let c = tls.counters();
    assert_eq!(
        (c.records, c.decrypted_records, c.alerts, c.plaintext_bytes),
        (9, 7, 2, 100)
    );
    tls.close();
    assert_eq!(tls.status(), DecryptStatus::Decrypting);
}

#[test]
fn rfc8448_any_split_and_order() {
    let keys = key_log();
    // A byte at a time, interleaved as on the wire.
    let mut tls = TlsDecryptor::new();
    let mut out = Vec::new();
    for (from_client, record) in records() {
        for b in &record {
            tls.feed(from_client, std::slice::from_ref(b), &keys, &mut out);
        }
    }
    assert_eq!(joined(out), expected());
    // All of the client's bytes first, then all of the server's: the client's encrypted
    // records wait for the ServerHello.
    let (client, server): (Vec<_>, Vec<_>) = records().into_iter().partition(|(c, _)| *c);
    let mut tls = TlsDecryptor::new();
    let mut out = Vec::new();
    tls.feed(true, &client.concat_bytes(), &keys, &mut out);
    assert!(out.is_empty());
    assert_eq!(tls.status(), DecryptStatus::WaitingForHandshake);
    tls.feed(false, &server.concat_bytes(), &keys, &mut out);
    // The client's records waited for the ServerHello, and the server's data for them: the
    // request still comes out before the response.
    assert_eq!(joined(out), expected());
}

trait ConcatBytes {
    fn concat_bytes(&self) -> Vec<u8>;
}

impl ConcatBytes for Vec<(bool, Vec<u8>)> {
    fn concat_bytes(&self) -> Vec<u8> {
        self.iter().flat_map(|(_, r)| r.iter().copied()).collect()
    }
}

#[test]
fn keys_arriving_late() {
    let mut keys = KeyLog::default();
    let mut tls = TlsDecryptor::new();
    let mut out = Vec::new();
    for (from_client, record) in records() {
        tls.feed(from_client, &record, &keys, &mut out);
    }
    assert!(out.is_empty());
    assert_eq!(tls.status(), DecryptStatus::NoKey);
    let full = key_log();
    // Only the handshake secrets so far: still no key for the application data.
    let text = format!(
        "SERVER_HANDSHAKE_TRAFFIC_SECRET {CLIENT_RANDOM} {}\n",
        S_HS.replace(' ', "")
    );
    keys.add_text(text.as_bytes());
    tls.feed(true, &[], &keys, &mut out);
    assert_eq!(tls.status(), DecryptStatus::NoKey);
    tls.feed(true, &[], &full, &mut out);
    assert_eq!(joined(out), expected());
}

#[test]
fn a_response_never_comes_out_before_its_request() {
    // OpenSSL's key log names SERVER_TRAFFIC_SECRET_0 before CLIENT_TRAFFIC_SECRET_0; a live
    // key log can be read between the two, after both directions' records were fed.
    let full = key_log();
    let text = |labels: &[(&str, &str)]| {
        labels
            .iter()
            .map(|(l, s)| format!("{l} {CLIENT_RANDOM} {}\n", s.replace(' ', "")))
            .collect::<String>()
    };
    let mut keys = KeyLog::default();
    keys.add_text(
        text(&[
            ("CLIENT_HANDSHAKE_TRAFFIC_SECRET", C_HS),
            ("SERVER_HANDSHAKE_TRAFFIC_SECRET", S_HS),
            ("SERVER_TRAFFIC_SECRET_0", S_AP),
        ])
        .as_bytes(),
    );
    let mut tls = TlsDecryptor::new();
    let mut out = Vec::new();
    for (from_client, record) in records() {
        tls.feed(from_client, &record, &keys, &mut out);
    }
    assert!(
        out.is_empty(),
        "the response waited for its request: {out:?}"
    );
    assert_eq!(tls.status(), DecryptStatus::NoKey);
    tls.feed(false, &[], &full, &mut out);
    assert_eq!(joined(out), expected(), "request, then response");
    assert_eq!(tls.status(), DecryptStatus::Decrypting);
}

#[test]
fn corrupted_and_truncated() {
    let keys = key_log();
    let records = records();
    // A flipped bit in the server's application record: its tag fails.
    let mut tls = TlsDecryptor::new();
    let mut out = Vec::new();
    for (i, (from_client, record)) in records.iter().enumerate() {
        let mut record = record.clone();
        if i == 6 {
            record[30] ^= 1;
        }
        tls.feed(*from_client, &record, &keys, &mut out);
    }
    assert_eq!(out, expected()[..1]);
    assert_eq!(tls.status(), DecryptStatus::Failed(FailReason::Decrypt));
    assert!(tls.counters().dropped_bytes > 0);
    // Cut inside the client's application record.
    let mut tls = TlsDecryptor::new();
    let mut out = Vec::new();
    for (from_client, record) in &records[..5] {
        tls.feed(*from_client, record, &keys, &mut out);
    }
    tls.feed(true, &records[5].1[..40], &keys, &mut out);
    assert!(out.is_empty());
    tls.close();
    assert_eq!(tls.status(), DecryptStatus::Failed(FailReason::Truncated));
}

#[test]
fn not_tls_and_mid_connection() {
    let keys = key_log();
    let mut out = Vec::new();
    let mut tls = TlsDecryptor::new();
    tls.feed(true, b"GET / HTTP/1.1\r\n\r\n", &keys, &mut out);
    assert_eq!(tls.status(), DecryptStatus::NotTls);
    let records = records();
    let mut tls = TlsDecryptor::new();
    tls.feed(true, &records[5].1, &keys, &mut out);
    assert_eq!(tls.status(), DecryptStatus::MissingHandshake);
    let mut tls = TlsDecryptor::new();
    tls.feed(false, &records[6].1, &keys, &mut out);
    assert_eq!(tls.status(), DecryptStatus::MissingHandshake);
    assert!(out.is_empty());
    // A ServerHello choosing a CBC suite (TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA, TLS 1.2).
    let mut sh = records[1].1.clone();
    sh[5 + 4 + 2 + 32 + 1..][..2].copy_from_slice(&[0xc0, 0x13]);
    // Drop the supported_versions extension (the last 6 bytes) to make it TLS 1.2.
    let mut tls12 = sh[..sh.len() - 6].to_vec();
    let fix = |b: &mut Vec<u8>, at: usize, delta: usize| {
        let v = u16::from_be_bytes([b[at], b[at + 1]]) as usize - delta;
        b[at..at + 2].copy_from_slice(&(v as u16).to_be_bytes());
    };
    fix(&mut tls12, 3, 6);
    tls12[8] -= 6;
    fix(&mut tls12, 5 + 4 + 2 + 32 + 1 + 3, 6);
    let mut tls = TlsDecryptor::new();
    tls.feed(true, &records[0].1, &keys, &mut out);
    tls.feed(false, &tls12, &keys, &mut out);
    assert_eq!(tls.status(), DecryptStatus::UnsupportedCipher(0xc013));
}

#[test]
fn buffered_bytes_are_bounded() {
    let keys = KeyLog::default();
    let records = records();
    let mut tls = TlsDecryptor::new();
    let mut out = Vec::new();
    for (from_client, record) in &records[..3] {
        tls.feed(*from_client, record, &keys, &mut out);
    }
    let app = &records[6].1;
    for _ in 0..(super::MAX_BUFFERED / app.len() + 2) {
        tls.feed(false, app, &keys, &mut out);
    }
    assert_eq!(tls.status(), DecryptStatus::NoKey);
    assert!(tls.counters().dropped_bytes > 0);
    tls.feed(false, app, &key_log(), &mut out);
    assert!(out.is_empty());
}

#[test]
fn every_byte_altered_never_panics_nor_invents_data() {
    let keys = key_log();
    let records = records();
    let total: usize = records.iter().map(|(_, r)| r.len()).sum();
    for at in 0..total {
        let mut tls = TlsDecryptor::new();
        let mut out = Vec::new();
        let mut offset = 0;
        for (from_client, record) in &records {
            let mut record = record.clone();
            if (offset..offset + record.len()).contains(&at) {
                record[at - offset] ^= 0x5a;
            }
            offset += record.len();
            tls.feed(*from_client, &record, &keys, &mut out);
        }
        tls.close();
        // Whatever comes out is a prefix of the real data of its direction.
        for p in joined(out) {
            assert!(
                p.bytes.len() <= 50 && p.bytes.iter().enumerate().all(|(i, &b)| b == i as u8),
                "{at}"
            );
        }
    }
}

#[test]
fn random_splits_give_the_same_plaintext() {
    let keys = key_log();
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    for _ in 0..50 {
        let mut tls = TlsDecryptor::new();
        let mut out = Vec::new();
        for (from_client, record) in records() {
            let mut rest = &record[..];
            while !rest.is_empty() {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                let n = (seed % 40) as usize % rest.len() + 1;
                tls.feed(from_client, &rest[..n], &keys, &mut out);
                rest = &rest[n..];
            }
        }
        assert_eq!(joined(out), expected());
    }
}
