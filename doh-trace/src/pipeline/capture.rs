//! Reading a packet capture through the pipeline (`doh-trace read`): the capture's events in,
//! the pipeline's decisions back to the reader (flows that carry no DNS are only counted),
//! and no process facts but the flows' ends. With a TLS key log (given, or embedded in the
//! file), each TLS flow's socket bytes also go through a [`TlsDecryptor`]; its plaintext
//! enters the pipeline as the flow's TLS layer (`tls_library: "keylog"`), as a hooked TLS
//! library's would, so the flow is not also reported opaque.

use std::{io, io::Read, sync::Arc};

use doh_trace_common::{CAPTURE_SOCK_SKIP, CAPTURE_TLS_SKIP};
use foldhash::HashMap;

use crate::{
    clock::Clock,
    counters::DecodeCounters,
    lookup::Origin,
    pipeline::{keylog::plaintext_chunk, Pipeline, Settings},
    process::{ProcessInfo, SocketEnds},
    proto::tls::decrypt::{DecryptStatus, KeyLog, Plaintext, TlsDecryptor},
    source::{
        pcap::{flows::Sink, CaptureCounters, CaptureError, CaptureSource},
        ConnId, DataChunk, Direction, Event, Layer,
    },
};

/// Packets between two progress reports.
const PROGRESS_EVERY: u64 = 4096;
/// Blocks read between two drains of the pipeline's records: written (and stdout flushed) in
/// batches rather than one write per lookup, which was ~10 % of reading a DoH capture.
const DRAIN_EVERY: u32 = 64;

/// What went wrong reading a capture.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReadError {
    #[error(transparent)]
    Capture(#[from] CaptureError),
    #[error("writing the output: {0}")]
    Output(#[from] io::Error),
}

/// Where the reading is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    pub bytes: u64,
    pub packets: u64,
    pub lookups: u64,
}

/// What reading a capture counted.
#[derive(Debug, Clone)]
pub struct CaptureReport {
    pub decode: DecodeCounters,
    pub capture: CaptureCounters,
    pub tls: TlsCounters,
}

/// TLS connections of a capture: decrypted, or why not.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct TlsCounters {
    /// Connections whose socket bytes were TLS records.
    pub connections: u64,
    /// TLS key log text: given, and embedded in the file (bytes).
    pub key_log_bytes: usize,
    /// Connections decrypted with the key log.
    pub decrypted: u64,
    /// Not decrypted: no key for its client random, a cipher suite not implemented, the
    /// handshake not captured.
    pub no_key: u64,
    pub unsupported_cipher: u64,
    pub missing_handshake: u64,
    /// Decryption failed (bad records, a secret that does not fit, a stream with a hole).
    pub failed: u64,
}

impl std::fmt::Display for TlsCounters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} connections, {} decrypted; not decrypted: {} no key, {} unsupported cipher, {} \
             handshake not captured, {} failed ({} bytes of key log)",
            self.connections,
            self.decrypted,
            self.no_key,
            self.unsupported_cipher,
            self.missing_handshake,
            self.failed,
            self.key_log_bytes
        )
    }
}

/// The only process facts a capture has: each flow's ends.
#[derive(Debug, Default)]
struct FlowEnds(HashMap<u64, SocketEnds>);

impl ProcessInfo for FlowEnds {
    fn leader_comm(&mut self, _pid: u32) -> Option<Arc<str>> {
        None
    }
    fn socket_ends(&mut self, _pid: u32, _fd: i32) -> Option<SocketEnds> {
        None
    }
    fn forget(&mut self, _pid: u32) -> bool {
        false
    }
    fn flow_ends(&mut self, flow: u64) -> Option<SocketEnds> {
        self.0.get(&flow).copied()
    }
    fn forget_flow(&mut self, flow: u64) {
        self.0.remove(&flow);
    }
    fn remember_flow(&mut self, flow: u64, ends: SocketEnds) {
        self.0.insert(flow, ends);
    }
}

