//! The TLS decryptor on arbitrary bytes of both directions, with a fixed key log (RFC 8448's
//! simple 1-RTT handshake, whose trace seeds the corpus). The first byte picks the mode: the
//! input as chunks `[direction and length byte][bytes]`, or RFC 8448's records with the input
//! XORed over them (so decryption is reached and the tags fail). Nothing may panic, plaintext
//! is never more than what was fed, and what a final status drops is counted.
#![no_main]
use doh_trace::proto::tls::decrypt::{DecryptStatus, KeyLog, TlsDecryptor, MAX_BUFFERED};
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

const RANDOM: &str = "cb34ecb1e78163ba1c38c6dacb196a6dffa21a8d9912ec18a2ef6283024dece7";
const TRACE: &str = include_str!("../../doh-trace/tests/fixtures/tls/rfc8448-simple-1rtt.txt");

fn keys() -> &'static KeyLog {
    static KEYS: OnceLock<KeyLog> = OnceLock::new();
    KEYS.get_or_init(|| {
        let mut log = KeyLog::default();
        let text = format!(
            "CLIENT_HANDSHAKE_TRAFFIC_SECRET {RANDOM} b3eddb126e067f35a780b3abf45e2d8f3b1a950738f52e9600746a0e27a55a21\n\
             SERVER_HANDSHAKE_TRAFFIC_SECRET {RANDOM} b67b7d690cc16c4e75e54213cb2d37b4e9c912bcded9105d42befd59d391ad38\n\
             CLIENT_TRAFFIC_SECRET_0 {RANDOM} 9e40646ce79a7f9dc05af8889bce6552875afa0b06df0087f792ebb7c17504a5\n\
             SERVER_TRAFFIC_SECRET_0 {RANDOM} a11af9f05531f856ad47116b45a950328204b4f44bfb6b3a4b4f1f3fcb631643\n\
             CLIENT_RANDOM {RANDOM} {}\n",
            "ab".repeat(48)
        );
        log.add_text(text.as_bytes());
        log
    })
}

fn hex(text: &str) -> Vec<u8> {
    (0..text.len() / 2)
        .filter_map(|i| u8::from_str_radix(text.get(2 * i..2 * i + 2)?, 16).ok())
        .collect()
}

fn run(chunks: &[(bool, Vec<u8>)]) {
    let keys = keys();
    let mut tls = TlsDecryptor::new();
    let mut out = Vec::new();
    let mut fed = 0usize;
    for (from_client, bytes) in chunks {
        tls.feed(*from_client, bytes, keys, &mut out);
        fed += bytes.len();
        let status = tls.status();
        if status == DecryptStatus::NotTls || status == DecryptStatus::MissingHandshake {
            assert!(out.is_empty() || status == DecryptStatus::MissingHandshake);
        }
    }
    tls.close();
    let _ = tls.status().as_str();
    let plain: usize = out.iter().map(|p| p.bytes.len()).sum();
    assert!(plain <= fed);
    assert!(tls.counters().dropped_bytes as usize <= fed);
    let _ = (tls.sni(), tls.alpn(), tls.client_random(), MAX_BUFFERED);
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let mut chunks = Vec::new();
    if mode & 1 == 0 {
        let mut rest = rest;
        while let Some((&head, tail)) = rest.split_first() {
            let len = usize::from(head >> 1).min(tail.len());
            chunks.push((head & 1 == 1, tail[..len].to_vec()));
            rest = &tail[len..];
        }
    } else {
        let mut noise = rest.iter().copied().cycle();
        let mut skip = usize::from(mode >> 1);
        for line in TRACE.lines().filter(|l| !l.starts_with('#') && l.len() > 2) {
            let mut record = hex(&line[2..]);
            for b in record.iter_mut() {
                if skip == 0 {
                    *b ^= noise.next().unwrap_or(0);
                    skip = usize::from(mode >> 1);
                } else {
                    skip -= 1;
                }
            }
            chunks.push((line.starts_with('c'), record));
        }
    }
    run(&chunks);
});
