//! HTTP/1.1 lines: the request/status line and header lines of a message head turned into the
//! framing facts the decoder needs (Content-Length, Transfer-Encoding, upgrade) and the
//! [`HeaderFields`] DoH reads (values of every other header are looked at and dropped), and
//! chunk-size lines.

use std::sync::Arc;

use super::{H1Error, MAX_HEADER_LINES};
use crate::proto::http2::{
    hpack::{header_value, Value, MAX_VALUE_LEN},
    HeaderFields,
};

/// The kind of the previous header line, for obs-fold continuation lines (RFC 9112 §5.2).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
enum Last {
    /// No header line yet: a continuation line here is malformed.
    #[default]
    Nothing,
    /// The previous line stored this field's value (a continuation is appended to it).
    Authority,
    ContentType,
    Accept,
    /// Continuations add list elements.
    TransferEncoding,
    Connection,
    Upgrade,
    /// A folded Content-Length is refused: framing must not be ambiguous.
    ContentLength,
    /// Anything else, including kept fields whose value was not stored; continuations ignored.
    Other,
}

/// What one message head said, accumulated line by line.
#[derive(Debug, Default)]
pub(super) struct MessageHead {
    pub fields: HeaderFields,
    /// Response status code (0 for requests).
    pub status: u16,
    /// The (consistent) Content-Length, if any was sent.
    pub content_length: Option<u64>,
    /// A Transfer-Encoding header with at least one coding was sent.
    pub transfer_encoding: bool,
    /// The last transfer coding seen is `chunked`.
    pub chunked_last: bool,
    /// `Connection` lists `upgrade`.
    pub connection_upgrade: bool,
    /// `Upgrade` lists `h2c`.
    pub upgrade_h2c: bool,
    /// Header lines read (continuation lines included).
    pub header_lines: usize,
    last: Last,
    /// Authority of an absolute-form or authority-form request target; overrides Host.
    target_authority: Option<String>,
    /// The Host field, continuation lines included.
    host: Option<Value>,
}

fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

fn is_token(s: &[u8]) -> bool {
    !s.is_empty() && s.iter().all(|&b| is_tchar(b))
}

