//! Reading a packet capture through the pipeline (`doh-trace read`): the capture's events in,
//! the pipeline's decisions back to the reader (flows that carry no DNS are only counted),
//! and no process facts but the flows' ends.

use std::{collections::HashMap, io, io::Read, sync::Arc};

use crate::{
    clock::Clock,
    counters::DecodeCounters,
    lookup::{resolvers::ResolverList, Origin},
    pipeline::Pipeline,
    process::{ProcessInfo, SocketEnds},
    source::{
        pcap::{flows::Sink, CaptureCounters, CaptureError, CaptureSource},
        ConnId, Event, Layer,
    },
};

/// Packets between two progress reports.
const PROGRESS_EVERY: u64 = 4096;

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
}

impl std::fmt::Display for TlsCounters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} connections, {} decrypted; not decrypted: {} no key, {} unsupported cipher, {} \
             handshake not captured ({} bytes of key log)",
            self.connections,
            self.decrypted,
            self.no_key,
            self.unsupported_cipher,
            self.missing_handshake,
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

/// The capture's events into the pipeline.
struct Feed<'p> {
    pipeline: &'p mut Pipeline,
}

impl Sink for Feed<'_> {
    fn flow_ends(&mut self, flow: u64, ends: SocketEnds) {
        self.pipeline.process_info().remember_flow(flow, ends);
    }

    fn event(&mut self, ev: Event<'_>) {
        self.pipeline.handle_event(ev);
    }
}

/// A pipeline for a capture: no process facts, wall-clock packet times, records that say
/// they come from a capture.
pub fn capture_pipeline(resolvers: ResolverList) -> Pipeline {
    let mut pipeline = Pipeline::new(Box::<FlowEnds>::default(), Clock::with_offset(0));
    pipeline.set_resolvers(resolvers);
    pipeline.set_origin(Origin::Capture);
    pipeline
}

/// Reads a capture through the pipeline, handing it to `after_each` after every block (to
/// drain records; false stops early) and telling `progress` where it is now and then.
/// `key_log` is TLS key log text given besides the file's own.
pub fn read_capture(
    r: impl Read + Send + 'static,
    resolvers: ResolverList,
    key_log: Vec<u8>,
    mut after_each: impl FnMut(&mut Pipeline) -> io::Result<bool>,
    mut progress: impl FnMut(Progress),
) -> Result<CaptureReport, ReadError> {
    let mut source = CaptureSource::open(r)?;
    let mut pipeline = capture_pipeline(resolvers);
    let mut key_log = key_log;
    loop {
        let more = source.next(&mut Feed {
            pipeline: &mut pipeline,
        }, &mut |text| key_log.extend_from_slice(text))?;
        apply_decisions(&mut pipeline, &mut source);
        if !after_each(&mut pipeline)? {
            break;
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
    });
    let _ = pipeline.drain_decisions();
    after_each(&mut pipeline)?;
    let decode = pipeline.counters().clone();
    let tls = TlsCounters {
        connections: decode.tls_on_socket_conns,
        key_log_bytes: key_log.len(),
        // Without a decryptor every one lacks a key.
        no_key: decode.tls_on_socket_conns,
        ..TlsCounters::default()
    };
    Ok(CaptureReport {
        decode,
        capture: source.counters(),
        tls,
    })
}

/// Flows the pipeline has no use for are only counted from now on.
fn apply_decisions(pipeline: &mut Pipeline, source: &mut CaptureSource) {
    for d in pipeline.drain_decisions() {
        if let (ConnId::Flow(flow), Layer::Socket) = (d.key.id, d.key.layer) {
            source.set_policy(flow, d.policy);
        }
    }
}
