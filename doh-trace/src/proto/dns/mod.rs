//! DNS messages, parsed by hickory-proto, summarised into what a lookup record shows.

use std::{borrow::Cow, sync::Arc};

use hickory_proto::{
    op::{Header, Message, MessageType, OpCode, Query},
    rr::{DNSClass, Name, RData, RecordData, RecordType},
    serialize::binary::{BinDecodable, BinDecoder, DecodeError, Restrict},
};

pub mod client;
mod ip_text;

pub use ip_text::ip_text;

/// A mnemonic (record type, response code): shared for the ones DNS defines, spelled out
/// (`TYPE65280`, `RCODE4000`) for the others.
pub type Mnemonic = Cow<'static, str>;

/// Answer records as presentation-format strings. One is held inline: most DoH answers have
/// one record, and a lookup then costs no allocation for the list.
pub type Answers = smallvec::SmallVec<[String; 1]>;

/// What doh-trace reports of one DNS message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsSummary {
    /// DNS message id.
    pub id: u16,
    /// Whether the QR bit says "response".
    pub is_response: bool,
    /// First question's name, fully qualified without the trailing dot ("." for the root);
    /// shared by a query's summary, its reply's and the lookup record.
    pub qname: Arc<str>,
    /// First question's type mnemonic ("A", "AAAA", "HTTPS", "TYPE65280"...).
    pub qtype: Mnemonic,
    /// Response code mnemonic ("NOERROR", "NXDOMAIN"...).
    pub rcode: Mnemonic,
    /// Answer section records as presentation-format strings.
    pub answers: Answers,
}

