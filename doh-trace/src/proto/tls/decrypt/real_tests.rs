//! Real connections recorded with their key logs (tests/fixtures/tls, made by `make.py`
//! there): OpenSSL's s_client and Python's ssl against a Python ssl server. Each must decrypt
//! to exactly the application bytes the two sides sent, fed as recorded and a byte at a time.

use super::{cipher::Version, schedule::tests::hex, DecryptStatus, KeyLog, TlsDecryptor};

macro_rules! fixture {
    ($name:literal) => {
        (
            $name,
            include_str!(concat!("../../../../tests/fixtures/tls/", $name, ".trace")),
            include_str!(concat!("../../../../tests/fixtures/tls/", $name, ".keys")),
            include_str!(concat!("../../../../tests/fixtures/tls/", $name, ".expect")),
        )
    };
}

/// (direction, bytes) lines: `c HEX` or `s HEX`.
fn lines(text: &str) -> Vec<(bool, Vec<u8>)> {
    text.lines()
        .filter(|l| l.len() >= 2 && !l.starts_with('#'))
        .map(|l| (l.starts_with('c'), hex(&l[2..])))
        .collect()
}

/// Decrypts a recorded connection; returns the decryptor and each direction's plaintext.
fn decrypt(trace: &str, keys: &str, one_byte: bool) -> (TlsDecryptor, Vec<u8>, Vec<u8>) {
    let mut log = KeyLog::default();
    let stats = log.add_text(keys.as_bytes());
    assert_eq!(stats.malformed, 0);
    let mut tls = TlsDecryptor::new();
    let mut out = Vec::new();
    for (from_client, chunk) in lines(trace) {
        if one_byte {
            for b in &chunk {
                tls.feed(from_client, std::slice::from_ref(b), &log, &mut out);
            }
        } else {
            tls.feed(from_client, &chunk, &log, &mut out);
        }
    }
    tls.close();
    let (mut client, mut server) = (Vec::new(), Vec::new());
    for p in out {
        if p.from_client {
            &mut client
        } else {
            &mut server
        }
        .extend_from_slice(&p.bytes);
    }
    (tls, client, server)
}

fn check(fixture: (&str, &str, &str, &str), version: Version, suite: u16) -> TlsDecryptor {
    let (name, trace, keys, expect) = fixture;
    let expect = lines(expect);
    for one_byte in [false, true] {
        let (tls, client, server) = decrypt(trace, keys, one_byte);
        assert_eq!(tls.status(), DecryptStatus::Decrypting, "{name}");
        assert_eq!(client, expect[0].1, "{name}: client data");
        assert_eq!(server, expect[1].1, "{name}: server data");
        assert_eq!(tls.version(), Some(version), "{name}");
        assert_eq!(tls.cipher_suite(), Some(suite), "{name}");
        assert_eq!(tls.sni(), Some("dns.example"), "{name}");
        assert_eq!(tls.alpn(), Some("h2"), "{name}");
        if !one_byte {
            return decrypt(trace, keys, false).0;
        }
    }
    unreachable!()
}

#[test]
fn tls13_each_cipher() {
    check(fixture!("tls13-aes128gcm"), Version::Tls13, 0x1301);
    check(fixture!("tls13-aes256gcm"), Version::Tls13, 0x1302);
    check(fixture!("tls13-chacha20"), Version::Tls13, 0x1303);
}

#[test]
fn tls12_each_cipher() {
    check(fixture!("tls12-aes128gcm"), Version::Tls12, 0xc02b);
    check(fixture!("tls12-aes256gcm"), Version::Tls12, 0xc02c);
    check(fixture!("tls12-chacha20"), Version::Tls12, 0xcca9);
}

#[test]
fn tls13_key_update() {
    let tls = check(fixture!("tls13-keyupdate"), Version::Tls13, 0x1302);
    // The client's two KeyUpdates and the server's answer to the one that asked for it.
    assert_eq!(tls.counters().key_updates, 3);
}

#[test]
fn tls13_hello_retry_request() {
    let tls = check(fixture!("tls13-hrr"), Version::Tls13, 0x1302);
    assert!(tls.hello_retry());
}

#[test]
fn corrupted_real_record_fails() {
    let (_, trace, keys, _) = fixture!("tls12-chacha20");
    let mut text = String::new();
    let n = trace.lines().count();
    for (i, line) in trace.lines().enumerate() {
        if i == n - 2 {
            // Flip the last hex digit of the last-but-one chunk (inside a tag).
            let mut l = line.to_owned();
            let last = l.pop().unwrap();
            l.push(if last == '0' { '1' } else { '0' });
            text.push_str(&l);
        } else {
            text.push_str(line);
        }
        text.push('\n');
    }
    let (tls, _, _) = decrypt(&text, keys, false);
    assert!(
        matches!(tls.status(), DecryptStatus::Failed(_)),
        "{:?}",
        tls.status()
    );
}

#[test]
fn resumed_sessions() {
    let tls = check(fixture!("tls13-resumed"), Version::Tls13, 0x1302);
    assert!(tls.resumed());
    let tls = check(fixture!("tls12-resumed"), Version::Tls12, 0xc02b);
    assert!(tls.resumed());
}
