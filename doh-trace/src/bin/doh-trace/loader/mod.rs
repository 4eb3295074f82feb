//! Loading the eBPF object, attaching every probe in the table, and reading the kernel's
//! counters. Dropping the returned [`Tracer`] detaches everything.

mod detach;
pub mod hooks;
mod map_sweep;

use std::path::Path;

use anyhow::{anyhow, bail, Context as _, Result};
use aya::{
    maps::{Array, HashMap as BpfHashMap, MapData, PerCpuArray, RingBuf},
    programs::{trace_point::TracePointLinkId, ProgramError, TracePoint, UProbe},
    Ebpf, EbpfLoader,
};
use doh_trace_common::{
    names::{globals, maps, programs},
    Capture, LruMap, Stat, TlsObjKey, LRU_MAP_COUNT, SCOPE_INLINE_PIDS, STAT_SLOTS, TRACEPOINTS,
};

use doh_trace::{
    conn::{binding::BindChange, policy::KernelCapture},
    hooks::table::{optional_program_stack, Stack},
};
use hooks::{HookScope, Hooks};
use map_sweep::MapSweep;

/// The eBPF object produced by `cargo xtask build-ebpf` (empty if it was missing at build time).
static EBPF_OBJECT: &[u8] =
    aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/doh-trace.bpf.o"));

/// What got attached, for the start-up report.
#[derive(Debug, Default)]
pub struct AttachReport {
    pub tracepoints: usize,
    /// Environment limitations worth telling the user.
    pub warnings: Vec<String>,
}

/// A loaded, attached tracer.
pub struct Tracer {
    ebpf: Ebpf,
    pub report: AttachReport,
    /// The uprobes on TLS libraries and executables.
    pub hooks: Hooks,
    /// The syscall and scheduler tracepoints' links.
    tracepoints: Vec<(&'static str, TracePointLinkId)>,
    /// Removes dead processes' entries from the LRU maps.
    sweep: MapSweep,
    /// Entries this process created and removed in the LRU maps (TLS_FDS, CAPTURE), counted
    /// beside the kernel's (indexed by [`LruMap`]).
    user_lru: [(u64, u64); LRU_MAP_COUNT as usize],
    /// Entries each LRU map is known to have evicted (see [`KernelCounters::entries`]).
    evicted: [u64; LRU_MAP_COUNT as usize],
}

impl Drop for Tracer {
    /// Detaches every probe, side by side (see [`detach`]), before the programs and maps go.
    fn drop(&mut self) {
        let mut links: Vec<detach::OwnedLink> = Vec::new();
        for (name, id) in self.tracepoints.drain(..) {
            let prog = self
                .ebpf
                .program_mut(name)
                .and_then(|p| <&mut TracePoint>::try_from(p).ok());
            if let Some(link) = prog.and_then(|p| p.take_link(id).ok()) {
                links.push(Box::new(link));
            }
        }
        self.hooks.detach_everything(&mut self.ebpf, links);
    }
}

/// Checks that this process can load eBPF programs at all, with advice if not. Returns
/// warnings about things that are not needed now but limit what can be traced.
pub fn preflight() -> Result<Vec<String>> {
    let mut warnings = Vec::new();
    if EBPF_OBJECT.is_empty() {
        bail!("this doh-trace was built without its eBPF object: run `cargo xtask build-ebpf`, then rebuild");
    }
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        bail!("doh-trace needs root (CAP_BPF and CAP_PERFMON): run it with sudo");
    }
    if !Path::new("/sys/kernel/tracing/events/syscalls").exists()
        && !Path::new("/sys/kernel/debug/tracing/events/syscalls").exists()
    {
        // aya finds tracefs itself; mount it if neither place has it.
        let _ = std::process::Command::new("mount")
            .args(["-t", "tracefs", "nodev", "/sys/kernel/tracing"])
            .status();
    }
    if !Path::new("/sys/kernel/btf/vmlinux").exists() {
        warnings.push(
            "kernel has no BTF (/sys/kernel/btf/vmlinux): the syscall programs call \
             bpf_get_current_task_btf, which needs it (CONFIG_DEBUG_INFO_BTF=y); expect them \
             to be refused"
                .to_string(),
        );
    }
    Ok(warnings)
}

