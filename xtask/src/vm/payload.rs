//! What each boot brings besides the cached root image: the release tracer, the end-to-end
//! test binaries, the tests' lab files and the plan (which tests to run), on a small read-only
//! second disk (`/dev/vdb`, ext4 from `mkfs.ext4 -d`) made afresh for every run.

use std::{
    fs,
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

use anyhow::{bail, Context as _, Result};
use doh_trace_common::{names::programs, TRACEPOINTS};

use super::run_checked;

/// The subset of the privileged end-to-end tests run in the guest: (label, test target in
/// tests/tests, test function). Besides these the guest script itself checks that the tracer
/// loads (`load`) and leaves no program behind when it exits (`clean-exit`).
pub const SUBSET: &[(&str, &str, &str)] = &[
    (
        "openssl-curl",
        "openssl_e2e",
        "curl_lookups_appear_once_each_with_curls_pid_and_name",
    ),
    (
        "openssl-python",
        "openssl_e2e",
        "python_ssl_ex_client_lookups_are_attributed_including_get_and_nxdomain",
    ),
    (
        "gnutls-kdig",
        "stacks_e2e",
        "gnutls_clients_lookups_over_doh_and_dot_are_attributed_to_them",
    ),
    (
        "go-dnss",
        "stacks_e2e",
        "a_go_program_started_after_the_tracer_has_its_lookups_attributed",
    ),
    (
        "do53-dot",
        "transports_e2e",
        "classic_dns_over_udp_and_tcp_and_dot_are_attributed",
    ),
    (
        "mid-stream",
        "decoder_e2e",
        "a_connection_opened_before_the_tracer_is_decoded_without_guessing_headers",
    ),
    ("pid", "stacks_e2e", "with_pid_only_that_process_is_hooked"),
];

/// Builds the tracer and the test binaries, and packs them with the plan into
/// `vm_dir/payload.img`. `only` keeps the tests whose label contains one of the words; each
/// is planned `repeat` times.
pub fn build(workspace: &Path, vm_dir: &Path, only: &[String], repeat: usize) -> Result<PathBuf> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    run_checked(
        Command::new(&cargo)
            .args(["build", "--release", "-p", "doh-trace"])
            .current_dir(workspace),
    )
    .context("building the release tracer")?;
    let tests = test_binaries(&cargo, workspace)?;

    let dir = vm_dir.join("payload");
    if dir.exists() {
        fs::remove_dir_all(&dir)?;
    }
    fs::create_dir_all(dir.join("tests"))?;
    fs::copy(
        workspace.join("target/release/doh-trace"),
        dir.join("doh-trace"),
    )?;
    let mut plan = String::new();
    for (label, target, test) in SUBSET {
        if !only.is_empty() && !only.iter().any(|w| label.contains(w.as_str())) {
            continue;
        }
        let bin = tests
            .iter()
            .find(|(t, _)| t == target)
            .map(|(_, p)| p)
            .with_context(|| format!("no test binary for {target}"))?;
        let dest = dir.join("tests").join(target);
        if !dest.exists() {
            fs::copy(bin, &dest)?;
        }
        for n in 1..=repeat.max(1) {
            let label = if n == 1 {
                label.to_string()
            } else {
                format!("{label}.{n}")
            };
            plan.push_str(&format!("{label} {target} {test}\n"));
        }
    }
    fs::write(dir.join("plan"), plan)?;
    copy_dir(&workspace.join("tests/lab"), &dir.join("lab"))?;
    // The test binaries find tests/lab below the workspace path they were built in.
    fs::write(dir.join("workspace"), format!("{}\n", workspace.display()))?;
    // bpftool shows at most 15 characters of a program's name.
    let names: String = programs::ALL
        .iter()
        .copied()
        .chain(TRACEPOINTS.iter().map(|t| t.name))
        .map(|n| format!("{}\n", &n[..n.len().min(15)]))
        .collect();
    fs::write(dir.join("programs"), names)?;

    let image = vm_dir.join("payload.img");
    let _ = fs::remove_file(&image);
    let mib = dir_bytes(&dir)? / (1 << 20) + 64;
    run_checked(
        Command::new("mkfs.ext4")
            .args(["-q", "-F", "-L", "payload", "-d"])
            .arg(&dir)
            .arg(&image)
            .arg(format!("{mib}M")),
    )?;
    Ok(image)
}

/// (target name, executable) of each test target of doh-trace-tests, built without running.
fn test_binaries(cargo: &str, workspace: &Path) -> Result<Vec<(String, PathBuf)>> {
    let out = Command::new(cargo)
        .args([
            "test",
            "-p",
            "doh-trace-tests",
            "--no-run",
            "--message-format=json-render-diagnostics",
        ])
        .current_dir(workspace)
        .stderr(Stdio::inherit())
        .output()
        .context("building the end-to-end tests")?;
    if !out.status.success() {
        bail!("building the end-to-end tests failed");
    }
    let mut found = Vec::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Ok(msg) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        let is_test = msg["target"]["kind"]
            .as_array()
            .is_some_and(|k| k.iter().any(|k| k == "test"));
        if let (true, Some(name), Some(exe)) = (
            is_test,
            msg["target"]["name"].as_str(),
            msg["executable"].as_str(),
        ) {
            found.push((name.to_string(), PathBuf::from(exe)));
        }
    }
    Ok(found)
}

fn copy_dir(from: &Path, to: &Path) -> Result<()> {
    fs::create_dir_all(to)?;
    for entry in fs::read_dir(from).with_context(|| format!("reading {}", from.display()))? {
        let entry = entry?;
        let dest = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &dest)?;
        } else {
            fs::copy(entry.path(), dest)?;
        }
    }
    Ok(())
}

fn dir_bytes(dir: &Path) -> Result<u64> {
    let mut total = 0;
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        total += if entry.file_type()?.is_dir() {
            dir_bytes(&entry.path())?
        } else {
            entry.metadata()?.len()
        };
    }
    Ok(total)
}
