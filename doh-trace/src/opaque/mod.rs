//! Opaque encrypted DNS: connections that are probably DoH, DoT or DoQ but whose plaintext the
//! tracer cannot see (a TLS library it does not hook, a statically linked client).
//!
//! What is left to go on is the connection itself: the server name and ALPN list of the TLS
//! ClientHello the client sends in the clear ([`client_hello`]; ALPN `dot` marks DoT, `h2` or
//! `http/1.1` to a known resolver marks DoH), and the peer's address or name, looked up in a
//! list of well-known public resolvers ([`resolvers`]). DoQ's ClientHello travels inside QUIC
//! Initial packets, protected with keys derived from the connection ID; nothing here removes
//! that protection, so for DoQ only the address (and UDP port 853) is available.

pub mod client_hello;
pub mod resolvers;

pub use client_hello::{parse_client_hello, ClientHelloInfo, HelloParse};
pub use resolvers::{ResolverList, ResolverListError};