impl Tracer {
    /// Loads the object (excluding this process from tracing), tells it which ports carry
    /// plain DNS, attaches the tracepoints, and hooks the `stacks` in the processes of `scope`.
    /// The ring buffer gets `ring_bytes` (a power of two of at least a page).
    pub fn start(
        dns_ports: &[u16],
        stacks: &[Stack],
        scope: HookScope,
        ring_bytes: u32,
    ) -> Result<Tracer> {
        let warnings = preflight()?;
        let tgid = std::process::id();
        let named = u32::try_from(scope.pids.len()).context("too many --pid")?;
        // Up to SCOPE_INLINE_PIDS named processes are compared inline by the syscall programs;
        // more go to the SCOPE_TGIDS map.
        let fit_inline = scope.pids.len() <= SCOPE_INLINE_PIDS;
        let mut inline_pids = [0u32; SCOPE_INLINE_PIDS];
        if fit_inline {
            inline_pids[..scope.pids.len()].copy_from_slice(&scope.pids);
        }
        let mut ebpf = EbpfLoader::new()
            .override_global(globals::TRACER_TGID, &tgid, true)
            .override_global(globals::SCOPE_PID_COUNT, &named, true)
            .override_global(globals::SCOPE_PIDS, &inline_pids, true)
            .map_max_entries(maps::EVENTS, ring_bytes)
            .load(EBPF_OBJECT)
            .map_err(|e| load_error_advice(anyhow!(e)))?;
        let mut report = AttachReport {
            warnings,
            ..AttachReport::default()
        };
        {
            let mut ports: BpfHashMap<&mut MapData, u16, u8> =
                BpfHashMap::try_from(map_mut(&mut ebpf, maps::DNS_PORTS)?)?;
            for &port in dns_ports {
                ports
                    .insert(port, 1, 0)
                    .with_context(|| format!("adding DNS port {port}"))?;
            }
        }
        if !fit_inline {
            // More --pid than fit inline: the syscall programs look the processes up here.
            let mut tgids: BpfHashMap<&mut MapData, u32, u8> =
                BpfHashMap::try_from(map_mut(&mut ebpf, maps::SCOPE_TGIDS)?)?;
            for &pid in &scope.pids {
                tgids
                    .insert(pid, 1, 0)
                    .with_context(|| format!("scoping to pid {pid}"))?;
            }
        }

        let mut tracepoints = Vec::new();
        for tp in TRACEPOINTS {
            let prog: &mut TracePoint = program(&mut ebpf, tp.name)?.try_into()?;
            prog.load().map_err(|e| {
                let (why, tail) = refusal(tp.name, &e);
                anyhow!(with_verifier_tail(
                    format!("{why} (a required syscall program)"),
                    &tail
                ))
            })?;
            let link = prog
                .attach(tp.category, tp.name)
                .with_context(|| format!("attaching tracepoint {}:{}", tp.category, tp.name))?;
            tracepoints.push((tp.name, link));
            report.tracepoints += 1;
        }

        // A uprobe program the verifier refuses turns its TLS stack off, not the tracer.
        let mut stacks = stacks.to_vec();
        let mut off = Vec::new();
        for name in programs::ALL {
            let stack = optional_program_stack(name)
                .ok_or_else(|| anyhow!("program {name} belongs to no TLS stack"))?;
            if off.contains(&stack) {
                continue;
            }
            let prog: &mut UProbe = program(&mut ebpf, name)?.try_into()?;
            if let Err(e) = prog.load() {
                let (why, tail) = refusal(name, &e);
                report.warnings.push(with_verifier_tail(
                    format!("{} hooks off: {why}", stack.name()),
                    &tail,
                ));
                off.push(stack);
                stacks.retain(|s| *s != stack);
            }
        }
        let hooks = Hooks::start(&mut ebpf, &stacks, scope);
        if hooks.files() == 0 {
            report.warnings.push(
                "no TLS library or executable could be hooked: only classic DNS and opaque \
                 (encrypted, unhooked) DoH/DoT connections will be seen"
                    .to_string(),
            );
        }
        let sweep = MapSweep::start(&ebpf)?;
        Ok(Tracer {
            ebpf,
            report,
            hooks,
            tracepoints,
            sweep,
            user_lru: Default::default(),
            evicted: Default::default(),
        })
    }