fn is_ows(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

/// `s` without leading and trailing spaces and tabs.
fn trim_ows(s: &[u8]) -> &[u8] {
    let start = s.iter().position(|&b| !is_ows(b)).unwrap_or(s.len());
    let end = s.iter().rposition(|&b| !is_ows(b)).map_or(start, |i| i + 1);
    s.get(start..end).unwrap_or(&[])
}

/// The non-empty elements of a comma-separated list, trimmed.
fn list_elements(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value
        .split(|&b| b == b',')
        .map(trim_ows)
        .filter(|e| !e.is_empty())
}

/// The part of a list element before its first `sep` (parameters, versions), trimmed.
fn before(element: &[u8], sep: u8) -> &[u8] {
    trim_ows(element.split(|&b| b == sep).next().unwrap_or(&[]))
}

/// Stores `value` into an empty slot; returns whether it did.
fn keep(slot: &mut Option<Value>, truncated: &mut bool, value: &[u8]) -> bool {
    if value.len() > MAX_VALUE_LEN {
        *truncated = true;
        return false;
    }
    if slot.is_some() {
        return false;
    }
    *slot = Some(header_value(value));
    true
}

/// Checks `HTTP/1.x`; a request line of `PRI * HTTP/2.0` is the HTTP/2 preface.
fn check_version(version: &[u8]) -> Result<(), H1Error> {
    match version {
        [b'H', b'T', b'T', b'P', b'/', b'1', b'.', minor] if minor.is_ascii_digit() => Ok(()),
        _ => Err(H1Error::BadVersion),
    }
}

/// Parses a request line (`method SP request-target SP HTTP-version`).
pub(super) fn request_line(line: &[u8], head: &mut MessageHead) -> Result<(), H1Error> {
    let mut parts = line.split(|&b| b == b' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(H1Error::BadRequestLine);
    };
    if method == b"PRI" && target == b"*" && version == b"HTTP/2.0" {
        return Err(H1Error::Http2Preface);
    }
    if !is_token(method) || target.is_empty() || target.iter().any(|&b| b <= b' ' || b == 0x7f) {
        return Err(H1Error::BadRequestLine);
    }
    check_version(version)?;
    let fields = &mut head.fields;
    keep(&mut fields.method, &mut fields.truncated, method);
    if target.len() > MAX_VALUE_LEN {
        fields.truncated = true;
    } else if method == b"CONNECT" {
        head.target_authority = Some(String::from_utf8_lossy(target).into_owned());
    } else if let Some((scheme, rest)) = absolute_form(target) {
        // RFC 9112 §3.2.2: the target's authority replaces Host. Userinfo is dropped unread.
        let end = rest
            .iter()
            .position(|&b| b == b'/' || b == b'?' || b == b'#')
            .unwrap_or(rest.len());
        let (authority, path) = rest.split_at(end);
        let authority = match authority.iter().rposition(|&b| b == b'@') {
            Some(at) => authority.get(at + 1..).unwrap_or(&[]),
            None => authority,
        };
        head.target_authority = Some(String::from_utf8_lossy(authority).into_owned());
        fields.scheme = Some(header_value(scheme.as_bytes()));
        let path = String::from_utf8_lossy(path);
        fields.path = Some(if path.starts_with('/') {
            path.into_owned().into()
        } else {
            format!("/{path}").into()
        });
    } else {
        fields.path = Some(header_value(target));
    }
    Ok(())
}

/// `http://…` or `https://…` (case-insensitive scheme): the scheme and what follows `//`.
fn absolute_form(target: &[u8]) -> Option<(&'static str, &[u8])> {
    for scheme in ["http", "https"] {
        let n = scheme.len();
        if target.len() > n + 3
            && target.get(..n)?.eq_ignore_ascii_case(scheme.as_bytes())
            && target.get(n..n + 3)? == b"://"
        {
            return Some((scheme, target.get(n + 3..)?));
        }
    }
    None
}

/// Parses a status line (`HTTP-version SP 3DIGIT SP reason-phrase`; the SP before an empty
/// reason is optional in practice).
pub(super) fn status_line(line: &[u8], head: &mut MessageHead) -> Result<(), H1Error> {
    let (version, rest) = match line.iter().position(|&b| b == b' ') {
        Some(i) => (
            line.get(..i).unwrap_or(&[]),
            line.get(i + 1..).unwrap_or(&[]),
        ),
        None => return Err(H1Error::BadStatusLine),
    };
    check_version(version)?;
    let (code, reason_sep) = match rest {
        [a, b, c, tail @ ..] => ([*a, *b, *c], tail.first()),
        _ => return Err(H1Error::BadStatusLine),
    };
    if !code.iter().all(u8::is_ascii_digit)
        || code[0] == b'0'
        || reason_sep.is_some_and(|&b| b != b' ')
    {
        return Err(H1Error::BadStatusLine);
    }
    head.status = code
        .iter()
        .fold(0u16, |acc, &d| acc * 10 + u16::from(d - b'0'));
    head.fields.status = Some(header_value(&code));
    Ok(())
}

/// One header or trailer line.
pub(super) enum HeaderLine<'a> {
    /// `name: value`, the value trimmed.
    Field { name: &'a [u8], value: &'a [u8] },
    /// An obs-fold continuation line (starts with SP or HTAB), trimmed.
    Continuation(&'a [u8]),
}

/// Splits one header (or trailer) line; validates the name.
pub(super) fn split_header(line: &[u8]) -> Result<HeaderLine<'_>, H1Error> {
    if line.first().is_some_and(|&b| is_ows(b)) {
        return Ok(HeaderLine::Continuation(trim_ows(line)));
    }
    let colon = line
        .iter()
        .position(|&b| b == b':')
        .ok_or(H1Error::BadHeaderLine)?;
    let (name, value) = line.split_at(colon);
    if !is_token(name) {
        return Err(H1Error::BadHeaderLine);
    }
    Ok(HeaderLine::Field {
        name,
        value: trim_ows(value.get(1..).unwrap_or(&[])),
    })
}

/// Parses a Content-Length value: digits, or a list of identical digit strings.
fn content_length(value: &[u8]) -> Result<u64, H1Error> {
    let mut result: Option<u64> = None;
    for part in value.split(|&b| b == b',').map(trim_ows) {
        if part.is_empty() || !part.iter().all(u8::is_ascii_digit) {
            return Err(H1Error::BadContentLength);
        }
        let n = part
            .iter()
            .try_fold(0u64, |acc, &d| {
                acc.checked_mul(10)?.checked_add(u64::from(d - b'0'))
            })
            .ok_or(H1Error::BadContentLength)?;
        if result.is_some_and(|prev| prev != n) {
            return Err(H1Error::ConflictingContentLength);
        }
        result = Some(n);
    }
    result.ok_or(H1Error::BadContentLength)
}

impl MessageHead {
    /// Takes one header line of the head (not the start line, not the empty line).
    pub fn header_line(&mut self, line: &[u8]) -> Result<(), H1Error> {
        self.header_lines = self.header_lines.saturating_add(1);
        if self.header_lines > MAX_HEADER_LINES {
            return Err(H1Error::TooManyHeaders);
        }
        match split_header(line)? {
            HeaderLine::Continuation(value) => self.continuation(value),
            HeaderLine::Field { name, value } => {
                self.last = self.field(name, value)?;
                Ok(())
            }
        }
    }

