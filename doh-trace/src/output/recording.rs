//! Writing a recording (`doh-trace record`): [`Recorder`] keeps a connection's events back
//! until the pipeline has classified it, and writes them only if it carries DNS — and then
//! only what the DNS decoding needs of them ([`super::redact`]: the DoH exchanges of an HTTP
//! connection, not its other requests): non-DNS plaintext never reaches the file. A
//! connection's open, close and byte counts are written only once it carries DNS; facts about
//! a process (name, context, socket addresses), its execs and exit only once it has a DNS
//! connection. The format is [`crate::source::recording`]'s.

use std::{
    cell::RefCell,
    collections::{HashMap, HashSet},
    io::{self, Write},
    rc::Rc,
    sync::Arc,
};

use super::redact::{ConnRedactor, Redacted};
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
/// Most socket opens held back while their sockets are unclassified (beyond it, the opens of
/// further sockets are not written: their DNS, if any, is still decoded from their bytes).
const MAX_OPENS: usize = 65536;
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
    /// Carries DNS: what the DNS decoding needs of them is written as they come.
    Pass(Box<ConnRedactor>),
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
    /// The open of each socket (`Conn` records), written once a layer of it carries DNS.
    opens: HashMap<(u32, ConnId), Vec<u8>>,
    /// Socket addresses learnt of sockets not yet known to carry DNS.
    socket_facts: HashMap<(u32, ConnId), Vec<Record>>,
    /// Sockets with a layer that carries DNS (their open was written).
    dns_conns: HashSet<(u32, ConnId)>,
    /// Events of connections never classified as DNS that were not written.
    pub withheld_events: u64,
    /// Data records of DNS connections not written, or written redacted, because they held
    /// (or might have held) something besides DNS.
    pub redacted_events: u64,
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
            if let Record::SocketEnds { fd, .. } = r {
                // After its socket's open (a replayed open forgets the descriptor's ends).
                let conn = (pid, ConnId::Fd(fd));
                if self.dns_conns.contains(&conn) {
                    write_record(out, &r)?;
                } else if let Some(facts) = self.socket_facts.get_mut(&conn) {
                    facts.push(r);
                } else if self.socket_facts.len() < MAX_OPENS {
                    self.socket_facts.insert(conn, vec![r]);
                }
                continue;
            }
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
            return self.offer_other(raw, &ev, out);
        };
        let data = match &ev {
            Event::Data(d) => d,
            _ => return Ok(()),
        };
        match self.conns.entry(key).or_insert(Hold::Held {
            events: Vec::new(),
            bytes: 0,
        }) {
            Hold::Pass(redactor) => {
                let redacted = redactor.redact(raw, data);
                self.write_redacted(raw, redacted, out)
            }
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

    /// An event that is no connection's bytes: a socket's open, close and byte counts are
    /// written only for DNS connections, a process's exec and exit only for DNS processes.
    fn offer_other(&mut self, raw: &[u8], ev: &Event<'_>, out: &mut impl Write) -> io::Result<()> {
        let dns_pid = self.dns_pids.contains(&ev.meta().pid);
        match *ev {
            Event::Conn(ref c) => {
                let k = (c.meta.pid, c.id);
                // A new socket on the descriptor: nothing of the old one's state holds (but
                // its addresses, learnt as it opened, are the new one's).
                let learnt = self.socket_facts.remove(&k);
                self.forget_conn(k);
                if let Some(facts) = learnt {
                    self.socket_facts.insert(k, facts);
                }
                if self.opens.len() < MAX_OPENS {
                    self.opens.insert(k, raw.to_vec());
                }
                Ok(())
            }
            Event::Close { meta, id } => {
                let k = (meta.pid, id);
                let dns = self.dns_conns.contains(&k);
                // What the close completes (a response it delimits) comes before it.
                for layer in [Layer::Tls, Layer::Socket] {
                    let key = ConnKey {
                        pid: meta.pid,
                        id,
                        layer,
                    };
                    if let Some(Hold::Pass(r)) = self.conns.get_mut(&key) {
                        let records = r.close();
                        if !records.is_empty() {
                            self.write_redacted(raw, Redacted::Records(records), out)?;
                        }
                    }
                }
                self.forget_conn(k);
                match dns {
                    true => write_record(out, &Record::Event(raw.to_vec())),
                    false => Ok(()),
                }
            }
            Event::ConnBytes { meta, id, .. } => match self.dns_conns.contains(&(meta.pid, id)) {
                true => write_record(out, &Record::Event(raw.to_vec())),
                false => Ok(()),
            },
            // Every exec and exit on the host is reported (hook discovery, process table);
            // only DNS processes' are written.
            Event::Exec { .. } | Event::Exit { .. } if !dns_pid => Ok(()),
            _ => write_record(out, &Record::Event(raw.to_vec())),
        }
    }

    /// A socket's state dropped (closed, or its descriptor used again): what was held of it
    /// is counted as withheld.
    fn forget_conn(&mut self, (pid, id): (u32, ConnId)) {
        self.opens.remove(&(pid, id));
        self.socket_facts.remove(&(pid, id));
        self.dns_conns.remove(&(pid, id));
        for layer in [Layer::Tls, Layer::Socket] {
            if let Some(Hold::Held { events, .. }) = self.conns.remove(&ConnKey { pid, id, layer })
            {
                self.withheld_events += events.len() as u64;
            }
        }
    }

    /// Writes what the redaction kept of one record.
    fn write_redacted(
        &mut self,
        raw: &[u8],
        redacted: Redacted,
        out: &mut impl Write,
    ) -> io::Result<()> {
        match redacted {
            Redacted::Verbatim => write_record(out, &Record::Event(raw.to_vec())),
            Redacted::Records(records) => {
                self.redacted_events += 1;
                for r in records {
                    write_record(out, &Record::Event(r))?;
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
        if dns && matches!(self.conns.get(&d.key), Some(Hold::Pass(_))) {
            // Decided again (a TLS object rekeyed to its socket): the redaction goes on.
            return Ok(());
        }
        let prev = self.conns.insert(
            d.key,
            if dns {
                Hold::Pass(Box::default())
            } else {
                Hold::Drop
            },
        );
        if dns {
            if self.dns_pids.insert(d.key.pid) {
                for r in self.pending_facts.remove(&d.key.pid).unwrap_or_default() {
                    write_record(out, &r)?;
                }
            }
            let conn = (d.key.pid, d.key.id);
            if self.dns_conns.insert(conn) {
                if let Some(open) = self.opens.remove(&conn) {
                    write_record(out, &Record::Event(open))?;
                }
                for r in self.socket_facts.remove(&conn).unwrap_or_default() {
                    write_record(out, &r)?;
                }
            }
            if let Some(Hold::Held { events, .. }) = prev {
                for raw in events {
                    let redacted = match (self.conns.get_mut(&d.key), kernel::decode(&raw)) {
                        (Some(Hold::Pass(r)), Ok(Event::Data(data))) => r.redact(&raw, &data),
                        _ => Redacted::Records(Vec::new()),
                    };
                    self.write_redacted(&raw, redacted, out)?;
                }
            }
        } else if let Some(Hold::Held { events, .. }) = prev {
            self.withheld_events += events.len() as u64;
        }
        Ok(())
    }
}
