//! The command line's definitions (clap derive): options, subcommands, value parsers.

use std::path::PathBuf;

use clap::{builder::PossibleValue, Parser, Subcommand, ValueEnum};
use doh_trace::hooks::table::Stack;

const EXAMPLES: &str = "\
Examples:
  sudo doh-trace                                 every DNS-over-HTTPS lookup, as it happens
  sudo doh-trace --json | jq .                   JSON lines (schema: docs/schema/lookup.v1.schema.json)
  sudo doh-trace -c firefox -c curl              only these processes
  sudo doh-trace -p 1234 --qname '*.example.com' one process, one domain
  sudo doh-trace -w dns.pcapng                   also write packets for Wireshark / tshark
  sudo doh-trace --metrics 127.0.0.1:9853 -q     Prometheus metrics at /metrics
  sudo doh-trace record -o cap.dtr               record DNS connections for later
  doh-trace replay cap.dtr --json                replay them without root
  doh-trace read dump.pcapng --keylog keys.log   lookups out of a packet capture";

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
    /// Overwrite an existing file given to -w or `record -o` (files are created mode 0600 and
    /// never through a symbolic link; without this an existing file is an error).
    #[arg(long, global = true)]
    pub force: bool,
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
    /// Live: decrypt, with the TLS key log written here, the DoH/DoT connections whose TLS no
    /// hook covers (Chromium, Java, rustls…: point their SSLKEYLOGFILE at it). A path that does
    /// not exist becomes a FIFO, mode 0600, removed at exit; an existing FIFO or file is read
    /// as it grows. Lookups found so say `tls_library: keylog`.
    #[arg(long, value_name = "PATH")]
    pub keylog: Option<PathBuf>,
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
    pub stacks: Vec<StackArg>,
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
    /// Most memory the decoding state of all connections may hold together (buffers, HPACK
    /// tables, open exchanges; K/M/G suffixes, at least 1M). Beyond it, the processes holding
    /// most have their largest connections dropped from decoding, counted as "connections
    /// dropped over the memory budget".
    #[arg(
        long = "memory-budget",
        value_name = "SIZE",
        default_value = "64M",
        value_parser = parse_memory_budget,
        global = true
    )]
    pub memory_budget: usize,
}

/// `64K`, `8M`, `1G` or bytes: a power of two the kernel accepts for a BPF ring buffer.
pub fn parse_ring_buffer_size(s: &str) -> Result<u32, String> {
    let bytes = parse_size(s)?;
    if !bytes.is_power_of_two() || !(4096..=1 << 30).contains(&bytes) {
        return Err(format!("{s}: must be a power of two from 4K to 1G"));
    }
    Ok(bytes as u32)
}

/// `64M`, `1G` or bytes, from 1M to 1T: the memory budget.
pub fn parse_memory_budget(s: &str) -> Result<usize, String> {
    let bytes = parse_size(s)?;
    if !(1 << 20..=1 << 40).contains(&bytes) {
        return Err(format!("{s}: must be from 1M to 1T"));
    }
    usize::try_from(bytes).map_err(|_| format!("{s}: too large for this machine"))
}

/// Digits and an optional K, M, G or T (with or without `B`/`iB`; powers of 1024).
fn parse_size(s: &str) -> Result<u64, String> {
    let (digits, unit) = match s.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((at, _)) => s.split_at(at),
        None => (s, ""),
    };
    let shift = match unit.to_ascii_uppercase().trim_end_matches(['B', 'I']) {
        "" => 0,
        "K" => 10,
        "M" => 20,
        "G" => 30,
        "T" => 40,
        _ => return Err(format!("unknown unit in {s:?} (use K, M, G or T)")),
    };
    let n: u64 = digits.parse().map_err(|_| format!("{s:?} is not a size"))?;
    Ok(n.checked_shl(shift)
        .filter(|b| b >> shift == n)
        .unwrap_or(u64::MAX))
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
    /// Read DNS, DoT and DoH lookups out of a packet capture (pcap or pcapng, gzip
    /// accepted), without root. A capture knows no process: pid, uid and comm are null.
    Read {
        /// The capture (tcpdump, dumpcap, Wireshark).
        file: PathBuf,
        /// TLS key log (`SSLKEYLOGFILE` format) to decrypt TLS connections with, besides the
        /// keys the pcapng file embeds.
        #[arg(long, value_name = "FILE")]
        keylog: Option<PathBuf>,
    },
    /// Print a shell completion script.
    Completions {
        /// bash, zsh, fish, elvish or powershell.
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff), generated from these same definitions.
    Man,
}

/// A TLS stack as `--stacks` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StackArg(pub Stack);

impl ValueEnum for StackArg {
    fn value_variants<'a>() -> &'a [Self] {
        const ALL: [StackArg; 4] = [
            StackArg(Stack::Openssl),
            StackArg(Stack::Gnutls),
            StackArg(Stack::Nss),
            StackArg(Stack::Go),
        ];
        const _: () = assert!(ALL.len() == Stack::ALL.len());
        &ALL
    }

    fn to_possible_value(&self) -> Option<PossibleValue> {
        Some(PossibleValue::new(self.0.name()).help(self.0.about()))
    }
}

#[cfg(test)]
mod tests {
    use super::{parse_memory_budget, parse_ring_buffer_size};

    #[test]
    fn memory_budgets_are_sizes_from_a_mib_to_a_tib() {
        assert_eq!(parse_memory_budget("64M"), Ok(64 << 20));
        assert_eq!(parse_memory_budget("1G"), Ok(1 << 30));
        assert_eq!(parse_memory_budget("1048576"), Ok(1 << 20));
        assert_eq!(parse_memory_budget("1500M"), Ok(1500 << 20));
        for bad in ["1023K", "2T", "", "M", "64X", "99999999999999999999G"] {
            assert!(parse_memory_budget(bad).is_err(), "{bad}");
        }
    }

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
