//! DNS parsing and DoH GET decoding of arbitrary bytes.
#![no_main]
use doh_trace::proto::{dns, doh, http2::HeaderFields};
use hickory_proto::op::{Message, MessageType};
use libfuzzer_sys::fuzz_target;

/// The summary as `Message::from_vec` and hickory-proto's `to_ascii` give it, for a
/// differential check.
fn via_message(bytes: &[u8]) -> Option<dns::DnsSummary> {
    let msg = Message::from_vec(bytes).ok()?;
    let q = msg.queries.first()?;
    let mut qname = q.name().to_ascii();
    if qname.len() > 1 && qname.ends_with('.') {
        qname.pop();
    }
    Some(dns::DnsSummary {
        id: msg.metadata.id,
        is_response: msg.metadata.message_type == MessageType::Response,
        qname: qname.into(),
        qtype: dns::type_name(q.query_type()),
        rcode: dns::rcode_name(u16::from(msg.metadata.response_code)),
        answers: msg.answers.iter().map(|r| dns::rdata_text(&r.data)).collect(),
    })
}

fuzz_target!(|data: &[u8]| {
    let alone = dns::summarize(data).ok();
    assert_eq!(alone, via_message(data));
    // The input as a reply, summarised against every query made of its header (no records)
    // and a prefix of its question section: the same as summarised alone.
    if data.len() >= 12 {
        let mut query = data[..12].to_vec();
        query[6..12].fill(0);
        for &octet in data[12..].iter().take(300) {
            query.push(octet);
            if let Ok(asked) = dns::summarize(&query) {
                assert_eq!(dns::summarize_reply(data, &query, &asked).ok(), alone);
            }
        }
    }
    let path = format!("/dns-query?dns={}", String::from_utf8_lossy(data));
    let req = HeaderFields { method: Some("GET".into()), path: Some(path.into()), ..Default::default() };
    if let Some(Ok(doh::DohRequest::Get(q))) = doh::classify(&req) {
        let _ = dns::summarize(&q);
    }
});
