//! DNS-over-HTTPS request forms (RFC 8484): which HTTP requests carry DNS, and where.

use std::sync::Arc;

use base64::{
    alphabet,
    engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig},
    Engine as _,
};

use crate::proto::{doh::json::JsonQuery, http2::HeaderFields};

pub mod client_h1;
pub mod client_h2;
pub mod exchange;
pub mod json;

/// The DoH media type.
pub const DNS_MESSAGE: &str = "application/dns-message";
/// Largest DNS message accepted from a body or `?dns=` parameter.
pub const MAX_DNS_MESSAGE: usize = 65535;

/// base64url, padding optional (RFC 8484 says none; some clients pad anyway).
const B64URL: GeneralPurpose = GeneralPurpose::new(
    &alphabet::URL_SAFE,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// How a request carries its DNS query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DohRequest {
    /// POST with an `application/dns-message` body.
    Post,
    /// GET with the query in `?dns=`, already decoded.
    Get(Vec<u8>),
    /// The JSON API (`/resolve?name=&type=`, `accept: application/dns-json`).
    Json(JsonQuery),
}

/// A request that looks like DoH but whose query could not be recovered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DohError {
    #[error("?dns= parameter is not valid base64url")]
    BadBase64,
    #[error("?dns= parameter is too long")]
    TooLong,
}

fn media_type_is(value: Option<&str>, want: &str) -> bool {
    value.is_some_and(|v| {
        // The whole value, as DoH clients send it; else each of a list's types, parameters cut.
        v == want
            || v.split(',').any(|part| {
                part.split(';')
                    .next()
                    .unwrap_or("")
                    .trim()
                    .eq_ignore_ascii_case(want)
            })
    })
}

/// The `dns` parameter of a request path's query string, if any.
fn dns_param(path: &str) -> Option<&str> {
    let (_, query) = path.split_once('?')?;
    query.split('&').find_map(|kv| kv.strip_prefix("dns="))
}

/// A DNS query's header: a question, and the QR bit clear.
fn looks_like_query(q: &[u8]) -> bool {
    q.len() >= 12 && q[2] & 0x80 == 0 && u16::from_be_bytes([q[4], q[5]]) >= 1
}

/// Classifies a request by its headers: `None` when it is not DNS-over-HTTPS.
pub fn classify(req: &HeaderFields) -> Option<Result<DohRequest, DohError>> {
    let method = req.method.as_deref()?;
    if method.eq_ignore_ascii_case("POST") {
        return media_type_is(req.content_type.as_deref(), DNS_MESSAGE)
            .then_some(Ok(DohRequest::Post));
    }
    if method.eq_ignore_ascii_case("GET") {
        let Some(param) = dns_param(req.path.as_deref()?) else {
            return crate::proto::doh::json::classify_json(req).map(|q| Ok(DohRequest::Json(q)));
        };
        // A `dns` parameter alone is no DoH: any web page may have one. It is when it holds
        // a DNS query, or the request says it is DoH (its media type, the RFC 8484 path); only
        // then is a bad one counted.
        let says_doh = media_type_is(req.accept.as_deref(), DNS_MESSAGE)
            || media_type_is(req.content_type.as_deref(), DNS_MESSAGE)
            || req
                .path
                .as_deref()
                .is_some_and(|p| p.split('?').next().unwrap_or("").ends_with("/dns-query"));
        if param.len() > MAX_DNS_MESSAGE * 4 / 3 + 4 {
            return says_doh.then_some(Err(DohError::TooLong));
        }
        return match B64URL.decode(param) {
            Ok(q) if says_doh || looks_like_query(&q) => Some(Ok(DohRequest::Get(q))),
            Ok(_) => None,
            Err(_) => says_doh.then_some(Err(DohError::BadBase64)),
        };
    }
    None
}

/// `https://authority/path` with the query string removed (it holds the DNS message itself),
/// as a shared string: `last`, the URL of the connection's previous request, when it is the
/// same (a connection's requests nearly always go to one URL), else a new one that becomes
/// `last`.
pub fn shared_url(
    last: &mut Option<Arc<str>>,
    req: &HeaderFields,
    default_scheme: &str,
) -> Option<Arc<str>> {
    let parts = url_parts(req, default_scheme)?;
    let same = last.as_deref().is_some_and(|last| {
        parts
            .iter()
            .try_fold(last, |rest, part| rest.strip_prefix(part))
            .is_some_and(str::is_empty)
    });
    if !same {
        *last = Some(parts.concat().into());
    }
    last.clone()
}

