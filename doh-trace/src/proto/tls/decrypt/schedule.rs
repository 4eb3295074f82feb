//! The TLS 1.3 key schedule (RFC 8446 §7.1–7.3) as far as a passive reader needs it:
//! HKDF-Extract, HKDF-Expand-Label, Derive-Secret, the traffic key and IV of a traffic secret,
//! and the next traffic secret after a KeyUpdate. QUIC (RFC 9001 §5) uses the same labels.
//! HKDF and HMAC are `ring`'s.

use ring::{digest, hkdf, hmac};

use super::{
    cipher::{Hash, RecordKey, Suite},
    keylog::{Secret, MAX_SECRET},
};

/// Longest output asked of [`expand_label`] here (a SHA-384 secret).
const MAX_OUT: usize = MAX_SECRET;

struct Len(usize);

impl hkdf::KeyType for Len {
    fn len(&self) -> usize {
        self.0
    }
}

/// HKDF-Extract(salt, ikm), the pseudo-random key as bytes (an HMAC of `ikm` keyed by `salt`,
/// RFC 5869 §2.2).
pub fn extract(hash: Hash, salt: &[u8], ikm: &[u8]) -> Vec<u8> {
    let key = hmac::Key::new(hash.hmac(), salt);
    hmac::sign(&key, ikm).as_ref().to_vec()
}

/// HKDF-Expand-Label(secret, label, context, out.len()) with the `"tls13 "` prefix
/// (RFC 8446 §7.1). `false` if `out` is longer than HKDF allows or `label`/`context` do not
/// fit their length bytes.
pub fn expand_label(
    hash: Hash,
    secret: &[u8],
    label: &[u8],
    context: &[u8],
    out: &mut [u8],
) -> bool {
    const PREFIX: &[u8] = b"tls13 ";
    let (Ok(out_len), Ok(label_len), Ok(context_len)) = (
        u16::try_from(out.len()),
        u8::try_from(PREFIX.len() + label.len()),
        u8::try_from(context.len()),
    ) else {
        return false;
    };
    let out_len = out_len.to_be_bytes();
    let info: [&[u8]; 6] = [
        &out_len,
        &[label_len],
        PREFIX,
        label,
        &[context_len],
        context,
    ];
    let prk = hkdf::Prk::new_less_safe(hash.hkdf(), secret);
    match prk.expand(&info, Len(out.len())) {
        Ok(okm) => okm.fill(out).is_ok(),
        Err(_) => false,
    }
}

/// HKDF-Expand-Label into a new vector of `len` bytes (at most 48).
pub fn expand_label_vec(
    hash: Hash,
    secret: &[u8],
    label: &[u8],
    context: &[u8],
    len: usize,
) -> Vec<u8> {
    let mut out = [0u8; MAX_OUT];
    let len = len.min(MAX_OUT);
    if expand_label(hash, secret, label, context, &mut out[..len]) {
        out[..len].to_vec()
    } else {
        Vec::new()
    }
}

/// Derive-Secret(secret, label, messages) given the transcript hash of `messages`.
pub fn derive_secret(hash: Hash, secret: &[u8], label: &[u8], transcript_hash: &[u8]) -> Vec<u8> {
    expand_label_vec(hash, secret, label, transcript_hash, hash.output_len())
}

/// The transcript hash of `messages` (the concatenated handshake messages).
pub fn transcript_hash(hash: Hash, messages: &[u8]) -> Vec<u8> {
    let algorithm = match hash {
        Hash::Sha256 => &digest::SHA256,
        Hash::Sha384 => &digest::SHA384,
    };
    digest::digest(algorithm, messages).as_ref().to_vec()
}

/// The write key and IV of a traffic secret (RFC 8446 §7.3).
pub fn traffic_key_iv(suite: &Suite, secret: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let key = expand_label_vec(suite.hash, secret, b"key", b"", suite.aead.key_len());
    let iv = expand_label_vec(suite.hash, secret, b"iv", b"", 12);
    (key, iv)
}

