//! The recording format of `doh-trace record` / `doh-trace replay` (documented in
//! docs/RECORDING.md): a header, then length-prefixed records holding raw ring-buffer events
//! exactly as the kernel wrote them, and process names.
//!
//! [`Recorder`] keeps a connection's events back until the pipeline has classified it, and
//! writes them only if it carries DNS: non-DNS plaintext never reaches the file. Facts about a
//! process (name, context, socket addresses) are written only once it has a DNS connection.

use std::{
    cell::RefCell,
    collections::{HashMap, HashSet},
    io::{self, Read, Write},
    rc::Rc,
    sync::Arc,
};

use crate::{
    clock::Clock,
    context::ProcessContext,
    counters::DecodeCounters,
    event::{self, Event},
    lookup::Lookup,
    pipeline::{CaptureDecision, ConnId, ConnKey, Pipeline},
    procinfo::{ProcessInfo, SocketEnds},
};

/// File magic.
pub const MAGIC: &[u8; 8] = b"DOHTRACE";
/// Format version written by this build.
pub const VERSION: u32 = 1;
/// Record type: a raw ring-buffer event.
pub const REC_EVENT: u8 = 1;
/// Record type: a process name (u32 pid LE + UTF-8 name).
pub const REC_PROCESS_NAME: u8 = 2;
/// Record type: a socket's addresses as /proc showed them (u32 pid LE, i32 fd LE, then UTF-8
/// "LOCAL REMOTE", each `ip:port` / `[ip]:port`).
pub const REC_SOCKET_ENDS: u8 = 3;
/// Record type: a process's context (u32 pid LE, then the `ProcessContext` as JSON).
pub const REC_PROCESS_CONTEXT: u8 = 4;
/// Longest record accepted on reading.
pub const MAX_RECORD: usize = 64 * 1024;
/// Most bytes held back for one unclassified connection.
pub const MAX_HELD_PER_CONN: usize = 64 * 1024;
/// Most processes whose facts are held back while none of their connections is DNS.
const MAX_PENDING_PROCESSES: usize = 4096;
/// Most facts held back per process.
const MAX_FACTS_PER_PROCESS: usize = 64;

/// A recording that cannot be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RecordingError {
    #[error("not a doh-trace recording (bad magic)")]
    BadMagic,
    #[error("recording format version {0} is not supported (this build reads {VERSION})")]
    Version(u32),
    #[error("record of {0} bytes exceeds the {MAX_RECORD}-byte limit")]
    RecordTooLarge(usize),
    #[error("truncated recording")]
    Truncated,
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// Header fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Unix-epoch ns minus CLOCK_MONOTONIC ns when recording started.
    pub clock_offset_ns: i64,
}

/// One record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    Event(Vec<u8>),
    ProcessName { pid: u32, name: String },
    SocketEnds { pid: u32, fd: i32, ends: SocketEnds },
    ProcessContext { pid: u32, context: ProcessContext },
}

/// Writes the header.
pub fn write_header(w: &mut impl Write, h: Header) -> io::Result<()> {
    w.write_all(MAGIC)?;
    w.write_all(&VERSION.to_le_bytes())?;
    w.write_all(&0u32.to_le_bytes())?;
    w.write_all(&h.clock_offset_ns.to_le_bytes())
}

/// Writes one record.
pub fn write_record(w: &mut impl Write, r: &Record) -> io::Result<()> {
    let (kind, body): (u8, Vec<u8>) = match r {
        Record::Event(raw) => (REC_EVENT, raw.clone()),
        Record::ProcessName { pid, name } => {
            let mut b = pid.to_le_bytes().to_vec();
            b.extend_from_slice(name.as_bytes());
            (REC_PROCESS_NAME, b)
        }
        Record::SocketEnds { pid, fd, ends } => {
            let mut b = pid.to_le_bytes().to_vec();
            b.extend_from_slice(&fd.to_le_bytes());
            b.extend_from_slice(format!("{} {}", ends.local, ends.remote).as_bytes());
            (REC_SOCKET_ENDS, b)
        }
        Record::ProcessContext { pid, context } => {
            let mut b = pid.to_le_bytes().to_vec();
            b.extend_from_slice(&serde_json::to_vec(context).map_err(io::Error::other)?);
            (REC_PROCESS_CONTEXT, b)
        }
    };
    w.write_all(&((body.len() + 1) as u32).to_le_bytes())?;
    w.write_all(&[kind])?;
    w.write_all(&body)
}

