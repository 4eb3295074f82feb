//! Where lookups go: stdout (text or JSON lines), a pcapng file, Prometheus metrics, the exit
//! summary — all behind the user's filters ([`Outputs`]) — and recordings ([`recording`]).
//!
//! The text line is [`text`]'s, the JSON line [`json_line`]'s, the packets [`pcapng`]'s (with
//! DNS messages rebuilt by [`synthesize`] when a lookup's wire bytes are not at hand), the
//! metrics [`metrics`]', the summary [`summary`]'s; [`filter`] says which lookups are wanted.

pub mod escape;
pub mod filter;
pub mod json_line;
pub mod metrics;
pub mod metrics_request;
pub mod pcapng;
pub mod private_file;
pub mod recording;
pub mod redact;
pub mod stdout_queue;
pub mod summary;
pub mod synthesize;
pub mod text;

use std::{
    fs::File,
    io::{self, BufWriter, Write as _},
    sync::{Arc, Mutex},
};

use crate::lookup::{connection::ConnectionRecord, Lookup};
use filter::Filter;
use json_line::JsonWriter;
use metrics::Metrics;
use pcapng::PcapngWriter;
use stdout_queue::StdoutQueue;
use summary::Summary;
use text::TEXT_HEADER;

/// What the user asked to see, and where.
#[derive(Debug, Default)]
pub struct OutputOptions {
    /// JSON lines instead of text.
    pub json: bool,
    /// Connection records instead of lookups.
    pub connections: bool,
    /// ANSI colours in the text.
    pub color: bool,
    /// Which lookups are wanted.
    pub filter: Filter,
    /// The pcapng file to write, opened by the caller.
    pub pcapng: Option<File>,
    /// Keep Prometheus metrics (served by the caller).
    pub metrics: bool,
    /// Keep the per-process summary printed at the end.
    pub summary: bool,
    /// Write stdout through a bounded queue on its own thread (the live tracer: a reader that
    /// stops reading must not stop it); else directly, waiting for the reader.
    pub stdout_queue: bool,
}

/// Where stdout's bytes go first.
enum Stdout {
    Direct(BufWriter<io::Stdout>),
    Queued(StdoutQueue),
}

impl io::Write for Stdout {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stdout::Direct(w) => w.write(buf),
            Stdout::Queued(q) => q.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Stdout::Direct(w) => w.flush(),
            Stdout::Queued(q) => q.flush(),
        }
    }
}

/// Where lookups go: stdout (text or JSON lines, flushed after each batch the pipeline
/// completes, so a lookup is shown as soon as its batch is decoded), and optionally a pcapng
/// file and the Prometheus metrics; all behind the user's filters.
pub struct Outputs {
    json: bool,
    connections: bool,
    color: bool,
    header_done: bool,
    out: Stdout,
    /// One JSON line, reused.
    line: Vec<u8>,
    json_writer: JsonWriter,
    filter: Filter,
    pcapng: Option<PcapngWriter<BufWriter<File>>>,
    /// Shared with the metrics server.
    pub metrics: Option<Arc<Mutex<Metrics>>>,
    /// For the exit summary; None with `--quiet`, which prints none.
    summary: Option<Summary>,
}

impl Outputs {
    /// The outputs asked for; a pcapng file that cannot be written to is an error now.
    pub fn new(opts: OutputOptions) -> io::Result<Self> {
        let pcapng = match opts.pcapng {
            Some(file) => Some(PcapngWriter::new(BufWriter::new(file))?),
            None => None,
        };
        Ok(Outputs {
            json: opts.json,
            connections: opts.connections,
            color: opts.color,
            header_done: false,
            out: if opts.stdout_queue {
                Stdout::Queued(StdoutQueue::new(io::stdout())?)
            } else {
                Stdout::Direct(BufWriter::with_capacity(64 * 1024, io::stdout()))
            },
            line: Vec::with_capacity(1024),
            json_writer: JsonWriter::default(),
            filter: opts.filter,
            pcapng,
            metrics: opts.metrics.then(|| Arc::new(Mutex::new(Metrics::new()))),
            summary: opts.summary.then(Summary::default),
        })
    }

    /// Writes one lookup to every output, if the filters let it through.
    pub fn write(&mut self, l: &Lookup) -> io::Result<()> {
        if !self.filter.matches(l) {
            return Ok(());
        }
        if let Some(s) = &mut self.summary {
            s.add(l);
        }
        // Opaque records have no DNS message to write as a packet.
        if let Some(p) = self.pcapng.as_mut().filter(|_| l.qname.is_some()) {
            if l.dns_query.is_empty() {
                p.write_lookup_synthesized(l)?;
            } else {
                p.write_lookup(l, &l.dns_query, l.dns_answer.as_deref())?;
            }
        }
        if let Some(m) = &self.metrics {
            m.lock().unwrap_or_else(|e| e.into_inner()).observe(l);
        }
        if self.connections {
            return Ok(());
        }
        let out = &mut self.out;
        if self.json {
            self.line.clear();
            self.json_writer.write_lookup(&mut self.line, l);
            out.write_all(&self.line)
        } else {
            if !self.header_done {
                self.header_done = true;
                writeln!(out, "{TEXT_HEADER}")?;
            }
            writeln!(out, "{}", text::lookup_line(l, self.color))
        }
    }

