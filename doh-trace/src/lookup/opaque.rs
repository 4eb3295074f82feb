//! Which encrypted connections are reported as opaque DNS when their plaintext is out of reach:
//! TLS to a DoT port or to a well-known resolver (by server name or address), QUIC to a DoQ
//! port or to a well-known resolver.

use std::net::SocketAddr;

use crate::{lookup::resolvers::ResolverList, proto::tls::ClientHelloInfo};

/// The DoT and DoQ port (RFC 7858, RFC 9250).
pub const DOT_PORT: u16 = 853;
/// HTTPS (DoH, and DoH over HTTP/3 on UDP).
pub const HTTPS_PORT: u16 = 443;

/// The opaque transport of a TLS-over-TCP connection, if it looks like encrypted DNS: ALPN
/// `dot` or port 853 make DoT; a resolver name (SNI) or address on the list makes DoH.
pub fn tls_candidate(
    resolvers: &ResolverList,
    peer: Option<SocketAddr>,
    hello: Option<&ClientHelloInfo>,
) -> Option<&'static str> {
    let alpn_dot = hello.is_some_and(|h| h.alpn.iter().any(|a| a == "dot"));
    if alpn_dot || peer.is_some_and(|p| p.port() == DOT_PORT) {
        return Some("dot-opaque");
    }
    let named = hello
        .and_then(|h| h.server_name.as_deref())
        .is_some_and(|n| resolvers.match_name(n).is_some());
    let listed = peer.is_some_and(|p| resolvers.match_addr(p.ip()).is_some());
    (named || listed).then_some("doh-opaque")
}

/// The opaque transport of a connected UDP socket, if it looks like encrypted DNS over QUIC:
/// port 853 is DoQ; port 443 to a listed resolver address is DoH over HTTP/3.
pub fn quic_candidate(resolvers: &ResolverList, peer: SocketAddr) -> Option<&'static str> {
    match peer.port() {
        DOT_PORT => Some("doq-opaque"),
        HTTPS_PORT if resolvers.match_addr(peer.ip()).is_some() => Some("doh-opaque"),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hello(name: &str, alpn: &[&str]) -> ClientHelloInfo {
        ClientHelloInfo {
            server_name: Some(name.into()),
            alpn: alpn.iter().map(|s| s.to_string()).collect(),
            random: [0; 32],
        }
    }

    #[test]
    fn names_ports_and_alpn_make_candidates() {
        let list = ResolverList::builtin();
        let local = "127.0.0.1:443".parse().ok();
        assert_eq!(
            tls_candidate(&list, local, Some(&hello("dns.google", &["h2"]))),
            Some("doh-opaque")
        );
        assert_eq!(
            tls_candidate(&list, local, Some(&hello("example.org", &["dot"]))),
            Some("dot-opaque")
        );
        assert_eq!(
            tls_candidate(&list, "127.0.0.1:853".parse().ok(), None),
            Some("dot-opaque")
        );
        assert_eq!(
            tls_candidate(&list, "1.1.1.1:443".parse().ok(), None),
            Some("doh-opaque")
        );
        assert_eq!(
            tls_candidate(&list, local, Some(&hello("example.org", &["h2"]))),
            None
        );
        assert_eq!(
            quic_candidate(&list, "192.0.2.1:853".parse().unwrap()),
            Some("doq-opaque")
        );
        assert_eq!(
            quic_candidate(&list, "8.8.8.8:443".parse().unwrap()),
            Some("doh-opaque")
        );
        assert_eq!(
            quic_candidate(&list, "192.0.2.1:443".parse().unwrap()),
            None
        );
    }
}
