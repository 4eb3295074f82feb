//! TLS decrypted with an NSS key log (`SSLKEYLOGFILE`), as a packet capture or a socket tap
//! sees it, and the QUIC Initial ClientHello.
//!
//! # API (stable; the capture reader builds on it)
//!
//! - [`KeyLog`]: `KeyLog::default()`, [`KeyLog::add_text`] (whole key log text) or
//!   [`KeyLog::add_chunk`] (a growing file, pieces split anywhere), each returning the
//!   [`KeyLogStats`] of what it read; [`KeyLog::get`] by client random. Lines:
//!   `CLIENT_RANDOM`, `CLIENT_/SERVER_HANDSHAKE_TRAFFIC_SECRET`, `CLIENT_/SERVER_TRAFFIC_SECRET_0`
//!   kept; early-data, exporter and `RSA` lines counted as ignored; comments and blank lines;
//!   anything else malformed.
//! - [`TlsDecryptor`], one per TCP connection: [`TlsDecryptor::new`],
//!   [`TlsDecryptor::feed`]`(from_client, bytes, &keys, &mut out)` with each direction's bytes
//!   in order, split anywhere; decrypted application data is appended to `out` as
//!   [`Plaintext`]`{ from_client, bytes }`, in order. [`TlsDecryptor::status`] →
//!   [`DecryptStatus`] (`NotTls`, `WaitingForHandshake`, `NoKey`, `UnsupportedCipher(suite)`,
//!   `MissingHandshake`, `Decrypting`, `Failed(FailReason)`), [`TlsDecryptor::close`] at the
//!   end of the connection (a record cut short becomes `Failed(Truncated)`),
//!   [`TlsDecryptor::counters`], and what the handshake said: `client_random`, `sni`,
//!   `client_hello` (server name and offered ALPN), `alpn` (the server's choice), `version`,
//!   `cipher_suite`, `hello_retry`, `resumed`. When the key log has no key yet, up to
//!   [`MAX_BUFFERED`] bytes per direction wait and are tried again at the next `feed`.
//! - [`quic::initial_client_hello`]`(datagram) -> Option<Vec<u8>>`: the ClientHello message of a
//!   client Initial datagram (QUIC v1 and v2); [`quic::InitialCrypto`] reassembles one spread
//!   over several datagrams; [`quic::client_hello_info`] gives its server name and ALPN.
//!
//! # Inside
//!
//! [`keylog`] (the key log), [`cipher`] (suites, `ring` AEADs, record nonces and additional
//! data), [`schedule`] (TLS 1.3 HKDF-Expand-Label, Derive-Secret, traffic keys, KeyUpdate),
//! [`prf12`] (TLS 1.2 PRF and key block), [`record`] (record framing), [`handshake`]
//! (handshake messages and the hellos), [`connection`] (the state machine of both
//! directions), [`quic`] (Initial packets). Suites: TLS 1.3 AES-128-GCM, AES-256-GCM,
//! ChaCha20-Poly1305; TLS 1.2 (EC)DHE/RSA with AES-128/256-GCM and ChaCha20-Poly1305.
//! CBC suites, TLS 1.0/1.1 and 0-RTT data are not decrypted.

pub mod cipher;
pub mod connection;
pub mod handshake;
pub mod keylog;
pub mod prf12;
pub mod quic;
pub mod record;
pub mod schedule;

pub use connection::{
    DecryptCounters, DecryptStatus, FailReason, Plaintext, TlsDecryptor, MAX_BUFFERED,
};
pub use keylog::{KeyLog, KeyLogStats, Secrets};

#[cfg(test)]
mod real_tests;
#[cfg(test)]
mod tests;
