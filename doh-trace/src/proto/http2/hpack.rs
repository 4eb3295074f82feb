//! HPACK header-block decoding with bounded state, keeping only the fields DoH needs.
//!
//! Wraps `loona-hpack` (a maintained fork of the `hpack` crate that returns errors where the
//! original panics). The dynamic table may only grow as far as the peer allowed in SETTINGS,
//! capped at [`MAX_TABLE_SIZE`]; header values are capped at [`MAX_VALUE_LEN`]. Values of
//! fields DoH does not use are never copied, and not even decoded when they are literals the
//! dynamic table does not index (`Decoder::decode_wanted_with_cb`, a doh-trace patch).

use std::{borrow::Cow, sync::Arc};

use loona_hpack::decoder::{Decoder, DecoderError};

/// The HPACK dynamic table size every endpoint starts with (RFC 7541 §4.2 / RFC 9113 §6.5.2).
pub const DEFAULT_TABLE_SIZE: usize = 4096;
/// The largest dynamic table this decoder will keep, whatever the peers negotiate.
pub const MAX_TABLE_SIZE: usize = 64 * 1024;
/// Longest header value kept; longer values are marked truncated.
pub const MAX_VALUE_LEN: usize = 16 * 1024;

/// A kept header value: the values every DoH exchange repeats are shared, others owned.
pub type Value = Cow<'static, str>;

/// Values common enough in DoH traffic to share instead of copying per request.
const COMMON_VALUES: &[&str] = &[
    "POST",
    "GET",
    "https",
    "http",
    "application/dns-message",
    "application/dns-json",
    "/dns-query",
    "200",
    "*/*",
];

/// A header value as kept: shared when it is a common one, else a (lossy UTF-8) copy.
pub fn header_value(value: &[u8]) -> Value {
    match COMMON_VALUES.iter().find(|c| c.as_bytes() == value) {
        Some(common) => Cow::Borrowed(common),
        None => Cow::Owned(match std::str::from_utf8(value) {
            Ok(text) => text.to_owned(),
            Err(_) => String::from_utf8_lossy(value).into_owned(),
        }),
    }
}

/// The request/response fields a DoH decoder reads. Everything else is dropped unread.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct HeaderFields {
    pub method: Option<Value>,
    pub scheme: Option<Value>,
    /// `:authority` (or `Host`): shared by the requests of a connection that name the same.
    pub authority: Option<Arc<str>>,
    pub path: Option<Value>,
    pub status: Option<Value>,
    pub content_type: Option<Value>,
    pub accept: Option<Value>,
    /// A kept field's value was longer than [`MAX_VALUE_LEN`] and was not stored.
    pub truncated: bool,
}

/// A field DoH reads.
#[derive(Debug, Clone, Copy)]
enum Kept {
    Method,
    Scheme,
    Authority,
    Path,
    Status,
    ContentType,
    Accept,
}

impl Kept {
    /// The field of this name, if DoH reads it.
    fn of(name: &[u8]) -> Option<Kept> {
        Some(match name {
            b":method" => Kept::Method,
            b":scheme" => Kept::Scheme,
            b":authority" | b"host" => Kept::Authority,
            b":path" => Kept::Path,
            b":status" => Kept::Status,
            b"content-type" => Kept::ContentType,
            b"accept" => Kept::Accept,
            _ => return None,
        })
    }
}

impl HeaderFields {
    /// Whether [`take`](Self::take) keeps fields of this name.
    fn wants(name: &[u8]) -> bool {
        Kept::of(name).is_some()
    }

    /// Keeps `value` if `name` is a field DoH reads; an authority that is `last_authority`'s
    /// text is shared with it, else becomes it.
    fn take(&mut self, name: &[u8], value: &[u8], last_authority: &mut Option<Arc<str>>) {
        let Some(kept) = Kept::of(name) else {
            return;
        };
        if value.len() > MAX_VALUE_LEN {
            self.truncated = true;
            return;
        }
        let slot = match kept {
            Kept::Authority => {
                if self.authority.is_none() {
                    let same = last_authority.as_ref().filter(|a| a.as_bytes() == value);
                    let authority = match same {
                        Some(same) => same.clone(),
                        None => Arc::from(&*header_value(value)),
                    };
                    *last_authority = Some(authority.clone());
                    self.authority = Some(authority);
                }
                return;
            }
            Kept::Method => &mut self.method,
            Kept::Scheme => &mut self.scheme,
            Kept::Path => &mut self.path,
            Kept::Status => &mut self.status,
            Kept::ContentType => &mut self.content_type,
            Kept::Accept => &mut self.accept,
        };
        if slot.is_none() {
            *slot = Some(header_value(value));
        }
    }

    /// Heap bytes of the kept values (a shared authority counted as if it were owned).
    pub fn held_bytes(&self) -> usize {
        let owned = |v: &Option<Value>| match v {
            Some(Cow::Owned(s)) => s.capacity(),
            Some(Cow::Borrowed(_)) | None => 0,
        };
        owned(&self.method)
            + owned(&self.scheme)
            + owned(&self.path)
            + owned(&self.status)
            + owned(&self.content_type)
            + owned(&self.accept)
            + self.authority.as_ref().map_or(0, |a| a.len())
    }

    /// The `:status` as a number, if present and numeric.
    pub fn status_code(&self) -> Option<u16> {
        self.status.as_deref()?.parse().ok()
    }
}

