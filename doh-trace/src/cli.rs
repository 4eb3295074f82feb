//! Command line: argument definitions, dispatch, the outputs every lookup goes to, `replay`,
//! `completions` and `man`. The live loop is in [`crate::live`]. `main` only calls [`main`].

use std::{
    fs::File,
    io::{self, BufReader, BufWriter, IsTerminal as _, Write as _},
    path::PathBuf,
    process::ExitCode,
    sync::{Arc, Mutex},
};

use anyhow::{Context as _, Result};
use clap::{CommandFactory as _, Parser, Subcommand, ValueEnum};

use crate::{
    filter::Filter,
    lookup::{Lookup, TEXT_HEADER},
    output::{json_line::JsonWriter, metrics::Metrics, pcapng::PcapngWriter},
    pipeline::{connections::ConnectionRecord, Pipeline},
    recording,
    summary::Summary,
};

const EXAMPLES: &str = "\
Examples:
  sudo doh-trace                                 every DNS-over-HTTPS lookup, as it happens
  sudo doh-trace --json | jq .                   JSON lines (schema: docs/schema/lookup.v1.schema.json)
  sudo doh-trace -c firefox -c curl              only these processes
  sudo doh-trace -p 1234 --qname '*.example.com' one process, one domain
  sudo doh-trace -w dns.pcapng                   also write packets for Wireshark / tshark
  sudo doh-trace --metrics 127.0.0.1:9853 -q     Prometheus metrics at /metrics
  sudo doh-trace record -o cap.dtr               record DNS connections for later
  doh-trace replay cap.dtr --json                replay them without root";

/// Shows every DNS-over-HTTPS lookup on this host with the process that made it.
#[derive(Debug, Parser)]
#[command(name = "doh-trace", version, about, long_about = None, after_help = EXAMPLES)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Print one JSON object per lookup (JSON lines) instead of text.
    #[arg(long, global = true)]
    pub json: bool,
    /// No start-up report, status lines or exit summary on stderr.
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// Colour the text output.
    #[arg(long, value_enum, default_value_t = ColorChoice::Auto, global = true)]
    pub color: ColorChoice,
    /// Also write each lookup as DNS query/response packets to this pcapng file (for
    /// Wireshark/tshark; the packet comment names the process, transport and resolver).
    #[arg(short = 'w', long = "write", value_name = "FILE.pcapng", global = true)]
    pub pcapng: Option<PathBuf>,
    /// Show one record per DNS-carrying connection when it ends (handshake time, lookups
    /// carried, lifetime, idle time, who closed it) instead of one per lookup.
    #[arg(long, global = true)]
    pub connections: bool,
    /// Serve Prometheus metrics at http://ADDR/metrics; a bare port means loopback
    /// (127.0.0.1:PORT).
    #[arg(long, value_name = "ADDR|PORT", value_parser = parse_listen_addr)]
    pub metrics: Option<std::net::SocketAddr>,
    /// Only lookups of this process id (repeatable).
    #[arg(short = 'p', long = "pid", value_name = "PID", global = true)]
    pub pids: Vec<u32>,
    /// Only lookups of processes with this name (repeatable).
    #[arg(short = 'c', long = "comm", value_name = "NAME", global = true)]
    pub comms: Vec<String>,
    /// Only lookups of processes with this real uid (repeatable).
    #[arg(short = 'u', long = "uid", value_name = "UID", global = true)]
    pub uids: Vec<u32>,
    /// Only lookups from this container (id or id prefix; repeatable).
    #[arg(long = "container", value_name = "ID", global = true)]
    pub containers: Vec<String>,
    /// Only names matching this pattern (`*` and `?`, case-insensitive; repeatable).
    #[arg(long = "qname", value_name = "PATTERN", global = true)]
    pub qnames: Vec<String>,
    /// Only this transport (repeatable): doh, dot, dns-udp, dns-tcp, doh-opaque, dot-opaque,
    /// doq-opaque.
    #[arg(long = "transport", value_name = "TRANSPORT", global = true)]
    pub transports: Vec<String>,
    /// Also treat datagrams to or from this port as plain DNS (repeatable; 53 always is).
    /// DNS over TCP and DoT are recognised on any port by their framing.
    #[arg(long = "dns-port", value_name = "PORT", global = true)]
    pub dns_ports: Vec<u16>,
    /// Add well-known resolvers to the built-in list (used to report encrypted DNS whose
    /// plaintext is out of reach, and for the `resolver` field): one `NAME-or-*.SUFFIX-or-IP
    /// PROVIDER` per line, `#` comments.
    #[arg(long = "resolvers", value_name = "FILE", global = true)]
    pub resolvers: Option<PathBuf>,
    /// TLS stacks to hook (comma-separated; default: all). With --pid, only those processes
    /// get uprobes; others pay nothing.
    #[arg(
        long = "stacks",
        value_name = "STACK",
        value_delimiter = ',',
        default_value = "openssl,gnutls,nss,go",
        global = true
    )]
    pub stacks: Vec<crate::loader::probes::Stack>,
    /// Size of the kernel-to-tracer ring buffer: a power of two from 4K to 1G (K/M/G
    /// suffixes). When it is full, events are dropped (never the traced program slowed) and
    /// counted as "events lost"; raise it on busy hosts.
    #[arg(
        long = "ring-buffer",
        value_name = "SIZE",
        default_value = "8M",
        value_parser = parse_ring_buffer_size,
        global = true
    )]
    pub ring_buffer: u32,
}

