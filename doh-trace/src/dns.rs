//! DNS messages, parsed by hickory-proto, summarised into what a lookup record shows.

use hickory_proto::{
    op::{Message, MessageType},
    rr::{Name, RData},
};

use crate::lookup::ip_text;

/// What doh-trace reports of one DNS message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsSummary {
    /// DNS message id.
    pub id: u16,
    /// Whether the QR bit says "response".
    pub is_response: bool,
    /// First question's name, fully qualified without the trailing dot ("." for the root).
    pub qname: String,
    /// First question's type mnemonic ("A", "AAAA", "HTTPS", "TYPE65280"...).
    pub qtype: String,
    /// Response code mnemonic ("NOERROR", "NXDOMAIN"...).
    pub rcode: String,
    /// Answer section records as presentation-format strings.
    pub answers: Vec<String>,
}

impl DnsSummary {
    /// Whether this message asks `qname`/`qtype`. Names are compared without case: DNS 0x20
    /// clients vary it, and answers echo it.
    pub fn asks(&self, qname: &str, qtype: &str) -> bool {
        self.qtype == qtype && self.qname.eq_ignore_ascii_case(qname)
    }
}

/// The DNS bytes are not a message hickory-proto could parse, or have no question.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DnsError {
    #[error("malformed DNS message: {0}")]
    Malformed(String),
    #[error("DNS message has no question")]
    NoQuestion,
}

/// Parses a DNS message and summarises it.
pub fn summarize(bytes: &[u8]) -> Result<DnsSummary, DnsError> {
    let msg = Message::from_vec(bytes).map_err(|e| DnsError::Malformed(e.to_string()))?;
    let q = msg.queries.first().ok_or(DnsError::NoQuestion)?;
    Ok(DnsSummary {
        id: msg.metadata.id,
        is_response: msg.metadata.message_type == MessageType::Response,
        qname: name_text(q.name()),
        qtype: <&'static str>::from(q.query_type()).to_owned(),
        rcode: rcode_name(u16::from(msg.metadata.response_code)),
        answers: msg.answers.iter().map(|r| rdata_text(&r.data)).collect(),
    })
}

/// A name as hickory-proto's `to_ascii` spells it, without the trailing dot ("." for the
/// root). Names of letters, digits, `_` and inner `-` (nearly all) are joined directly; any
/// other takes hickory-proto's escaping.
pub fn name_text(name: &Name) -> String {
    let plain = |label: &[u8]| {
        label.first().is_some_and(|&b| b != b'-')
            && label
                .iter()
                .all(|&b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    if name.is_root() || !name.iter().all(plain) {
        let mut text = name.to_ascii();
        if text.len() > 1 && text.ends_with('.') {
            text.pop();
        }
        return text;
    }
    let mut text = String::with_capacity(name.len());
    for (i, label) in name.iter().enumerate() {
        if i > 0 {
            text.push('.');
        }
        // Checked above: ASCII only.
        text.extend(label.iter().map(|&b| char::from(b)));
    }
    text
}

fn rdata_text(data: &RData) -> String {
    match data {
        RData::A(a) => ip_text(a.0.into()),
        RData::AAAA(a) => ip_text(a.0.into()),
        other => other.to_string(),
    }
}

/// IANA mnemonic of a DNS RCODE.
pub fn rcode_name(code: u16) -> String {
    let name = match code {
        0 => "NOERROR",
        1 => "FORMERR",
        2 => "SERVFAIL",
        3 => "NXDOMAIN",
        4 => "NOTIMP",
        5 => "REFUSED",
        6 => "YXDOMAIN",
        7 => "YXRRSET",
        8 => "NXRRSET",
        9 => "NOTAUTH",
        10 => "NOTZONE",
        11 => "DSOTYPENI",
        16 => "BADVERS",
        17 => "BADKEY",
        18 => "BADTIME",
        19 => "BADMODE",
        20 => "BADNAME",
        21 => "BADALG",
        22 => "BADTRUNC",
        23 => "BADCOOKIE",
        other => return format!("RCODE{other}"),
    };
    name.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `www.doh.test AAAA` query as curl sends it over DoH (id 0, RD).
    pub const QUERY_AAAA: &[u8] = &[
        0x00, 0x00, 0x01, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x03, b'w', b'w',
        b'w', 0x03, b'd', b'o', b'h', 0x04, b't', b'e', b's', b't', 0x00, 0x00, 0x1c, 0x00, 0x01,
    ];

    #[test]
    fn summarises_a_query() {
        let s = summarize(QUERY_AAAA).unwrap();
        assert_eq!((s.id, s.is_response), (0, false));
        assert_eq!(
            (s.qname.as_str(), s.qtype.as_str()),
            ("www.doh.test", "AAAA")
        );
        assert!(s.answers.is_empty());
    }

    #[test]
    fn summarises_an_answer_with_compressed_names() {
        let mut r = QUERY_AAAA.to_vec();
        r[2] = 0x81; // QR, RD
        r[3] = 0x80; // RA, NOERROR
        r[7] = 1; // ANCOUNT
        r.extend_from_slice(&[
            0xc0, 0x0c, 0x00, 0x1c, 0x00, 0x01, 0, 0, 0x01, 0x2c, 0x00, 0x10,
        ]);
        r.extend_from_slice(
            &"2001:db8::10"
                .parse::<std::net::Ipv6Addr>()
                .unwrap()
                .octets(),
        );
        let s = summarize(&r).unwrap();
        assert!(s.is_response);
        assert_eq!(s.rcode, "NOERROR");
        assert_eq!(s.answers, vec!["2001:db8::10"]);
    }

    #[test]
    fn rejects_garbage_and_compression_loops() {
        assert!(summarize(b"\x00\x01garbage").is_err());
        let mut looped = QUERY_AAAA[..12].to_vec();
        looped.extend_from_slice(&[0xc0, 0x0c, 0x00, 0x01, 0x00, 0x01]); // name points at itself
        assert!(summarize(&looped).is_err());
    }

    #[test]
    fn spells_names_like_hickory_to_ascii() {
        let labels: [&[&[u8]]; 9] = [
            &[],
            &[b"www", b"doh", b"test"],
            &[b"_dns", b"resolver", b"arpa"],
            &[b"a-b", b"c"],
            &[b"-lead", b"x"],
            &[b"*", b"wild"],
            &[b"xn--nxasmq6b", b"test"],
            &[b"UPPER", b"Case"],
            &[b"sp ace", b"d.ot", b"q\"\\", b"\x00\x7f\xff"],
        ];
        for labels in labels {
            let name = Name::from_labels(labels.iter().copied()).unwrap();
            let mut want = name.to_ascii();
            if want.len() > 1 && want.ends_with('.') {
                want.pop();
            }
            assert_eq!(name_text(&name), want, "{labels:?}");
        }
    }

    #[test]
    fn names_rcodes_like_dig_does() {
        assert_eq!(rcode_name(3), "NXDOMAIN");
        assert_eq!(rcode_name(4000), "RCODE4000");
    }
}
