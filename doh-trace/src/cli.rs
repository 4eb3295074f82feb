//! Command line, and the live tracing loop that joins the loader, the ring buffer and the
//! pipeline. `main` only calls [`main`] here.

use std::{
    io::{self, Write as _},
    process::ExitCode,
    time::Duration,
};

use anyhow::{Context as _, Result};
use clap::Parser;
use tokio::{
    io::{unix::AsyncFd, Interest},
    signal::unix::{signal, SignalKind},
};

use crate::{
    clock::Clock,
    loader::{KernelCounters, Tracer},
    lookup::Lookup,
    pipeline::Pipeline,
    procinfo::LiveProcessInfo,
};

/// Shows every DNS-over-HTTPS lookup on this host with the process that made it.
#[derive(Debug, Parser)]
#[command(name = "doh-trace", version, about, long_about = None)]
pub struct Cli {
    /// Print one JSON object per lookup (JSON lines) instead of text.
    #[arg(long)]
    pub json: bool,
    /// Do not print the start-up report and periodic status lines on stderr.
    #[arg(short, long)]
    pub quiet: bool,
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
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(trace(cli))
}

/// Where lookups go: stdout, text or JSON lines, flushed per line.
struct Output {
    json: bool,
    out: io::Stdout,
}

impl Output {
    /// Writes one lookup. A closed stdout (broken pipe) ends the run successfully.
    fn write(&mut self, l: &Lookup) -> io::Result<()> {
        let mut out = self.out.lock();
        if self.json {
            serde_json::to_writer(&mut out, l)?;
            out.write_all(b"\n")?;
        } else {
            writeln!(out, "{}", l.text_line())?;
        }
        out.flush()
    }
}

async fn trace(cli: &Cli) -> Result<ExitCode> {
    let mut tracer = Tracer::start()?;
    if !cli.quiet {
        for (lib, symbols) in &tracer.report.libraries {
            eprintln!(
                "doh-trace: hooked OpenSSL in {lib} ({})",
                symbols.join(", ")
            );
        }
        for (lib, why) in &tracer.report.skipped {
            eprintln!("doh-trace: warning: could not hook {lib}: {why}");
        }
    }
    let ring = tracer.take_events()?;
    // SAFETY: the RingBuf owns its map fd, which stays open and unchanged until the AsyncFd
    // (which owns the RingBuf) is dropped.
    let mut ring = unsafe { AsyncFd::register_with_interest(ring, Interest::READABLE) }
        .map_err(|e| e.into_parts().1)
        .context("polling the ring buffer")?;
    let mut pipeline = Pipeline::new(Box::new(LiveProcessInfo::new()), Clock::now());
    let mut output = Output {
        json: cli.json,
        out: io::stdout(),
    };
    let mut sigint = signal(SignalKind::interrupt())?;
    let mut sigterm = signal(SignalKind::terminate())?;
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut shown = Shown::default();

    eprintln!(
        "ready: {} uprobes on {} libraries, {} tracepoints",
        tracer.report.uprobes,
        tracer.report.libraries.len(),
        tracer.report.tracepoints
    );

    loop {
        tokio::select! {
            guard = ring.readable_mut() => {
                let mut guard = guard?;
                let rb = guard.get_inner_mut();
                while let Some(item) = rb.next() {
                    pipeline.handle_record(&item);
                }
                guard.clear_ready();
                for lookup in pipeline.drain_lookups() {
                    if let Err(e) = output.write(&lookup) {
                        if e.kind() == io::ErrorKind::BrokenPipe {
                            return Ok(ExitCode::SUCCESS);
                        }
                        return Err(e).context("writing to stdout");
                    }
                }
            }
            _ = tick.tick() => {
                if !cli.quiet {
                    let kernel = tracer.kernel_counters().unwrap_or_default();
                    shown.report_new_problems(&kernel, &pipeline);
                }
            }
            _ = sigint.recv() => break,
            _ = sigterm.recv() => break,
        }
    }
    let kernel = tracer.kernel_counters().unwrap_or_default();
    drop(tracer);
    if !cli.quiet {
        eprintln!(
            "doh-trace: stopped, all probes detached: {}",
            pipeline.counters()
        );
        for (label, n) in kernel.problems() {
            eprintln!("doh-trace: {n} {label}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Problem counters already shown, so each status line says what is new.
#[derive(Default)]
struct Shown {
    lines: Vec<(&'static str, u64)>,
}

impl Shown {
    fn report_new_problems(&mut self, kernel: &KernelCounters, pipeline: &Pipeline) {
        let now: Vec<(&'static str, u64)> = kernel
            .problems()
            .into_iter()
            .chain(pipeline.counters().problems())
            .collect();
        for (label, n) in &now {
            let before = self
                .lines
                .iter()
                .find(|(l, _)| l == label)
                .map_or(0, |(_, v)| *v);
            if *n > before {
                eprintln!("doh-trace: status: {n} {label} (+{})", n - before);
            }
        }
        self.lines = now;
    }
}