    /// A process exec'd: hook what its new program uses.
    pub fn on_exec(&mut self, pid: u32) {
        self.hooks.on_exec(&mut self.ebpf, pid);
    }

    /// Periodic work of the hooks: rescans of new processes, releasing unused files.
    pub fn tick_hooks(&mut self) {
        self.hooks.tick(&mut self.ebpf);
    }

    /// Takes the ring buffer (once).
    pub fn take_events(&mut self) -> Result<RingBuf<aya::maps::MapData>> {
        let map = self
            .ebpf
            .take_map(maps::EVENTS)
            .ok_or_else(|| missing_map(maps::EVENTS))?;
        Ok(RingBuf::try_from(map)?)
    }

    /// Tells the eBPF side whether the tracer drains the ring buffer on its own timer: only
    /// then may records wait for a batch instead of waking it.
    pub fn set_draining(&mut self, on: bool) -> Result<()> {
        let mut draining: Array<&mut MapData, u32> =
            Array::try_from(map_mut(&mut self.ebpf, maps::DRAINING)?)?;
        draining.set(0, u32::from(on), 0)?;
        Ok(())
    }

    /// Tells the eBPF side that a TLS object's later calls are socket `fd`'s (its plaintext is
    /// then minimised by the socket's capture policy, as an object's without a socket cannot
    /// be), or are no socket's any more. An object or process gone already is not an error.
    pub fn apply_binding(&mut self, change: &BindChange) -> Result<()> {
        let (pid, tls_obj, fd) = match *change {
            BindChange::Bound { meta, tls_obj, fd } => (meta.pid, tls_obj, Some(fd)),
            BindChange::Unbound { pid, tls_obj } => (pid, tls_obj, None),
        };
        let key = TlsObjKey {
            tgid: pid,
            _pad: 0,
            tls_obj,
        };
        let mut fds: BpfHashMap<&mut MapData, TlsObjKey, i32> =
            BpfHashMap::try_from(map_mut(&mut self.ebpf, maps::TLS_FDS)?)?;
        let tally = &mut self.user_lru[LruMap::TlsFds as usize];
        match fd {
            Some(fd) => {
                let new = fds.get(&key, 0).is_err();
                fds.insert(key, fd, 0)?;
                tally.0 += u64::from(new);
            }
            None => {
                if fds.remove(&key).is_ok() {
                    tally.1 += 1;
                }
            }
        }
        Ok(())
    }

    /// The kernel-side counters, summed over CPUs, and the LRU maps' evictions found since
    /// last time added to the known ones.
    pub fn kernel_counters(&mut self) -> Result<KernelCounters> {
        let map = self
            .ebpf
            .map(maps::STATS)
            .ok_or_else(|| missing_map(maps::STATS))?;
        let stats: PerCpuArray<&MapData, u64> = PerCpuArray::try_from(map)?;
        let mut values = [0u64; STAT_SLOTS as usize];
        for (i, v) in values.iter_mut().enumerate() {
            *v = stats.get(&(i as u32), 0)?.iter().sum();
        }
        // Each created slot is read before its removed slot, so a map's size is never
        // overstated by what changed while reading.
        for m in LruMap::ALL {
            let (created, removed) = self.user_lru[m as usize];
            values[m.created_slot() as usize] += created;
            values[m.removed_slot() as usize] += removed + self.sweep.removed(m);
        }
        let counters = KernelCounters::new(values, self.evicted);
        self.evicted = counters.evicted;
        Ok(counters)
    }

    /// Asks for the LRU maps that are filling up to be swept of dead processes' entries.
    pub fn sweep_maps(&mut self, counters: &KernelCounters) {
        self.sweep
            .maybe_sweep(|m| counters.entries(m), std::time::Instant::now());
    }
}

