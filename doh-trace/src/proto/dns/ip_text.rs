//! IP addresses in text, as `Display` spells them but without `core::fmt` (every lookup
//! formats its resolver address, every A/AAAA answer its address).

use std::net::{IpAddr, Ipv4Addr};

/// An address as `Display` spells it, without `core::fmt` (it is on every lookup's path).
pub fn ip_text(ip: IpAddr) -> String {
    let mut text = String::with_capacity(39);
    match ip {
        IpAddr::V4(v4) => push_ipv4(&mut text, v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => {
                text.push_str("::ffff:");
                push_ipv4(&mut text, v4);
            }
            None => push_ipv6(&mut text, v6.segments()),
        },
    }
    text
}

fn push_ipv4(text: &mut String, v4: Ipv4Addr) {
    for (i, octet) in v4.octets().into_iter().enumerate() {
        if i > 0 {
            text.push('.');
        }
        // Decimal without leading zeros, a digit at a time (cheaper than a formatter call
        // for at most three digits).
        if octet >= 100 {
            text.push(char::from(b'0' + octet / 100));
        }
        if octet >= 10 {
            text.push(char::from(b'0' + octet / 10 % 10));
        }
        text.push(char::from(b'0' + octet % 10));
    }
}

/// RFC 5952 text, as `Ipv6Addr`'s `Display`: lowercase hex without leading zeros, the first
/// longest run of two or more zero groups as `::`.
fn push_ipv6(text: &mut String, groups: [u16; 8]) {
    let (mut run_at, mut run_len) = (8, 0);
    let mut i = 0;
    while i < 8 {
        let start = i;
        while i < 8 && groups[i] == 0 {
            i += 1;
        }
        if i - start > run_len.max(1) {
            (run_at, run_len) = (start, i - start);
        }
        i += 1;
    }
    let hex = |text: &mut String, g: u16| {
        let digits = (16 - g.leading_zeros()).div_ceil(4).max(1);
        for shift in (0..digits).rev() {
            let nibble = (g >> (shift * 4)) & 0xf;
            text.push(char::from(b"0123456789abcdef"[usize::from(nibble)]));
        }
    };
    let mut i = 0;
    while i < 8 {
        if i == run_at {
            text.push_str("::");
            i += run_len;
            continue;
        }
        if i > 0 && i != run_at + run_len {
            text.push(':');
        }
        hex(text, groups[i]);
        i += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spells_addresses_like_display() {
        for ip in [
            "0.0.0.0",
            "255.255.255.255",
            "10.0.100.9",
            "::1",
            "2001:db8::10",
            "::ffff:1.2.3.4",
            "::",
            "1::",
            "::2:0:0:3",
            "1:0:0:2:0:0:0:3",
            "1:0:2:0:3:0:4:0",
            "fe80::abcd:ef01",
            "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
            "::1.2.3.4",
            "64:ff9b::192.0.2.33",
        ] {
            let ip: IpAddr = ip.parse().unwrap();
            assert_eq!(ip_text(ip), ip.to_string());
        }
        // Every octet value in every position.
        for octet in 0..=255u8 {
            for at in 0..4 {
                let mut octets = [1, 20, 255, 0];
                octets[at] = octet;
                let ip = IpAddr::from(octets);
                assert_eq!(ip_text(ip), ip.to_string());
            }
        }
        // Every pattern of zero groups, with varied non-zero digits.
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        for zeros in 0u32..256 {
            for _ in 0..8 {
                seed = seed
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let mut groups = [0u16; 8];
                for (i, g) in groups.iter_mut().enumerate() {
                    if zeros & (1 << i) == 0 {
                        let width = (seed >> (i * 8)) as u16 % 4;
                        *g = ((seed >> (i * 5)) as u16 | 1) >> (width * 4);
                    }
                }
                let ip = IpAddr::from(std::net::Ipv6Addr::from(groups));
                assert_eq!(ip_text(ip), ip.to_string(), "{groups:x?}");
            }
        }
    }
}
