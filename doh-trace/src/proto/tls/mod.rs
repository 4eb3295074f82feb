//! TLS as seen on a socket: the ClientHello a client sends in the clear ([`client_hello`]:
//! server name, ALPN).

pub mod client_hello;

pub use client_hello::{parse_client_hello, ClientHelloInfo, HelloParse};