/// A TCP flow as the decryption sees it.
enum TlsFlow {
    /// Its first bytes were a TLS record: decrypted.
    Decrypting(Box<TlsDecryptor>),
    /// Not TLS, or no longer decrypted.
    Plain,
}

/// The capture's events into the pipeline, TLS flows decrypted on the way.
struct Feed<'p> {
    pipeline: &'p mut Pipeline,
    keys: &'p KeyLog,
    flows: &'p mut HashMap<u64, TlsFlow>,
    counters: &'p mut TlsCounters,
    /// The decryptor's output, kept across blocks so its allocation is reused.
    plaintext: &'p mut Vec<Plaintext>,
}

impl Sink for Feed<'_> {
    fn flow_ends(&mut self, flow: u64, ends: SocketEnds) {
        self.pipeline.process_info().remember_flow(flow, ends);
    }

    fn event(&mut self, ev: Event<'_>) {
        match ev {
            Event::Data(d) if d.layer == Layer::Socket && !self.keys.is_empty() => {
                self.pipeline.handle_event(Event::Data(d.clone()));
                self.decrypt(&d);
            }
            Event::Close {
                id: ConnId::Flow(flow),
                ..
            } => {
                if let Some(TlsFlow::Decrypting(mut dec)) = self.flows.remove(&flow) {
                    dec.close();
                    count(self.counters, dec.status());
                }
                self.pipeline.handle_event(ev);
            }
            ev => self.pipeline.handle_event(ev),
        }
    }
}

impl Feed<'_> {
    /// Socket bytes of a flow: a flow whose first bytes are a TLS record is decrypted, its
    /// plaintext handed to the pipeline as the flow's TLS layer.
    fn decrypt(&mut self, d: &DataChunk<'_>) {
        let ConnId::Flow(flow) = d.id else { return };
        let counters = &mut *self.counters;
        let state = self
            .flows
            .entry(flow)
            .or_insert_with(|| match (d.offset, d.bytes.first()) {
                (0, Some(0x16 | 0x17)) => {
                    counters.connections += 1;
                    TlsFlow::Decrypting(Box::default())
                }
                _ => TlsFlow::Plain,
            });
        let TlsFlow::Decrypting(dec) = state else {
            return;
        };
        if d.offset != 0 {
            // A hole in the stream: its records cannot be framed any more.
            counters.failed += 1;
            *state = TlsFlow::Plain;
            return;
        }
        dec.feed(
            d.direction == Direction::Egress,
            d.bytes,
            self.keys,
            self.plaintext,
        );
        if matches!(dec.status(), DecryptStatus::NotTls) {
            counters.connections -= 1;
            *state = TlsFlow::Plain;
        }
        for p in self.plaintext.drain(..) {
            self.pipeline
                .handle_event(Event::Data(plaintext_chunk(d.meta, d.id, d.comm, &p)));
        }
    }
}

/// How a flow's decryption ended.
fn count(c: &mut TlsCounters, status: DecryptStatus) {
    match status {
        DecryptStatus::Decrypting => c.decrypted += 1,
        DecryptStatus::NoKey => c.no_key += 1,
        DecryptStatus::UnsupportedCipher(_) => c.unsupported_cipher += 1,
        DecryptStatus::MissingHandshake | DecryptStatus::WaitingForHandshake => {
            c.missing_handshake += 1
        }
        DecryptStatus::Failed(_) => c.failed += 1,
        DecryptStatus::NotTls => c.connections = c.connections.saturating_sub(1),
    }
}

/// A pipeline for a capture: no process facts, wall-clock packet times, records that say
/// they come from a capture.
pub fn capture_pipeline(settings: impl Into<Settings>) -> Pipeline {
    let mut pipeline = Pipeline::new(Box::<FlowEnds>::default(), Clock::with_offset(0));
    pipeline.configure(settings.into());
    pipeline.set_origin(Origin::Capture);
    pipeline
}

