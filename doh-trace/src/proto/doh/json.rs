//! The JSON DNS-over-HTTPS API (Google `dns.google/resolve`, Cloudflare `application/dns-json`):
//! recognising its requests and summarising its answers like wire-format DNS.

use std::{borrow::Cow, str::FromStr};

use hickory_proto::rr::RecordType;
use serde::Deserialize;

use crate::proto::{
    dns::{rcode_name, type_name, DnsSummary, Mnemonic},
    http2::HeaderFields,
};

/// The JSON DoH media type.
pub const DNS_JSON: &str = "application/dns-json";
/// Largest JSON answer body parsed.
pub const MAX_JSON_BODY: usize = 256 * 1024;

/// The question of a JSON DoH request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonQuery {
    /// Percent-decoded name without the trailing dot ("." for the root).
    pub qname: String,
    /// Type mnemonic as hickory-proto prints it ("A", "AAAA"; "TYPE65280" for numbers it has
    /// no name for; "Unknown" when the parameter is neither a type name nor a 16-bit number).
    pub qtype: Mnemonic,
}

/// A JSON DoH answer that cannot be summarised.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum JsonError {
    #[error("JSON answer of {0} bytes exceeds {MAX_JSON_BODY}")]
    TooLarge(usize),
    #[error("malformed JSON answer: {0}")]
    Malformed(String),
    #[error("JSON answer has no question")]
    NoQuestion,
}

/// The value of query-string parameter `key` in `path`, percent-decoded (`+` is a space, as in
/// HTML form encoding, which these APIs accept).
fn query_param(path: &str, key: &str) -> Option<String> {
    let (_, query) = path.split_once('?')?;
    let query = query.split_once('#').map_or(query, |(q, _)| q);
    query.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        (k == key).then(|| percent_decode(v))
    })
}