    /// Writes one connection record (with `--connections`), behind the process filters.
    pub fn write_connection(&mut self, c: &ConnectionRecord) -> io::Result<()> {
        let wanted = self
            .filter
            .matches_process(c.pid, c.comm.as_deref(), c.uid, c.transport);
        if !self.connections || !wanted {
            return Ok(());
        }
        let out = &mut self.out;
        if self.json {
            json_line(out, c)?;
        } else {
            writeln!(out, "{}", text::connection_line(c))?;
        }
        Ok(())
    }

    /// Output lines dropped so far because stdout's reader did not keep up.
    pub fn stdout_dropped(&self) -> u64 {
        match &self.out {
            Stdout::Queued(q) => q.dropped_lines,
            Stdout::Direct(_) => 0,
        }
    }

    /// At exit: gives stdout's reader up to `patience` to take what is queued. Returns the
    /// lines dropped in all (queue full during the run, or not taken now).
    pub fn finish_stdout(&mut self, patience: std::time::Duration) -> u64 {
        match &mut self.out {
            Stdout::Queued(q) => {
                let left = q.finish(patience);
                q.dropped_lines + left
            }
            Stdout::Direct(w) => {
                let _ = w.flush();
                0
            }
        }
    }

    /// Flushes the pcapng file (at exit, and periodically).
    pub fn flush_files(&mut self) -> io::Result<()> {
        match self.pcapng.as_mut() {
            Some(p) => p.flush(),
            None => Ok(()),
        }
    }

    /// Writes every lookup and connection record the pipeline has completed
    /// ([`Pipeline::drain_records`]). Returns false when stdout is closed (a broken pipe ends
    /// the run successfully).
    ///
    /// [`Pipeline::drain_records`]: crate::pipeline::Pipeline::drain_records
    pub fn drain(
        &mut self,
        (lookups, conns): (
            impl Iterator<Item = Box<Lookup>>,
            impl Iterator<Item = ConnectionRecord>,
        ),
    ) -> io::Result<bool> {
        // Written as they are drained (no copy of the batch); on an error the rest is dropped.
        let mut written = lookups.into_iter().try_for_each(|l| self.write(&l));
        for c in conns {
            if written.is_ok() {
                written = self.write_connection(&c);
            }
        }
        let written = written.and_then(|()| self.out.flush());
        match written {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// The per-process summary, on stderr.
    pub fn print_summary(&self) {
        let Some(summary) = self.summary.as_ref().filter(|s| !s.is_empty()) else {
            return;
        };
        for line in summary.render() {
            eprintln!("{line}");
        }
    }
}

/// One record as a JSON line.
fn json_line(out: &mut impl io::Write, record: &impl serde::Serialize) -> io::Result<()> {
    serde_json::to_writer(&mut *out, record)?;
    out.write_all(b"\n")
}

/// A lookup of `curl` (pid 1234) through `127.0.0.1:8443`, 250 ms, answered when `rcode` is
/// given (else unanswered), for the output tests.
#[cfg(test)]
pub(crate) fn sample_lookup(
    qname: &str,
    qtype: &str,
    rcode: Option<&str>,
    answers: &[&str],
) -> crate::lookup::Lookup {
    use crate::lookup::{Endpoint, Lookup, Status};
    let ep = |port| {
        Some(Endpoint {
            ip: "127.0.0.1".into(),
            port,
        })
    };
    Lookup {
        time: "2024-05-01T12:00:00.500000Z".into(),
        pid: 1234,
        tid: 1235,
        uid: 1000,
        comm: "curl".into(),
        transport: "doh",
        server: ep(8443),
        client: ep(40000),
        authority: Some("dns.test".into()),
        url: Some("https://dns.test/dns-query".into()),
        method: Some("POST".into()),
        http_version: Some("h2"),
        headers_known: Some(true),
        stream_id: Some(1),
        qname: Some(qname.into()),
        qtype: Some(qtype.to_owned().into()),
        dns_id: Some(0x1234),
        rcode: rcode.map(|r| r.to_owned().into()),
        answers: answers.iter().map(|s| s.to_string()).collect(),
        latency_ms: Some(250.0),
        status: if rcode.is_some() {
            Status::Ok
        } else {
            Status::Unanswered
        },
        http_status: rcode.map(|_| 200),
        ..Default::default()
    }
}
