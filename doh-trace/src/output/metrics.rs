//! Prometheus metrics (text exposition format 0.0.4, written by hand) of the lookups seen and
//! of what could not be decoded, and a minimal HTTP server answering `GET /metrics`.
//!
//! Cardinality is bounded, by one mechanism (`Bounded`) at two levels: at most
//! [`MAX_COMMS`] process names and [`MAX_RCODES`] rcodes are kept as label values, and at
//! most [`MAX_SERIES`] label combinations of `doh_trace_lookups_total`. A value or a
//! combination beyond its bound is counted under `"other"` (every label `"other"` for a
//! combination) and in `doh_trace_label_overflow_total{label="comm"|"rcode"|"series"}`.
//!
//! A scrape neither renders on the runtime's thread nor under the lock the event loop takes
//! for every lookup: see `answer`.

use std::borrow::Borrow;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::metrics_request::{head_complete, route, Scrape, MAX_REQUEST};
use crate::counters::DecodeCounters;
use crate::lookup::Lookup;

/// Upper bounds of the latency histogram buckets, in seconds.
pub const LATENCY_BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];
/// Distinct `comm` label values kept before folding into `"other"`.
pub const MAX_COMMS: usize = 1000;
/// Distinct `rcode` label values kept before folding into `"other"`.
pub const MAX_RCODES: usize = 64;
/// Label combinations (series) of `doh_trace_lookups_total` kept before a new one is counted
/// under the one series whose labels are all `"other"`.
///
/// The per-label bounds alone allow 7 transports × 1001 comms × 66 rcodes × 7 statuses, about
/// 3·10⁶ series. 10 000 is well above what a node is expected to need (a few hundred process
/// names that look names up, with a handful of (transport, rcode, status) each: a few
/// thousand) and bounds what the family costs: a scrape body of about 1 MB (~100 bytes a
/// series) rendered in about 4 ms, the copy a scrape takes under the lock in about 0.3 ms
/// ([`Metrics::snapshot`]; both measured with a release build on the development host), and
/// up to 10⁶ series in Prometheus from a 100-node DaemonSet.
pub const MAX_SERIES: usize = 10_000;
/// The `Content-Type` of the exposition format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4";
/// Scrapes served at once; further connections wait to be accepted.
const MAX_CONNECTIONS: usize = 32;
/// Time a scraper has to send its request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// Time a scraper has to take the whole response (head, body, end of stream), after which its
/// connection is reset and its slot freed: one that never reads holds a slot this long, not
/// forever. Prometheus' default `scrape_timeout`: a scraper that slow has given up already.
/// (Short in the unit tests, which wait it out.)
const WRITE_TIMEOUT: Duration = if cfg!(test) {
    Duration::from_millis(500)
} else {
    Duration::from_secs(10)
};

/// The label value a value (or, for a series, every label) beyond its bound is counted under.
static OTHER: LazyLock<Arc<str>> = LazyLock::new(|| "other".into());
/// The `rcode` of a lookup without an answer.
static NO_RCODE: LazyLock<Arc<str>> = LazyLock::new(|| "none".into());

/// A `doh_trace_lookups_total` series: (transport, comm, rcode, status). Copying one is two
/// reference counts.
type Series = (&'static str, Arc<str>, Arc<str>, &'static str);

/// The series every lookup whose own series did not fit under [`MAX_SERIES`] is counted in.
fn overflow_series() -> Series {
    ("other", OTHER.clone(), OTHER.clone(), "other")
}

/// Keys that stop growing at `LIMIT`: a label's values (`V = ()`), or a family's series and
/// their counts. A new key refused is counted in `overflow`; the caller counts it under
/// `"other"` instead.
#[derive(Debug)]
struct Bounded<K, V, const LIMIT: usize> {
    held: BTreeMap<K, V>,
    overflow: u64,
}

impl<K, V, const LIMIT: usize> Default for Bounded<K, V, LIMIT> {
    fn default() -> Self {
        Self {
            held: BTreeMap::new(),
            overflow: 0,
        }
    }
}

impl<K: Ord, V, const LIMIT: usize> Bounded<K, V, LIMIT> {
    /// Whether `key` is held, or there is room to hold it; a key refused is counted.
    fn admits<Q: Ord + ?Sized>(&mut self, key: &Q) -> bool
    where
        K: Borrow<Q>,
    {
        let admitted = self.held.contains_key(key) || self.held.len() < LIMIT;
        if !admitted {
            self.overflow += 1;
        }
        admitted
    }
}

