//! QUIC Initial packets: arbitrary datagrams, and RFC 9001 A.2's client Initial with the input
//! XORed over it. Nothing may panic; a ClientHello found is a whole handshake message of type 1
//! within the CRYPTO bound.
#![no_main]
use doh_trace::proto::tls::decrypt::quic::{
    client_hello_info, initial_client_hello, InitialCrypto, MAX_CRYPTO,
};
use libfuzzer_sys::fuzz_target;

const A2: &str = include_str!("../../doh-trace/tests/fixtures/tls/rfc9001-a2-client-initial.hex");

fn check(datagram: &[u8]) {
    if let Some(hello) = initial_client_hello(datagram) {
        assert!(hello.len() >= 4 && hello.len() <= MAX_CRYPTO && hello[0] == 1);
        let _ = client_hello_info(&hello);
    }
}

fuzz_target!(|data: &[u8]| {
    check(data);
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    if mode & 1 == 1 {
        let mut packet: Vec<u8> = (0..A2.trim().len() / 2)
            .filter_map(|i| u8::from_str_radix(&A2[2 * i..2 * i + 2], 16).ok())
            .collect();
        for (b, x) in packet.iter_mut().skip(usize::from(mode >> 1)).zip(rest) {
            *b ^= x;
        }
        check(&packet);
    } else {
        // The input as several datagrams of one connection.
        let mut crypto = InitialCrypto::default();
        for datagram in rest.chunks(usize::from(mode).max(1) * 8) {
            crypto.push_datagram(datagram);
        }
        let _ = crypto.client_hello();
    }
});
