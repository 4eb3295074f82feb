//! The live tracing loop: attach, read the ring buffer on tokio, run the pipeline, apply its
//! capture decisions to the kernel, print lookups, optionally record, and report losses.

use std::{
    cell::RefCell,
    fs::File,
    io::{BufWriter, Write as _},
    path::PathBuf,
    process::ExitCode,
    rc::Rc,
    time::Duration,
};

use anyhow::{Context as _, Result};
use aya::maps::{MapData, RingBuf};
use tokio::{
    io::{unix::AsyncFd, Interest},
    signal::unix::{signal, SignalKind},
};

use doh_trace_common::Stat;

use crate::{
    cli::{Cli, Output},
    clock::{monotonic_ns, Clock},
    loader::{KernelCounters, Tracer},
    pipeline::{CaptureDecision, Pipeline},
    procinfo::{LiveProcessInfo, ProcessInfo},
    recording::{self, Header, Recorder, TappedProcessInfo},
};

/// A recording in progress.
struct Recording {
    file: BufWriter<File>,
    recorder: Recorder,
}

mod drain_timer;

use drain_timer::DrainTimer;

/// What woke the loop. Every step reads the ring buffer first.
enum Step {
    /// The ring buffer has records.
    Woken,
    /// The drain timer fired.
    Timed,
    /// The one-second tick: timeouts, hook upkeep, status, flushing files (the ring is read
    /// too, should a record have been left without a wakeup as the drain timer stopped).
    Second,
    /// SIGINT or SIGTERM: the ring is read a last time.
    Stop,
}

/// Handles every record waiting in the ring buffer: an exec's hook discovery, the pipeline,
/// and the recording (with the /proc facts and capture decisions each record led to). Returns
/// how many there were.
fn handle_waiting(
    rb: &mut RingBuf<MapData>,
    tracer: &mut Tracer,
    pipeline: &mut Pipeline,
    decisions: &mut Vec<CaptureDecision>,
    recording: &mut Option<Recording>,
    facts: &RefCell<Vec<recording::Record>>,
) -> Result<usize> {
    let mut handled = 0;
    while let Some(item) = rb.next() {
        handled += 1;
        if let Some(pid) = crate::event::exec_pid(&item) {
            tracer.on_exec(pid);
        }
        pipeline.handle_record(&item);
        let new = decisions.len();
        decisions.extend(pipeline.drain_decisions());
        if let Some(rec) = recording.as_mut() {
            let learnt = std::mem::take(&mut *facts.borrow_mut());
            rec.recorder
                .offer(&item, learnt, &mut rec.file)
                .context("writing the recording")?;
            for d in &decisions[new..] {
                rec.recorder
                    .decided(d, &mut rec.file)
                    .context("writing the recording")?;
            }
        }
    }
    Ok(handled)
}

