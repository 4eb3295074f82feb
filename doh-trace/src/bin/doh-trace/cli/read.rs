//! `doh-trace read FILE [--keylog FILE]`: lookups out of a packet capture, with the same
//! outputs as the live tracer and `replay`, a progress line for long reads and the counters
//! at the end.

use std::{
    fs::File,
    io::{self, IsTerminal as _, Read as _, Write as _},
    path::Path,
    process::ExitCode,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result};
use doh_trace::{
    output::escape::escape_controls,
    pipeline::capture::{read_capture, Progress},
};

use super::Cli;

/// Largest key log read from `--keylog`.
const MAX_KEY_LOG: u64 = 64 << 20;

/// Reads `file` (opened once) through the pipeline.
pub fn read(cli: &Cli, file: &Path, keylog: Option<&Path>) -> Result<ExitCode> {
    let key_log = match keylog {
        Some(path) => {
            let mut text = Vec::new();
            File::open(path)
                .and_then(|f| f.take(MAX_KEY_LOG).read_to_end(&mut text))
                .with_context(|| format!("reading the key log {}", path.display()))?;
            text
        }
        None => Vec::new(),
    };
    let input = File::open(file).with_context(|| format!("opening {}", file.display()))?;
    let mut output = cli.outputs(false)?;
    let mut closed = false;
    let started = Instant::now();
    let show_progress = !cli.quiet;
    let mut progress_shown = false;
    let stderr_tty = io::stderr().is_terminal();
    let report = read_capture(
        input,
        cli.settings()?,
        key_log,
        |pipeline| match output.drain(pipeline.drain_records()) {
            Ok(true) => Ok(true),
            Ok(false) => {
                closed = true;
                Ok(false)
            }
            Err(e) => Err(io::Error::other(format!("writing to stdout: {e}"))),
        },
        |p: Progress| {
            if show_progress && started.elapsed() > Duration::from_secs(1) {
                progress_shown = true;
                let line = format!(
                    "doh-trace: reading {}: {} MB, {} packets, {} lookups",
                    file.display(),
                    p.bytes >> 20,
                    p.packets,
                    p.lookups
                );
                let mut err = io::stderr().lock();
                let _ = if stderr_tty {
                    write!(err, "\r{line}\x1b[K")
                } else {
                    writeln!(err, "{line}")
                };
            }
        },
    )
    .with_context(|| format!("reading {}", file.display()))?;
    if progress_shown && stderr_tty {
        eprintln!();
    }
    output.flush_files().context("writing the pcapng file")?;
    if !cli.quiet && !closed {
        eprintln!(
            "doh-trace: read {}: {}",
            escape_controls(&file.display().to_string()),
            report.capture
        );
        eprintln!("doh-trace: decoded: {}", report.decode);
        eprintln!("doh-trace: TLS: {}", report.tls);
        output.print_summary();
    }
    Ok(ExitCode::SUCCESS)
}