/// The parts of the URL [`shared_url`] gives: scheme, `://`, authority, path.
fn url_parts<'a>(req: &'a HeaderFields, default_scheme: &'a str) -> Option<[&'a str; 4]> {
    let authority = req.authority.as_deref()?;
    let path = req.path.as_deref().unwrap_or("/");
    let path = path.split_once('?').map_or(path, |(p, _)| p);
    let scheme = req.scheme.as_deref().unwrap_or(default_scheme);
    Some([scheme, "://", authority, path])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(method: &str, path: &str, ct: Option<&str>) -> HeaderFields {
        HeaderFields {
            method: Some(method.to_owned().into()),
            path: Some(path.to_owned().into()),
            authority: Some("doh.test:8443".into()),
            scheme: Some("https".into()),
            content_type: ct.map(|c| c.to_owned().into()),
            ..Default::default()
        }
    }

    #[test]
    fn post_needs_the_dns_message_media_type() {
        let r = req("POST", "/dns-query", Some("application/dns-message"));
        assert_eq!(classify(&r), Some(Ok(DohRequest::Post)));
        let r = req(
            "POST",
            "/dns-query",
            Some("Application/DNS-Message; charset=x"),
        );
        assert_eq!(classify(&r), Some(Ok(DohRequest::Post)));
        assert_eq!(
            classify(&req("POST", "/upload", Some("application/json"))),
            None
        );
    }

    #[test]
    fn get_decodes_base64url_with_or_without_padding() {
        // RFC 8484 §4.1.1 example: www.example.com A, id 0
        let p = "/dns-query?dns=AAABAAABAAAAAAAAA3d3dwdleGFtcGxlA2NvbQAAAQAB";
        let Some(Ok(DohRequest::Get(q))) = classify(&req("GET", p, None)) else {
            panic!()
        };
        assert_eq!(&q[12..16], b"\x03www");
        // 34 bytes need one '=' of padding, which some clients send.
        let odd = [q.as_slice(), &[0]].concat();
        let padded = format!(
            "/dns-query?dns={}",
            base64::engine::general_purpose::URL_SAFE.encode(&odd)
        );
        assert!(padded.ends_with('='));
        assert_eq!(
            classify(&req("GET", &padded, None)),
            Some(Ok(DohRequest::Get(odd)))
        );
        assert_eq!(
            classify(&req("GET", "/dns-query?dns=!!", None)),
            Some(Err(DohError::BadBase64))
        );
        assert_eq!(classify(&req("GET", "/index.html?x=1", None)), None);
    }

    #[test]
    fn url_drops_the_query_string_and_is_shared_while_it_stays_the_same() {
        let mut last = None;
        let r = req("GET", "/dns-query?dns=AAAB", None);
        let first = shared_url(&mut last, &r, "https").unwrap();
        assert_eq!(&*first, "https://doh.test:8443/dns-query");
        let again = shared_url(&mut last, &req("POST", "/dns-query", None), "https").unwrap();
        assert!(Arc::ptr_eq(&first, &again));
        // The same text from other parts is the same URL.
        let mut other = req("GET", "/dns-query?dns=AAAB", None);
        other.authority = Some("doh.test:8443/dns".into());
        other.path = Some("-query".into());
        assert!(Arc::ptr_eq(
            &first,
            &shared_url(&mut last, &other, "https").unwrap()
        ));
        other.path = Some("-query2".into());
        let longer = shared_url(&mut last, &other, "https").unwrap();
        assert_eq!(&*longer, "https://doh.test:8443/dns-query2");
        let http = shared_url(&mut last, &r, "http").unwrap();
        assert_eq!(
            &*http, "https://doh.test:8443/dns-query",
            "the request's own scheme"
        );
        let mut schemeless = r.clone();
        schemeless.scheme = None;
        let http = shared_url(&mut last, &schemeless, "http").unwrap();
        assert_eq!(&*http, "http://doh.test:8443/dns-query");
        let mut none = r;
        none.authority = None;
        assert_eq!(shared_url(&mut last, &none, "https"), None);
        assert_eq!(last.as_deref(), Some("http://doh.test:8443/dns-query"));
    }

    #[test]
    fn a_dns_parameter_of_a_web_page_is_not_doh() {
        // A search form's `dns` field: base64url-decodable, no DNS query, no DoH signal.
        assert!(classify(&req("GET", "/search?q=1&dns=abcd", None)).is_none());
        assert!(classify(&req("GET", "/search?dns=!!", None)).is_none());
        // The same parameter to the RFC 8484 path, or with DoH's media type, is DoH (a bad
        // one counted); a real query is DoH wherever it goes.
        assert!(matches!(
            classify(&req("GET", "/dns-query?dns=!!", None)),
            Some(Err(DohError::BadBase64))
        ));
        let mut accept = req("GET", "/search?dns=abcd", None);
        accept.accept = Some("application/dns-message".into());
        assert!(matches!(classify(&accept), Some(Ok(DohRequest::Get(_)))));
        let q = "AAABAAABAAAAAAAAA3d3dwdleGFtcGxlA2NvbQAAAQAB";
        assert!(matches!(
            classify(&req("GET", &format!("/resolve?dns={q}"), None)),
            Some(Ok(DohRequest::Get(_)))
        ));
    }
}
