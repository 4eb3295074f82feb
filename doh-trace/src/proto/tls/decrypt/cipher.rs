//! The AEAD cipher suites decrypted (TLS 1.3: RFC 8446 §B.4; TLS 1.2: the ECDHE, DHE and RSA
//! suites with AES-GCM, RFC 5288/5289, and ChaCha20-Poly1305, RFC 7905) and the record
//! protection of one direction: nonce and additional data per version, sequence numbers.
//! The AEADs themselves are `ring`'s.

use ring::aead::{self, Aad, LessSafeKey, Nonce, UnboundKey};

/// The hash of a suite's key schedule (TLS 1.3 HKDF, TLS 1.2 PRF).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hash {
    Sha256,
    Sha384,
}

impl Hash {
    pub fn output_len(self) -> usize {
        match self {
            Hash::Sha256 => 32,
            Hash::Sha384 => 48,
        }
    }

    pub fn hkdf(self) -> ring::hkdf::Algorithm {
        match self {
            Hash::Sha256 => ring::hkdf::HKDF_SHA256,
            Hash::Sha384 => ring::hkdf::HKDF_SHA384,
        }
    }

    pub fn hmac(self) -> ring::hmac::Algorithm {
        match self {
            Hash::Sha256 => ring::hmac::HMAC_SHA256,
            Hash::Sha384 => ring::hmac::HMAC_SHA384,
        }
    }
}

/// The protocol version a connection negotiated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    Tls12,
    Tls13,
}

/// The AEAD of a suite.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Aead {
    Aes128Gcm,
    Aes256Gcm,
    ChaCha20Poly1305,
}

impl Aead {
    fn algorithm(self) -> &'static aead::Algorithm {
        match self {
            Aead::Aes128Gcm => &aead::AES_128_GCM,
            Aead::Aes256Gcm => &aead::AES_256_GCM,
            Aead::ChaCha20Poly1305 => &aead::CHACHA20_POLY1305,
        }
    }

    pub fn key_len(self) -> usize {
        match self {
            Aead::Aes128Gcm => 16,
            Aead::Aes256Gcm | Aead::ChaCha20Poly1305 => 32,
        }
    }

    /// TLS 1.2: bytes of the nonce from the key block (GCM: 4, the rest is explicit in each
    /// record; ChaCha20-Poly1305: all 12).
    pub fn tls12_fixed_iv_len(self) -> usize {
        match self {
            Aead::Aes128Gcm | Aead::Aes256Gcm => 4,
            Aead::ChaCha20Poly1305 => NONCE_LEN,
        }
    }
}

/// A cipher suite this module decrypts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Suite {
    pub id: u16,
    pub version: Version,
    pub hash: Hash,
    pub aead: Aead,
}

const NONCE_LEN: usize = aead::NONCE_LEN;
pub const TAG_LEN: usize = 16;
const GCM_EXPLICIT_NONCE_LEN: usize = 8;

impl Suite {
    /// The suite `id` names for `version`, if it is one decrypted here.
    pub fn find(version: Version, id: u16) -> Option<Suite> {
        use {Aead::*, Hash::*};
        let (hash, aead) = match (version, id) {
            (Version::Tls13, 0x1301) => (Sha256, Aes128Gcm),
            (Version::Tls13, 0x1302) => (Sha384, Aes256Gcm),
            (Version::Tls13, 0x1303) => (Sha256, ChaCha20Poly1305),
            // RSA, DHE_RSA, ECDHE_ECDSA, ECDHE_RSA with AES_128_GCM_SHA256.
            (Version::Tls12, 0x009c | 0x009e | 0xc02b | 0xc02f) => (Sha256, Aes128Gcm),
            // … with AES_256_GCM_SHA384.
            (Version::Tls12, 0x009d | 0x009f | 0xc02c | 0xc030) => (Sha384, Aes256Gcm),
            // ECDHE_RSA, ECDHE_ECDSA, DHE_RSA with CHACHA20_POLY1305_SHA256.
            (Version::Tls12, 0xcca8..=0xccaa) => (Sha256, ChaCha20Poly1305),
            _ => return None,
        };
        Some(Suite {
            id,
            version,
            hash,
            aead,
        })
    }
}

/// Why a record did not decrypt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenError {
    /// Shorter than its explicit nonce and tag.
    TooShort,
    /// The tag did not verify: wrong key, wrong sequence number or altered bytes.
    Auth,
}

/// The read side of one direction's record protection: key, IV, next sequence number.
pub struct RecordKey {
    key: LessSafeKey,
    iv: [u8; NONCE_LEN],
    fixed_iv_len: usize,
    version: Version,
    explicit_nonce: bool,
    seq: u64,
}

