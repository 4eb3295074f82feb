//! Which files carry uprobes, for which processes: TLS libraries and executables found in
//! running processes at start and in processes started later, hooked once per file identity
//! (or once per file and process when the user filters by `--pid`, so that other
//! processes pay no uprobe cost), and released when no process uses them any more.
//!
//! Every file is opened once (`doh_trace::hooks::procs`), inspected and its functions' offsets
//! read from that descriptor, and the uprobes attached by offset through it
//! (`/proc/self/fd/N`): what is hooked is the file that was looked at, whatever the process
//! exec'd or mapped since.

use std::{
    collections::{HashMap, HashSet, VecDeque},
    num::NonZeroU32,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use anyhow::{anyhow, Context as _, Result};
use aya::{
    programs::{
        uprobe::{UProbeAttachLocation, UProbeLinkId, UProbeScope},
        UProbe,
    },
    Ebpf,
};

use super::detach::{Detacher, OwnedLink};
use doh_trace::hooks::{
    executable::{self, Carried, Resolved},
    go_binary::GoTlsProbes,
    identity::HookId,
    procs::{self, ProcFile},
    table::{Stack, SymbolStack, GO_READ_ENTER, GO_RETURN, GO_WRITE_ENTER, SYMBOL_STACKS},
};

/// After a process starts, its maps are read again after these delays (libraries are mapped by
/// the dynamic loader after exec, and some later by dlopen).
const RESCAN_AFTER: &[Duration] = &[
    Duration::from_millis(50),
    Duration::from_millis(500),
    Duration::from_secs(3),
];
/// Most executables remembered as carrying nothing to hook.
const MAX_INSPECTED: usize = 4096;
/// How often hooks of files no process uses any more are looked for.
const SWEEP_EVERY: Duration = Duration::from_secs(10);

/// Which processes get uprobes.
#[derive(Debug, Clone, Default)]
pub struct HookScope {
    /// Only these processes (empty: every process).
    pub pids: Vec<u32>,
}

impl HookScope {
    /// Whether every process is hooked (hooks are per file, not per process).
    fn everyone(&self) -> bool {
        self.pids.is_empty()
    }
}

/// One stack's uprobes on one file, for every process (None) or one.
type HookKey = (HookId, Option<u32>, Stack);

/// The uprobes on one file (for one process, when hooks are per process).
struct Attachment {
    /// The file as users know it.
    shown: String,
    /// What was hooked there, as told to the user.
    what: String,
    links: Vec<(&'static str, UProbeLinkId)>,
    /// Processes seen using the file.
    users: HashSet<u32>,
    /// A system library hooked for every process: stays until the tracer stops.
    permanent: bool,
}

/// A process whose TLS could not be hooked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Uncovered {
    pub pid: u32,
    pub comm: String,
    pub file: String,
    pub what: String,
    pub why: String,
}

/// The hooks in place and how they change.
pub struct Hooks {
    stacks: Vec<Stack>,
    scope: HookScope,
    proc: PathBuf,
    attached: HashMap<HookKey, Attachment>,
    /// The enabled stacks' libraries on the tracer's own system, opened once.
    system_libs: Vec<(&'static SymbolStack, ProcFile)>,
    /// Executables inspected that carry nothing to hook (or nothing hookable), and the order
    /// they were inspected in (the oldest are forgotten beyond [`MAX_INSPECTED`]).
    inspected: HashMap<HookId, Option<(String, String)>>,
    inspected_order: VecDeque<HookId>,
    uncovered: Vec<Uncovered>,
    rescans: Vec<(Instant, u32)>,
    last_sweep: Instant,
    /// Lines for the user: what was hooked or released, and what could not be.
    pub messages: Vec<String>,
    /// uprobes attached now.
    pub uprobes: usize,
    /// Closes released links off the event loop.
    detacher: Detacher,
}

impl Hooks {
    /// Hooks the enabled stacks' system libraries (for everyone, or per matching process) and
    /// everything running processes use.
    pub fn start(ebpf: &mut Ebpf, stacks: &[Stack], scope: HookScope) -> Hooks {
        let mut hooks = Hooks {
            stacks: stacks.to_vec(),
            scope,
            proc: PathBuf::from("/proc"),
            attached: HashMap::new(),
            system_libs: Vec::new(),
            inspected: HashMap::new(),
            inspected_order: VecDeque::new(),
            uncovered: Vec::new(),
            rescans: Vec::new(),
            last_sweep: Instant::now(),
            messages: Vec::new(),
            uprobes: 0,
            detacher: Detacher::default(),
        };
        for stack in hooks.symbol_stacks().collect::<Vec<_>>() {
            for lib in procs::system_libraries(stack.sonames) {
                hooks.system_libs.push((stack, lib));
            }
        }
        if hooks.scope.everyone() {
            for (stack, lib) in hooks.system_libs.clone() {
                hooks.hook_library(ebpf, &lib, stack, None, None, true);
            }
        }
        let me = std::process::id();
        for pid in procs::pids(&hooks.proc) {
            if pid != me {
                hooks.cover(ebpf, pid, true);
            }
        }
        // One line per file, naming the processes that run it.
        let mut by_file: Vec<(&Uncovered, Vec<String>)> = Vec::new();
        for u in &hooks.uncovered {
            let who = format!("{} ({})", u.pid, u.comm);
            match by_file.iter_mut().find(|(f, _)| f.file == u.file) {
                Some((_, pids)) => pids.push(who),
                None => by_file.push((u, vec![who])),
            }
        }
        let lines: Vec<String> = by_file
            .iter()
            .map(|(u, pids)| {
                format!(
                    "not covered: {} in {}: {} (pid {})",
                    u.what,
                    u.file,
                    u.why,
                    pids.join(", ")
                )
            })
            .collect();
        hooks.messages.extend(lines);
        hooks
    }

    /// The number of (file, stack) pairs with uprobes (per process when hooks are).
    pub fn files(&self) -> usize {
        self.attached.len()
    }

    fn symbol_stacks(&self) -> impl Iterator<Item = &'static SymbolStack> + '_ {
        SYMBOL_STACKS
            .iter()
            .copied()
            .filter(|s| self.stacks.contains(&s.stack))
    }

    /// A process exec'd: hook what its new program carries, now and once its libraries are
    /// mapped.
    pub fn on_exec(&mut self, ebpf: &mut Ebpf, pid: u32) {
        // Per-process hooks stay: a perf uprobe bound to a process follows it across exec, and
        // the sweep releases them once it is gone.
        if self.cover(ebpf, pid, false) {
            self.cover_root(ebpf, pid);
            let now = Instant::now();
            self.rescans
                .extend(RESCAN_AFTER.iter().map(|d| (now + *d, pid)));
        }
    }

    /// Due rescans of new processes, and releasing hooks of files nobody uses any more.
    pub fn tick(&mut self, ebpf: &mut Ebpf) {
        let now = Instant::now();
        let due: Vec<u32> = self
            .rescans
            .iter()
            .filter(|(at, _)| *at <= now)
            .map(|(_, pid)| *pid)
            .collect();
        self.rescans.retain(|(at, _)| *at > now);
        for pid in due {
            self.cover(ebpf, pid, false);
        }
        if now.duration_since(self.last_sweep) >= SWEEP_EVERY {
            self.last_sweep = now;
            self.sweep(ebpf);
        }
    }

    /// Hooks what process `pid` runs (if the scope includes it). Returns whether it is in scope.
    fn cover(&mut self, ebpf: &mut Ebpf, pid: u32, at_start: bool) -> bool {
        let sonames: Vec<&str> = self
            .symbol_stacks()
            .flat_map(|s| s.sonames)
            .copied()
            .collect();
        let Some(files) = procs::scan(&self.proc, pid, &sonames) else {
            return false;
        };
        let per_process = if self.scope.everyone() {
            None
        } else if self.scope.pids.contains(&pid) {
            Some(pid)
        } else {
            return false;
        };
        if per_process.is_some() {
            // The system libraries too, before the process maps them.
            for (stack, lib) in self.system_libs.clone() {
                self.hook_library(ebpf, &lib, stack, per_process, Some(pid), false);
            }
        }
        for lib in &files.libs {
            let name = lib.name.as_str();
            let Some(stack) = self.symbol_stacks().find(|s| s.sonames.contains(&name)) else {
                continue;
            };
            self.hook_library(ebpf, lib, stack, per_process, Some(pid), false);
        }
        if let Some(exe) = &files.exe {
            self.hook_executable(ebpf, exe, per_process, pid, &files.comm, at_start);
        }
        true
    }

    /// Hooks the libraries in the standard directories of a process's own root when it lives
    /// in another mount namespace (a container): the process maps them only once its dynamic
    /// loader runs, and a short-lived client's first TLS call can come before any rescan. Each
    /// file is hooked once (by [`HookId`]), for every container that has it.
    fn cover_root(&mut self, ebpf: &mut Ebpf, pid: u32) {
        let per_process = if self.scope.everyone() {
            None
        } else if self.scope.pids.contains(&pid) {
            Some(pid)
        } else {
            return;
        };
        for stack in self.symbol_stacks().collect::<Vec<_>>() {
            for lib in procs::root_libraries(&self.proc, pid, stack.sonames) {
                self.hook_library(ebpf, &lib, stack, per_process, Some(pid), false);
            }
        }
    }

    fn hook_executable(
        &mut self,
        ebpf: &mut Ebpf,
        exe: &ProcFile,
        per_process: Option<u32>,
        pid: u32,
        comm: &str,
        at_start: bool,
    ) {
        let mut known = false;
        for (key, a) in self.attached.iter_mut() {
            if key.0 == exe.hook_id && key.1 == per_process {
                a.users.insert(pid);
                known = true;
            }
        }
        if known {
            return;
        }
        let carried = match self.inspected.get(&exe.hook_id) {
            Some(None) => return,
            // Told once already; at start, every process running it is listed.
            Some(Some((what, why))) => {
                if at_start && self.uncovered.len() < 1024 {
                    self.uncovered.push(Uncovered {
                        pid,
                        comm: comm.to_string(),
                        file: exe.shown.clone(),
                        what: what.clone(),
                        why: why.clone(),
                    });
                }
                return;
            }
            None => executable::inspect(&exe.file, &self.stacks).unwrap_or(Carried::Nothing),
        };
        match carried {
            Carried::Nothing => self.remember_inspected(exe.hook_id.clone(), None),
            Carried::Unhookable(what, why) => {
                self.remember_inspected(exe.hook_id.clone(), Some((what.clone(), why.clone())));
                let u = Uncovered {
                    pid,
                    comm: comm.to_string(),
                    file: exe.shown.clone(),
                    what,
                    why,
                };
                if !at_start {
                    self.messages.push(format!(
                        "not covered: {} in {}: {} (pid {} ({}))",
                        u.what, u.file, u.why, u.pid, u.comm
                    ));
                }
                if self.uncovered.len() < 1024 {
                    self.uncovered.push(u);
                }
            }
            Carried::Static(stacks) => {
                for resolved in stacks {
                    self.hook_symbols(ebpf, exe, &resolved, per_process, Some(pid), false);
                }
            }
            Carried::Go(probes) => self.hook_go(ebpf, exe, &probes, per_process, pid),
        }
    }

    /// Remembers what an executable carries that needs no hook (bounded: the oldest are
    /// forgotten, and inspected again should they run again).
    fn remember_inspected(&mut self, id: HookId, verdict: Option<(String, String)>) {
        if self.inspected.insert(id.clone(), verdict).is_none() {
            self.inspected_order.push_back(id);
        }
        while self.inspected_order.len() > MAX_INSPECTED {
            if let Some(old) = self.inspected_order.pop_front() {
                self.inspected.remove(&old);
            }
        }
    }

    /// Attaches a symbol stack's probes to a shared library, its functions found in its own
    /// symbol tables.
    fn hook_library(
        &mut self,
        ebpf: &mut Ebpf,
        file: &ProcFile,
        stack: &'static SymbolStack,
        per_process: Option<u32>,
        user: Option<u32>,
        permanent: bool,
    ) {
        let key = (file.hook_id.clone(), per_process, stack.stack);
        if let Some(a) = self.attached.get_mut(&key) {
            a.users.extend(user);
            return;
        }
        match executable::resolve_library(&file.file, stack) {
            Ok(resolved) => self.hook_symbols(ebpf, file, &resolved, per_process, user, permanent),
            Err(why) => self.messages.push(format!(
                "could not hook {} in {}: {why}",
                stack.stack.name(),
                file.shown
            )),
        }
    }

    /// Attaches a symbol stack's probes to one file at the offsets found in it (required ones
    /// all, or none), through the descriptor the file was inspected with.
    fn hook_symbols(
        &mut self,
        ebpf: &mut Ebpf,
        file: &ProcFile,
        resolved: &Resolved,
        per_process: Option<u32>,
        user: Option<u32>,
        permanent: bool,
    ) {
        let stack = resolved.stack;
        let key = (file.hook_id.clone(), per_process, stack.stack);
        if let Some(a) = self.attached.get_mut(&key) {
            a.users.extend(user);
            return;
        }
        let mut links = Vec::new();
        let mut symbols: Vec<&str> = Vec::new();
        let mut failure = None;
        let target = file.fd_path();
        for spec in stack.probes {
            let symbol = spec.hook.symbol();
            let Some(offset) = resolved.offset(symbol) else {
                if spec.required {
                    failure = Some(format!("{symbol}: not defined"));
                    break;
                }
                continue;
            };
            match attach(
                ebpf,
                spec.program,
                UProbeAttachLocation::AbsoluteOffset(offset),
                &target,
                per_process,
            ) {
                Ok(link) => {
                    links.push((spec.program, link));
                    if !symbols.contains(&symbol) {
                        symbols.push(symbol);
                    }
                }
                Err(e) if spec.required => {
                    failure = Some(format!("{symbol}: {e:#}"));
                    break;
                }
                Err(_) => {}
            }
        }
        if let Some(why) = failure {
            self.detacher.close_later(take_links(ebpf, links));
            self.messages.push(format!(
                "could not hook {} in {}: {why}",
                stack.stack.name(),
                file.shown
            ));
            return;
        }
        let what = format!("{} ({})", stack.stack.name(), symbols.join(", "));
        self.add(key, file, what, links, user, permanent);
    }

    /// Attaches the Go probes: entry of Write and Read, and each of their RETs.
    fn hook_go(
        &mut self,
        ebpf: &mut Ebpf,
        exe: &ProcFile,
        probes: &GoTlsProbes,
        per_process: Option<u32>,
        pid: u32,
    ) {
        let mut links = Vec::new();
        let mut plan: Vec<(&'static str, u64)> = vec![
            (GO_WRITE_ENTER, probes.write.entry),
            (GO_READ_ENTER, probes.read.entry),
        ];
        plan.extend(probes.write.returns.iter().map(|&o| (GO_RETURN, o)));
        plan.extend(probes.read.returns.iter().map(|&o| (GO_RETURN, o)));
        for (program, offset) in plan {
            match attach(
                ebpf,
                program,
                UProbeAttachLocation::AbsoluteOffset(offset),
                &exe.fd_path(),
                per_process,
            ) {
                Ok(link) => links.push((program, link)),
                Err(e) => {
                    self.detacher.close_later(take_links(ebpf, links));
                    self.messages.push(format!(
                        "could not hook go crypto/tls in {} at {offset:#x}: {e:#}",
                        exe.shown
                    ));
                    return;
                }
            }
        }
        let what = format!(
            "go crypto/tls ({}; Write: entry + {} RET, Read: entry + {} RET)",
            probes.go_version.as_deref().unwrap_or("unknown Go version"),
            probes.write.returns.len(),
            probes.read.returns.len()
        );
        self.add(
            (exe.hook_id.clone(), per_process, Stack::Go),
            exe,
            what,
            links,
            Some(pid),
            false,
        );
    }

    fn add(
        &mut self,
        key: HookKey,
        file: &ProcFile,
        what: String,
        links: Vec<(&'static str, UProbeLinkId)>,
        user: Option<u32>,
        permanent: bool,
    ) {
        self.uprobes += links.len();
        let for_whom = match key.1 {
            Some(pid) => format!(" for pid {pid}"),
            None => String::new(),
        };
        self.messages
            .push(format!("hooked {what} in {}{for_whom}", file.shown));
        self.attached.insert(
            key,
            Attachment {
                shown: file.shown.clone(),
                what,
                links,
                users: user.into_iter().collect(),
                permanent,
            },
        );
    }

    /// Releases hooks whose processes are all gone.
    fn sweep(&mut self, ebpf: &mut Ebpf) {
        let proc = self.proc.clone();
        let alive = |pid: &u32| proc.join(pid.to_string()).exists();
        let mut gone = Vec::new();
        for (key, a) in self.attached.iter_mut() {
            if a.permanent {
                continue;
            }
            a.users.retain(alive);
            let owner_gone = key.1.is_some_and(|pid| !alive(&pid));
            if a.users.is_empty() || owner_gone {
                gone.push(key.clone());
            }
        }
        for key in gone {
            self.release(ebpf, key, true);
        }
    }

    /// Detaches every uprobe and `others` (the tracepoints), side by side, and waits for them
    /// and for every release still closing.
    pub fn detach_everything(&mut self, ebpf: &mut Ebpf, mut others: Vec<OwnedLink>) {
        for (_, a) in self.attached.drain() {
            others.extend(take_links(ebpf, a.links));
        }
        self.uprobes = 0;
        self.detacher.close_all(others);
    }

    fn release(&mut self, ebpf: &mut Ebpf, key: HookKey, tell: bool) {
        if let Some(a) = self.attached.remove(&key) {
            self.uprobes -= a.links.len();
            self.detacher.close_later(take_links(ebpf, a.links));
            if tell {
                self.messages.push(format!(
                    "released {} hooks in {} (no process uses it any more)",
                    a.what, a.shown
                ));
            }
        }
    }
}

/// Attaches one uprobe program at a file offset of the open file `path` names
/// (`/proc/self/fd/N`: the kernel resolves it to that very file).
fn attach(
    ebpf: &mut Ebpf,
    program: &str,
    location: UProbeAttachLocation<'_>,
    path: &Path,
    per_process: Option<u32>,
) -> Result<UProbeLinkId> {
    let prog: &mut UProbe = ebpf
        .program_mut(program)
        .ok_or_else(|| anyhow!("program {program} missing from the eBPF object"))?
        .try_into()?;
    let scope = match per_process.and_then(NonZeroU32::new) {
        Some(pid) => UProbeScope::OneProcess(pid),
        None => UProbeScope::AllProcesses,
    };
    prog.attach(location, path, scope)
        .with_context(|| format!("attaching {program}"))
}

/// Takes `links` out of their programs, to be closed by a [`Detacher`].
fn take_links(ebpf: &mut Ebpf, links: Vec<(&'static str, UProbeLinkId)>) -> Vec<OwnedLink> {
    links
        .into_iter()
        .filter_map(|(program, link)| {
            let prog = <&mut UProbe>::try_from(ebpf.program_mut(program)?).ok()?;
            prog.take_link(link)
                .ok()
                .map(|owned| Box::new(owned) as OwnedLink)
        })
        .collect()
}