impl DnsSummary {
    /// Heap bytes of the summary (a shared name counted as if it were owned).
    pub fn held_bytes(&self) -> usize {
        let list = match self.answers.spilled() {
            true => self.answers.capacity() * std::mem::size_of::<String>(),
            false => 0,
        };
        self.qname.len() + list + self.answers.iter().map(String::capacity).sum::<usize>()
    }

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

/// Where a message's question section starts (after the 12-octet header).
const QUESTION_START: usize = 12;

/// Parses a DNS message and summarises it.
///
/// Reads the message as `Message::from_vec` does, with hickory-proto's own section readers and
/// checks, but keeps only the first question and the answers instead of building a `Message`.
pub fn summarize(bytes: &[u8]) -> Result<DnsSummary, DnsError> {
    summarize_with(bytes, None)
}

/// Summarises `bytes`, a reply to `query` (whose summary is `asked`), as [`summarize`] does.
///
/// A reply's question section nearly always repeats the query's byte for byte. When it does
/// and the query's name is plain labels (a compression pointer could point into the header,
/// which the two messages do not share), it is skipped instead of parsed a second time: the
/// same bytes name the same question.
pub fn summarize_reply(
    bytes: &[u8],
    query: &[u8],
    asked: &DnsSummary,
) -> Result<DnsSummary, DnsError> {
    let repeated = plain_question_end(query)
        .filter(|&end| bytes.get(QUESTION_START..end) == query.get(QUESTION_START..end))
        .map(|end| (end, asked));
    summarize_with(bytes, repeated)
}

/// The end of the first question of `message` when its name is plain labels (no pointer, no
/// extended label type), without checking anything else: hickory-proto reads the message.
fn plain_question_end(message: &[u8]) -> Option<usize> {
    let mut at = QUESTION_START;
    loop {
        let len = usize::from(*message.get(at)?);
        if len == 0 {
            // The root label, then QTYPE and QCLASS.
            let end = at + 1 + 4;
            return (end <= message.len()).then_some(end);
        }
        if len >= 0x40 {
            return None;
        }
        at += 1 + len;
    }
}

fn summarize_with(
    bytes: &[u8],
    repeated: Option<(usize, &DnsSummary)>,
) -> Result<DnsSummary, DnsError> {
    let malformed = |e: DecodeError| DnsError::Malformed(e.to_string());
    let mut d = BinDecoder::new(bytes);
    let Header {
        mut metadata,
        counts,
    } = Header::read(&mut d).map_err(malformed)?;
    // Where the first question ends when its name is plain labels.
    let plain_end = match repeated {
        Some((end, _)) => Some(end),
        None => plain_question_end(bytes),
    };
    // The first question's name and type.
    let mut question: Option<(Arc<str>, Mnemonic)> = None;
    match repeated {
        // Exactly the bytes `Query::read` would consume, known to read as `asked`'s question.
        Some((end, asked)) if counts.queries == 1 => {
            d.read_slice(end - QUESTION_START).map_err(malformed)?;
            question = Some((asked.qname.clone(), asked.qtype.clone()));
        }
        _ => {
            for _ in 0..counts.queries {
                if question.is_some() {
                    Query::read(&mut d).map_err(malformed)?;
                    continue;
                }
                if let Some((end, first)) =
                    plain_end.and_then(|end| Some((end, plain_question(bytes, end)?)))
                {
                    d.read_slice(end - QUESTION_START).map_err(malformed)?;
                    question = Some(first);
                    continue;
                }
                let q = Query::read(&mut d).map_err(malformed)?;
                question = Some((name_text(q.name()).into(), type_name(q.query_type())));
            }
        }
    }
    let op = metadata.op_code;
    // A record owner that points into a plain question name need not be read again.
    let question_end = plain_end.filter(|_| question.is_some());
    let mut answers = Answers::new();
    let section = Section {
        message: bytes,
        question_end,
        op,
    };
    section
        .read(&mut d, counts.answers, |data| {
            answers.push(rdata_text(&data))
        })
        .map_err(malformed)?;
    section
        .read(&mut d, counts.authorities, drop)
        .map_err(malformed)?;
    let (_, edns, _) =
        Message::read_records(&mut d, counts.additionals.into(), true, op).map_err(malformed)?;
    if let Some(edns) = &edns {
        metadata.merge_response_code(edns.rcode_high());
    }
    let (qname, qtype) = question.ok_or(DnsError::NoQuestion)?;
    Ok(DnsSummary {
        id: metadata.id,
        is_response: metadata.message_type == MessageType::Response,
        qname,
        qtype,
        rcode: rcode_name(u16::from(metadata.response_code)),
        answers,
    })
}

/// The longest question name (in octets on the wire) [`plain_question`] reads itself, well
/// below the 255 octets hickory-proto allows: longer ones are left to hickory-proto.
const MAX_PLAIN_NAME: usize = 128;

/// The first question of `message`, which ends at `end` ([`plain_question_end`]), as
/// `Query::read` and [`name_text`] give it, when every label of its name is one `name_text`
/// joins unescaped: the labels are the text.
///
/// Labels under 64 octets ending in the root label and fewer than [`MAX_PLAIN_NAME`] octets
/// are a name `Name::read` accepts as they are; QTYPE and QCLASS are any 16-bit values. A
/// root name, a longer one, or one that needs escaping is left to hickory-proto.
fn plain_question(message: &[u8], end: usize) -> Option<(Arc<str>, Mnemonic)> {
    let name = message.get(QUESTION_START..end.checked_sub(4)?)?;
    if name.len() <= 1 || name.len() > MAX_PLAIN_NAME {
        return None;
    }
    // The wire form without its first length octet and the root label, each other length
    // octet turned into a dot: `\x03www\x03doh\x04test\x00` is `www.doh.test`.
    let mut text = [0; MAX_PLAIN_NAME];
    let text = text.get_mut(..name.len() - 2)?;
    text.copy_from_slice(name.get(1..name.len() - 1)?);
    let mut at = 0;
    while let Some(&len) = name.get(at).filter(|&&len| len != 0) {
        let label = name.get(at + 1..at + 1 + usize::from(len))?;
        if !plain_label(label) {
            return None;
        }
        if let Some(dot) = at.checked_sub(1).and_then(|i| text.get_mut(i)) {
            *dot = b'.';
        }
        at += 1 + usize::from(len);
    }
    let text = std::str::from_utf8(text).ok()?;
    let qtype = u16::from_be_bytes([message[end - 4], message[end - 3]]);
    Some((text.into(), type_name(RecordType::from(qtype))))
}

/// What reading the answer and authority sections needs to know of their message.
struct Section<'a> {
    /// The whole message.
    message: &'a [u8],
    /// The end of the first question, when it has been read (by hickory-proto or
    /// [`plain_question`]) and its name is plain labels.
    question_end: Option<usize>,
    op: OpCode,
}

