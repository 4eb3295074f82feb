//! Why an HTTP/1.x direction can no longer be decoded.

use super::{MAX_CHUNK_LINE, MAX_HEAD, MAX_HEADER_LINES};

/// Why this direction can no longer be decoded. Once returned, the decoder stays failed.
/// No variant carries input bytes (the decoder sees TLS plaintext).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum H1Error {
    #[error("message head exceeds {MAX_HEAD} bytes")]
    HeadTooLarge,
    #[error("trailer section exceeds {MAX_HEAD} bytes")]
    TrailersTooLarge,
    #[error("more than {MAX_HEADER_LINES} header or trailer lines")]
    TooManyHeaders,
    #[error("malformed request line")]
    BadRequestLine,
    #[error("malformed status line")]
    BadStatusLine,
    #[error("not HTTP/1.x")]
    BadVersion,
    /// The HTTP/2 connection preface where a request was expected (prior-knowledge HTTP/2, or
    /// the client's preface after an h2c upgrade fed to the HTTP/1 decoder).
    #[error("HTTP/2 connection preface instead of an HTTP/1 request")]
    Http2Preface,
    #[error("malformed header line")]
    BadHeaderLine,
    #[error("invalid Content-Length")]
    BadContentLength,
    #[error("conflicting Content-Length values")]
    ConflictingContentLength,
    #[error("obs-fold continuation of Content-Length")]
    FoldedFraming,
    #[error("request Transfer-Encoding does not end in chunked")]
    BadTransferEncoding,
    #[error("chunk-size line exceeds {MAX_CHUNK_LINE} bytes")]
    ChunkLineTooLong,
    #[error("malformed chunk size")]
    BadChunkSize,
    #[error("chunk data not followed by CRLF")]
    BadChunkEnd,
    /// A 101 response switching to something other than h2c: the rest is not HTTP.
    #[error("switched to a protocol other than h2c")]
    UnsupportedUpgrade,
    /// A 2xx response to CONNECT: the rest is a tunnel.
    #[error("CONNECT tunnel established")]
    Tunnel,
    #[error("decoder failed earlier")]
    Failed,
}
