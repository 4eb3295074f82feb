//! The `doh-trace` binary: the command line ([`cli`]), the live tracing loop ([`live`]) and
//! the eBPF loader ([`loader`]); everything that decodes lives in the `doh_trace` library.

mod cli;
mod live;
mod loader;

fn main() -> std::process::ExitCode {
    cli::main()
}