impl<const LIMIT: usize> Bounded<Arc<str>, (), LIMIT> {
    /// The label value to count `value` under: the held copy of it (`owned` makes one the
    /// first time), or `"other"` once `LIMIT` values are held.
    fn label(&mut self, value: &str, owned: impl FnOnce() -> Arc<str>) -> Arc<str> {
        if let Some((held, ())) = self.held.get_key_value(value) {
            return held.clone();
        }
        if !self.admits(value) {
            return OTHER.clone();
        }
        let value = owned();
        self.held.insert(value.clone(), ());
        value
    }
}

#[derive(Debug, Default, Clone)]
struct Histogram {
    /// Observations per bucket (not cumulative); beyond the last bound only in `count`.
    buckets: [u64; LATENCY_BUCKETS.len()],
    sum: f64,
    count: u64,
}

/// The metrics state; update it with [`observe`](Self::observe) and
/// [`set_counters`](Self::set_counters), read it with [`snapshot`](Self::snapshot) (then
/// [`Snapshot::render`]) or [`render`](Self::render).
#[derive(Debug, Default)]
pub struct Metrics {
    /// Lookups per series.
    lookups: Bounded<Series, u64, MAX_SERIES>,
    /// Keyed by transport only: a `&'static str` the code names (`doh`, `dot`, `dns-udp`,
    /// `dns-tcp` and three `*-opaque`), so at most 7 histograms, no bound needed.
    latency: BTreeMap<&'static str, Histogram>,
    comms: Bounded<Arc<str>, (), MAX_COMMS>,
    rcodes: Bounded<Arc<str>, (), MAX_RCODES>,
    decode: DecodeCounters,
    kernel_lost_events: u64,
    kernel_truncated_bytes: u64,
    kernel_read_errors: u64,
    /// (map name, entries evicted at least), per eBPF LRU map.
    map_evictions: Vec<(&'static str, u64)>,
    /// Output lines the live stdout queue dropped (its reader did not keep up).
    output_dropped_lines: u64,
    /// Bytes the connections' decoding state holds, and the memory budget.
    memory: (u64, u64),
    /// Unit tests: the render of a snapshot waits here twice (started, may finish), so that a
    /// test can look at the lock and the runtime while a render is in progress.
    #[cfg(test)]
    render_gate: Option<Arc<std::sync::Barrier>>,
}

impl Metrics {
    /// Empty metrics.
    pub fn new() -> Self {
        Self::default()
    }

    /// Counts one lookup, and its latency when known.
    pub fn observe(&mut self, l: &Lookup) {
        let comm = self.comms.label(&l.comm, || l.comm.clone());
        let rcode = match &l.rcode {
            Some(r) => self.rcodes.label(r, || Arc::from(&**r)),
            None => NO_RCODE.clone(),
        };
        let series = (l.transport, comm, rcode, l.status.as_str());
        let series = if self.lookups.admits(&series) {
            series
        } else {
            overflow_series()
        };
        *self.lookups.held.entry(series).or_default() += 1;
        if let Some(ms) = l.latency_ms.filter(|ms| ms.is_finite() && *ms >= 0.0) {
            let secs = ms / 1000.0;
            let h = self.latency.entry(l.transport).or_default();
            if let Some(i) = LATENCY_BUCKETS.iter().position(|&le| secs <= le) {
                h.buckets[i] += 1;
            }
            h.sum += secs;
            h.count += 1;
        }
    }

    /// Replaces the pipeline and kernel counters with their current totals: ring-buffer
    /// events lost, plaintext bytes not copied, failed plaintext reads.
    pub fn set_counters(
        &mut self,
        decode: &DecodeCounters,
        kernel_lost_events: u64,
        kernel_truncated_bytes: u64,
        kernel_read_errors: u64,
    ) {
        self.decode = decode.clone();
        self.kernel_lost_events = kernel_lost_events;
        self.kernel_truncated_bytes = kernel_truncated_bytes;
        self.kernel_read_errors = kernel_read_errors;
    }

