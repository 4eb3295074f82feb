//! Command line: argument definitions, dispatch, output of lookups, and `replay`. The live
//! loop is in [`crate::live`]. `main` only calls [`main`] here.

use std::{
    fs::File,
    io::{self, BufReader, Write as _},
    path::PathBuf,
    process::ExitCode,
};

use anyhow::{Context as _, Result};
use clap::{Parser, Subcommand};

use crate::{lookup::Lookup, pipeline::Pipeline, recording};

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

/// Where lookups go: stdout, text or JSON lines, flushed per line.
pub struct Output {
    json: bool,
    out: io::Stdout,
}

impl Output {
    /// Stdout in the format the command line asked for.
    pub fn new(cli: &Cli) -> Self {
        Output {
            json: cli.json,
            out: io::stdout(),
        }
    }

    /// Writes one lookup.
    pub fn write(&mut self, l: &Lookup) -> io::Result<()> {
        let mut out = self.out.lock();
        if self.json {
            serde_json::to_writer(&mut out, l)?;
            out.write_all(b"\n")?;
        } else {
            writeln!(out, "{}", l.text_line())?;
        }
        out.flush()
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
    let mut output = Output::new(cli);
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
    if !cli.quiet && !closed {
        eprintln!("doh-trace: replayed {}: {counters}", file.display());
    }
    Ok(ExitCode::SUCCESS)
}