impl Cli {
    /// The built-in resolver list plus the user's file.
    pub fn resolver_list(&self) -> Result<crate::opaque::ResolverList> {
        let mut list = crate::opaque::ResolverList::builtin();
        if let Some(path) = &self.resolvers {
            list.load_file(path)
                .map_err(|e| anyhow::anyhow!("{e:#}"))
                .context("reading --resolvers")?;
        }
        Ok(list)
    }

    /// Which processes get uprobes: with --pid, those processes only. --comm does not narrow
    /// them: a new process with that name would run (and a short-lived one finish) before
    /// per-process hooks could be attached at its exec, so it filters after hooks for all.
    pub fn hook_scope(&self) -> crate::loader::hooks::HookScope {
        crate::loader::hooks::HookScope {
            pids: self.pids.clone(),
        }
    }

    /// The ports whose datagrams are plain DNS: 53 and the user's.
    pub fn dns_ports(&self) -> Vec<u16> {
        let mut ports = vec![53];
        ports.extend(self.dns_ports.iter().copied().filter(|&p| p != 53));
        ports
    }
}

/// `64K`, `8M`, `1G` or bytes: a power of two the kernel accepts for a BPF ring buffer.
fn parse_ring_buffer_size(s: &str) -> Result<u32, String> {
    let (digits, unit) = match s.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((at, _)) => s.split_at(at),
        None => (s, ""),
    };
    let shift = match unit.to_ascii_uppercase().trim_end_matches(['B', 'I']) {
        "" => 0,
        "K" => 10,
        "M" => 20,
        "G" => 30,
        _ => return Err(format!("unknown unit in {s:?} (use K, M or G)")),
    };
    let n: u64 = digits.parse().map_err(|_| format!("{s:?} is not a size"))?;
    let bytes = n
        .checked_shl(shift)
        .filter(|b| b >> shift == n)
        .unwrap_or(u64::MAX);
    if !bytes.is_power_of_two() || !(4096..=1 << 30).contains(&bytes) {
        return Err(format!("{s}: must be a power of two from 4K to 1G"));
    }
    Ok(bytes as u32)
}