    /// Replaces the eBPF LRU maps' eviction counts: (map name, entries evicted at least).
    pub fn set_map_evictions(&mut self, evictions: Vec<(&'static str, u64)>) {
        self.map_evictions = evictions;
    }

    /// Lines the live stdout queue dropped so far (`-q` hides the status lines that say it:
    /// a scraper still sees it).
    pub fn set_output_dropped_lines(&mut self, lines: u64) {
        self.output_dropped_lines = lines;
    }

    /// What the connections' decoding state holds now, and the memory budget (bytes).
    pub fn set_memory(&mut self, held: usize, budget: usize) {
        self.memory = (held as u64, budget as u64);
    }

    /// A copy of everything to render, in two allocations: at most [`MAX_SERIES`] + 1 series
    /// (two reference counts each) and a few dozen numbers, whatever was observed. This is
    /// what a scrape does under the lock.
    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            lookups: self
                .lookups
                .held
                .iter()
                .map(|(series, n)| (series.clone(), *n))
                .collect(),
            latency: self.latency.iter().map(|(t, h)| (*t, h.clone())).collect(),
            decode: self.decode.clone(),
            kernel_lost_events: self.kernel_lost_events,
            kernel_truncated_bytes: self.kernel_truncated_bytes,
            kernel_read_errors: self.kernel_read_errors,
            map_evictions: self.map_evictions.clone(),
            output_dropped_lines: self.output_dropped_lines,
            memory: self.memory,
            overflow: [
                ("comm", self.comms.overflow),
                ("rcode", self.rcodes.overflow),
                ("series", self.lookups.overflow),
            ],
            #[cfg(test)]
            render_gate: self.render_gate.clone(),
        }
    }

    /// The text exposition of every metric (of a [`snapshot`](Self::snapshot) of them).
    pub fn render(&self) -> String {
        self.snapshot().render()
    }
}

/// The metrics as they were when [`Metrics::snapshot`] was taken; rendered without the lock.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// In label order (that of the map they were copied from).
    lookups: Vec<(Series, u64)>,
    latency: Vec<(&'static str, Histogram)>,
    decode: DecodeCounters,
    kernel_lost_events: u64,
    kernel_truncated_bytes: u64,
    kernel_read_errors: u64,
    /// (map name, entries evicted at least), per eBPF LRU map.
    map_evictions: Vec<(&'static str, u64)>,
    output_dropped_lines: u64,
    memory: (u64, u64),
    /// `doh_trace_label_overflow_total`, by label.
    overflow: [(&'static str, u64); 3],
    #[cfg(test)]
    render_gate: Option<Arc<std::sync::Barrier>>,
}

impl Snapshot {
    /// The text exposition of every metric.
    pub fn render(&self) -> String {
        #[cfg(test)]
        if let Some(gate) = &self.render_gate {
            gate.wait(); // started
            gate.wait(); // may finish
        }
        let mut out = String::with_capacity(4096 + 100 * self.lookups.len());
        header(
            &mut out,
            "doh_trace_lookups_total",
            "counter",
            "DNS lookups reported, by transport, process name, rcode and outcome.",
        );
        for ((transport, comm, rcode, status), n) in &self.lookups {
            let labels = [
                ("transport", *transport),
                ("comm", comm),
                ("rcode", rcode),
                ("status", status),
            ];
            sample(&mut out, "doh_trace_lookups_total", &labels, *n);
        }

        let name = "doh_trace_lookup_latency_seconds";
        let help = "Time from the query being sent to the answer being read.";
        header(&mut out, name, "histogram", help);
        for (transport, h) in &self.latency {
            let mut cumulative = 0;
            for (le, n) in LATENCY_BUCKETS.iter().zip(h.buckets) {
                cumulative += n;
                let le = le.to_string();
                let labels = [("transport", *transport), ("le", &le)];
                sample(&mut out, &format!("{name}_bucket"), &labels, cumulative);
            }
            let labels = [("transport", *transport), ("le", "+Inf")];
            sample(&mut out, &format!("{name}_bucket"), &labels, h.count);
            let t = [("transport", *transport)];
            sample(&mut out, &format!("{name}_sum"), &t, h.sum);
            sample(&mut out, &format!("{name}_count"), &t, h.count);
        }

        let d = &self.decode;
        for (name, help, value) in [
            (
                "doh_trace_lost_events_total",
                "Events lost because the kernel ring buffer was full.",
                self.kernel_lost_events,
            ),
            (
                "doh_trace_truncated_bytes_total",
                "TLS plaintext bytes beyond the per-call copy limit, not copied.",
                self.kernel_truncated_bytes,
            ),
            (
                "doh_trace_read_errors_total",
                "Failed reads of TLS plaintext in the kernel (data not copied).",
                self.kernel_read_errors,
            ),
            (
                "doh_trace_events_total",
                "Ring-buffer records decoded.",
                d.events,
            ),
            (
                "doh_trace_output_dropped_lines_total",
                "Output lines dropped because stdout's reader did not keep up.",
                self.output_dropped_lines,
            ),
        ] {
            header(&mut out, name, "counter", help);
            sample(&mut out, name, &[], value);
        }

        let name = "doh_trace_map_evictions_total";
        let help = "Entries evicted from a full eBPF LRU map (at least; exact while full): state the kernel side lost.";
        header(&mut out, name, "counter", help);
        for (map, n) in &self.map_evictions {
            sample(&mut out, name, &[("map", map)], *n);
        }

        let name = "doh_trace_connections_total";
        let help = "Connections seen, by how they were classified.";
        header(&mut out, name, "counter", help);
        for (kind, n) in [
            ("h2_client", d.h2_client_conns),
            ("h2_mid_stream", d.mid_stream_conns),
            ("h1_client", d.h1_client_conns),
            ("h2c_upgrade", d.h2c_upgrades),
            ("server_side", d.server_side_conns),
            ("non_dns", d.non_dns_conns),
            ("tls_on_socket", d.tls_on_socket_conns),
            ("undecoded_protocol", d.undecoded_conns),
        ] {
            sample(&mut out, name, &[("kind", kind)], n);
        }

        let name = "doh_trace_undecodable_total";
        let help = "Things lost or not decodable, by reason.";
        header(&mut out, name, "counter", help);
        for (reason, n) in d.problems() {
            sample(&mut out, name, &[("reason", reason)], n);
        }

        let name = "doh_trace_decoder_memory_bytes";
        let help = "Bytes the connections' decoding state holds now (held) and may hold \
                    together before the largest connections are dropped (budget).";
        header(&mut out, name, "gauge", help);
        sample(&mut out, name, &[("kind", "held")], self.memory.0);
        sample(&mut out, name, &[("kind", "budget")], self.memory.1);

        let name = "doh_trace_label_overflow_total";
        let help = "Lookups counted under label value \"other\" because the label had too many \
                    values (label=\"series\": under all labels \"other\", because \
                    doh_trace_lookups_total had too many series).";
        header(&mut out, name, "counter", help);
        for (label, n) in self.overflow {
            sample(&mut out, name, &[("label", label)], n);
        }
        out
    }
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let help = help.replace('\\', "\\\\").replace('\n', "\\n");
    let _ = write!(out, "# HELP {name} {help}\n# TYPE {name} {kind}\n");
}

fn sample(out: &mut String, name: &str, labels: &[(&str, &str)], value: impl std::fmt::Display) {
    out.push_str(name);
    if !labels.is_empty() {
        out.push('{');
        for (i, (k, v)) in labels.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            let _ = write!(out, "{k}=\"{}\"", escape_label(v));
        }
        out.push('}');
    }
    let _ = writeln!(out, " {value}");
}

/// A label value with `\`, `"` and newlines escaped as the exposition format requires.
pub fn escape_label(v: &str) -> String {
    let mut e = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => e.push_str("\\\\"),
            '"' => e.push_str("\\\""),
            '\n' => e.push_str("\\n"),
            c => e.push(c),
        }
    }
    e
}

