//! doh-trace: which process resolves what, through which resolver — DNS-over-HTTPS lookups
//! traced from TLS plaintext (eBPF uprobes) and decoded in userspace.
//!
//! Data flow: [`loader`] attaches the eBPF programs and hands out the ring buffer; each record
//! goes through [`event::decode`] into the [`pipeline::Pipeline`], which reassembles each
//! connection's plaintext, decodes HTTP/2 ([`http2`]) and DoH ([`doh`]), parses DNS ([`dns`])
//! and produces [`lookup::Lookup`] records; [`cli`] prints them.

pub mod cli;
pub mod clock;
pub mod context;
pub mod counters;
pub mod discover;
pub mod dns;
pub mod doh;
pub mod doh_json;
pub mod event;
pub mod filter;
pub mod http1;
pub mod http2;
pub mod live;
pub mod loader;
pub mod lookup;
pub mod opaque;
pub mod output;
pub mod pipeline;
pub mod procinfo;
pub mod recording;
pub mod summary;