impl std::fmt::Debug for RecordKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecordKey")
            .field("version", &self.version)
            .field("seq", &self.seq)
            .finish_non_exhaustive()
    }
}

impl RecordKey {
    /// A key for `suite` from its write key and IV (TLS 1.3: 12 bytes; TLS 1.2: the key
    /// block's fixed IV). `None` if the lengths are not the suite's.
    pub fn new(suite: &Suite, key: &[u8], iv: &[u8]) -> Option<RecordKey> {
        let fixed_iv_len = match suite.version {
            Version::Tls13 => NONCE_LEN,
            Version::Tls12 => suite.aead.tls12_fixed_iv_len(),
        };
        if key.len() != suite.aead.key_len() || iv.len() != fixed_iv_len {
            return None;
        }
        let key = UnboundKey::new(suite.aead.algorithm(), key).ok()?;
        let mut full_iv = [0; NONCE_LEN];
        full_iv[..fixed_iv_len].copy_from_slice(iv);
        Some(RecordKey {
            key: LessSafeKey::new(key),
            iv: full_iv,
            fixed_iv_len,
            version: suite.version,
            explicit_nonce: suite.version == Version::Tls12 && fixed_iv_len != NONCE_LEN,
            seq: 0,
        })
    }

    /// The sequence number of the next record.
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// Decrypts the record whose 5-byte header is `header` and whose fragment is `fragment`
    /// (modified in place). Returns the plaintext's range in `fragment` (TLS 1.3: the inner
    /// plaintext, content type and padding still on) and advances the sequence number; on an
    /// error the sequence number stays.
    pub fn open(
        &mut self,
        header: [u8; 5],
        fragment: &mut [u8],
    ) -> Result<std::ops::Range<usize>, OpenError> {
        let explicit = if self.explicit_nonce {
            GCM_EXPLICIT_NONCE_LEN
        } else {
            0
        };
        if fragment.len() < explicit + TAG_LEN {
            return Err(OpenError::TooShort);
        }
        let mut nonce = self.iv;
        if self.explicit_nonce {
            nonce[self.fixed_iv_len..].copy_from_slice(&fragment[..explicit]);
        } else {
            for (n, s) in nonce[NONCE_LEN - 8..]
                .iter_mut()
                .zip(self.seq.to_be_bytes())
            {
                *n ^= s;
            }
        }
        let nonce = Nonce::assume_unique_for_key(nonce);
        let result = match self.version {
            Version::Tls13 => self
                .key
                .open_in_place(nonce, Aad::from(header), fragment)
                .map(|p| p.len()),
            Version::Tls12 => {
                let plain_len = fragment.len() - explicit - TAG_LEN;
                let mut aad = [0u8; 13];
                aad[..8].copy_from_slice(&self.seq.to_be_bytes());
                aad[8..11].copy_from_slice(&header[..3]);
                aad[11..].copy_from_slice(&(plain_len as u16).to_be_bytes());
                self.key
                    .open_in_place(nonce, Aad::from(aad), &mut fragment[explicit..])
                    .map(|p| p.len())
            }
        };
        let len = result.map_err(|_| OpenError::Auth)?;
        self.seq = self.seq.wrapping_add(1);
        Ok(explicit..explicit + len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suites_and_lengths() {
        let s = Suite::find(Version::Tls13, 0x1302).unwrap();
        assert_eq!((s.hash, s.aead.key_len()), (Hash::Sha384, 32));
        assert!(Suite::find(Version::Tls13, 0xc02f).is_none());
        assert!(Suite::find(Version::Tls12, 0x1301).is_none());
        // TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA: not an AEAD suite.
        assert!(Suite::find(Version::Tls12, 0xc013).is_none());
        let gcm12 = Suite::find(Version::Tls12, 0xc030).unwrap();
        assert!(RecordKey::new(&gcm12, &[0; 32], &[0; 4]).is_some());
        assert!(RecordKey::new(&gcm12, &[0; 32], &[0; 12]).is_none());
        assert!(RecordKey::new(&gcm12, &[0; 16], &[0; 4]).is_none());
    }

    #[test]
    fn short_and_altered_records_fail_without_advancing() {
        let suite = Suite::find(Version::Tls12, 0xc02f).unwrap();
        let mut key = RecordKey::new(&suite, &[7; 16], &[1; 4]).unwrap();
        let mut short = [0u8; 23];
        assert_eq!(
            key.open([23, 3, 3, 0, 23], &mut short),
            Err(OpenError::TooShort)
        );
        let mut junk = [0u8; 40];
        assert_eq!(key.open([23, 3, 3, 0, 40], &mut junk), Err(OpenError::Auth));
        assert_eq!(key.seq(), 0);
    }
}