/// Binds `addr` and serves the metrics there until an error on the listening socket.
pub async fn serve(addr: SocketAddr, metrics: Arc<Mutex<Metrics>>) -> std::io::Result<()> {
    serve_listener(TcpListener::bind(addr).await?, metrics).await
}

/// Serves `GET /metrics` on an already bound listener (200, [`CONTENT_TYPE`]); other paths
/// get 404, other methods 405, oversized or malformed requests 400. One request per
/// connection. Runs until accepting fails with something other than a transient error.
pub async fn serve_listener(
    listener: TcpListener,
    metrics: Arc<Mutex<Metrics>>,
) -> std::io::Result<()> {
    serve_with_slots(listener, metrics, MAX_CONNECTIONS).await
}

/// [`serve_listener`] with `slots` scrapes served at once (tests fill fewer than
/// [`MAX_CONNECTIONS`]).
async fn serve_with_slots(
    listener: TcpListener,
    metrics: Arc<Mutex<Metrics>>,
    slots: usize,
) -> std::io::Result<()> {
    let slots = Arc::new(tokio::sync::Semaphore::new(slots));
    loop {
        let Ok(permit) = slots.clone().acquire_owned().await else {
            return Ok(()); // the semaphore is never closed
        };
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) if is_transient(&e) => {
                log::warn!("metrics: accept: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
            Err(e) => return Err(e),
        };
        let metrics = metrics.clone();
        tokio::spawn(async move {
            if let Err(e) = answer(stream, &metrics).await {
                log::debug!("metrics: scrape: {e}");
            }
            drop(permit);
        });
    }
}