impl KernelCapture for Tracer {
    /// Sets policy bits for (pid, fd) in the CAPTURE map, only where the kernel still has the
    /// socket's entry (made by its first bytes, removed at its close or when a new socket
    /// takes the descriptor): never an entry for a socket that is gone, which the next socket
    /// on that descriptor would inherit. (An entry the LRU map evicted is not made again
    /// either: the socket's bytes are then copied as unclassified, counted.)
    fn set_policy(&mut self, pid: u32, fd: i32, policy: u32) -> Result<()> {
        let mut captures: BpfHashMap<&mut MapData, u64, Capture> =
            BpfHashMap::try_from(map_mut(&mut self.ebpf, maps::CAPTURE)?)?;
        let key = (u64::from(pid) << 32) | u64::from(fd as u32);
        let Ok(mut cap) = captures.get(&key, 0) else {
            return Ok(());
        };
        cap.policy |= policy;
        // BPF_EXIST (update only; linux/bpf.h): not made again if the close removed it since.
        const BPF_EXIST: u64 = 2;
        captures.insert(key, cap, BPF_EXIST)?;
        Ok(())
    }
}

/// Counters kept by the eBPF programs (with the LRU maps' entries this process created and
/// removed added in), and the evictions of the LRU maps found so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KernelCounters {
    values: [u64; STAT_SLOTS as usize],
    evicted: [u64; LRU_MAP_COUNT as usize],
}

impl Default for KernelCounters {
    fn default() -> Self {
        KernelCounters {
            values: [0; STAT_SLOTS as usize],
            evicted: [0; LRU_MAP_COUNT as usize],
        }
    }
}

impl KernelCounters {
    /// The counters read (`STATS` slots), with the evictions known before: a map never holds
    /// more than its capacity, so whatever the counts put beyond it was evicted too.
    fn new(values: [u64; STAT_SLOTS as usize], known: [u64; LRU_MAP_COUNT as usize]) -> Self {
        let mut counters = KernelCounters {
            values,
            evicted: known,
        };
        for m in LruMap::ALL {
            let beyond = counters.entries(m).saturating_sub(u64::from(m.capacity()));
            counters.evicted[m as usize] += beyond;
        }
        counters
    }

    /// One counter.
    pub fn get(&self, stat: Stat) -> u64 {
        self.values[stat as usize]
    }

    /// Entries `map` holds as far as the counts tell: created − removed − evicted. An LRU map
    /// evicts without a count, so this is at least its size; the tracer adds to the evictions
    /// whatever it puts beyond the capacity, and it is exact while the map is full.
    pub fn entries(&self, map: LruMap) -> u64 {
        self.values[map.created_slot() as usize]
            .saturating_sub(self.values[map.removed_slot() as usize])
            .saturating_sub(self.evicted[map as usize])
    }

    /// Entries `map` evicted, at least (exact while it is full); never goes down.
    pub fn evicted(&self, map: LruMap) -> u64 {
        self.evicted[map as usize]
    }

    /// (map name, entries evicted at least) of every LRU map, for the metrics.
    pub fn map_evictions(&self) -> Vec<(&'static str, u64)> {
        LruMap::ALL
            .iter()
            .map(|&m| (m.name(), self.evicted(m)))
            .collect()
    }

    /// Counters that mean data was lost, with labels.
    pub fn problems(&self) -> Vec<(&'static str, u64)> {
        [
            (
                "events lost (ring buffer full)",
                self.get(Stat::RingbufDrops),
            ),
            (
                "bytes not copied (calls over 64 KiB, iovec entries over 4 KiB or past 8, datagrams over 4 KiB)",
                self.get(Stat::TruncatedBytes),
            ),
            ("plaintext reads failed", self.get(Stat::ReadErrors)),
            (
                "bytes of still-unclassified connections not copied",
                self.get(Stat::UnclassifiedBytes),
            ),
            (
                "vectored socket calls (or mmsg messages) not copied",
                self.get(Stat::VectoredIoSkipped),
            ),
        ]
        .into_iter()
        .chain(LruMap::ALL.map(|m| (m.evicted_label(), self.evicted(m))))
        .filter(|(_, n)| *n > 0)
        .collect()
    }
}