fn percent_decode(s: &str) -> String {
    let hex = |c: Option<&u8>| c.and_then(|&c| char::from(c).to_digit(16));
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&c) = bytes.get(i) {
        i += 1;
        match c {
            b'+' => out.push(b' '),
            b'%' => match (hex(bytes.get(i)), hex(bytes.get(i + 1))) {
                (Some(high), Some(low)) => {
                    out.extend(u8::try_from(high << 4 | low).ok());
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            other => out.push(other),
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A name as reported: without the trailing dot, the root as ".".
fn presentation_name(name: &str) -> String {
    if name.is_empty() || name == "." {
        return ".".to_string();
    }
    name.strip_suffix('.').unwrap_or(name).to_string()
}

/// `type=` as a mnemonic: a number, a mnemonic (any case) or RFC 3597 `TYPEnnn`; default A.
fn type_mnemonic(param: Option<&str>) -> Mnemonic {
    let Some(t) = param.map(str::trim).filter(|t| !t.is_empty()) else {
        return type_name(RecordType::A);
    };
    let upper = t.to_ascii_uppercase();
    let numeric = upper.strip_prefix("TYPE").unwrap_or(&upper);
    if let Ok(n) = numeric.parse::<u16>() {
        return type_name(RecordType::from(n));
    }
    RecordType::from_str(&upper).map_or(Cow::Borrowed("Unknown"), type_name)
}

fn accepts_dns_json(accept: Option<&str>) -> bool {
    accept.is_some_and(|a| {
        a.split(',').any(|part| {
            part.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .eq_ignore_ascii_case(DNS_JSON)
        })
    })
}

/// Classifies a request as a JSON DoH query: a GET with `name=` (and optional `type=`) in its
/// query string, on any path, when `accept` lists `application/dns-json`, the `ct` parameter
/// says so (Cloudflare's alternative to the header) or the path is `/resolve` (Google).
pub fn classify_json(req: &HeaderFields) -> Option<JsonQuery> {
    if !req.method.as_deref()?.eq_ignore_ascii_case("GET") {
        return None;
    }
    let path = req.path.as_deref()?;
    let name = query_param(path, "name")?;
    let bare_path = path.split(['?', '#']).next().unwrap_or("");
    let json = accepts_dns_json(req.accept.as_deref())
        || bare_path == "/resolve"
        || query_param(path, "ct").is_some_and(|ct| ct.eq_ignore_ascii_case(DNS_JSON));
    if !json {
        return None;
    }
    Some(JsonQuery {
        qname: presentation_name(&name),
        qtype: type_mnemonic(query_param(path, "type").as_deref()),
    })
}

#[derive(Deserialize)]
struct JsonAnswer {
    #[serde(rename = "Status")]
    status: u16,
    #[serde(rename = "Question", default)]
    question: Option<Questions>,
    #[serde(rename = "Answer", default)]
    answer: Vec<JsonRecord>,
}

/// Google and Cloudflare send an array; a few servers send a single object.
#[derive(Deserialize)]
#[serde(untagged)]
enum Questions {
    Many(Vec<JsonQuestion>),
    One(JsonQuestion),
}

#[derive(Deserialize)]
struct JsonQuestion {
    name: String,
    #[serde(rename = "type")]
    qtype: u16,
}

#[derive(Deserialize)]
struct JsonRecord {
    #[serde(default)]
    data: Option<String>,
}

/// Parses a JSON DoH answer body into the summary a wire-format answer would give.
///
/// `answers` holds every Answer record's `data`, in order, CNAMEs included (as the wire-format
/// path keeps every answer record); records without `data` are skipped. `id` is 0 (the JSON API
/// has none), `is_response` is true, `rcode` is the `Status` mnemonic, `qname`/`qtype` come from
/// the first question.
pub fn parse_json_answer(body: &[u8]) -> Result<DnsSummary, JsonError> {
    if body.len() > MAX_JSON_BODY {
        return Err(JsonError::TooLarge(body.len()));
    }
    let parsed: JsonAnswer =
        serde_json::from_slice(body).map_err(|e| JsonError::Malformed(e.to_string()))?;
    let question = match parsed.question {
        Some(Questions::One(q)) => q,
        Some(Questions::Many(qs)) => qs.into_iter().next().ok_or(JsonError::NoQuestion)?,
        None => return Err(JsonError::NoQuestion),
    };
    Ok(DnsSummary {
        id: 0,
        is_response: true,
        qname: presentation_name(&question.name).into(),
        qtype: type_name(RecordType::from(question.qtype)),
        rcode: rcode_name(parsed.status),
        answers: parsed.answer.into_iter().filter_map(|r| r.data).collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(path: &str, accept: Option<&str>) -> HeaderFields {
        HeaderFields {
            method: Some("GET".into()),
            path: Some(path.to_owned().into()),
            authority: Some("dns.google".into()),
            accept: accept.map(|a| a.to_owned().into()),
            ..Default::default()
        }
    }

    fn q(qname: &str, qtype: &str) -> Option<JsonQuery> {
        Some(JsonQuery {
            qname: qname.into(),
            qtype: qtype.to_owned().into(),
        })
    }

    #[test]
    fn google_resolve_path_needs_no_accept_header() {
        let r = get("/resolve?name=example.com&type=AAAA", None);
        assert_eq!(classify_json(&r), q("example.com", "AAAA"));
        let r = get("/resolve?name=example.com.", Some("*/*"));
        assert_eq!(
            classify_json(&r),
            q("example.com", "A"),
            "type defaults to A"
        );
        assert_eq!(
            classify_json(&get("/resolve?name=.&type=ns", None)),
            q(".", "NS")
        );
        assert_eq!(
            classify_json(&get("/resolve?type=A", None)),
            None,
            "no name"
        );
    }

    #[test]
    fn cloudflare_needs_the_dns_json_media_type() {
        let p = "/dns-query?name=caf%C3%A9.example&type=28";
        assert_eq!(
            classify_json(&get(p, Some("application/dns-json"))),
            q("café.example", "AAAA")
        );
        assert_eq!(classify_json(&get(p, Some("text/html, */*"))), None);
        assert_eq!(classify_json(&get(p, None)), None);
        let ct = "/dns-query?ct=application/dns-json&name=example.com&type=TXT";
        assert_eq!(classify_json(&get(ct, None)), q("example.com", "TXT"));
        let mut post = get("/resolve?name=example.com", None);
        post.method = Some("POST".into());
        assert_eq!(classify_json(&post), None);
        // RFC 8484 GET is not JSON.
        assert_eq!(
            classify_json(&get(
                "/dns-query?dns=AAABAAAB",
                Some("application/dns-message")
            )),
            None
        );
    }

    #[test]
    fn types_print_like_hickory() {
        for (param, want) in [
            ("aaaa", "AAAA"),
            ("65", "HTTPS"),
            ("TYPE64", "SVCB"),
            ("65280", "TYPE65280"),
            ("99999", "Unknown"),
            ("nonsense", "Unknown"),
            ("", "A"),
        ] {
            let p = format!("/resolve?name=x.test&type={param}");
            assert_eq!(
                classify_json(&get(&p, None)).unwrap().qtype,
                want,
                "{param}"
            );
        }
    }

    #[test]
    fn percent_decoding_leaves_bad_escapes_alone() {
        assert_eq!(percent_decode("a%2eb+c%zz%4"), "a.b c%zz%4");
        assert_eq!(percent_decode("%+1%-1"), "% 1%-1");
        assert_eq!(percent_decode("%ff"), "\u{fffd}");
    }

    /// `curl -s 'https://dns.google/resolve?name=example.com&type=A'`
    const GOOGLE_A: &str = r#"{"Status":0,"TC":false,"RD":true,"RA":true,"AD":true,"CD":false,"Question":[{"name":"example.com.","type":1}],"Answer":[{"name":"example.com.","type":1,"TTL":300,"data":"93.184.216.34"}],"Comment":"Response from 2001:500:8f::53."}"#;

    /// `curl -s -H 'accept: application/dns-json'
    /// 'https://cloudflare-dns.com/dns-query?name=www.github.com&type=AAAA'`
    const CLOUDFLARE_AAAA_CNAME: &str = r#"{"Status":0,"TC":false,"RD":true,"RA":true,"AD":false,"CD":false,"Question":[{"name":"www.github.com","type":28}],"Answer":[{"name":"www.github.com","type":5,"TTL":3600,"data":"github.com."},{"name":"github.com","type":28,"TTL":60,"data":"2001:db8::113"}],"Authority":[]}"#;

    /// Google, NXDOMAIN with the SOA in Authority and no Answer.
    const GOOGLE_NXDOMAIN: &str = r#"{"Status":3,"TC":false,"RD":true,"RA":true,"AD":true,"CD":false,"Question":[{"name":"nx.example.com.","type":1}],"Authority":[{"name":"example.com.","type":6,"TTL":1800,"data":"ns.icann.org. noc.dns.icann.org. 2024081453 7200 3600 1209600 3600"}],"edns_client_subnet":"203.0.113.0/0"}"#;

    #[test]
    fn summarises_a_google_a_answer() {
        let s = parse_json_answer(GOOGLE_A.as_bytes()).unwrap();
        assert_eq!(
            s,
            DnsSummary {
                id: 0,
                is_response: true,
                qname: "example.com".into(),
                qtype: "A".into(),
                rcode: "NOERROR".into(),
                answers: ["93.184.216.34".to_owned()].into(),
            }
        );
    }

    #[test]
    fn keeps_a_cloudflare_cname_chain_in_order() {
        let s = parse_json_answer(CLOUDFLARE_AAAA_CNAME.as_bytes()).unwrap();
        assert_eq!((&*s.qname, &*s.qtype), ("www.github.com", "AAAA"));
        assert_eq!(s.answers[..], ["github.com.", "2001:db8::113"]);
    }

    #[test]
    fn nxdomain_has_no_answers() {
        let s = parse_json_answer(GOOGLE_NXDOMAIN.as_bytes()).unwrap();
        assert_eq!((&*s.rcode, &*s.qname), ("NXDOMAIN", "nx.example.com"));
        assert!(s.answers.is_empty());
    }

    #[test]
    fn malformed_and_oversized_answers_are_errors() {
        for bad in [
            "",
            "{",
            "null",
            "[]",
            r#"{"Status":"0","Question":[{"name":"a.","type":1}]}"#,
            r#"{"Status":-1,"Question":[{"name":"a.","type":1}]}"#,
            r#"{"Status":0,"Question":[{"name":"a.","type":70000}]}"#,
            r#"{"Status":0,"Question":[{"name":"a.","type":1}],"Answer":{"data":"x"}}"#,
            r#"{"Status":0,"Question":[{"name":"a.","type":1}]} trailing"#,
        ] {
            assert!(
                matches!(
                    parse_json_answer(bad.as_bytes()),
                    Err(JsonError::Malformed(_))
                ),
                "{bad}"
            );
        }
        assert!(matches!(
            parse_json_answer(br#"{"Status":2,"Question":[]}"#),
            Err(JsonError::NoQuestion)
        ));
        assert!(matches!(
            parse_json_answer(br#"{"Status":2}"#),
            Err(JsonError::NoQuestion)
        ));
        let deep = "[".repeat(100_000);
        assert!(
            parse_json_answer(deep.as_bytes()).is_err(),
            "recursion is bounded"
        );
        let big = format!(
            r#"{{"Status":0,"Comment":"{}"}}"#,
            "x".repeat(MAX_JSON_BODY)
        );
        assert!(matches!(
            parse_json_answer(big.as_bytes()),
            Err(JsonError::TooLarge(_))
        ));
    }

    #[test]
    fn a_single_question_object_and_records_without_data_are_accepted() {
        let body = br#"{"Status":0,"Question":{"name":"a.test.","type":16},"Answer":[{"name":"a.test.","type":16,"TTL":5,"data":"\"v=spf1 -all\""},{"name":"a.test.","type":16}]}"#;
        let s = parse_json_answer(body).unwrap();
        assert_eq!(s.qtype, "TXT");
        assert_eq!(s.answers[..], ["\"v=spf1 -all\""]);
    }
}