fn is_transient(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(
        e.kind(),
        ConnectionAborted | ConnectionReset | Interrupted | WouldBlock
    ) || matches!(
        e.raw_os_error(),
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
    )
}

/// Reads one request (at most [`MAX_REQUEST`] bytes) and writes one response (within
/// [`WRITE_TIMEOUT`]).
///
/// The metrics are copied and rendered by [`render_shared`] on a blocking-pool thread. In the
/// tracer the runtime has one thread, shared by this task and the event loop, and the lock is
/// the one the event loop takes for every lookup: a render on the runtime's thread (up to
/// [`MAX_SERIES`] lines, about 1 MB and 4 ms) would stall the loop whether it held the lock or
/// not. The lock is held for the copy only ([`Metrics::snapshot`], bounded by [`MAX_SERIES`],
/// about 0.3 ms): the longest the event loop can wait because of a scrape. Not chosen:
/// rendering once a tick into a cached text, which costs the event loop's own thread a render
/// each second, scraped or not.
async fn answer(mut stream: TcpStream, metrics: &Arc<Mutex<Metrics>>) -> std::io::Result<()> {
    let mut buf = Vec::with_capacity(1024);
    let complete = tokio::time::timeout(REQUEST_TIMEOUT, async {
        let mut chunk = [0u8; 1024];
        while buf.len() < MAX_REQUEST && !head_complete(&buf) {
            let n = stream.read(&mut chunk).await?;
            if n == 0 {
                return Ok::<bool, std::io::Error>(false);
            }
            buf.extend_from_slice(&chunk[..n.min(MAX_REQUEST - buf.len())]);
        }
        Ok(true)
    })
    .await;
    let complete = match complete {
        Ok(r) => r?,
        Err(_) => false, // timed out
    };
    let scrape = if complete { route(&buf) } else { Scrape::Bad };
    let (status, body) = match scrape {
        Scrape::Bad => ("400 Bad Request", "bad request\n".to_string()),
        Scrape::Metrics => {
            let metrics = metrics.clone();
            let body = tokio::task::spawn_blocking(move || render_shared(&metrics))
                .await
                .map_err(std::io::Error::other)?;
            ("200 OK", body)
        }
        Scrape::WrongMethod => ("405 Method Not Allowed", "use GET\n".to_string()),
        Scrape::NotFound => ("404 Not Found", "not found; try /metrics\n".to_string()),
    };
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {CONTENT_TYPE}\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n",
        body.len()
    );
    let written = tokio::time::timeout(WRITE_TIMEOUT, async {
        stream.write_all(head.as_bytes()).await?;
        stream.write_all(body.as_bytes()).await?;
        stream.shutdown().await
    })
    .await;
    match written {
        Ok(r) => r,
        Err(_) => {
            // Reset, not closed: the kernel would otherwise go on offering the unsent rest (up
            // to a send buffer, megabytes) to a peer that does not read.
            let _ = stream.set_zero_linger();
            Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "the scraper did not take the response in time",
            ))
        }
    }
}