/// Reads a recording's header.
pub fn read_header(r: &mut impl Read) -> Result<Header, RecordingError> {
    let mut b = [0u8; 24];
    r.read_exact(&mut b).map_err(|_| RecordingError::BadMagic)?;
    if &b[..8] != MAGIC {
        return Err(RecordingError::BadMagic);
    }
    let version = u32::from_le_bytes(b[8..12].try_into().expect("4 bytes"));
    if version != VERSION {
        return Err(RecordingError::Version(version));
    }
    Ok(Header {
        clock_offset_ns: i64::from_le_bytes(b[16..24].try_into().expect("8 bytes")),
    })
}

/// Reads the next record; `Ok(None)` at a clean end of file. Unknown record types are skipped.
pub fn read_record(r: &mut impl Read) -> Result<Option<Record>, RecordingError> {
    loop {
        let mut len = [0u8; 4];
        match r.read_exact(&mut len) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
            Err(e) => return Err(e.into()),
        }
        let len = u32::from_le_bytes(len) as usize;
        if len > MAX_RECORD {
            return Err(RecordingError::RecordTooLarge(len));
        }
        if len == 0 {
            return Err(RecordingError::Truncated);
        }
        let mut body = vec![0u8; len];
        r.read_exact(&mut body)
            .map_err(|_| RecordingError::Truncated)?;
        match body[0] {
            REC_EVENT => return Ok(Some(Record::Event(body[1..].to_vec()))),
            REC_PROCESS_NAME if body.len() >= 5 => {
                let pid = u32::from_le_bytes(body[1..5].try_into().expect("4 bytes"));
                let name = String::from_utf8_lossy(&body[5..]).into_owned();
                return Ok(Some(Record::ProcessName { pid, name }));
            }
            REC_SOCKET_ENDS if body.len() >= 9 => {
                let pid = u32::from_le_bytes(body[1..5].try_into().expect("4 bytes"));
                let fd = i32::from_le_bytes(body[5..9].try_into().expect("4 bytes"));
                let text = String::from_utf8_lossy(&body[9..]);
                let mut parts = text.split(' ').map(str::parse);
                if let (Some(Ok(local)), Some(Ok(remote))) = (parts.next(), parts.next()) {
                    return Ok(Some(Record::SocketEnds {
                        pid,
                        fd,
                        ends: SocketEnds { local, remote },
                    }));
                }
                continue;
            }
            REC_PROCESS_CONTEXT if body.len() >= 5 => {
                let pid = u32::from_le_bytes(body[1..5].try_into().expect("4 bytes"));
                if let Ok(context) = serde_json::from_slice(&body[5..]) {
                    return Ok(Some(Record::ProcessContext { pid, context }));
                }
                continue;
            }
            _ => continue,
        }
    }
}

/// Process names from a recording, for replays.
#[derive(Debug, Default)]
pub struct RecordedProcessInfo {
    names: HashMap<u32, Arc<str>>,
    sockets: HashMap<(u32, i32), SocketEnds>,
    contexts: HashMap<u32, Arc<ProcessContext>>,
}