/// Traces until SIGINT/SIGTERM; with `record`, also writes DNS connections' events there.
pub async fn trace(cli: &Cli, record: Option<&PathBuf>) -> Result<ExitCode> {
    let clock = Clock::now();
    let mut recording = match record {
        Some(path) => {
            let file =
                File::create(path).with_context(|| format!("cannot write {}", path.display()))?;
            let mut file = BufWriter::new(file);
            recording::write_header(
                &mut file,
                Header {
                    clock_offset_ns: clock.offset_ns() as i64,
                },
            )?;
            Some(Recording {
                file,
                recorder: Recorder::default(),
            })
        }
        None => None,
    };
    let mut output = Output::new(cli)?;
    if let (Some(addr), Some(metrics)) = (cli.metrics, output.metrics.clone()) {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("cannot serve metrics on {addr}"))?;
        tokio::spawn(async move {
            if let Err(e) = crate::output::metrics::serve_listener(listener, metrics).await {
                eprintln!("doh-trace: metrics server stopped: {e}");
            }
        });
    }
    let started = std::time::Instant::now();
    let mut tracer = Tracer::start(
        &cli.dns_ports(),
        &cli.stacks,
        cli.hook_scope(),
        cli.ring_buffer,
    )?;
    if !cli.quiet {
        for w in &tracer.report.warnings {
            eprintln!("doh-trace: warning: {w}");
        }
    }
    show_hook_messages(&mut tracer, cli.quiet);
    let ring = tracer.take_events()?;
    // SAFETY: the RingBuf owns its map fd, which stays open and unchanged until the AsyncFd
    // (which owns the RingBuf) is dropped.
    let mut ring = unsafe { AsyncFd::register_with_interest(ring, Interest::READABLE) }
        .map_err(|e| e.into_parts().1)
        .context("polling the ring buffer")?;
    let facts = Rc::new(RefCell::new(Vec::new()));
    let procs: Box<dyn ProcessInfo> = if recording.is_some() {
        Box::new(TappedProcessInfo::new(
            LiveProcessInfo::new(),
            facts.clone(),
        ))
    } else {
        Box::new(LiveProcessInfo::new())
    };
    let mut pipeline = Pipeline::new(procs, clock);
    pipeline.set_resolvers(cli.resolver_list()?);
    let mut sigint = signal(SignalKind::interrupt())?;
    let mut sigterm = signal(SignalKind::terminate())?;
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut drain = DrainTimer::default();
    let mut shown = Shown::default();
    let mut decisions: Vec<CaptureDecision> = Vec::new();

    eprintln!(
        "ready: {} uprobes on {} files, {} tracepoints (in {:.1} s)",
        tracer.hooks.uprobes,
        tracer.hooks.files(),
        tracer.report.tracepoints,
        started.elapsed().as_secs_f64()
    );

    loop {
        let step = tokio::select! {
            guard = ring.readable_mut() => {
                // Cleared before reading: a record submitted meanwhile makes it ready again.
                guard?.clear_ready();
                Step::Woken
            }
            _ = drain.tick() => Step::Timed,
            _ = tick.tick() => Step::Second,
            _ = sigint.recv() => Step::Stop,
            _ = sigterm.recv() => Step::Stop,
        };
        let timed = matches!(step, Step::Timed);
        loop {
            let records = handle_waiting(
                ring.get_mut(),
                &mut tracer,
                &mut pipeline,
                &mut decisions,
                &mut recording,
                &facts,
            )?;
            if !drain.after_read(records, timed, |on| tracer.set_draining(on))? {
                break;
            }
        }
        if matches!(step, Step::Second) {
            tracer.tick_hooks();
            pipeline.tick(monotonic_ns());
            // Timeouts can classify a connection too (its first lookup timed out).
            let new = decisions.len();
            decisions.extend(pipeline.drain_decisions());
            if let Some(rec) = recording.as_mut() {
                for d in &decisions[new..] {
                    rec.recorder
                        .decided(d, &mut rec.file)
                        .context("writing the recording")?;
                }
            }
            let kernel = tracer.kernel_counters().unwrap_or_default();
            if !cli.quiet {
                shown.report_new_problems(&kernel, &pipeline);
            }
            if let Some(m) = &output.metrics {
                m.lock().unwrap_or_else(|e| e.into_inner()).set_counters(
                    pipeline.counters(),
                    kernel.get(Stat::RingbufDrops),
                    kernel.get(Stat::TruncatedBytes),
                    kernel.get(Stat::ReadErrors),
                );
            }
            output.flush_files().context("writing the pcapng file")?;
            if let Some(rec) = recording.as_mut() {
                rec.file.flush().context("writing the recording")?;
            }
        }
        for d in decisions.drain(..) {
            if let Some((pid, fd)) = d.fd() {
                // The connection may be gone already; a failed update only costs copied bytes.
                let _ = tracer.set_capture_policy(pid, fd, d.policy);
            }
        }
        show_hook_messages(&mut tracer, cli.quiet);
        if !output.drain(&mut pipeline)? {
            return Ok(ExitCode::SUCCESS);
        }
        if matches!(step, Step::Stop) {
            break;
        }
    }
    let kernel = tracer.kernel_counters().unwrap_or_default();
    drop(tracer);
    output.flush_files().context("writing the pcapng file")?;
    if let Some(mut rec) = recording {
        rec.file.flush().context("writing the recording")?;
        if !cli.quiet {
            eprintln!(
                "doh-trace: recording complete; {} events of connections not classified as DNS were not written",
                rec.recorder.withheld_events
            );
        }
    }
    if !cli.quiet {
        eprintln!(
            "doh-trace: stopped, all probes detached: {}",
            pipeline.counters()
        );
        eprintln!(
            "doh-trace: {} TLS library calls captured by the uprobes",
            kernel.get(Stat::TlsCalls)
        );
        for (label, n) in kernel.problems() {
            eprintln!("doh-trace: {n} {label}");
        }
        output.print_summary();
    }
    Ok(ExitCode::SUCCESS)
}

/// Tells the user what the hooks did (hooked, released, not covered) since last time.
fn show_hook_messages(tracer: &mut Tracer, quiet: bool) {
    for line in tracer.hooks.messages.drain(..) {
        if !quiet {
            eprintln!("doh-trace: {line}");
        }
    }
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
