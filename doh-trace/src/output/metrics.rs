//! Prometheus metrics (text exposition format 0.0.4, written by hand) of the lookups seen and
//! of what could not be decoded, and a minimal HTTP server answering `GET /metrics`.
//!
//! Label cardinality is bounded: at most [`MAX_COMMS`] distinct process names and
//! [`MAX_RCODES`] distinct rcodes are kept as label values; later ones are counted under
//! `"other"` and in `doh_trace_label_overflow_total{label=...}`.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
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
/// The `Content-Type` of the exposition format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4";
/// Scrapes served at once; further connections wait to be accepted.
const MAX_CONNECTIONS: usize = 32;
/// Time a scraper has to send its request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// A set of label values that stops growing at `limit`.
#[derive(Debug, Default)]
struct Bounded {
    seen: BTreeSet<String>,
    overflow: u64,
}

impl Bounded {
    fn label(&mut self, value: &str, limit: usize) -> String {
        if self.seen.contains(value) {
            value.to_string()
        } else if self.seen.len() < limit {
            self.seen.insert(value.to_string());
            value.to_string()
        } else {
            self.overflow += 1;
            "other".to_string()
        }
    }
}

#[derive(Debug, Default)]
struct Histogram {
    /// Observations per bucket (not cumulative); beyond the last bound only in `count`.
    buckets: [u64; LATENCY_BUCKETS.len()],
    sum: f64,
    count: u64,
}

/// The metrics state; update it with [`observe`](Self::observe) and
/// [`set_counters`](Self::set_counters), read it with [`render`](Self::render).
#[derive(Debug, Default)]
pub struct Metrics {
    /// (transport, comm, rcode, status) → lookups.
    lookups: BTreeMap<(String, String, String, String), u64>,
    latency: BTreeMap<String, Histogram>,
    comms: Bounded,
    rcodes: Bounded,
    decode: DecodeCounters,
    kernel_lost_events: u64,
    kernel_truncated_bytes: u64,
    kernel_read_errors: u64,
    /// Output lines the live stdout queue dropped (its reader did not keep up).
    output_dropped_lines: u64,
}

impl Metrics {
    /// Empty metrics.
    pub fn new() -> Self {
        Self::default()
    }

    /// Counts one lookup, and its latency when known.
    pub fn observe(&mut self, l: &Lookup) {
        let comm = self.comms.label(&l.comm, MAX_COMMS);
        let rcode = match &l.rcode {
            Some(r) => self.rcodes.label(r, MAX_RCODES),
            None => "none".to_string(),
        };
        let key = (
            l.transport.to_string(),
            comm,
            rcode,
            l.status.as_str().to_string(),
        );
        *self.lookups.entry(key).or_default() += 1;
        if let Some(ms) = l.latency_ms.filter(|ms| ms.is_finite() && *ms >= 0.0) {
            let secs = ms / 1000.0;
            let h = self.latency.entry(l.transport.to_string()).or_default();
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

    /// Lines the live stdout queue dropped so far (`-q` hides the status lines that say it:
    /// a scraper still sees it).
    pub fn set_output_dropped_lines(&mut self, lines: u64) {
        self.output_dropped_lines = lines;
    }

    /// The text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(4096);
        header(
            &mut out,
            "doh_trace_lookups_total",
            "counter",
            "DNS lookups reported, by transport, process name, rcode and outcome.",
        );
        for ((transport, comm, rcode, status), n) in &self.lookups {
            let labels = [
                ("transport", transport.as_str()),
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
                let labels = [("transport", transport.as_str()), ("le", &le)];
                sample(&mut out, &format!("{name}_bucket"), &labels, cumulative);
            }
            let labels = [("transport", transport.as_str()), ("le", "+Inf")];
            sample(&mut out, &format!("{name}_bucket"), &labels, h.count);
            let t = [("transport", transport.as_str())];
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

        let name = "doh_trace_label_overflow_total";
        let help =
            "Lookups counted under label value \"other\" because the label had too many values.";
        header(&mut out, name, "counter", help);
        sample(&mut out, name, &[("label", "comm")], self.comms.overflow);
        sample(&mut out, name, &[("label", "rcode")], self.rcodes.overflow);
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
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
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

/// Reads one request (at most [`MAX_REQUEST`] bytes) and writes one response.
async fn answer(mut stream: TcpStream, metrics: &Mutex<Metrics>) -> std::io::Result<()> {
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
            let m = metrics
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            ("200 OK", m.render())
        }
        Scrape::WrongMethod => ("405 Method Not Allowed", "use GET\n".to_string()),
        Scrape::NotFound => ("404 Not Found", "not found; try /metrics\n".to_string()),
    };
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {CONTENT_TYPE}\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body.as_bytes()).await?;
    stream.shutdown().await
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
# HELP doh_trace_label_overflow_total Lookups counted under label value "other" because the label had too many values.
# TYPE doh_trace_label_overflow_total counter
doh_trace_label_overflow_total{{label="comm"}} 0
doh_trace_label_overflow_total{{label="rcode"}} 0
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

        let ok = scrape(addr, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").await;
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
}
