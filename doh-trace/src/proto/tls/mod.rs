//! TLS as seen on a socket: the ClientHello a client sends in the clear ([`client_hello`]:
//! server name, ALPN), and TLS (and QUIC Initial packets) decrypted with a key log
//! ([`decrypt`]).

pub mod client_hello;
pub mod decrypt;

pub use client_hello::{parse_client_hello, ClientHelloInfo, HelloParse};