impl Section<'_> {
    /// Reads `count` records as `Message::read_records` does for a section other than the
    /// additional one (hickory-proto's `Record::read`, then the same checks), passing each
    /// record's data to `each`.
    ///
    /// Owner names are not kept. One that is a compression pointer to a label of the plain
    /// question name is stepped over: `Name::read` would read those labels again, and they
    /// are valid. Any other owner is read by `Name::read`.
    fn read(
        &self,
        d: &mut BinDecoder<'_>,
        count: u16,
        mut each: impl FnMut(RData),
    ) -> Result<(), DecodeError> {
        for _ in 0..count {
            if self.owner_in_question(d.index()) {
                d.read_u16()?;
            } else {
                Name::read(d)?;
            }
            let record_type = RecordType::read(d)?;
            // `read_records` refuses these outside the additional section (and
            // `Record::read` an OPT record whose owner is not the root): an error either way.
            if matches!(
                record_type,
                RecordType::OPT | RecordType::SIG | RecordType::TSIG
            ) {
                return Err(DecodeError::RecordNotInAdditionalSection(record_type));
            }
            DNSClass::read(d)?;
            d.read_u32()?;
            let rd_length = d.read_u16()?.unverified();
            if usize::from(rd_length) > d.len() {
                // `Record::read` says IncorrectRDataLengthRead, which only it can build.
                return Err(DecodeError::InsufficientBytes);
            }
            let data = if rd_length == 0 {
                RData::Update0(record_type)
            } else {
                RData::read(d, record_type, Restrict::new(rd_length))?
            };
            if self.op != OpCode::Update && data.is_update() {
                return Err(DecodeError::InvalidEmptyRecord);
            }
            each(data);
        }
        Ok(())
    }

    /// Whether the name at `at` is a compression pointer to a label of the plain question
    /// name (its first, a later one, or its root label).
    fn owner_in_question(&self, at: usize) -> bool {
        let Some(end) = self.question_end else {
            return false;
        };
        let target = match self.message.get(at..at + 2) {
            Some(&[high, low]) if high >= 0xc0 => {
                usize::from(u16::from_be_bytes([high & 0x3f, low]))
            }
            _ => return false,
        };
        let mut label = QUESTION_START;
        while label < end {
            if label == target {
                return true;
            }
            match self.message[label] {
                0 => return false,
                len => label += 1 + usize::from(len),
            }
        }
        false
    }
}