/// `127.0.0.1:9853`, `[::1]:9853` or a bare port (loopback).
fn parse_listen_addr(s: &str) -> Result<std::net::SocketAddr, String> {
    if let Ok(port) = s.parse::<u16>() {
        return Ok(std::net::SocketAddr::from(([127, 0, 0, 1], port)));
    }
    s.parse()
        .map_err(|_| format!("'{s}' is neither ADDRESS:PORT nor a port"))
}

/// When to colour text output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ColorChoice {
    /// When stdout is a terminal.
    Auto,
    Always,
    Never,
}

/// Subcommands; without one, doh-trace traces live.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Trace live and also write the raw events of DNS-carrying connections to a file
    /// (non-DNS connections are never written).
    Record {
        /// The recording to write (see docs/RECORDING.md).
        #[arg(short, long)]
        output: PathBuf,
    },
    /// Run the decoding pipeline on a recording, without root.
    Replay {
        /// A file written by `doh-trace record`.
        file: PathBuf,
    },
    /// Print a shell completion script.
    Completions {
        /// bash, zsh, fish, elvish or powershell.
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff), generated from these same definitions.
    Man,
}

/// Entry point: parses arguments (usage errors exit 2), runs, prints errors with causes.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(&cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("doh-trace: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: &Cli) -> Result<ExitCode> {
    match &cli.command {
        Some(Command::Replay { file }) => replay(cli, file),
        Some(Command::Record { output }) => live(cli, Some(output)),
        Some(Command::Completions { shell }) => {
            clap_complete::generate(*shell, &mut Cli::command(), "doh-trace", &mut io::stdout());
            Ok(ExitCode::SUCCESS)
        }
        Some(Command::Man) => {
            clap_mangen::Man::new(Cli::command()).render(&mut io::stdout())?;
            Ok(ExitCode::SUCCESS)
        }
        None => live(cli, None),
    }
}

fn live(cli: &Cli, record: Option<&PathBuf>) -> Result<ExitCode> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(crate::live::trace(cli, record))
}

