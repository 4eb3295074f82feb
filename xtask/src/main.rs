//! Developer tasks: `cargo xtask build-ebpf` builds the eBPF object the tracer embeds;
//! `cargo xtask nightly` names the nightly toolchain it uses; `cargo xtask lint` runs fmt,
//! clippy and the module-graph check; `cargo xtask bench` measures the tracer's overhead and
//! behaviour under load (root); `cargo xtask vm-test` boots Debian's stock kernels under QEMU
//! and runs a subset of the end-to-end tests in each (root).
mod bench;
mod build_ebpf;
mod lint;
mod vm;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(about = "doh-trace developer tasks")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Build the eBPF object (nightly + rust-src + bpf-linker; see scripts/setup.sh).
    BuildEbpf(build_ebpf::Options),
    /// Print the nightly toolchain the eBPF build (and the fuzzers) use.
    Nightly,
    /// Check formatting, clippy (userspace and eBPF) and the module graph (what CI runs).
    Lint,
    /// Measure the release tracer (root): hooked-call overhead vs bare uprobes, DoH load.
    Bench(bench::Options),
    /// Boot Debian's 6.1 and 6.12 kernels under QEMU and run end-to-end tests in each (root).
    VmTest(vm::Options),
    /// (Used by `bench`.) Run a program and write its wait4 resource usage to a file.
    #[command(hide = true)]
    Wait4(bench::Wait4Options),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::BuildEbpf(opts) => build_ebpf::run(&opts),
        Command::Nightly => build_ebpf::pick_toolchain(None)
            .map(|t| println!("{t}"))
            .map_err(Into::into),
        Command::Bench(opts) => bench::run(&opts),
        Command::Lint => lint::run(),
        Command::VmTest(opts) => vm::run(&opts),
        Command::Wait4(opts) => bench::wait4_main(&opts),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e:#}");
            ExitCode::FAILURE
        }
    }
}