impl ProcessInfo for RecordedProcessInfo {
    fn leader_comm(&mut self, pid: u32) -> Option<Arc<str>> {
        self.names.get(&pid).cloned()
    }
    fn socket_ends(&mut self, pid: u32, fd: i32) -> Option<SocketEnds> {
        self.sockets.get(&(pid, fd)).copied()
    }
    fn forget(&mut self, _pid: u32) -> bool {
        false
    }
    fn remember_name(&mut self, pid: u32, name: String) {
        self.names.insert(pid, name.into());
    }
    fn remember_socket(&mut self, pid: u32, fd: i32, ends: SocketEnds) {
        self.sockets.insert((pid, fd), ends);
    }
    fn forget_socket(&mut self, pid: u32, fd: i32) {
        self.sockets.remove(&(pid, fd));
    }
    fn context(&mut self, pid: u32, _uid: u32) -> Arc<ProcessContext> {
        self.contexts.get(&pid).cloned().unwrap_or_default()
    }
    fn remember_context(&mut self, pid: u32, context: ProcessContext) {
        self.contexts.insert(pid, Arc::new(context));
    }
}

/// Wraps the live /proc reader and notes every name and socket address it gives the
/// pipeline, so the recording holds exactly what the live run used.
pub struct TappedProcessInfo<P> {
    inner: P,
    log: Rc<RefCell<Vec<Record>>>,
    named: HashSet<u32>,
    contexts_logged: HashSet<u32>,
}

impl<P: ProcessInfo> TappedProcessInfo<P> {
    /// Taps `inner`; what it answers is appended to `log`.
    pub fn new(inner: P, log: Rc<RefCell<Vec<Record>>>) -> Self {
        TappedProcessInfo {
            inner,
            log,
            named: HashSet::new(),
            contexts_logged: HashSet::new(),
        }
    }
}

impl<P: ProcessInfo> ProcessInfo for TappedProcessInfo<P> {
    fn leader_comm(&mut self, pid: u32) -> Option<Arc<str>> {
        let name = self.inner.leader_comm(pid)?;
        if self.named.insert(pid) {
            self.log.borrow_mut().push(Record::ProcessName {
                pid,
                name: name.to_string(),
            });
        }
        Some(name)
    }
    fn socket_ends(&mut self, pid: u32, fd: i32) -> Option<SocketEnds> {
        let ends = self.inner.socket_ends(pid, fd)?;
        self.log
            .borrow_mut()
            .push(Record::SocketEnds { pid, fd, ends });
        Some(ends)
    }
    fn forget(&mut self, pid: u32) -> bool {
        self.named.remove(&pid);
        self.contexts_logged.remove(&pid);
        self.inner.forget(pid)
    }
    fn context(&mut self, pid: u32, uid: u32) -> Arc<ProcessContext> {
        let context = self.inner.context(pid, uid);
        if self.contexts_logged.insert(pid) {
            self.log.borrow_mut().push(Record::ProcessContext {
                pid,
                context: ProcessContext::clone(&context),
            });
        }
        context
    }
}

/// Whether a connection's events may be written.
#[derive(Debug)]
enum Hold {
    /// Unclassified: events held back (bounded).
    Held { events: Vec<Vec<u8>>, bytes: usize },
    /// Carries DNS: written as they come.
    Pass,
    /// Not DNS, or over the hold limit: dropped.
    Drop,
}

/// Decides, per connection, which raw events reach the recording.
#[derive(Debug, Default)]
pub struct Recorder {
    conns: HashMap<ConnKey, Hold>,
    /// Process facts (names, contexts, socket addresses) of processes with no DNS connection
    /// yet: written only once one of their connections is classified as DNS.
    pending_facts: HashMap<u32, Vec<Record>>,
    /// Processes with at least one DNS connection: their facts are written at once.
    dns_pids: HashSet<u32>,
    /// Events of connections never classified as DNS that were not written.
    pub withheld_events: u64,
}

fn key_of(ev: &Event<'_>) -> Option<ConnKey> {
    let Event::Data(d) = ev else { return None };
    let id = if d.fd >= 0 {
        ConnId::Fd(d.fd)
    } else {
        ConnId::TlsObject(d.tls_obj)
    };
    Some(ConnKey {
        pid: d.meta.pid,
        id,
        layer: crate::pipeline::layer_of(d.source),
    })
}

