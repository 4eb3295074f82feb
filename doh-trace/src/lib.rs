//! doh-trace: which process resolves what, through which resolver — DNS-over-HTTPS lookups
//! traced from TLS plaintext (eBPF uprobes) and decoded in userspace.
//!
//! The modules follow the data (docs/ARCHITECTURE.md):
//!
//! 1. [`source`] — where connection facts and bytes come from: the eBPF ring buffer's records
//!    ([`source::kernel`]) or a recording ([`source::recording`]), as [`source::Event`]s;
//! 2. [`conn`] — connection bytes: which connection and layer they belong to, gaps, what a
//!    connection carries ([`conn::sniff`]) and what the kernel should copy of it
//!    ([`conn::policy`]);
//! 3. [`proto`] — protocol decoders: HTTP/1.1, HTTP/2 with HPACK, DoH, DNS (classic and over
//!    TLS), the TLS ClientHello;
//! 4. [`lookup`] — the lookup record: exchanges judged into lookups, relayed lookups linked,
//!    resolvers named, opaque connections;
//! 5. [`output`] — text, JSON lines, pcapng, Prometheus metrics, the exit summary, recordings;
//!
//! with [`pipeline`] running one after the other, and on the side the facts about processes
//! ([`process`]) and what to hook in which file ([`hooks`]). The command line, the live loop
//! and the eBPF loader are the binary's (`src/bin/doh-trace/`).

pub mod clock;
pub mod conn;
pub mod counters;
pub mod hooks;
pub mod lookup;
pub mod output;
pub mod pipeline;
pub mod process;
pub mod proto;
pub mod source;
