//! The `doh-trace` binary: everything lives in the library; see `doh_trace::cli`.
fn main() -> std::process::ExitCode {
    doh_trace::cli::main()
}
