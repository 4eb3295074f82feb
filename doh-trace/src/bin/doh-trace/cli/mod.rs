//! The command line: parsing ([`args`]), dispatch to the live loop, `replay`, `completions`
//! and `man`, and turning options into what the library's parts take.

mod args;
mod read;

use std::{
    fs::File,
    io::{self, BufReader, IsTerminal as _},
    path::Path,
    process::ExitCode,
};

use anyhow::{Context as _, Result};
use clap::{CommandFactory as _, Parser};
use doh_trace::{
    hooks::table::Stack,
    lookup::resolvers::ResolverList,
    output::{
        escape::escape_controls, filter::Filter, private_file::create_private, OutputOptions,
        Outputs,
    },
    pipeline::{replay::replay_into_with, Settings},
    source::keylog_file::KeylogFile,
};

pub use args::{Cli, ColorChoice, Command};

use crate::{live::LiveOptions, loader::hooks::HookScope};

/// Entry point: parses arguments (usage errors exit 2), runs, prints errors with causes.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(&cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("doh-trace: error: {}", escape_controls(&format!("{e:#}")));
            ExitCode::FAILURE
        }
    }
}

fn run(cli: &Cli) -> Result<ExitCode> {
    match &cli.command {
        Some(Command::Replay { file }) => replay(cli, file),
        Some(Command::Read { file, keylog }) => read::read(cli, file, keylog.as_deref()),
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

impl Cli {
    /// The built-in resolver list plus the user's file.
    /// The pipeline's settings: the resolver list and the memory budget.
    fn settings(&self) -> Result<Settings> {
        Ok(Settings {
            resolvers: self.resolver_list()?,
            memory_budget: self.memory_budget,
        })
    }

    fn resolver_list(&self) -> Result<ResolverList> {
        let mut list = ResolverList::builtin();
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
    fn hook_scope(&self) -> HookScope {
        HookScope {
            pids: self.pids.clone(),
        }
    }

    /// The ports whose datagrams are plain DNS: 53 and the user's.
    fn dns_ports(&self) -> Vec<u16> {
        let mut ports = vec![53];
        ports.extend(self.dns_ports.iter().copied().filter(|&p| p != 53));
        ports
    }

    /// The TLS stacks to hook.
    fn stacks(&self) -> Vec<Stack> {
        self.stacks.iter().map(|s| s.0).collect()
    }

    /// The outputs asked for; a file that cannot be written is an error now.
    /// The outputs asked for; `live`: stdout is written through a bounded queue.
    fn output_options(&self, live: bool) -> Result<OutputOptions> {
        let pcapng = match &self.pcapng {
            Some(path) => Some(
                create_private(path, self.force)
                    .with_context(|| format!("cannot write {}", path.display()))?,
            ),
            None => None,
        };
        let color = match self.color {
            ColorChoice::Always => true,
            ColorChoice::Never => false,
            ColorChoice::Auto => {
                io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none()
            }
        };
        Ok(OutputOptions {
            json: self.json,
            connections: self.connections,
            color,
            filter: Filter {
                pids: self.pids.clone(),
                comms: self.comms.clone(),
                uids: self.uids.clone(),
                containers: self.containers.clone(),
                qnames: self.qnames.clone(),
                transports: self.transports.clone(),
            },
            pcapng,
            metrics: self.metrics.is_some(),
            summary: !self.quiet,
            stdout_queue: live,
        })
    }

    fn outputs(&self, live: bool) -> Result<Outputs> {
        let cannot = || {
            let path = self.pcapng.as_deref().unwrap_or(Path::new("?"));
            format!("cannot write {}", path.display())
        };
        Outputs::new(self.output_options(live)?).with_context(cannot)
    }
}

fn live(cli: &Cli, record: Option<&Path>) -> Result<ExitCode> {
    let opts = LiveOptions {
        dns_ports: cli.dns_ports(),
        stacks: cli.stacks(),
        scope: cli.hook_scope(),
        ring_bytes: cli.ring_buffer,
        memory_budget: cli.memory_budget,
        quiet: cli.quiet,
        metrics: cli.metrics,
        resolvers: cli.resolver_list()?,
        keylog: match &cli.keylog {
            Some(path) => Some(
                KeylogFile::open(path)
                    .with_context(|| format!("cannot read the key log {}", path.display()))?,
            ),
            None => None,
        },
        record: match record {
            Some(path) => Some(
                create_private(path, cli.force)
                    .with_context(|| format!("cannot write {}", path.display()))?,
            ),
            None => None,
        },
    };
    let outputs = cli.outputs(true)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(crate::live::trace(opts, outputs))
}

fn replay(cli: &Cli, file: &Path) -> Result<ExitCode> {
    let r =
        BufReader::new(File::open(file).with_context(|| format!("opening {}", file.display()))?);
    let mut output = cli.outputs(false)?;
    let mut closed = false;
    let counters = replay_into_with(r, cli.settings()?, |pipeline| {
        match output.drain(pipeline.drain_records()) {
            Ok(true) => Ok(true),
            Ok(false) => {
                closed = true;
                Ok(false)
            }
            Err(e) => Err(io::Error::other(format!("writing to stdout: {e}"))),
        }
    })
    .with_context(|| format!("replaying {}", file.display()))?;
    output.flush_files().context("writing the pcapng file")?;
    if !cli.quiet && !closed {
        eprintln!(
            "doh-trace: replayed {}: {counters}",
            escape_controls(&file.display().to_string())
        );
        output.print_summary();
    }
    Ok(ExitCode::SUCCESS)
}
