//! The DNS messages of a lookup rebuilt when its wire bytes are not at hand (the JSON API,
//! lookups joined mid-stream), for the pcapng output.

use std::io;
use std::net::IpAddr;

use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA};
use hickory_proto::rr::{Name, RData, Record, RecordType};

use crate::lookup::Lookup;

/// DNS messages rebuilt from a [`Lookup`] whose wire bytes are not available.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SynthesizedDns {
    /// The query: `dns_id`, RD, one question (`qname`, `qtype`).
    pub query: Vec<u8>,
    /// The response (QR, RD, RA, the rcode, A/AAAA answers with TTL 0), when the lookup has
    /// an rcode.
    pub answer: Option<Vec<u8>>,
    /// Answers that are not A/AAAA addresses and were left out.
    pub omitted_answers: usize,
}

/// Rebuilds the query and answer of a lookup with hickory-proto. A `qname` that is not a
/// valid name becomes the root, an unknown `qtype` type 0, an unknown rcode SERVFAIL; only
/// the low 4 bits of the rcode reach the header (no EDNS).
pub fn synthesize_dns(l: &Lookup) -> io::Result<SynthesizedDns> {
    let mut name =
        Name::from_ascii(l.qname.as_deref().unwrap_or(".")).unwrap_or_else(|_| Name::root());
    name.set_fqdn(true);
    let qtype = record_type(l.qtype.as_deref().unwrap_or(""));
    let mut msg = Message::new(l.dns_id.unwrap_or(0), MessageType::Query, OpCode::Query);
    msg.metadata.recursion_desired = true;
    msg.add_query(Query::query(name.clone(), qtype));
    let query = msg.to_vec().map_err(io::Error::other)?;
    let Some(rcode) = l.rcode.as_deref() else {
        return Ok(SynthesizedDns {
            query,
            answer: None,
            omitted_answers: l.answers.len(),
        });
    };
    msg.metadata.message_type = MessageType::Response;
    msg.metadata.recursion_available = true;
    msg.metadata.response_code = <ResponseCode as From<u16>>::from(rcode_value(rcode));
    let mut omitted = 0;
    for a in &l.answers {
        let rdata = match a.parse::<IpAddr>() {
            Ok(IpAddr::V4(ip)) => RData::A(A(ip)),
            Ok(IpAddr::V6(ip)) => RData::AAAA(AAAA(ip)),
            Err(_) => {
                omitted += 1;
                continue;
            }
        };
        msg.add_answer(Record::from_rdata(name.clone(), 0, rdata));
    }
    let answer = msg.to_vec().map_err(io::Error::other)?;
    Ok(SynthesizedDns {
        query,
        answer: Some(answer),
        omitted_answers: omitted,
    })
}

/// The record type of a mnemonic (`AAAA`, `TYPE65280`); unknown mnemonics become type 0.
fn record_type(mnemonic: &str) -> RecordType {
    let upper = mnemonic.to_ascii_uppercase();
    if let Some(n) = upper
        .strip_prefix("TYPE")
        .and_then(|n| n.parse::<u16>().ok())
    {
        return RecordType::from(n);
    }
    upper.parse().unwrap_or(RecordType::Unknown(0))
}

/// The RCODE of a mnemonic as [`crate::proto::dns::rcode_name`] spells it (`RCODE4000` too);
/// unknown mnemonics become SERVFAIL.
fn rcode_value(mnemonic: &str) -> u16 {
    if let Some(n) = mnemonic.strip_prefix("RCODE").and_then(|n| n.parse().ok()) {
        return n;
    }
    (0..24)
        .find(|&c| crate::proto::dns::rcode_name(c) == mnemonic)
        .unwrap_or(2)
}