/// One direction's HPACK decoding context.
pub struct HeaderDecoder {
    inner: Decoder<'static>,
    /// The last authority decoded, shared with the next request that names the same.
    last_authority: Option<Arc<str>>,
}

impl Default for HeaderDecoder {
    fn default() -> Self {
        Self::new()
    }
}

impl HeaderDecoder {
    /// A decoder in the state every HTTP/2 connection starts in.
    pub fn new() -> Self {
        let mut inner = Decoder::new();
        inner.set_max_allowed_table_size(DEFAULT_TABLE_SIZE);
        HeaderDecoder {
            inner,
            last_authority: None,
        }
    }

    /// The receiving peer advertised SETTINGS_HEADER_TABLE_SIZE = `size`.
    pub fn allow_table_size(&mut self, size: u32) {
        self.inner
            .set_max_allowed_table_size((size as usize).min(MAX_TABLE_SIZE));
    }

    /// Heap bytes held: the dynamic table, the decoding buffers and the last authority.
    pub fn held_bytes(&self) -> usize {
        self.inner.held_bytes() + self.last_authority.as_ref().map_or(0, |a| a.len())
    }

    /// Decodes one complete header block (HEADERS/PUSH_PROMISE + CONTINUATIONs).
    pub fn decode(&mut self, block: &[u8]) -> Result<HeaderFields, DecoderError> {
        let mut fields = HeaderFields::default();
        self.decode_into(block, &mut fields)?;
        Ok(fields)
    }

    /// [`decode`](Self::decode) into `fields` (empty), which saves moving them on the
    /// per-lookup path.
    pub fn decode_into(
        &mut self,
        block: &[u8],
        fields: &mut HeaderFields,
    ) -> Result<(), DecoderError> {
        let last_authority = &mut self.last_authority;
        // Values of other fields are not even decoded unless the dynamic table needs them.
        self.inner
            .decode_wanted_with_cb(block, HeaderFields::wants, |name, value| {
                fields.take(&name, &value, last_authority)
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 7541 C.4.1: first request, Huffman-coded.
    const C41: &[u8] = &[
        0x82, 0x86, 0x84, 0x41, 0x8c, 0xf1, 0xe3, 0xc2, 0xe5, 0xf2, 0x3a, 0x6b, 0xa0, 0xab, 0x90,
        0xf4, 0xff,
    ];
    /// RFC 7541 C.4.2: second request, reuses the dynamic table entry for :authority.
    const C42: &[u8] = &[
        0x82, 0x86, 0x84, 0xbe, 0x58, 0x86, 0xa8, 0xeb, 0x10, 0x64, 0x9c, 0xbf,
    ];

    #[test]
    fn decodes_rfc7541_huffman_requests_with_dynamic_table_references() {
        let mut d = HeaderDecoder::new();
        let a = d.decode(C41).unwrap();
        assert_eq!(a.method.as_deref(), Some("GET"));
        assert_eq!(a.authority.as_deref(), Some("www.example.com"));
        let b = d.decode(C42).unwrap();
        assert_eq!(
            b.authority.as_deref(),
            Some("www.example.com"),
            "indexed from the table"
        );
        assert_eq!(b.path.as_deref(), Some("/"));
        let (a, b) = (a.authority.unwrap(), b.authority.unwrap());
        assert!(Arc::ptr_eq(&a, &b), "the same authority is shared");
    }

    /// `wants` (which values the decoder decodes at all) and `take` (which it keeps) name the
    /// same fields.
    #[test]
    fn the_fields_wanted_are_the_fields_kept() {
        let names: [&[u8]; 12] = [
            b":method",
            b":scheme",
            b":authority",
            b"host",
            b":path",
            b":status",
            b"content-type",
            b"accept",
            b"content-length",
            b"user-agent",
            b"cookie",
            b":protocol",
        ];
        for name in names {
            let mut f = HeaderFields::default();
            f.take(name, b"x", &mut None);
            let kept = f != HeaderFields::default();
            assert_eq!(HeaderFields::wants(name), kept, "{name:?}");
        }
    }

    #[test]
    fn a_second_request_cannot_be_decoded_without_the_first() {
        let mut fresh = HeaderDecoder::new();
        assert!(
            fresh.decode(C42).is_err(),
            "index 62 is not in an empty dynamic table"
        );
    }

    #[test]
    fn a_truncated_size_update_is_an_error_not_a_panic() {
        // Found by fuzzing: `hpack` 0.3 panics on these three bytes (unwrap in
        // update_max_dynamic_size); this is why doh-trace uses loona-hpack.
        assert!(HeaderDecoder::new().decode(&[0x3b, 0x3f, 0xb7]).is_err());
    }

    #[test]
    fn table_size_updates_beyond_what_the_peer_allowed_are_errors() {
        let mut d = HeaderDecoder::new();
        // Size update to 65536: 5-bit prefix 31 (0x3f), then 65505 as 0xe1 0xff 0x03.
        let bomb = [0x3f, 0xe1, 0xff, 0x03, 0x82];
        assert!(d.decode(&bomb).is_err());
        d.allow_table_size(1 << 20);
        assert!(
            d.decode(&bomb).is_ok(),
            "allowed once the peer advertised it (capped at 64K)"
        );
    }
}
