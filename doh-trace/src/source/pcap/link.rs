//! The link layer: from a packet of a given link type to its IP packet. Ethernet (with
//! 802.1Q / 802.1ad / QinQ tags), Linux cooked capture v1 (`tcpdump -i any`, 113) and v2
//! (276), raw IP (101, 12, 14; IPv4-only 228, IPv6-only 229) and BSD loopback (null 0, loop 108).

/// `LINKTYPE_*` values read here.
pub mod linktype {
    pub const NULL: i32 = 0;
    pub const ETHERNET: i32 = 1;
    pub const RAW_OPENBSD: i32 = 12;
    pub const RAW_BSD: i32 = 14;
    pub const RAW: i32 = 101;
    pub const LOOP: i32 = 108;
    pub const LINUX_SLL: i32 = 113;
    pub const IPV4: i32 = 228;
    pub const IPV6: i32 = 229;
    pub const LINUX_SLL2: i32 = 276;
}

/// VLAN tags followed before giving up on a frame.
const MAX_VLAN_TAGS: usize = 4;

/// What a frame carries.
#[derive(Debug, PartialEq, Eq)]
pub enum Network<'a> {
    /// An IPv4 or IPv6 packet (the version is in its first nibble).
    Ip(&'a [u8]),
    /// Something else (ARP, LLDP, IPX…): skipped.
    NotIp,
    /// Shorter than its link header.
    Truncated,
    /// A link type this reader does not know.
    UnknownLinkType,
}

/// The IP packet inside a frame of `linktype`.
pub fn network(linktype: i32, frame: &[u8]) -> Network<'_> {
    match linktype {
        linktype::ETHERNET => ethernet(frame),
        linktype::LINUX_SLL => match (frame.get(14..16), frame.get(16..)) {
            (Some(proto), Some(rest)) => {
                by_ethertype(u16::from_be_bytes([proto[0], proto[1]]), rest)
            }
            _ => Network::Truncated,
        },
        linktype::LINUX_SLL2 => match (frame.get(0..2), frame.get(20..)) {
            (Some(proto), Some(rest)) => {
                by_ethertype(u16::from_be_bytes([proto[0], proto[1]]), rest)
            }
            _ => Network::Truncated,
        },
        linktype::RAW
        | linktype::RAW_OPENBSD
        | linktype::RAW_BSD
        | linktype::IPV4
        | linktype::IPV6 => raw(frame),
        linktype::NULL | linktype::LOOP => {
            let Some(family) = frame.get(0..4) else {
                return Network::Truncated;
            };
            // The address family in the capturing host's byte order (null) or big-endian
            // (loop): AF_INET is 2 everywhere, AF_INET6 is 10, 24, 28 or 30.
            let family = [family[0], family[1], family[2], family[3]];
            let family = match (u32::from_le_bytes(family), u32::from_be_bytes(family)) {
                (le, _) if le < 256 => le,
                (_, be) => be,
            };
            match family {
                2 | 10 | 24 | 28 | 30 => raw(&frame[4..]),
                _ => Network::NotIp,
            }
        }
        _ => Network::UnknownLinkType,
    }
}

/// An Ethernet II frame, its VLAN tags skipped.
fn ethernet(frame: &[u8]) -> Network<'_> {
    let mut at = 12;
    for _ in 0..=MAX_VLAN_TAGS {
        let Some(t) = frame.get(at..at + 2) else {
            return Network::Truncated;
        };
        match u16::from_be_bytes([t[0], t[1]]) {
            0x8100 | 0x88a8 | 0x9100 => at += 4,
            ethertype => return by_ethertype(ethertype, &frame[at + 2..]),
        }
    }
    Network::NotIp
}

fn by_ethertype(ethertype: u16, rest: &[u8]) -> Network<'_> {
    match ethertype {
        0x0800 | 0x86dd => raw(rest),
        _ => Network::NotIp,
    }
}

/// Raw IP: version 4 or 6.
fn raw(packet: &[u8]) -> Network<'_> {
    match packet.first().map(|b| b >> 4) {
        Some(4 | 6) => Network::Ip(packet),
        Some(_) => Network::NotIp,
        None => Network::Truncated,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const IP: [u8; 4] = [0x45, 0, 0, 20];

    #[test]
    fn every_link_type_reaches_the_ip_packet() {
        let mut eth = vec![0u8; 12];
        eth.extend([0x81, 0x00, 0, 5, 0x88, 0xa8, 0, 6, 0x08, 0x00]);
        eth.extend(IP);
        assert_eq!(network(linktype::ETHERNET, &eth), Network::Ip(&IP));
        let mut sll = vec![0u8; 14];
        sll.extend([0x86, 0xdd, 0x60]);
        assert_eq!(network(linktype::LINUX_SLL, &sll), Network::Ip(&[0x60]));
        let mut sll2 = vec![0x08, 0x00];
        sll2.extend([0u8; 18]);
        sll2.extend(IP);
        assert_eq!(network(linktype::LINUX_SLL2, &sll2), Network::Ip(&IP));
        let mut null = vec![2, 0, 0, 0];
        null.extend(IP);
        assert_eq!(network(linktype::NULL, &null), Network::Ip(&IP));
        let mut lo = vec![0, 0, 0, 30, 0x60];
        assert_eq!(network(linktype::LOOP, &lo), Network::Ip(&[0x60]));
        lo[3] = 7;
        assert_eq!(network(linktype::LOOP, &lo), Network::NotIp);
        assert_eq!(network(linktype::RAW, &IP), Network::Ip(&IP));
        assert_eq!(network(linktype::ETHERNET, &[0; 13]), Network::Truncated);
        assert_eq!(network(linktype::ETHERNET, &[0; 14]), Network::NotIp);
        assert_eq!(network(147, &IP), Network::UnknownLinkType);
        let mut tags = vec![0u8; 12];
        for _ in 0..10 {
            tags.extend([0x81, 0x00, 0, 1]);
        }
        assert_eq!(network(linktype::ETHERNET, &tags), Network::NotIp);
    }
}