impl Recorder {
    /// Offers a raw event after the pipeline has seen it, with the process facts the pipeline
    /// looked up meanwhile (written first). Data events of connections not yet known to carry
    /// DNS are held back; connection metadata is written at once.
    pub fn offer(
        &mut self,
        raw: &[u8],
        facts: Vec<Record>,
        out: &mut impl Write,
    ) -> io::Result<()> {
        for r in facts {
            let pid = match &r {
                Record::ProcessName { pid, .. }
                | Record::SocketEnds { pid, .. }
                | Record::ProcessContext { pid, .. } => *pid,
                Record::Event(_) => continue,
            };
            if self.dns_pids.contains(&pid) {
                write_record(out, &r)?;
            } else if self.pending_facts.len() < MAX_PENDING_PROCESSES {
                let pending = self.pending_facts.entry(pid).or_default();
                if pending.len() < MAX_FACTS_PER_PROCESS {
                    pending.push(r);
                }
            }
        }
        let Ok(ev) = event::decode(raw) else {
            return Ok(());
        };
        let Some(key) = key_of(&ev) else {
            if let Event::Exec { meta } = ev {
                // Every exec on the host is reported (hook discovery); only DNS processes' count.
                if !self.dns_pids.contains(&meta.pid) {
                    return Ok(());
                }
            }
            if let Event::Close { meta, fd } = ev {
                for layer in [crate::pipeline::Layer::Tls, crate::pipeline::Layer::Socket] {
                    if let Some(Hold::Held { events, .. }) = self.conns.remove(&ConnKey {
                        pid: meta.pid,
                        id: ConnId::Fd(fd),
                        layer,
                    }) {
                        self.withheld_events += events.len() as u64;
                    }
                }
            }
            return write_record(out, &Record::Event(raw.to_vec()));
        };
        match self.conns.entry(key).or_insert(Hold::Held {
            events: Vec::new(),
            bytes: 0,
        }) {
            Hold::Pass => write_record(out, &Record::Event(raw.to_vec())),
            Hold::Drop => {
                self.withheld_events += 1;
                Ok(())
            }
            h @ Hold::Held { .. } => {
                let Hold::Held { events, bytes } = h else {
                    unreachable!()
                };
                *bytes += raw.len();
                events.push(raw.to_vec());
                if *bytes > MAX_HELD_PER_CONN {
                    self.withheld_events += events.len() as u64;
                    *h = Hold::Drop;
                }
                Ok(())
            }
        }
    }

    /// Applies a pipeline decision: a connection that carries DNS has its held events written.
    pub fn decided(&mut self, d: &CaptureDecision, out: &mut impl Write) -> io::Result<()> {
        // Counted connections (opaque candidates) are kept too: replay needs their ClientHello
        // (TLS handshake bytes, no application plaintext) to report them.
        let dns = d.policy
            & (doh_trace_common::CAPTURE_TLS_FULL
                | doh_trace_common::CAPTURE_SOCK_FULL
                | doh_trace_common::CAPTURE_COUNT)
            != 0;
        let prev = self
            .conns
            .insert(d.key, if dns { Hold::Pass } else { Hold::Drop });
        if dns {
            if self.dns_pids.insert(d.key.pid) {
                for r in self.pending_facts.remove(&d.key.pid).unwrap_or_default() {
                    write_record(out, &r)?;
                }
            }
            if let Some(Hold::Held { events, .. }) = prev {
                for raw in events {
                    write_record(out, &Record::Event(raw))?;
                }
            }
        } else if let Some(Hold::Held { events, .. }) = prev {
            self.withheld_events += events.len() as u64;
        }
        Ok(())
    }
}

/// Runs the decoding pipeline on a recording: every lookup goes to `on_lookup`, which returns
/// false to stop early. Returns the pipeline's counters.
pub fn replay(
    r: impl Read,
    mut on_lookup: impl FnMut(Lookup) -> io::Result<bool>,
) -> Result<DecodeCounters, RecordingError> {
    replay_into(r, |pipeline| {
        let lookups: Vec<Box<Lookup>> = pipeline.drain_lookups().collect();
        for lookup in lookups {
            if !on_lookup(*lookup)? {
                return Ok(false);
            }
        }
        Ok(true)
    })
}

