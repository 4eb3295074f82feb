//! The command line as a user meets it: help with examples, completions, the man page, usage
//! errors (exit 2), and errors that say what to do (not root, file not writable).

use std::process::{Command, Output};

use doh_trace_tests::{require_e2e, tracer_binary};

fn run(args: &[&str]) -> Output {
    Command::new(tracer_binary())
        .args(args)
        .output()
        .expect("run doh-trace")
}

/// Runs as the unprivileged user `nobody` (needs root to switch).
fn run_as_nobody(args: &[&str]) -> Output {
    Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(tracer_binary())
        .args(args)
        .output()
        .expect("run setpriv")
}

#[test]
fn help_completions_and_man_page_come_from_one_definition() {
    require_e2e!();
    let help = run(&["--help"]);
    assert!(help.status.success());
    let help = String::from_utf8(help.stdout).unwrap();
    for flag in [
        "--json",
        "--pid",
        "--comm",
        "--uid",
        "--container",
        "--qname",
        "--transport",
        "--write",
        "--metrics",
        "--color",
        "--connections",
        "Examples:",
    ] {
        assert!(help.contains(flag), "--help lacks {flag}:\n{help}");
    }
    let bash = run(&["completions", "bash"]);
    assert!(bash.status.success());
    let bash = String::from_utf8(bash.stdout).unwrap();
    assert!(
        bash.contains("complete -F _doh__trace") && bash.contains("--qname"),
        "{bash}"
    );
    let man = run(&["man"]);
    assert!(man.status.success());
    let man = String::from_utf8(man.stdout).unwrap();
    assert!(
        man.starts_with(".ie") || man.contains(".TH doh-trace"),
        "{man}"
    );
    assert!(man.contains("qname"), "{man}");
}

#[test]
fn usage_errors_exit_2() {
    require_e2e!();
    for args in [
        &["--color", "purple"][..],
        &["--pid", "notanumber"],
        &["--no-such-flag"],
        &["replay"],
    ] {
        let out = run(args);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn errors_say_what_to_do() {
    require_e2e!("setpriv");
    let out = run_as_nobody(&[]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("needs root") && err.contains("sudo"), "{err}");
    assert_eq!(err.lines().count(), 1, "one line: {err}");

    let out = run(&["-w", "/nonexistent-dir/x.pcapng"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cannot write /nonexistent-dir/x.pcapng"),
        "{err}"
    );

    let out = run(&["replay", "/nonexistent-dir/x.dtr"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("opening /nonexistent-dir/x.dtr"));
}
