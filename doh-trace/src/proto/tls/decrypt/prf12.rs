//! TLS 1.2 keys from a master secret: the PRF (RFC 5246 §5, P_SHA256 or P_SHA384 with
//! `ring`'s HMAC) and the key block (§6.3) of the AEAD suites, which have no MAC keys: client
//! write key, server write key, client write IV, server write IV. For AES-GCM the IV is the
//! 4-byte salt and each record carries the other 8 nonce bytes (RFC 5288 §3); for
//! ChaCha20-Poly1305 it is the whole 12-byte nonce mask (RFC 7905 §2).

use ring::hmac;

use super::cipher::{Hash, RecordKey, Suite};

/// The TLS 1.2 PRF: P_hash(secret, label ‖ seed), `len` bytes.
pub fn prf(hash: Hash, secret: &[u8], label: &[u8], seed: &[u8], len: usize) -> Vec<u8> {
    let key = hmac::Key::new(hash.hmac(), secret);
    let mut label_seed = Vec::with_capacity(label.len() + seed.len());
    label_seed.extend_from_slice(label);
    label_seed.extend_from_slice(seed);
    let mut out = Vec::with_capacity(len + hash.output_len());
    // A(1) = HMAC(secret, seed'); A(i) = HMAC(secret, A(i-1)).
    let mut a = hmac::sign(&key, &label_seed);
    while out.len() < len {
        let mut ctx = hmac::Context::with_key(&key);
        ctx.update(a.as_ref());
        ctx.update(&label_seed);
        out.extend_from_slice(ctx.sign().as_ref());
        a = hmac::sign(&key, a.as_ref());
    }
    out.truncate(len);
    out
}

/// The read keys of both directions of a TLS 1.2 connection: (client's, server's).
pub fn record_keys(
    suite: &Suite,
    master_secret: &[u8],
    client_random: &[u8; 32],
    server_random: &[u8; 32],
) -> Option<(RecordKey, RecordKey)> {
    let key_len = suite.aead.key_len();
    let iv_len = suite.aead.tls12_fixed_iv_len();
    let mut seed = [0u8; 64];
    seed[..32].copy_from_slice(server_random);
    seed[32..].copy_from_slice(client_random);
    let block = prf(
        suite.hash,
        master_secret,
        b"key expansion",
        &seed,
        2 * (key_len + iv_len),
    );
    let (client_key, rest) = block.split_at(key_len);
    let (server_key, rest) = rest.split_at(key_len);
    let (client_iv, server_iv) = rest.split_at(iv_len);
    Some((
        RecordKey::new(suite, client_key, client_iv)?,
        RecordKey::new(suite, server_key, server_iv)?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::tls::decrypt::{cipher::Version, schedule::tests::hex};

    #[test]
    fn prf_sha256_known_answer() {
        // The TLS 1.2 PRF test vector published on the IETF TLS list (P_SHA256, 100 bytes).
        let out = prf(
            Hash::Sha256,
            &hex("9b be 43 6b a9 40 f0 17 b1 76 52 84 9a 71 db 35"),
            b"test label",
            &hex("a0 ba 9f 93 6c da 31 18 27 a6 f7 96 ff d5 19 8c"),
            100,
        );
        let want = hex(
            "e3 f2 29 ba 72 7b e1 7b 8d 12 26 20 55 7c d4 53 c2 aa b2 1d 07 c3 d4 95 32 9b 52 d4
             e6 1e db 5a 6b 30 17 91 e9 0d 35 c9 c9 a4 6b 4e 14 ba f9 af 0f a0 22 f7 07 7d ef 17
             ab fd 37 97 c0 56 4b ab 4f bc 91 66 6e 9d ef 9b 97 fc e3 4f 79 67 89 ba a4 80 82 d1
             22 ee 42 c5 a7 2e 5a 51 10 ff f7 01 87 34 7b 66",
        );
        assert_eq!(out, want);
    }

    #[test]
    fn key_block_for_each_aead() {
        for id in [0xc02f, 0xc030, 0xcca8] {
            let suite = Suite::find(Version::Tls12, id).unwrap();
            assert!(record_keys(&suite, &[1; 48], &[2; 32], &[3; 32]).is_some());
        }
    }
}
