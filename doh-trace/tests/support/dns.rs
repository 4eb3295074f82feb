//! DNS messages for the tests: queries and the test server's answers built with hickory-proto,
//! and wire pieces (header, labels, compression pointers, record heads) for hand-made and
//! deliberately malformed messages.

use hickory_proto::{
    op::{Message, MessageType, OpCode, Query, ResponseCode},
    rr::{rdata, rdata::TXT, Name, RData, Record, RecordType},
};

// ===== built with hickory-proto =====

/// A DNS query for `name`/`rtype` with `id`.
pub fn query(name: &str, rtype: RecordType, id: u16) -> Vec<u8> {
    let mut m = Message::new(id, MessageType::Query, OpCode::Query);
    m.metadata.recursion_desired = true;
    m.add_query(Query::query(Name::from_ascii(name).unwrap(), rtype));
    m.to_vec().unwrap()
}

/// The answer the test server gives: fixed addresses for A/AAAA, NXDOMAIN for `nx.` names.
pub fn answer(query_bytes: &[u8]) -> Vec<u8> {
    let q = Message::from_vec(query_bytes).unwrap();
    let mut m = Message::new(q.metadata.id, MessageType::Response, OpCode::Query);
    m.metadata.recursion_desired = true;
    let question = q.queries[0].clone();
    let name = question.name().clone();
    if name.to_ascii().starts_with("nx.") {
        m.metadata.response_code = ResponseCode::NXDomain;
    } else {
        match question.query_type() {
            RecordType::A => {
                m.add_answer(Record::from_rdata(
                    name.clone(),
                    300,
                    RData::A(rdata::A::new(192, 0, 2, 10)),
                ));
            }
            RecordType::AAAA => {
                let ip: std::net::Ipv6Addr = "2001:db8::10".parse().unwrap();
                m.add_answer(Record::from_rdata(
                    name.clone(),
                    300,
                    RData::AAAA(rdata::AAAA(ip)),
                ));
            }
            _ => {}
        }
    }
    m.add_query(question);
    m.to_vec().unwrap()
}

/// An answer to `q` with one A record `ip`.
pub fn answer_ip(q: &[u8], ip: [u8; 4]) -> Vec<u8> {
    let q = Message::from_vec(q).unwrap();
    let mut m = Message::new(q.metadata.id, MessageType::Response, OpCode::Query);
    m.metadata.recursion_desired = true;
    let question = q.queries[0].clone();
    m.add_answer(Record::from_rdata(
        question.name().clone(),
        300,
        RData::A(rdata::A::new(ip[0], ip[1], ip[2], ip[3])),
    ));
    m.add_query(question);
    m.to_vec().unwrap()
}

/// A TXT answer of `strings` character-strings of 250 octets each (about 251 × `strings`
/// octets of RDATA), and its presentation form as hickory-proto prints it.
pub fn big_txt_answer(query: &[u8], strings: usize) -> (Vec<u8>, String) {
    let q = Message::from_vec(query).unwrap();
    let question = q.queries[0].clone();
    let texts: Vec<String> = (0..strings)
        .map(|i| {
            let mut s = format!("{i:04}:");
            while s.len() < 250 {
                s.push((b'a' + ((s.len() * 7 + i) % 26) as u8) as char);
            }
            s
        })
        .collect();
    let rdata = RData::TXT(TXT::new(texts));
    let shown = rdata.to_string();
    let mut m = Message::new(q.metadata.id, MessageType::Response, OpCode::Query);
    m.metadata.recursion_desired = true;
    m.add_query(question.clone());
    m.add_answer(Record::from_rdata(question.name().clone(), 60, rdata));
    (m.to_vec().unwrap(), shown)
}

/// 160 strings of 250 octets: a 40 KiB answer, more than two 16 KiB DATA frames and TLS reads.
pub const BIG_TXT_STRINGS: usize = 160;

/// The test server's answer: a big TXT record for `big*` TXT questions, else [`answer`].
pub fn answer_for(query: &[u8]) -> Vec<u8> {
    let q = Message::from_vec(query).unwrap();
    let question = &q.queries[0];
    if question.query_type() == RecordType::TXT && question.name().to_ascii().starts_with("big") {
        big_txt_answer(query, BIG_TXT_STRINGS).0
    } else {
        answer(query)
    }
}

/// The presentation form of the big TXT answer [`answer_for`] gives for `name`.
pub fn big_txt_shown(name: &str) -> String {
    big_txt_answer(&query(name, RecordType::TXT, 0), BIG_TXT_STRINGS).1
}

/// The qname of a DNS query.
pub fn qname_of(q: &[u8]) -> String {
    Message::from_vec(q).unwrap().queries[0]
        .name()
        .to_ascii()
        .trim_end_matches('.')
        .to_string()
}

// ===== wire pieces, for hand-made and malformed messages =====

/// A DNS header: id, flags, question and answer counts (no authority or additional records).
pub fn dns_header(id: u16, flags: u16, qd: u16, an: u16) -> Vec<u8> {
    [id, flags, qd, an, 0, 0]
        .iter()
        .flat_map(|v| v.to_be_bytes())
        .collect()
}

/// `name` as uncompressed labels, with the root label.
pub fn labels(name: &str) -> Vec<u8> {
    let mut v = Vec::new();
    for l in name.split('.') {
        v.push(l.len() as u8);
        v.extend_from_slice(l.as_bytes());
    }
    v.push(0);
    v
}

/// A compression pointer to `offset`.
pub fn ptr(offset: usize) -> [u8; 2] {
    assert!(offset < 0x4000);
    [0xc0 | (offset >> 8) as u8, offset as u8]
}

/// Type A, class IN.
pub const A_IN: [u8; 4] = [0, 1, 0, 1];

/// A record's fixed part after its name: type, class IN, TTL 300, rdlength.
pub fn rr_fixed(rtype: u16, rdlen: u16) -> Vec<u8> {
    let mut v = rtype.to_be_bytes().to_vec();
    v.extend_from_slice(&[0, 1, 0, 0, 1, 0x2c]);
    v.extend_from_slice(&rdlen.to_be_bytes());
    v
}