fn missing_map(name: &str) -> anyhow::Error {
    anyhow!("map {name} missing from the eBPF object")
}

fn map_mut<'a>(ebpf: &'a mut Ebpf, name: &str) -> Result<&'a mut aya::maps::Map> {
    ebpf.map_mut(name).ok_or_else(|| missing_map(name))
}

fn program<'a>(ebpf: &'a mut Ebpf, name: &str) -> Result<&'a mut aya::programs::Program> {
    ebpf.program_mut(name)
        .ok_or_else(|| anyhow!("program {name} missing from the eBPF object"))
}

/// How many of the verifier log's last lines a refusal shows.
const VERIFIER_TAIL_LINES: usize = 6;

/// Why the kernel refused to load `name`: one line, and the verifier log's last lines (where
/// it says what it stopped at) when it gave one.
fn refusal(name: &str, e: &ProgramError) -> (String, Vec<String>) {
    match e {
        ProgramError::LoadError {
            io_error,
            verifier_log,
        } => describe_refusal(name, io_error, &verifier_log.to_string()),
        other => (
            format!("loading program {name} failed: {other}"),
            Vec::new(),
        ),
    }
}

/// The refusal of `name` with the load's error and the verifier's log.
fn describe_refusal(name: &str, error: &dyn std::fmt::Display, log: &str) -> (String, Vec<String>) {
    (
        format!("the kernel refused program {name} ({error})"),
        log_tail(log, VERIFIER_TAIL_LINES),
    )
}

/// A refusal's line followed by the verifier's last lines, indented.
fn with_verifier_tail(mut text: String, tail: &[String]) -> String {
    for line in tail {
        text.push_str("\n  verifier: ");
        text.push_str(line);
    }
    text
}

/// The last `n` non-blank lines of a verifier log, without the statistics line aya asks for
/// (`processed N insns …`) when something else precedes it.
fn log_tail(log: &str, n: usize) -> Vec<String> {
    let lines: Vec<&str> = log
        .lines()
        .map(str::trim_end)
        .filter(|l| !l.trim().is_empty())
        .collect();
    let lines = match lines.split_last() {
        Some((last, rest)) if last.starts_with("processed ") && !rest.is_empty() => rest,
        _ => &lines[..],
    };
    lines[lines.len().saturating_sub(n)..]
        .iter()
        .map(|l| (*l).to_string())
        .collect()
}

fn load_error_advice(e: anyhow::Error) -> anyhow::Error {
    let text = format!("{e:#}");
    if text.contains("Operation not permitted") || text.contains("EPERM") {
        e.context(
            "loading the eBPF object was refused: doh-trace needs root (CAP_BPF, CAP_PERFMON)",
        )
    } else {
        e.context("loading the eBPF object (needs Linux ≥ 5.15 with BTF and BPF ring buffers)")
    }
}

#[cfg(test)]
mod tests {
    use object::{Object as _, ObjectSymbol as _};

    use super::*;

    /// `STATS` slots with `created`/`removed` entries of SOCK_TYPES.
    fn sock_types(created: u64, removed: u64) -> [u64; STAT_SLOTS as usize] {
        let mut v = [0; STAT_SLOTS as usize];
        v[LruMap::SockTypes.created_slot() as usize] = created;
        v[LruMap::SockTypes.removed_slot() as usize] = removed;
        v
    }