/// The record key for a traffic secret; `None` if the secret's length is not the suite
/// hash's.
pub fn record_key(suite: &Suite, secret: &Secret) -> Option<RecordKey> {
    if secret.as_bytes().len() != suite.hash.output_len() {
        return None;
    }
    let (key, iv) = traffic_key_iv(suite, secret.as_bytes());
    RecordKey::new(suite, &key, &iv)
}

/// The traffic secret after a KeyUpdate: application_traffic_secret_N+1 (RFC 8446 §7.2).
pub fn next_traffic_secret(hash: Hash, secret: &Secret) -> Option<Secret> {
    Secret::new(&expand_label_vec(
        hash,
        secret.as_bytes(),
        b"traffic upd",
        b"",
        hash.output_len(),
    ))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::proto::tls::decrypt::cipher::Version;

    /// Hex with any whitespace in it, as the RFCs print it.
    pub(crate) fn hex(text: &str) -> Vec<u8> {
        let digits: Vec<u8> = text.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
        let mut out = vec![0; digits.len() / 2];
        let n = crate::proto::tls::decrypt::keylog::decode_hex(&digits, &mut out).expect("hex");
        out.truncate(n);
        out
    }

    // RFC 8448 §3, "Simple 1-RTT Handshake" (TLS_AES_128_GCM_SHA256).
    const ECDHE: &str = "8b d4 05 4f b5 5b 9d 63 fd fb ac f9 f0 4b 9f 0d 35 e6 d6 3f 53 75 63 ef d4 62 72 90 0f 89 49 2d";
    const EARLY: &str = "33 ad 0a 1c 60 7e c0 3b 09 e6 cd 98 93 68 0c e2 10 ad f3 00 aa 1f 26 60 e1 b2 2e 10 f1 70 f9 2a";
    const DERIVED_EARLY: &str = "6f 26 15 a1 08 c7 02 c5 67 8f 54 fc 9d ba b6 97 16 c0 76 18 9c 48 25 0c eb ea c3 57 6c 36 11 ba";
    const HANDSHAKE: &str = "1d c8 26 e9 36 06 aa 6f dc 0a ad c1 2f 74 1b 01 04 6a a6 b9 9f 69 1e d2 21 a9 f0 ca 04 3f be ac";
    /// Transcript hash of ClientHello..ServerHello.
    const HELLO_HASH: &str = "86 0c 06 ed c0 78 58 ee 8e 78 f0 e7 42 8c 58 ed d6 b4 3f 2c a3 e6 e9 5f 02 ed 06 3c f0 e1 ca d8";
    pub(crate) const C_HS: &str = "b3 ed db 12 6e 06 7f 35 a7 80 b3 ab f4 5e 2d 8f 3b 1a 95 07 38 f5 2e 96 00 74 6a 0e 27 a5 5a 21";
    pub(crate) const S_HS: &str = "b6 7b 7d 69 0c c1 6c 4e 75 e5 42 13 cb 2d 37 b4 e9 c9 12 bc de d9 10 5d 42 be fd 59 d3 91 ad 38";
    const DERIVED_HS: &str = "43 de 77 e0 c7 77 13 85 9a 94 4d b9 db 25 90 b5 31 90 a6 5b 3e e2 e4 f1 2d d7 a0 bb 7c e2 54 b4";
    const MASTER: &str = "18 df 06 84 3d 13 a0 8b f2 a4 49 84 4c 5f 8a 47 80 01 bc 4d 4c 62 79 84 d5 a4 1d a8 d0 40 29 19";
    /// Transcript hash of ClientHello..server Finished.
    const FINISHED_HASH: &str = "96 08 10 2a 0f 1c cc 6d b6 25 0b 7b 7e 41 7b 1a 00 0e aa da 3d aa e4 77 7a 76 86 c9 ff 83 df 13";
    pub(crate) const C_AP: &str = "9e 40 64 6c e7 9a 7f 9d c0 5a f8 88 9b ce 65 52 87 5a fa 0b 06 df 00 87 f7 92 eb b7 c1 75 04 a5";
    pub(crate) const S_AP: &str = "a1 1a f9 f0 55 31 f8 56 ad 47 11 6b 45 a9 50 32 82 04 b4 f4 4b fb 6b 3a 4b 4f 1f 3f cb 63 16 43";
    const S_HS_KEY: &str = "3f ce 51 60 09 c2 17 27 d0 f2 e4 e8 6e e4 03 bc";
    const S_HS_IV: &str = "5d 31 3e b2 67 12 76 ee 13 00 0b 30";
    const C_HS_KEY: &str = "db fa a6 93 d1 76 2c 5b 66 6a f5 d9 50 25 8d 01";
    const C_HS_IV: &str = "5b d3 c7 1b 83 6e 0b 76 bb 73 26 5f";
    const S_AP_KEY: &str = "9f 02 28 3b 6c 9c 07 ef c2 6b b9 f2 ac 92 e3 56";
    const S_AP_IV: &str = "cf 78 2b 88 dd 83 54 9a ad f1 e9 84";

    fn suite() -> Suite {
        Suite::find(Version::Tls13, 0x1301).unwrap()
    }

    #[test]
    fn rfc8448_secrets() {
        let h = Hash::Sha256;
        let zeros = [0u8; 32];
        let early = extract(h, &[], &zeros);
        assert_eq!(early, hex(EARLY));
        let empty_hash = transcript_hash(h, b"");
        let derived = derive_secret(h, &early, b"derived", &empty_hash);
        assert_eq!(derived, hex(DERIVED_EARLY));
        let handshake = extract(h, &derived, &hex(ECDHE));
        assert_eq!(handshake, hex(HANDSHAKE));
        let hello = hex(HELLO_HASH);
        assert_eq!(
            derive_secret(h, &handshake, b"c hs traffic", &hello),
            hex(C_HS)
        );
        assert_eq!(
            derive_secret(h, &handshake, b"s hs traffic", &hello),
            hex(S_HS)
        );
        let derived = derive_secret(h, &handshake, b"derived", &empty_hash);
        assert_eq!(derived, hex(DERIVED_HS));
        let master = extract(h, &derived, &zeros);
        assert_eq!(master, hex(MASTER));
        let finished = hex(FINISHED_HASH);
        assert_eq!(
            derive_secret(h, &master, b"c ap traffic", &finished),
            hex(C_AP)
        );
        assert_eq!(
            derive_secret(h, &master, b"s ap traffic", &finished),
            hex(S_AP)
        );
    }

    #[test]
    fn rfc8448_traffic_keys() {
        let suite = suite();
        for (secret, key, iv) in [
            (S_HS, S_HS_KEY, S_HS_IV),
            (C_HS, C_HS_KEY, C_HS_IV),
            (S_AP, S_AP_KEY, S_AP_IV),
        ] {
            assert_eq!(traffic_key_iv(&suite, &hex(secret)), (hex(key), hex(iv)));
        }
        let secret = Secret::new(&hex(S_AP)).unwrap();
        assert!(record_key(&suite, &secret).is_some());
        assert!(record_key(&Suite::find(Version::Tls13, 0x1302).unwrap(), &secret).is_none());
    }

    #[test]
    fn key_update_is_expand_label_traffic_upd() {
        let secret = Secret::new(&hex(S_AP)).unwrap();
        let next = next_traffic_secret(Hash::Sha256, &secret).unwrap();
        let mut want = [0u8; 32];
        assert!(expand_label(
            Hash::Sha256,
            secret.as_bytes(),
            b"traffic upd",
            b"",
            &mut want
        ));
        assert_eq!(next.as_bytes(), want);
        assert_ne!(next, secret);
        let mut too_long = vec![0u8; 255 * 32 + 1];
        assert!(!expand_label(
            Hash::Sha256,
            secret.as_bytes(),
            b"x",
            b"",
            &mut too_long
        ));
    }
}