/// A name as hickory-proto's `to_ascii` spells it, without the trailing dot ("." for the
/// root). Names of letters, digits, `_` and inner `-` (nearly all) are joined directly, in one
/// pass over the labels; any other takes hickory-proto's escaping.
pub fn name_text(name: &Name) -> String {
    let mut text = Vec::with_capacity(name.len());
    for label in name.iter() {
        if !plain_label(label) {
            return escaped_name_text(name);
        }
        if !text.is_empty() {
            text.push(b'.');
        }
        text.extend_from_slice(label);
    }
    if text.is_empty() {
        return escaped_name_text(name);
    }
    // Checked above: ASCII only, so this never takes the lossy path.
    String::from_utf8(text).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// Whether `to_ascii` spells `label` as it is: letters, digits, `_` and `-`, not empty and
/// not starting with `-`.
fn plain_label(label: &[u8]) -> bool {
    /// Bytes `to_ascii` leaves alone anywhere in a label (`-` is escaped only in front).
    const PLAIN: [bool; 256] = {
        let mut plain = [false; 256];
        let mut b = 0;
        while b < 256 {
            let c = b as u8;
            plain[b] = c.is_ascii_alphanumeric() || c == b'-' || c == b'_';
            b += 1;
        }
        plain
    };
    label.first().is_some_and(|&b| b != b'-') && label.iter().all(|&b| PLAIN[usize::from(b)])
}

/// hickory-proto's `to_ascii` without the trailing dot.
fn escaped_name_text(name: &Name) -> String {
    let mut text = name.to_ascii();
    if text.len() > 1 && text.ends_with('.') {
        text.pop();
    }
    text
}

/// A record type's mnemonic as hickory-proto spells it, or `TYPE<n>` (RFC 3597) for types it
/// does not know.
pub fn type_name(t: RecordType) -> Mnemonic {
    match t {
        RecordType::Unknown(n) => Cow::Owned(format!("TYPE{n}")),
        known => Cow::Borrowed(known.into()),
    }
}

/// A record's data in presentation format (addresses as `Display` spells them).
pub fn rdata_text(data: &RData) -> String {
    match data {
        RData::A(a) => ip_text(a.0.into()),
        RData::AAAA(a) => ip_text(a.0.into()),
        other => other.to_string(),
    }
}

/// IANA mnemonic of a DNS RCODE.
pub fn rcode_name(code: u16) -> Mnemonic {
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
        other => return Cow::Owned(format!("RCODE{other}")),
    };
    Cow::Borrowed(name)
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
        assert_eq!((&*s.qname, &*s.qtype), ("www.doh.test", "AAAA"));
        assert!(s.answers.is_empty());
    }

    #[test]
    fn summarises_an_answer_with_compressed_names() {
        let r = answer_aaaa();
        let s = summarize(&r).unwrap();
        assert!(s.is_response);
        assert_eq!(s.rcode, "NOERROR");
        assert_eq!(s.answers[..], ["2001:db8::10"]);
    }

    /// What `summarize` reported when it built a whole `Message` with `Message::from_vec`.
    fn via_message(bytes: &[u8]) -> Option<DnsSummary> {
        let msg = Message::from_vec(bytes).ok()?;
        let q = msg.queries.first()?;
        Some(DnsSummary {
            id: msg.metadata.id,
            is_response: msg.metadata.message_type == MessageType::Response,
            qname: name_text(q.name()).into(),
            qtype: type_name(q.query_type()),
            rcode: rcode_name(u16::from(msg.metadata.response_code)),
            answers: msg.answers.iter().map(|r| rdata_text(&r.data)).collect(),
        })
    }

    #[test]
    fn agrees_with_message_from_vec_on_every_truncation_and_bit_flip() {
        use hickory_proto::{
            op::{Edns, ResponseCode},
            rr::{rdata, Record},
        };
        let name = Name::from_ascii("www.doh.test.").unwrap();
        let mut m = Message::from_vec(QUERY_AAAA).unwrap();
        m.metadata.message_type = MessageType::Response;
        m.metadata.response_code = ResponseCode::BADVERS; // 16: needs the EDNS high bits
        let mut edns = Edns::new();
        edns.set_rcode_high(1);
        m.edns = Some(edns);
        let ip = "2001:db8::10".parse().unwrap();
        m.add_answer(Record::from_rdata(
            name.clone(),
            60,
            RData::AAAA(rdata::AAAA(ip)),
        ));
        m.add_answer(Record::from_rdata(
            name.clone(),
            60,
            RData::A(rdata::A::new(192, 0, 2, 1)),
        ));
        // A chain: the second owner points into the first record's data, not the question.
        let target = Name::from_ascii("x.doh.test.").unwrap();
        m.add_answer(Record::from_rdata(
            name.clone(),
            60,
            RData::CNAME(rdata::CNAME(target.clone())),
        ));
        m.add_answer(Record::from_rdata(
            target,
            60,
            RData::A(rdata::A::new(192, 0, 2, 2)),
        ));
        // Owned by a suffix of the question's name: a pointer to its second label.
        let zone = Name::from_ascii("doh.test.").unwrap();
        let soa = rdata::SOA::new(name.clone(), name, 1, 2, 3, 4, 5);
        m.add_authority(Record::from_rdata(zone, 60, RData::SOA(soa)));
        let bytes = m.to_vec().unwrap();
        let whole = summarize(&bytes).unwrap();
        assert_eq!(Some(&whole), via_message(&bytes).as_ref());
        assert_eq!(whole.rcode, "BADVERS");
        assert_eq!(
            whole.answers[..],
            ["2001:db8::10", "192.0.2.1", "x.doh.test.", "192.0.2.2"]
        );
        // The owners the reader steps over: the question's name and its suffix.
        let pointers: Vec<_> = bytes
            .windows(2)
            .filter(|w| w[0] == 0xc0)
            .map(|w| w[1])
            .collect();
        assert!(
            pointers.contains(&12) && pointers.contains(&16),
            "{pointers:?}"
        );
        for len in 0..bytes.len() {
            assert_eq!(
                summarize(&bytes[..len]).ok(),
                via_message(&bytes[..len]),
                "{len}"
            );
        }
        for bit in 0..bytes.len() * 8 {
            let mut flipped = bytes.clone();
            flipped[bit / 8] ^= 1 << (bit % 8);
            assert_eq!(summarize(&flipped).ok(), via_message(&flipped), "bit {bit}");
        }
    }

    /// An answer to [`QUERY_AAAA`] (2001:db8::10, its name a pointer to the question).
    fn answer_aaaa() -> Vec<u8> {
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
        r
    }

    /// A reply summarised against its query says what it says summarised alone: on every
    /// truncation and bit flip of the reply, and on every bit flip of the query that still
    /// parses (its name then differs from the reply's, or is no longer plain labels).
    #[test]
    fn a_reply_summarised_against_its_query_says_what_it_says_alone() {
        let reply = answer_aaaa();
        let reply_to = |reply: &[u8], query: &[u8]| {
            let asked = summarize(query).ok()?;
            Some(summarize_reply(reply, query, &asked).ok())
        };
        assert_eq!(plain_question_end(QUERY_AAAA), Some(QUERY_AAAA.len()));
        assert_eq!(reply_to(&reply, QUERY_AAAA), Some(summarize(&reply).ok()));
        for len in 0..reply.len() {
            let cut = &reply[..len];
            assert_eq!(
                reply_to(cut, QUERY_AAAA),
                Some(summarize(cut).ok()),
                "{len}"
            );
        }
        for bit in 0..reply.len() * 8 {
            let mut flipped = reply.clone();
            flipped[bit / 8] ^= 1 << (bit % 8);
            assert_eq!(
                reply_to(&flipped, QUERY_AAAA),
                Some(summarize(&flipped).ok()),
                "reply bit {bit}"
            );
        }
        for bit in 0..QUERY_AAAA.len() * 8 {
            let mut query = QUERY_AAAA.to_vec();
            query[bit / 8] ^= 1 << (bit % 8);
            if let Some(replied) = reply_to(&reply, &query) {
                assert_eq!(replied, summarize(&reply).ok(), "query bit {bit}");
            }
        }
        // 0x20 case: the reply echoes a name the query spelled otherwise; its own spelling wins.
        let mut mixed = reply.clone();
        mixed[13] = b'W';
        let s = reply_to(&mixed, QUERY_AAAA).unwrap().unwrap();
        assert_eq!(&*s.qname, "Www.doh.test");
        // A question whose name points into the header is never taken as repeated.
        let mut pointed = QUERY_AAAA[..12].to_vec();
        pointed.extend_from_slice(&[0xc0, 0x02, 0x00, 0x1c, 0x00, 0x01]);
        assert_eq!(plain_question_end(&pointed), None);
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

    /// Questions whose names `plain_question` reads itself, or leaves to hickory-proto (root,
    /// escaped labels, long names), read as `Message::from_vec` reads them.
    #[test]
    fn reads_question_names_as_hickory_does() {
        let long = [b'a'; 63];
        let names: [&[&[u8]]; 11] = [
            &[],
            &[b"www", b"doh", b"test"],
            &[b"Www", b"DOH", b"t-e_st1"],
            &[b"-lead", b"x"],
            &[b"sp ace", b"x"],
            &[&long, b"b"],
            &[&long, &long[..60]], // 127 octets with its length octets and root
            &[&long, &long[..61]], // 128
            &[&long, &long[..62]], // 129: hickory-proto's
            &[&long, &long, &long, &long[..61]], // 255: the longest
            &[&long, &long, &long, &long[..62]], // 256: too long
        ];
        for labels in names {
            let mut q = QUERY_AAAA[..12].to_vec();
            for label in labels {
                q.push(label.len() as u8);
                q.extend_from_slice(label);
            }
            q.extend_from_slice(&[0, 0xff, 0x00, 0x00, 0x01]);
            assert_eq!(summarize(&q).ok(), via_message(&q), "{labels:?}");
            let octets = labels.iter().map(|l| 1 + l.len()).sum::<usize>() + 1;
            assert_eq!(summarize(&q).is_ok(), octets <= 255, "{labels:?}");
        }
    }

    #[test]
    fn names_unknown_types_as_rfc3597_does() {
        assert_eq!(type_name(RecordType::HTTPS), "HTTPS");
        assert_eq!(type_name(RecordType::from(65280)), "TYPE65280");
        let mut q = QUERY_AAAA.to_vec();
        q[26..28].copy_from_slice(&65280u16.to_be_bytes());
        assert_eq!(summarize(&q).unwrap().qtype, "TYPE65280");
    }

    #[test]
    fn names_rcodes_like_dig_does() {
        assert_eq!(rcode_name(3), "NXDOMAIN");
        assert_eq!(rcode_name(4000), "RCODE4000");
    }
}
