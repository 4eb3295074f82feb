//! Writing a recording (`doh-trace record`): [`Recorder`] keeps a connection's events back
//! until the pipeline has classified it, and writes them only if it carries DNS: non-DNS
//! plaintext never reaches the file. Facts about a process (name, context, socket addresses)
//! are written only once it has a DNS connection. The format is
//! [`crate::source::recording`]'s.

use std::{
    cell::RefCell,
    collections::{HashMap, HashSet},
    io::{self, Write},
    rc::Rc,
    sync::Arc,
};

use crate::{
    conn::policy::CaptureDecision,
    process::{context::ProcessContext, ProcessInfo, SocketEnds},
    source::{
        kernel,
        recording::{write_record, Record},
        ConnId, ConnKey, Event, Layer, Meta,
    },
};

/// Most bytes held back for one unclassified connection.
pub const MAX_HELD_PER_CONN: usize = 64 * 1024;
/// Most processes whose facts are held back while none of their connections is DNS.
const MAX_PENDING_PROCESSES: usize = 4096;
/// Most facts held back per process.
const MAX_FACTS_PER_PROCESS: usize = 64;
/// Most TLS object bindings remembered (forgotten wholesale beyond it: later events of those
/// objects carry their fd anyway).
const MAX_BOUND: usize = 65536;

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
    fn read_memory(&mut self, pid: u32, addr: u64, buf: &mut [u8]) -> usize {
        self.inner.read_memory(pid, addr, buf)
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
    /// TLS objects bound to a socket (`conn/binding.rs`): their plaintext is that socket's.
    bound: HashMap<(u32, u64), i32>,
    /// Events of connections never classified as DNS that were not written.
    pub withheld_events: u64,
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
        let Ok(ev) = kernel::decode(raw) else {
            return Ok(());
        };
        let key = ev.data_key().map(|key| match key.id {
            ConnId::TlsObject(obj) => match self.bound.get(&(key.pid, obj)) {
                Some(&fd) => ConnKey {
                    id: ConnId::Fd(fd),
                    ..key
                },
                None => key,
            },
            ConnId::Fd(_) | ConnId::Flow(_) => key,
        });
        let Some(key) = key else {
            if let Event::Exec { meta } = ev {
                // Every exec on the host is reported (hook discovery); only DNS processes' count.
                if !self.dns_pids.contains(&meta.pid) {
                    return Ok(());
                }
            }
            if let Event::Close { meta, id } = ev {
                for layer in [Layer::Tls, Layer::Socket] {
                    if let Some(Hold::Held { events, .. }) = self.conns.remove(&ConnKey {
                        pid: meta.pid,
                        id,
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

    /// A TLS object was bound to socket `fd` (before the event that led to it is offered): the
    /// binding is written, as a record replay reads like the kernel's, and what is held of the
    /// object goes on as the socket's TLS layer.
    pub fn bound(
        &mut self,
        meta: &Meta,
        tls_obj: u64,
        fd: i32,
        out: &mut impl Write,
    ) -> io::Result<()> {
        if self.bound.len() >= MAX_BOUND {
            self.bound.clear();
        }
        self.bound.insert((meta.pid, tls_obj), fd);
        let object = ConnKey {
            pid: meta.pid,
            id: ConnId::TlsObject(tls_obj),
            layer: Layer::Tls,
        };
        let socket = ConnKey {
            id: ConnId::Fd(fd),
            ..object
        };
        if let Some(held) = self.conns.remove(&object) {
            self.conns.entry(socket).or_insert(held);
        }
        write_record(
            out,
            &Record::Event(kernel::encode_tls_bind(meta, fd, tls_obj)),
        )
    }

    /// A binding undone (its socket closed).
    pub fn unbound(&mut self, pid: u32, tls_obj: u64) {
        self.bound.remove(&(pid, tls_obj));
    }

    /// Applies a pipeline decision: a connection that carries DNS has its held events written.
    pub fn decided(&mut self, d: &CaptureDecision, out: &mut impl Write) -> io::Result<()> {
        // Counted connections (opaque candidates) are kept too: replay needs their ClientHello
        // (TLS handshake bytes, no application plaintext) to report them.
        let dns = d.keeps();
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
