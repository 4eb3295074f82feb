//! Command line: argument definitions, dispatch, output of lookups, and `replay`. The live
//! loop is in [`crate::live`]. `main` only calls [`main`] here.

use std::{
    fs::File,
    io::{self, BufReader, BufWriter, Write as _},
    path::PathBuf,
    process::ExitCode,
    sync::{Arc, Mutex},
};

use anyhow::{Context as _, Result};
use clap::{Parser, Subcommand};

use crate::{
    lookup::Lookup,
    output::{metrics::Metrics, pcapng::PcapngWriter},
    pipeline::Pipeline,
    recording,
};

/// Shows every DNS-over-HTTPS lookup on this host with the process that made it.
#[derive(Debug, Parser)]
#[command(name = "doh-trace", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Print one JSON object per lookup (JSON lines) instead of text.
    #[arg(long, global = true)]
    pub json: bool,
    /// Do not print the start-up report and periodic status lines on stderr.
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// Also write each lookup as DNS query/response packets to this pcapng file (for
    /// Wireshark/tshark; the packet comment names the process, transport and resolver).
    #[arg(short = 'w', long = "write", value_name = "FILE.pcapng")]
    pub pcapng: Option<PathBuf>,
    /// Serve Prometheus metrics at http://ADDR/metrics (e.g. 127.0.0.1:9853).
    #[arg(long, value_name = "ADDR")]
    pub metrics: Option<std::net::SocketAddr>,
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
}

/// Entry point: parses arguments, runs, prints errors with their causes.
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
        None => live(cli, None),
    }
}

fn live(cli: &Cli, record: Option<&PathBuf>) -> Result<ExitCode> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(crate::live::trace(cli, record))
}

/// Where lookups go: stdout (text or JSON lines, flushed per line), and optionally a pcapng
/// file and the Prometheus metrics.
pub struct Output {
    json: bool,
    out: io::Stdout,
    pcapng: Option<PcapngWriter<BufWriter<File>>>,
    /// Shared with the metrics server.
    pub metrics: Option<Arc<Mutex<Metrics>>>,
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
        let metrics = cli.metrics.map(|_| Arc::new(Mutex::new(Metrics::new())));
        Ok(Output {
            json: cli.json,
            out: io::stdout(),
            pcapng,
            metrics,
        })
    }

    /// Writes one lookup to every output.
    pub fn write(&mut self, l: &Lookup) -> io::Result<()> {
        if let Some(p) = self.pcapng.as_mut() {
            if l.dns_query.is_empty() {
                p.write_lookup_synthesized(l)?;
            } else {
                p.write_lookup(l, &l.dns_query, l.dns_answer.as_deref())?;
            }
        }
        if let Some(m) = &self.metrics {
            m.lock().unwrap_or_else(|e| e.into_inner()).observe(l);
        }
        let mut out = self.out.lock();
        if self.json {
            serde_json::to_writer(&mut out, l)?;
            out.write_all(b"\n")?;
        } else {
            writeln!(out, "{}", l.text_line())?;
        }
        out.flush()
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
        for lookup in pipeline.drain_lookups() {
            if let Err(e) = self.write(&lookup) {
                if e.kind() == io::ErrorKind::BrokenPipe {
                    return Ok(false);
                }
                return Err(e).context("writing to stdout");
            }
        }
        Ok(true)
    }
}

fn replay(cli: &Cli, file: &PathBuf) -> Result<ExitCode> {
    let r =
        BufReader::new(File::open(file).with_context(|| format!("opening {}", file.display()))?);
    let mut output = Output::new(cli)?;
    let mut closed = false;
    let counters = recording::replay(r, |lookup| match output.write(&lookup) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => {
            closed = true;
            Ok(false)
        }
        Err(e) => Err(e),
    })
    .with_context(|| format!("replaying {}", file.display()))?;
    output.flush_files().context("writing the pcapng file")?;
    if !cli.quiet && !closed {
        eprintln!("doh-trace: replayed {}: {counters}", file.display());
    }
    Ok(ExitCode::SUCCESS)
}