    #[test]
    fn evictions_are_what_the_counts_put_beyond_a_maps_capacity_and_never_go_down() {
        let cap = u64::from(LruMap::SockTypes.capacity());
        let none = [0; LRU_MAP_COUNT as usize];
        let half = KernelCounters::new(sock_types(cap / 2, 0), none);
        assert_eq!(half.entries(LruMap::SockTypes), cap / 2);
        assert_eq!(half.evicted(LruMap::SockTypes), 0);
        assert!(half.problems().is_empty());

        // 4464 more entries created than the map holds: as many evicted.
        let full = KernelCounters::new(sock_types(cap + 4464, 0), half.evicted);
        assert_eq!(full.evicted(LruMap::SockTypes), 4464);
        assert_eq!(full.entries(LruMap::SockTypes), cap);
        assert_eq!(full.problems(), [(LruMap::SockTypes.evicted_label(), 4464)]);
        assert_eq!(
            full.map_evictions()[LruMap::SockTypes as usize],
            ("SOCK_TYPES", 4464)
        );

        // The survivors removed (the sweep, closes): the map is empty, the evictions stay,
        // and new entries are counted from empty.
        let swept = KernelCounters::new(sock_types(cap + 4464 + 10, cap), full.evicted);
        assert_eq!(swept.evicted(LruMap::SockTypes), 4464);
        assert_eq!(swept.entries(LruMap::SockTypes), 10);
        // Other maps are untouched.
        assert_eq!(swept.evicted(LruMap::Capture), 0);
    }

    #[test]
    fn a_refusal_shows_the_verifier_logs_last_lines() {
        let log = "0: R1=ctx() R10=fp0\n1: (85) call bpf_task_pt_regs#175\n\
                   unknown func bpf_task_pt_regs#175\n\nprocessed 2 insns (limit 1000000)\n";
        assert_eq!(
            log_tail(log, 2),
            [
                "1: (85) call bpf_task_pt_regs#175",
                "unknown func bpf_task_pt_regs#175"
            ]
        );
        assert_eq!(log_tail("processed 0 insns", 6), ["processed 0 insns"]);
        assert!(log_tail("", 6).is_empty());
        let (why, tail) = describe_refusal(
            "go_tls_return",
            &std::io::Error::from_raw_os_error(libc::EINVAL),
            log,
        );
        assert!(
            why.starts_with("the kernel refused program go_tls_return ("),
            "{why}"
        );
        assert_eq!(tail.last().unwrap(), "unknown func bpf_task_pt_regs#175");
    }

    #[test]
    fn the_embedded_object_was_built_from_the_sources_in_the_tree() {
        let built = env!("DOH_TRACE_EBPF_BUILT_FROM");
        let layout = doh_trace_ebpf_build::Layout::new(env!("DOH_TRACE_WORKSPACE"));
        let now = doh_trace_ebpf_build::sources_hash(&layout).expect("eBPF sources readable");
        if built == "unknown" {
            if std::env::var("DOH_TRACE_E2E").as_deref() == Ok("require") {
                panic!(
                    "the embedded eBPF object was not built by this build (DOH_TRACE_EBPF_OBJECT?)"
                );
            }
            eprintln!("skipped: the embedded eBPF object was not built from this tree");
            return;
        }
        assert_eq!(
            built,
            format!("{now:016x}"),
            "the embedded eBPF object is older than its sources: rebuild without \
             DOH_TRACE_SKIP_EBPF_BUILD (or run `cargo xtask build-ebpf`)"
        );
    }

    #[test]
    fn the_embedded_object_has_every_name_the_loader_uses() {
        if EBPF_OBJECT.is_empty() {
            if std::env::var("DOH_TRACE_E2E").as_deref() == Ok("require") {
                panic!("built without the eBPF object (DOH_TRACE_SKIP_EBPF_BUILD?)");
            }
            eprintln!("skipped: built without the eBPF object");
            return;
        }
        let elf = object::File::parse(EBPF_OBJECT).expect("the eBPF object is an ELF file");
        let symbols: Vec<&str> = elf.symbols().filter_map(|s| s.name().ok()).collect();
        let lru = LruMap::ALL.map(LruMap::name);
        let wanted = maps::ALL
            .iter()
            .chain(&lru)
            .chain(&globals::ALL)
            .chain(&programs::ALL)
            .copied()
            .chain(TRACEPOINTS.iter().map(|t| t.name));
        for name in wanted {
            assert!(symbols.contains(&name), "{name} is not in the eBPF object");
        }
    }
}
