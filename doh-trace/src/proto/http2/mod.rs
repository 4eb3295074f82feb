//! HTTP/2 as seen from one side of a connection: frame heads ([`frame`]), HPACK header
//! decoding with bounded state ([`hpack`]), and an incremental per-direction frame decoder
//! ([`direction`]) that turns arbitrary byte slices into [`H2Event`]s.

pub mod direction;
pub mod frame;
pub mod hpack;

pub use direction::{DirectionDecoder, H2Error, H2Event};
pub use hpack::HeaderFields;

/// The client connection preface (RFC 9113 §3.4).
pub const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