/// Reads a capture through the pipeline, handing it to `after_each` after every
/// [`DRAIN_EVERY`] blocks and at the end (to drain records; false stops early) and telling `progress` where it is now and then.
/// `key_log` is TLS key log text given besides the file's own.
pub fn read_capture(
    r: impl Read + Send + 'static,
    settings: impl Into<Settings>,
    key_log: Vec<u8>,
    mut after_each: impl FnMut(&mut Pipeline) -> io::Result<bool>,
    mut progress: impl FnMut(Progress),
) -> Result<CaptureReport, ReadError> {
    let mut source = CaptureSource::open(r)?;
    let mut pipeline = capture_pipeline(settings);
    let mut keys = KeyLog::default();
    keys.add_text(&key_log);
    let mut key_log_bytes = key_log.len();
    let mut tls_flows = HashMap::default();
    let mut tls = TlsCounters::default();
    let mut embedded = Vec::new();
    let mut undrained = 0u32;
    let mut plaintext = Vec::new();
    loop {
        let more = source.next(
            &mut Feed {
                pipeline: &mut pipeline,
                keys: &keys,
                flows: &mut tls_flows,
                counters: &mut tls,
                plaintext: &mut plaintext,
            },
            &mut |text| embedded.extend_from_slice(text),
        )?;
        if !embedded.is_empty() {
            // A Decryption Secrets Block: its keys serve the packets after it.
            keys.add_text(&embedded);
            key_log_bytes += embedded.len();
            embedded.clear();
        }
        apply_decisions(&mut pipeline, &mut source, &mut tls_flows, &mut tls);
        undrained += 1;
        if undrained >= DRAIN_EVERY || !more {
            undrained = 0;
            if !after_each(&mut pipeline)? {
                break;
            }
        }
        if source.packets() % PROGRESS_EVERY == 0 {
            progress(Progress {
                bytes: source.bytes_read(),
                packets: source.packets(),
                lookups: pipeline.counters().lookups,
            });
        }
        if !more {
            break;
        }
    }
    source.finish(&mut Feed {
        pipeline: &mut pipeline,
        keys: &keys,
        flows: &mut tls_flows,
        counters: &mut tls,
        plaintext: &mut plaintext,
    });
    let _ = pipeline.drain_decisions();
    after_each(&mut pipeline)?;
    let decode = pipeline.counters().clone();
    tls.key_log_bytes = key_log_bytes;
    if keys.is_empty() {
        // Nothing was decrypted: every TLS connection lacked its key.
        tls.connections = decode.tls_on_socket_conns;
        tls.no_key = decode.tls_on_socket_conns;
    }
    Ok(CaptureReport {
        decode,
        capture: source.counters(),
        tls,
    })
}

/// Flows the pipeline has no use for are only counted from now on. A decrypted flow's socket
/// bytes keep coming (the decryptor needs them) until its plaintext is found not to be DNS.
fn apply_decisions(
    pipeline: &mut Pipeline,
    source: &mut CaptureSource,
    tls_flows: &mut HashMap<u64, TlsFlow>,
    tls: &mut TlsCounters,
) {
    for d in pipeline.drain_decisions() {
        let ConnId::Flow(flow) = d.key.id else {
            continue;
        };
        let decrypting = matches!(tls_flows.get(&flow), Some(TlsFlow::Decrypting(_)));
        match d.key.layer {
            Layer::Socket if !decrypting => source.set_policy(flow, d.policy),
            Layer::Socket => {}
            Layer::Tls if d.policy & CAPTURE_TLS_SKIP != 0 => {
                source.set_policy(flow, CAPTURE_SOCK_SKIP);
                // Decrypted, and not DNS: no longer followed.
                if let Some(TlsFlow::Decrypting(dec)) = tls_flows.insert(flow, TlsFlow::Plain) {
                    count(tls, dec.status());
                }
            }
            Layer::Tls => {}
        }
    }
}