/// Runs the decoding pipeline on a recording, handing the pipeline to `after_each` after every
/// event (to drain lookups and connection records); it returns false to stop early.
pub fn replay_into(
    r: impl Read,
    after_each: impl FnMut(&mut Pipeline) -> io::Result<bool>,
) -> Result<DecodeCounters, RecordingError> {
    replay_into_with(r, crate::opaque::ResolverList::builtin(), after_each)
}

/// [`replay_into`] with a resolver list other than the built-in one.
pub fn replay_into_with(
    mut r: impl Read,
    resolvers: crate::opaque::ResolverList,
    mut after_each: impl FnMut(&mut Pipeline) -> io::Result<bool>,
) -> Result<DecodeCounters, RecordingError> {
    let header = read_header(&mut r)?;
    let mut pipeline = Pipeline::new(
        Box::new(RecordedProcessInfo::default()),
        Clock::with_offset(header.clock_offset_ns.into()),
    );
    pipeline.set_resolvers(resolvers);
    while let Some(rec) = read_record(&mut r)? {
        match rec {
            Record::ProcessName { pid, name } => pipeline.process_info().remember_name(pid, name),
            Record::SocketEnds { pid, fd, ends } => {
                pipeline.process_info().remember_socket(pid, fd, ends)
            }
            Record::ProcessContext { pid, context } => {
                pipeline.process_info().remember_context(pid, context)
            }
            Record::Event(raw) => {
                pipeline.handle_record(&raw);
                let _ = pipeline.drain_decisions();
                if !after_each(&mut pipeline)? {
                    break;
                }
            }
        }
    }
    Ok(pipeline.counters().clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_unknown_types_are_skipped() {
        let mut f = Vec::new();
        write_header(
            &mut f,
            Header {
                clock_offset_ns: -42,
            },
        )
        .unwrap();
        write_record(
            &mut f,
            &Record::ProcessName {
                pid: 7,
                name: "curl".into(),
            },
        )
        .unwrap();
        f.extend_from_slice(&[2, 0, 0, 0, 99, 0]); // a future record type
        write_record(&mut f, &Record::Event(vec![1, 2, 3])).unwrap();
        let ends = SocketEnds {
            local: "[::1]:5000".parse().unwrap(),
            remote: "[::1]:8443".parse().unwrap(),
        };
        write_record(
            &mut f,
            &Record::SocketEnds {
                pid: 7,
                fd: 9,
                ends,
            },
        )
        .unwrap();
        let mut r = &f[..];
        assert_eq!(
            read_header(&mut r).unwrap(),
            Header {
                clock_offset_ns: -42
            }
        );
        assert_eq!(
            read_record(&mut r).unwrap(),
            Some(Record::ProcessName {
                pid: 7,
                name: "curl".into()
            })
        );
        assert_eq!(
            read_record(&mut r).unwrap(),
            Some(Record::Event(vec![1, 2, 3]))
        );
        assert_eq!(
            read_record(&mut r).unwrap(),
            Some(Record::SocketEnds {
                pid: 7,
                fd: 9,
                ends
            })
        );
        assert_eq!(read_record(&mut r).unwrap(), None);
    }

    #[test]
    fn rejects_other_files_and_hostile_lengths() {
        assert!(matches!(
            read_header(&mut &b"GIF89a.................."[..]),
            Err(RecordingError::BadMagic)
        ));
        let mut f = Vec::new();
        write_header(&mut f, Header { clock_offset_ns: 0 }).unwrap();
        f.extend_from_slice(&u32::MAX.to_le_bytes());
        let mut r = &f[..];
        read_header(&mut r).unwrap();
        assert!(matches!(
            read_record(&mut r),
            Err(RecordingError::RecordTooLarge(_))
        ));
    }
}