/// The text of `metrics`, rendered from a snapshot: the lock is held for the copy only.
fn render_shared(metrics: &Mutex<Metrics>) -> String {
    let snapshot = metrics
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .snapshot();
    snapshot.render()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lookup::Status;
    use crate::output::sample_lookup as lookup;

    #[test]
    fn renders_the_golden_text() {
        let mut m = Metrics::new();
        m.observe(&lookup("a.test", "A", Some("NOERROR"), &["192.0.2.1"]));
        let mut l = lookup("b.test", "A", Some("NOERROR"), &[]);
        l.latency_ms = Some(2000.0);
        m.observe(&l);
        (l.comm, l.rcode, l.latency_ms) = ("py\"3\\\n".into(), Some("NXDOMAIN".into()), Some(0.5));
        m.observe(&l);
        (l.status, l.rcode, l.latency_ms) = (Status::Unanswered, None, None);
        m.observe(&l);
        let d = DecodeCounters {
            events: 9,
            h2_client_conns: 2,
            gaps: 1,
            ..Default::default()
        };
        m.set_counters(&d, 3, 0, 0);
        m.set_output_dropped_lines(7);
        m.set_map_evictions(vec![("SOCK_TYPES", 4464), ("CAPTURE", 0)]);
        m.set_memory(12345, 64 << 20);
        let b = |le: &str, n| {
            format!(
                "doh_trace_lookup_latency_seconds_bucket{{transport=\"doh\",le=\"{le}\"}} {n}\n"
            )
        };
        let mut buckets = String::new();
        for (le, n) in [
            ("0.001", 1),
            ("0.0025", 1),
            ("0.005", 1),
            ("0.01", 1),
            ("0.025", 1),
        ] {
            buckets += &b(le, n);
        }
        for (le, n) in [("0.05", 1), ("0.1", 1), ("0.25", 2), ("0.5", 2), ("1", 2)] {
            buckets += &b(le, n);
        }
        for (le, n) in [("2.5", 3), ("5", 3), ("+Inf", 3)] {
            buckets += &b(le, n);
        }
        let want = format!(
            r#"# HELP doh_trace_lookups_total DNS lookups reported, by transport, process name, rcode and outcome.
# TYPE doh_trace_lookups_total counter
doh_trace_lookups_total{{transport="doh",comm="curl",rcode="NOERROR",status="ok"}} 2
doh_trace_lookups_total{{transport="doh",comm="py\"3\\\n",rcode="NXDOMAIN",status="ok"}} 1
doh_trace_lookups_total{{transport="doh",comm="py\"3\\\n",rcode="none",status="unanswered"}} 1
# HELP doh_trace_lookup_latency_seconds Time from the query being sent to the answer being read.
# TYPE doh_trace_lookup_latency_seconds histogram
{buckets}doh_trace_lookup_latency_seconds_sum{{transport="doh"}} 2.2505
doh_trace_lookup_latency_seconds_count{{transport="doh"}} 3
# HELP doh_trace_lost_events_total Events lost because the kernel ring buffer was full.
# TYPE doh_trace_lost_events_total counter
doh_trace_lost_events_total 3
# HELP doh_trace_truncated_bytes_total TLS plaintext bytes beyond the per-call copy limit, not copied.
# TYPE doh_trace_truncated_bytes_total counter
doh_trace_truncated_bytes_total 0
# HELP doh_trace_read_errors_total Failed reads of TLS plaintext in the kernel (data not copied).
# TYPE doh_trace_read_errors_total counter
doh_trace_read_errors_total 0
# HELP doh_trace_events_total Ring-buffer records decoded.
# TYPE doh_trace_events_total counter
doh_trace_events_total 9
# HELP doh_trace_output_dropped_lines_total Output lines dropped because stdout's reader did not keep up.
# TYPE doh_trace_output_dropped_lines_total counter
doh_trace_output_dropped_lines_total 7
# HELP doh_trace_map_evictions_total Entries evicted from a full eBPF LRU map (at least; exact while full): state the kernel side lost.
# TYPE doh_trace_map_evictions_total counter
doh_trace_map_evictions_total{{map="SOCK_TYPES"}} 4464
doh_trace_map_evictions_total{{map="CAPTURE"}} 0
# HELP doh_trace_connections_total Connections seen, by how they were classified.
# TYPE doh_trace_connections_total counter
doh_trace_connections_total{{kind="h2_client"}} 2
doh_trace_connections_total{{kind="h2_mid_stream"}} 0
doh_trace_connections_total{{kind="h1_client"}} 0
doh_trace_connections_total{{kind="h2c_upgrade"}} 0
doh_trace_connections_total{{kind="server_side"}} 0
doh_trace_connections_total{{kind="non_dns"}} 0
doh_trace_connections_total{{kind="tls_on_socket"}} 0
doh_trace_connections_total{{kind="undecoded_protocol"}} 0
# HELP doh_trace_undecodable_total Things lost or not decodable, by reason.
# TYPE doh_trace_undecodable_total counter
doh_trace_undecodable_total{{reason="connections with lost bytes"}} 1
# HELP doh_trace_decoder_memory_bytes Bytes the connections' decoding state holds now (held) and may hold together before the largest connections are dropped (budget).
# TYPE doh_trace_decoder_memory_bytes gauge
doh_trace_decoder_memory_bytes{{kind="held"}} 12345
doh_trace_decoder_memory_bytes{{kind="budget"}} 67108864
# HELP doh_trace_label_overflow_total Lookups counted under label value "other" because the label had too many values (label="series": under all labels "other", because doh_trace_lookups_total had too many series).
# TYPE doh_trace_label_overflow_total counter
doh_trace_label_overflow_total{{label="comm"}} 0
doh_trace_label_overflow_total{{label="rcode"}} 0
doh_trace_label_overflow_total{{label="series"}} 0
"#
        );
        assert_eq!(m.render(), want);
    }

    #[test]
    fn escapes_label_values() {
        assert_eq!(escape_label("a\\b\"c\nd"), r#"a\\b\"c\nd"#);
        assert_eq!(escape_label("plain é"), "plain é");
    }

    #[test]
    fn bounds_comm_cardinality() {
        let mut m = Metrics::new();
        let mut l = lookup("a.test", "A", Some("NOERROR"), &[]);
        for i in 0..MAX_COMMS + 5 {
            l.comm = format!("p{i}").into();
            m.observe(&l);
        }
        l.comm = "p0".into(); // already known: keeps its own label
        m.observe(&l);
        let text = m.render();
        let series = text
            .lines()
            .filter(|s| s.starts_with("doh_trace_lookups_total{"));
        assert_eq!(series.count(), MAX_COMMS + 1);
        assert!(text.contains(r#"comm="other",rcode="NOERROR",status="ok"} 5"#));
        assert!(text.contains(r#"comm="p0",rcode="NOERROR",status="ok"} 2"#));
        assert!(text.contains("doh_trace_label_overflow_total{label=\"comm\"} 5\n"));
    }

    #[test]
    fn bounds_the_number_of_series() {
        let mut m = Metrics::new();
        let mut l = lookup("a.test", "A", Some("NOERROR"), &[]);
        // 3 × 100 × 40 = 12 000 combinations, each label well within its own bound.
        let (transports, comms, rcodes) = (["doh", "dot", "dns-udp"], 100, 40);
        assert!(comms <= MAX_COMMS && rcodes <= MAX_RCODES);
        let combinations = transports.len() * comms * rcodes;
        assert!(combinations > MAX_SERIES);
        for transport in transports {
            for c in 0..comms {
                for r in 0..rcodes {
                    l.transport = transport;
                    l.comm = format!("p{c}").into();
                    l.rcode = Some(format!("RCODE{r}").into());
                    m.observe(&l);
                }
            }
        }
        // A series held before the bound was reached still counts under its own labels.
        (l.transport, l.comm, l.rcode) = ("doh", "p0".into(), Some("RCODE0".into()));
        m.observe(&l);

        let text = m.render();
        let series: Vec<&str> = text
            .lines()
            .filter(|s| s.starts_with("doh_trace_lookups_total{"))
            .collect();
        assert_eq!(
            series.len(),
            MAX_SERIES + 1,
            "the bound and the overflow series"
        );
        let refused = combinations - MAX_SERIES;
        let overflow = format!(
            "doh_trace_lookups_total{{transport=\"other\",comm=\"other\",rcode=\"other\",\
             status=\"other\"}} {refused}"
        );
        assert!(series.contains(&overflow.as_str()), "{overflow}");
        let kept = r#"{transport="doh",comm="p0",rcode="RCODE0",status="ok"} 2"#;
        assert!(text.contains(kept));
        let counted: usize = series
            .iter()
            .map(|s| s.rsplit_once(' ').unwrap().1.parse::<usize>().unwrap())
            .sum();
        assert_eq!(counted, combinations + 1, "every lookup is counted once");
        for (label, n) in [("comm", 0), ("rcode", 0), ("series", refused)] {
            let line = format!("doh_trace_label_overflow_total{{label=\"{label}\"}} {n}\n");
            assert!(text.contains(&line), "{line}");
        }
    }

    /// Metrics whose text is longer than `bytes`, in 64 series.
    fn metrics_longer_than(bytes: usize) -> Metrics {
        let mut m = Metrics::new();
        let mut l = lookup("a.test", "A", Some("NOERROR"), &[]);
        let long = "a".repeat(bytes / 64 + 1);
        for i in 0..64 {
            l.comm = format!("{i}{long}").into();
            m.observe(&l);
        }
        m
    }

    /// More than the kernel can hold between a server that writes and a client that does not
    /// read: the sender's largest send buffer (`tcp_wmem`'s maximum; the receiver's is made
    /// as small as can be), and a megabyte more.
    fn more_than_loopback_holds() -> usize {
        let wmem = std::fs::read_to_string("/proc/sys/net/ipv4/tcp_wmem").unwrap_or_default();
        let max = wmem.split_whitespace().nth(2).and_then(|n| n.parse().ok());
        max.unwrap_or(4 << 20) + (1 << 20)
    }

    const GET_METRICS: &[u8] = b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n";

    async fn scrape(addr: SocketAddr, request: &[u8]) -> String {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(request).await.unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).await.unwrap();
        out
    }

    #[tokio::test]
    async fn serves_metrics_over_http() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let metrics = Arc::new(Mutex::new(Metrics::new()));
        metrics
            .lock()
            .unwrap()
            .observe(&lookup("a.test", "A", Some("NOERROR"), &[]));
        let server = tokio::spawn(serve_listener(listener, metrics.clone()));

        let ok = scrape(addr, GET_METRICS).await;
        let (head, body) = ok.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
        assert!(
            head.contains("Content-Type: text/plain; version=0.0.4\r\n"),
            "{head}"
        );
        assert!(head.contains(&format!("Content-Length: {}\r\n", body.len())));
        assert_eq!(body, metrics.lock().unwrap().render());
        assert!(body.contains(r#"comm="curl",rcode="NOERROR",status="ok"} 1"#));

        let nf = scrape(addr, b"GET / HTTP/1.1\r\n\r\n").await;
        assert!(nf.starts_with("HTTP/1.1 404 Not Found\r\n"), "{nf}");
        let post = scrape(addr, b"POST /metrics HTTP/1.1\r\n\r\n").await;
        assert!(post.starts_with("HTTP/1.1 405 "), "{post}");
        // A request that fills the limit without ending (all of it is read: no reset).
        let big = scrape(addr, &[b'a'; MAX_REQUEST]).await;
        assert!(big.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{big}");
        server.abort();
    }

    #[tokio::test]
    async fn a_scraper_that_does_not_read_loses_its_slot() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let metrics = metrics_longer_than(more_than_loopback_holds());
        let slots = 2;
        let server = tokio::spawn(serve_with_slots(
            listener,
            Arc::new(Mutex::new(metrics)),
            slots,
        ));
        // Every slot taken by a scraper that asks and never reads, with the smallest receive
        // buffer the kernel gives: the body cannot all be buffered between the two ends.
        let mut idle = Vec::new();
        for _ in 0..slots {
            let socket = tokio::net::TcpSocket::new_v4().unwrap();
            socket.set_recv_buffer_size(1).unwrap();
            let mut s = socket.connect(addr).await.unwrap();
            s.write_all(GET_METRICS).await.unwrap();
            idle.push(s);
        }
        let started = tokio::time::Instant::now();
        let ok = tokio::time::timeout(10 * WRITE_TIMEOUT, scrape(addr, GET_METRICS))
            .await
            .expect("a scrape waits for the slots of those that do not read, not forever");
        assert!(ok.starts_with("HTTP/1.1 200 OK\r\n"));
        // (Else the idle ones did not hold their slots: the test would show nothing.)
        assert!(
            started.elapsed() >= WRITE_TIMEOUT,
            "{:?}",
            started.elapsed()
        );
        // Their connections were reset when their time ran out: what they can still read is
        // short of the response.
        for mut s in idle {
            let mut got = Vec::new();
            let read = tokio::time::timeout(WRITE_TIMEOUT, s.read_to_end(&mut got)).await;
            match read.expect("the server let go of the connection") {
                Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset, "{e}"),
                Ok(_) => assert!(got.len() < ok.len(), "{} of {} bytes", got.len(), ok.len()),
            }
        }
        server.abort();
    }

    /// The response to `request` from a blocking socket, or None if it takes over a second.
    fn scrape_blocking(addr: SocketAddr, request: &[u8]) -> Option<String> {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(addr).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(1))).ok()?;
        s.write_all(request).ok()?;
        let mut out = String::new();
        s.read_to_string(&mut out).ok()?;
        Some(out)
    }

    #[tokio::test]
    async fn renders_off_the_runtime_thread_without_the_lock() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let gate = Arc::new(std::sync::Barrier::new(2));
        let mut m = Metrics::new();
        m.observe(&lookup("a.test", "A", Some("NOERROR"), &[]));
        m.render_gate = Some(gate.clone());
        let metrics = Arc::new(Mutex::new(m));
        let server = tokio::spawn(serve_listener(listener, metrics.clone()));
        // On a thread of its own: this test's runtime has one thread, which a render on it
        // would block.
        let during_render = std::thread::spawn(move || {
            gate.wait(); // a render has started
            let unlocked = metrics.try_lock().is_ok();
            // The runtime's thread (the event loop's, in the tracer) is free meanwhile.
            let other = scrape_blocking(addr, b"GET / HTTP/1.1\r\n\r\n");
            gate.wait(); // it may finish
            (unlocked, other)
        });
        let ok = scrape(addr, GET_METRICS).await;
        let (unlocked, other) = during_render.join().unwrap();
        assert!(ok.starts_with("HTTP/1.1 200 OK\r\n"), "{ok}");
        assert!(unlocked, "the metrics were locked during the render");
        let other = other.expect("another request was answered during the render");
        assert!(other.starts_with("HTTP/1.1 404 "), "{other}");
        server.abort();
    }
}