    fn field(&mut self, name: &[u8], value: &[u8]) -> Result<Last, H1Error> {
        let is = |n: &str| name.eq_ignore_ascii_case(n.as_bytes());
        let f = &mut self.fields;
        let stored = |set: bool, kind: Last| if set { kind } else { Last::Other };
        Ok(if is("host") {
            stored(
                keep(&mut self.host, &mut f.truncated, value),
                Last::Authority,
            )
        } else if is("content-type") {
            stored(
                keep(&mut f.content_type, &mut f.truncated, value),
                Last::ContentType,
            )
        } else if is("accept") {
            stored(keep(&mut f.accept, &mut f.truncated, value), Last::Accept)
        } else if is("content-length") {
            let n = content_length(value)?;
            if self.content_length.is_some_and(|prev| prev != n) {
                return Err(H1Error::ConflictingContentLength);
            }
            self.content_length = Some(n);
            Last::ContentLength
        } else if is("transfer-encoding") {
            self.transfer_encodings(value);
            Last::TransferEncoding
        } else if is("connection") {
            self.connection(value);
            Last::Connection
        } else if is("upgrade") {
            self.upgrade(value);
            Last::Upgrade
        } else {
            Last::Other
        })
    }

    fn transfer_encodings(&mut self, value: &[u8]) {
        for coding in list_elements(value) {
            self.transfer_encoding = true;
            self.chunked_last = before(coding, b';').eq_ignore_ascii_case(b"chunked");
        }
    }

    fn connection(&mut self, value: &[u8]) {
        if list_elements(value).any(|o| o.eq_ignore_ascii_case(b"upgrade")) {
            self.connection_upgrade = true;
        }
    }

    fn upgrade(&mut self, value: &[u8]) {
        if list_elements(value).any(|p| before(p, b'/').eq_ignore_ascii_case(b"h2c")) {
            self.upgrade_h2c = true;
        }
    }

    /// An obs-fold line: RFC 9112 §5.2 lets recipients replace the fold with a space.
    fn continuation(&mut self, value: &[u8]) -> Result<(), H1Error> {
        let f = &mut self.fields;
        let slot = match self.last {
            Last::Nothing => return Err(H1Error::BadHeaderLine),
            Last::ContentLength => return Err(H1Error::FoldedFraming),
            Last::TransferEncoding => {
                self.transfer_encodings(value);
                return Ok(());
            }
            Last::Connection => {
                self.connection(value);
                return Ok(());
            }
            Last::Upgrade => {
                self.upgrade(value);
                return Ok(());
            }
            Last::Other => return Ok(()),
            Last::Authority => &mut self.host,
            Last::ContentType => &mut f.content_type,
            Last::Accept => &mut f.accept,
        };
        if value.is_empty() {
            return Ok(());
        }
        let Some(stored) = slot.as_mut() else {
            return Ok(());
        };
        if stored.len().saturating_add(1).saturating_add(value.len()) > MAX_VALUE_LEN {
            *slot = None;
            f.truncated = true;
            self.last = Last::Other;
        } else {
            let stored = stored.to_mut();
            stored.push(' ');
            stored.push_str(&String::from_utf8_lossy(value));
        }
        Ok(())
    }

    /// The fields as reported: an authority from the request target replaces Host.
    pub fn into_fields(mut self) -> HeaderFields {
        self.fields.authority = match (self.target_authority.take(), self.host.take()) {
            (Some(target), _) => Some(target.into()),
            (None, host) => host.map(|host| Arc::from(&*host)),
        };
        self.fields
    }
}

/// Parses a chunk-size line: `1*HEXDIG [ BWS ";" chunk-ext ]` (extensions are not interpreted).
pub(super) fn chunk_size(line: &[u8]) -> Result<u64, H1Error> {
    let digits = line.iter().take_while(|b| b.is_ascii_hexdigit()).count();
    let (hex, ext) = line.split_at(digits.min(line.len()));
    if hex.is_empty() {
        return Err(H1Error::BadChunkSize);
    }
    let size = hex
        .iter()
        .try_fold(0u64, |acc, &d| {
            let v = char::from(d).to_digit(16)?;
            acc.checked_mul(16)?.checked_add(u64::from(v))
        })
        .ok_or(H1Error::BadChunkSize)?;
    let ext = trim_ows(ext);
    if !ext.is_empty() && ext.first() != Some(&b';') {
        return Err(H1Error::BadChunkSize);
    }
    Ok(size)
}