/// Where lookups go: stdout (text or JSON lines, flushed after each batch the pipeline
/// completes, so a lookup is shown as soon as its batch is decoded), and optionally a pcapng
/// file and the Prometheus metrics; all behind the command line's filters.
pub struct Output {
    json: bool,
    connections: bool,
    color: bool,
    header_done: bool,
    out: BufWriter<io::Stdout>,
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

impl Output {
    /// The outputs the command line asked for; a file that cannot be written is an error now.
    pub fn new(cli: &Cli) -> Result<Self> {
        let pcapng = match &cli.pcapng {
            Some(path) => {
                let cannot = || format!("cannot write {}", path.display());
                let file = File::create(path).with_context(cannot)?;
                Some(PcapngWriter::new(BufWriter::new(file)).with_context(cannot)?)
            }
            None => None,
        };
        let out = io::stdout();
        let color = match cli.color {
            ColorChoice::Always => true,
            ColorChoice::Never => false,
            ColorChoice::Auto => out.is_terminal() && std::env::var_os("NO_COLOR").is_none(),
        };
        Ok(Output {
            json: cli.json,
            connections: cli.connections,
            color,
            header_done: false,
            out: BufWriter::with_capacity(64 * 1024, out),
            line: Vec::with_capacity(1024),
            json_writer: JsonWriter::default(),
            filter: Filter {
                pids: cli.pids.clone(),
                comms: cli.comms.clone(),
                uids: cli.uids.clone(),
                containers: cli.containers.clone(),
                qnames: cli.qnames.clone(),
                transports: cli.transports.clone(),
            },
            pcapng,
            metrics: cli.metrics.map(|_| Arc::new(Mutex::new(Metrics::new()))),
            summary: (!cli.quiet).then(Summary::default),
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
            writeln!(out, "{}", l.text_line(self.color))
        }
    }

    /// Writes one connection record (with `--connections`), behind the process filters.
    pub fn write_connection(&mut self, c: &ConnectionRecord) -> io::Result<()> {
        let wanted = self
            .filter
            .matches_process(c.pid, &c.comm, c.uid, c.transport);
        if !self.connections || !wanted {
            return Ok(());
        }
        let out = &mut self.out;
        if self.json {
            json_line(out, c)?;
        } else {
            let ms = |v: Option<f64>| v.map_or_else(|| "-".to_string(), |v| format!("{v:.1}ms"));
            let server = c
                .server
                .as_ref()
                .map_or_else(|| "?".to_string(), |s| format!("{}:{}", s.ip, s.port));
            writeln!(
                out,
                "{} {:>7} {:<15} {} {} {} lookups={} handshake={} lifetime={} idle={} closed-by={}{}",
                c.time.get(11..23).unwrap_or(&c.time),
                c.pid,
                c.comm,
                c.transport,
                server,
                c.http_version.unwrap_or("-"),
                c.lookups,
                ms(c.handshake_ms),
                ms(Some(c.lifetime_ms)),
                ms(Some(c.idle_ms)),
                serde_json::to_value(c.closed_by).ok().and_then(|v| v.as_str().map(String::from)).unwrap_or_default(),
                if c.joined_mid_stream { " (joined mid-stream)" } else { "" },
            )?;
        }
        Ok(())
    }

    /// Flushes the pcapng file (at exit, and periodically).
    pub fn flush_files(&mut self) -> io::Result<()> {
        match self.pcapng.as_mut() {
            Some(p) => p.flush(),
            None => Ok(()),
        }
    }

    /// Writes every lookup the pipeline has completed. Returns false when stdout is closed
    /// (a broken pipe ends the run successfully).
    pub fn drain(&mut self, pipeline: &mut Pipeline) -> Result<bool> {
        // Written as they are drained (no copy of the batch); on an error the rest is dropped.
        let mut written = pipeline.drain_lookups().try_for_each(|l| self.write(&l));
        for c in pipeline.drain_connections() {
            if written.is_ok() {
                written = self.write_connection(&c);
            }
        }
        let written = written.and_then(|()| self.out.flush());
        match written {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(false),
            Err(e) => Err(e).context("writing to stdout"),
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

fn replay(cli: &Cli, file: &PathBuf) -> Result<ExitCode> {
    let r =
        BufReader::new(File::open(file).with_context(|| format!("opening {}", file.display()))?);
    let mut output = Output::new(cli)?;
    let mut closed = false;
    let resolvers = cli.resolver_list()?;
    let counters =
        recording::replay_into_with(r, resolvers, |pipeline| match output.drain(pipeline) {
            Ok(true) => Ok(true),
            Ok(false) => {
                closed = true;
                Ok(false)
            }
            Err(e) => Err(io::Error::other(format!("{e:#}"))),
        })
        .with_context(|| format!("replaying {}", file.display()))?;
    output.flush_files().context("writing the pcapng file")?;
    if !cli.quiet && !closed {
        eprintln!("doh-trace: replayed {}: {counters}", file.display());
        output.print_summary();
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::parse_ring_buffer_size;

    #[test]
    fn ring_buffer_sizes_are_powers_of_two_between_a_page_and_a_gib() {
        assert_eq!(parse_ring_buffer_size("64K"), Ok(64 << 10));
        assert_eq!(parse_ring_buffer_size("8M"), Ok(8 << 20));
        assert_eq!(parse_ring_buffer_size("256MiB"), Ok(256 << 20));
        assert_eq!(parse_ring_buffer_size("1G"), Ok(1 << 30));
        assert_eq!(parse_ring_buffer_size("4096"), Ok(4096));
        for bad in [
            "3M",
            "2K",
            "2G",
            "",
            "M",
            "8X",
            "99999999999999999999G",
            "17179869184K",
        ] {
            assert!(parse_ring_buffer_size(bad).is_err(), "{bad}");
        }
    }
}
