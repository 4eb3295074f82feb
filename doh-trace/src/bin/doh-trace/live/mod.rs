//! The live tracing loop: attach, read the ring buffer on tokio, run the pipeline, apply its
//! capture decisions to the kernel, print lookups, optionally record, and report losses.

use std::{
    cell::RefCell,
    fs::File,
    io::{BufWriter, Write as _},
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

use doh_trace::{
    clock::{monotonic_ns, Clock},
    conn::{
        binding::BindChange,
        policy::{self, CaptureDecision},
    },
    hooks::table::Stack,
    lookup::resolvers::ResolverList,
    output::{
        escape::escape_controls,
        recording::{Recorder, TappedProcessInfo},
        Outputs,
    },
    pipeline::{keylog::LiveDecryption, Pipeline},
    process::{LiveProcessInfo, ProcessInfo},
    source::{
        kernel,
        keylog_file::KeylogFile,
        recording::{self, Header},
    },
};

use crate::loader::{hooks::HookScope, KernelCounters, Tracer};

/// What the live loop is asked to do (from the command line).
pub struct LiveOptions {
    /// Ports whose datagrams are plain DNS.
    pub dns_ports: Vec<u16>,
    /// TLS stacks to hook.
    pub stacks: Vec<Stack>,
    /// Which processes get uprobes.
    pub scope: HookScope,
    /// Bytes of the ring buffer.
    pub ring_bytes: u32,
    /// The pipeline's memory budget.
    pub memory_budget: usize,
    /// No start-up report, status lines or exit summary.
    pub quiet: bool,
    /// Where to serve Prometheus metrics.
    pub metrics: Option<std::net::SocketAddr>,
    /// The well-known resolvers.
    pub resolvers: ResolverList,
    /// Write a recording to this file (created by `output::private_file`).
    pub record: Option<File>,
    /// Decrypt unhooked DoH/DoT candidates with the TLS key log read from here.
    pub keylog: Option<KeylogFile>,
}

/// A recording in progress.
struct Recording {
    file: BufWriter<File>,
    recorder: Recorder,
}

mod drain_timer;

use drain_timer::DrainTimer;

/// Most ring-buffer records handled in one step. Under a load the tracer cannot keep up with,
/// the ring never runs empty: after this many the loop looks at signals, the one-second tick,
/// key-log text and stdout before it reads on, so none of them waits for the load to end.
const RING_BUDGET: usize = 4096;

/// How long stdout's reader is waited for at exit.
const STDOUT_PATIENCE: Duration = Duration::from_secs(1);

/// The problem line of output lines stdout's reader did not take.
const STDOUT_DROPPED: &str = "output lines dropped (stdout's reader did not keep up)";

/// What woke the loop. Every step reads the ring buffer first.
enum Step {
    /// The ring buffer has records.
    Woken,
    /// The last step left records in the ring (its budget was spent).
    Backlog,
    /// The drain timer fired.
    Timed,
    /// The one-second tick: timeouts, hook upkeep, status, flushing files (the ring is read
    /// too, should a record have been left without a wakeup as the drain timer stopped).
    Second,
    /// SIGINT or SIGTERM: the ring is read a last time.
    Stop,
    /// Key log text came (the ring is read first, so the key finds the records it opens).
    Keys(Vec<u8>),
}

/// Handles the records waiting in the ring buffer, at most `budget`: an exec's hook
/// discovery, the pipeline, and the recording (with the /proc facts and capture decisions each
/// record led to). Returns how many there were.
#[allow(
    clippy::too_many_arguments,
    reason = "the loop's state, borrowed apart for one pass"
)]
fn handle_waiting(
    rb: &mut RingBuf<MapData>,
    tracer: &mut Tracer,
    pipeline: &mut Pipeline,
    decryption: &mut Option<LiveDecryption>,
    decisions: &mut Vec<CaptureDecision>,
    recording: &mut Option<Recording>,
    facts: &RefCell<Vec<recording::Record>>,
    budget: usize,
) -> Result<usize> {
    let mut handled = 0;
    while handled < budget {
        let Some(item) = rb.next() else {
            break;
        };
        handled += 1;
        if let Some(pid) = kernel::exec_pid(&item) {
            tracer.on_exec(pid);
        }
        if let Some((pid, id)) = kernel::socket_replaced(&item) {
            policy::forget_socket(decisions, pid, id);
        }
        match decryption.as_mut() {
            Some(d) => d.handle_record(pipeline, &item),
            None => pipeline.handle_record(&item),
        }
        let new = decisions.len();
        decisions.extend(pipeline.drain_decisions());
        for change in pipeline.drain_bind_changes() {
            // Not applied: the object's plaintext keeps coming keyed by the object, which the
            // pipeline maps to its socket all the same (only unminimised).
            let _ = tracer.apply_binding(&change);
            if let Some(rec) = recording.as_mut() {
                match change {
                    BindChange::Bound { meta, tls_obj, fd } => rec
                        .recorder
                        .bound(&meta, tls_obj, fd, &mut rec.file)
                        .context("writing the recording")?,
                    BindChange::Unbound { pid, tls_obj } => rec.recorder.unbound(pid, tls_obj),
                }
            }
        }
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
pub async fn trace(opts: LiveOptions, mut output: Outputs) -> Result<ExitCode> {
    let clock = Clock::now();
    let mut recording = match opts.record {
        Some(file) => {
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
    if let (Some(addr), Some(metrics)) = (opts.metrics, output.metrics.clone()) {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("cannot serve metrics on {addr}"))?;
        tokio::spawn(async move {
            if let Err(e) = doh_trace::output::metrics::serve_listener(listener, metrics).await {
                eprintln!("doh-trace: metrics server stopped: {e}");
            }
        });
    }
    let started = std::time::Instant::now();
    let mut tracer = Tracer::start(
        &opts.dns_ports,
        &opts.stacks,
        opts.scope.clone(),
        opts.ring_bytes,
    )?;
    if !opts.quiet {
        for w in &tracer.report.warnings {
            eprintln!("doh-trace: warning: {}", escape_controls(w));
        }
    }
    show_hook_messages(&mut tracer, opts.quiet);
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
    pipeline.set_resolvers(opts.resolvers);
    pipeline.set_memory_budget(opts.memory_budget);
    let mut sigint = signal(SignalKind::interrupt())?;
    let mut sigterm = signal(SignalKind::terminate())?;
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    // A second missed under load is not made up for with a burst of ticks.
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut backlog = false;
    let mut drain = DrainTimer::default();
    let mut shown = Shown::default();
    let mut decisions: Vec<CaptureDecision> = Vec::new();
    let (mut keys, mut decryption, _fifo) = match opts.keylog {
        Some(k) => {
            let (rx, fifo) = k.spawn_reader().context("reading the key log")?;
            let mut decryption = LiveDecryption::default();
            decryption.set_memory_budget(opts.memory_budget);
            (Some(rx), Some(decryption), Some(fifo))
        }
        None => (None, None, None),
    };

    eprintln!(
        "ready: {} uprobes on {} files, {} tracepoints (in {:.1} s)",
        tracer.hooks.uprobes,
        tracer.hooks.files(),
        tracer.report.tracepoints,
        started.elapsed().as_secs_f64()
    );

    loop {
        // In this order: a stop first, then the tick and key text, then the ring, so that a
        // ring that never runs empty cannot hold them up.
        let step = tokio::select! {
            biased;
            _ = sigint.recv() => Step::Stop,
            _ = sigterm.recv() => Step::Stop,
            _ = tick.tick() => Step::Second,
            Some(text) = async { keys.as_mut()?.recv().await }, if keys.is_some() => {
                Step::Keys(text)
            }
            () = std::future::ready(()), if backlog => Step::Backlog,
            guard = ring.readable_mut() => {
                // Cleared before reading: a record submitted meanwhile makes it ready again.
                guard?.clear_ready();
                Step::Woken
            }
            _ = drain.tick() => Step::Timed,
        };
        if matches!(step, Step::Backlog) {
            // The branch above is always ready: let the runtime's other tasks (the metrics
            // server) run between two budgets, or a backlog that never ends would starve them.
            tokio::task::yield_now().await;
        }
        let timed = matches!(step, Step::Timed);
        let mut budget = RING_BUDGET;
        loop {
            let records = handle_waiting(
                ring.get_mut(),
                &mut tracer,
                &mut pipeline,
                &mut decryption,
                &mut decisions,
                &mut recording,
                &facts,
                budget,
            )?;
            budget -= records;
            backlog = budget == 0;
            if backlog || !drain.after_read(records, timed, |on| tracer.set_draining(on))? {
                break;
            }
        }
        if let (Step::Keys(text), Some(d)) = (&step, decryption.as_mut()) {
            d.add_keys(&mut pipeline, text);
            decisions.extend(pipeline.drain_decisions());
        }
        if matches!(step, Step::Second) {
            tracer.tick_hooks();
            pipeline.tick(monotonic_ns());
            if let Some(d) = decryption.as_mut() {
                d.tick(&mut pipeline, monotonic_ns());
            }
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
            tracer.sweep_maps(&kernel);
            if !opts.quiet {
                shown.report_new_problems(
                    &kernel,
                    &pipeline,
                    decryption.as_ref(),
                    output.stdout_dropped(),
                );
            }
            if let Some(m) = &output.metrics {
                let mut m = m.lock().unwrap_or_else(|e| e.into_inner());
                m.set_counters(
                    pipeline.counters(),
                    kernel.get(Stat::RingbufDrops),
                    kernel.get(Stat::TruncatedBytes),
                    kernel.get(Stat::ReadErrors),
                );
                m.set_output_dropped_lines(output.stdout_dropped());
                m.set_memory(pipeline.memory_held(), pipeline.memory().limit);
                m.set_map_evictions(kernel.map_evictions());
            }
            output.flush_files().context("writing the pcapng file")?;
            if let Some(rec) = recording.as_mut() {
                rec.file.flush().context("writing the recording")?;
            }
        }
        if let Some(d) = decryption.as_mut() {
            // After the recording saw them: it keeps what the pipeline decided.
            d.kernel_decisions(&pipeline, &mut decisions);
        }
        policy::apply(&decisions, &mut tracer);
        decisions.clear();
        show_hook_messages(&mut tracer, opts.quiet);
        if !output
            .drain(pipeline.drain_records())
            .context("writing to stdout")?
        {
            return Ok(ExitCode::SUCCESS);
        }
        if matches!(step, Step::Stop) {
            break;
        }
    }
    let kernel = tracer.kernel_counters().unwrap_or_default();
    if !opts.quiet {
        // The kernel takes a grace period to remove each probe (see loader/detach.rs).
        eprintln!(
            "doh-trace: stopping: detaching {} uprobes and {} tracepoints",
            tracer.hooks.uprobes, tracer.report.tracepoints
        );
    }
    drop(tracer);
    // Lookups are written while the probes detach; then the reader gets one more second.
    let stdout_dropped = output.finish_stdout(STDOUT_PATIENCE);
    output.flush_files().context("writing the pcapng file")?;
    if let Some(mut rec) = recording {
        rec.file.flush().context("writing the recording")?;
        if !opts.quiet {
            eprintln!(
                "doh-trace: recording complete; {} events of connections not classified as DNS were not written, {} of DNS connections were written redacted to their DNS exchanges",
                rec.recorder.withheld_events, rec.recorder.redacted_events
            );
        }
    }
    if !opts.quiet {
        eprintln!(
            "doh-trace: stopped, all probes detached: {}",
            pipeline.counters()
        );
        eprintln!(
            "doh-trace: {} TLS library calls captured by the uprobes",
            kernel.get(Stat::TlsCalls)
        );
        let memory = pipeline.memory();
        let c = pipeline.counters();
        let mib = |b: u64| b as f64 / f64::from(1 << 20);
        eprintln!(
            "doh-trace: decoders held at most {:.1} MiB at once (memory budget {:.0} MiB){}",
            mib(memory.peak as u64),
            mib(memory.limit as u64),
            match c.memory_dropped_conns {
                0 => String::new(),
                n => format!(
                    "; {n} connections holding {:.1} MiB were dropped over it",
                    mib(c.memory_dropped_bytes)
                ),
            }
        );
        if kernel.get(Stat::UnknownFd) > 0 {
            // Not a loss by itself: the memory-BIO binding finds their socket from the TLS
            // records (what it cannot find is counted among the problems below).
            eprintln!(
                "doh-trace: {} of them on a socket the kernel side did not know (matched by their TLS records)",
                kernel.get(Stat::UnknownFd)
            );
        }
        for (label, n) in kernel.problems() {
            eprintln!("doh-trace: {n} {label}");
        }
        if stdout_dropped > 0 {
            eprintln!("doh-trace: {stdout_dropped} {STDOUT_DROPPED}");
        }
        if let Some(d) = &decryption {
            eprintln!(
                "doh-trace: key log: {} ({} lines read, {} secrets added; waiting records held \
                 at most {:.1} MiB, budget {:.0} MiB)",
                d.counters(),
                d.key_stats().lines,
                d.key_stats().added,
                mib(d.memory().peak as u64),
                mib(d.memory().limit as u64),
            );
        }
        output.print_summary();
    }
    Ok(ExitCode::SUCCESS)
}

/// Tells the user what the hooks did (hooked, released, not covered) since last time.
fn show_hook_messages(tracer: &mut Tracer, quiet: bool) {
    for line in tracer.hooks.messages.drain(..) {
        if !quiet {
            eprintln!("doh-trace: {}", escape_controls(&line));
        }
    }
}

/// Problem counters already shown, so each status line says what is new.
#[derive(Default)]
struct Shown {
    lines: Vec<(&'static str, u64)>,
}

impl Shown {
    fn report_new_problems(
        &mut self,
        kernel: &KernelCounters,
        pipeline: &Pipeline,
        decryption: Option<&LiveDecryption>,
        stdout_dropped: u64,
    ) {
        let now: Vec<(&'static str, u64)> = kernel
            .problems()
            .into_iter()
            .chain(pipeline.counters().problems())
            .chain((stdout_dropped > 0).then_some((STDOUT_DROPPED, stdout_dropped)))
            .chain(
                decryption
                    .map(|d| d.counters().problems())
                    .unwrap_or_default(),
            )
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
