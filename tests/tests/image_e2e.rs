//! Privileged end to end: the tracer as the DaemonSet runs it — from the image
//! packaging/Dockerfile builds, in the host PID namespace, with the DaemonSet's arguments,
//! mounts and capability list (read from packaging/kubernetes/daemonset.yaml) and not
//! privileged — against curl in another container.
//!
//! Debian's dockerd runs privately in the lab's network namespace (`doh_trace_tests::docker`).
//! The Dockerfile's Debian base is the clients' root file system the container tests already
//! build with debootstrap and `docker import` (cached under `target/containers/`); no registry
//! is asked. curl runs in a container of that image as user nobody, with `--network host` (the
//! lab's loopback, where unbound serves DoH), on a private copy of the image's libssl in a
//! directory only nobody may search — together the reasons for CAP_SYS_PTRACE and
//! CAP_DAC_READ_SEARCH in the list (without either, curl's lookups go unseen). Its two lookups must each be reported once with
//! curl's host pid, its container's id as `docker inspect` gives it, the runtime, the cgroup,
//! the user (from the node's /etc/passwd the DaemonSet mounts), the resolver and the answers;
//! `docker stop` must end the tracer with status 0 and leave none of its programs loaded.
//!
//! What differs from a Kubernetes node, and why: the tracer container uses `--network host`
//! (the lab's namespace: the private dockerd has no bridge, and the metrics port must be
//! reachable), and tracefs is bound without `rslave` propagation (dockerd runs in a private
//! mount namespace, where no mount is shared).
//!
//! Run as root, one test at a time (the tracer sees every process).

use std::time::{Duration, Instant};

use doh_trace_tests::{
    assert_no_program_left, debian,
    docker::{Dockerd, Engine, DOCKER, DOCKERD},
    require_e2e, tracer_binary, Lab, Tracer, UNBOUND_URL,
};
use serde_json::Value;

const DAEMONSET: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../packaging/kubernetes/daemonset.yaml"
);
const DOCKERFILE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../packaging/Dockerfile");
/// The image the DaemonSet names.
const TRACER_IMAGE: &str = "doh-trace:latest";
/// What the image may weigh: the binary and four glibc/libgcc files.
const MAX_IMAGE_BYTES: u64 = 16 << 20;
const WAIT: Duration = Duration::from_secs(20);
/// uid and name of the user the client runs as (Debian's `nobody`).
const CLIENT_UID: u32 = 65534;
const CLIENT_USER: &str = "nobody";

/// The client's shell, as user nobody: a private copy of the image's libssl in a directory
/// only nobody may search (like a library under a user's 0700 home), which curl loads (ldd
/// shows it in the logs). A python process maps that copy first and stays, so that the tracer
/// hooks it (on its rescans after python's exec) before curl runs: the tracer learns of a
/// library outside the root's standard directories only from a process's maps, and curl's
/// first TLS call comes milliseconds after its exec. Then the shell waits for /go/curl and
/// execs curl in the same process. The tracer can hook the copy only through
/// /proc/PID/map_files: its path is closed to root without CAP_DAC_READ_SEARCH.
const CLIENT_SCRIPT: &str = "mkdir -m 0700 /tmp/private && \
     cp /usr/lib/x86_64-linux-gnu/libssl.so.3 /tmp/private/ && \
     export LD_LIBRARY_PATH=/tmp/private && ldd /usr/bin/curl | grep libssl && \
     { python3 -c 'import ctypes, time; ctypes.CDLL(\"/tmp/private/libssl.so.3\"); time.sleep(120)' & } && \
     until [ -e /go/curl ]; do sleep 0.05; done; exec \"$@\"";
/// The tracer rescans a new process's maps 0.05, 0.5 and 3 s after its exec
/// (loader/hooks.rs, `RESCAN_AFTER`); curl is let go after the last of them. The tracer runs
/// with the DaemonSet's `-q`, so it does not say when it has hooked the copy.
const HOOK_GRACE: Duration = Duration::from_secs(4);

/// The flow sequence (`key: ["a", "b"]`, which is JSON) on the first line of `yaml` whose
/// key is `key`.
fn flow_list(yaml: &str, key: &str) -> Vec<String> {
    let prefix = format!("{key}:");
    let line = yaml
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with(&prefix))
        .unwrap_or_else(|| panic!("no `{key}:` in {DAEMONSET}"));
    serde_json::from_str(line[prefix.len()..].trim())
        .unwrap_or_else(|e| panic!("`{line}` is not a flow list of strings ({e})"))
}

/// Bit numbers of the capabilities the test grants (linux/capability.h).
fn capability_bit(name: &str) -> u32 {
    match name {
        "DAC_READ_SEARCH" => 2,
        "SYS_PTRACE" => 19,
        "SYS_ADMIN" => 21,
        "SYS_RESOURCE" => 24,
        "PERFMON" => 38,
        "BPF" => 39,
        "CHECKPOINT_RESTORE" => 40,
        other => panic!("capability {other} has no bit here: add it"),
    }
}

/// A field of /proc/PID/status.
fn status_field(pid: u32, field: &str) -> String {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
        .trim()
        .to_string()
}

/// Builds `doh-trace:latest` from packaging/Dockerfile on `base`, with a build context holding
/// only the binary under test at the path the Dockerfile copies; returns the image's size.
fn build_image(docker: &Dockerd, lab: &Lab, base: &str) -> u64 {
    let context = lab.dir.join("image-context");
    let bin = context.join("target/release/doh-trace");
    std::fs::create_dir_all(bin.parent().unwrap()).unwrap();
    std::fs::copy(tracer_binary(), &bin).unwrap();
    let out = docker
        .cli()
        .args(["build", "-q", "-f", DOCKERFILE, "--build-arg"])
        .arg(format!("BASE={base}"))
        .args(["-t", TRACER_IMAGE])
        .arg(&context)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "docker build: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    docker
        .inspect(TRACER_IMAGE, "{{.Size}}")
        .unwrap()
        .parse()
        .unwrap()
}

/// `docker run` of the tracer image in the foreground, as the DaemonSet's pod spec runs it.
fn tracer_command(name: &str, caps: &[String], args: &[String]) -> Vec<String> {
    let mut run: Vec<String> = [
        "run",
        "--name",
        name,
        // hostPID: true
        "--pid",
        "host",
        "--network",
        "host",
        // runAsUser: 0, readOnlyRootFilesystem: true
        "--user",
        "0",
        "--read-only",
        // command: [...]
        "--entrypoint",
        "/usr/local/bin/doh-trace",
        // capabilities: drop ALL, add the list; the runtime's default seccomp profile
        // (seccompProfile: RuntimeDefault) is Docker's default: nothing is said about it.
        "--cap-drop",
        "ALL",
        // volumeMounts
        "--mount",
        "type=bind,source=/sys/kernel/tracing,target=/sys/kernel/tracing,readonly",
        "--mount",
        "type=bind,source=/etc/passwd,target=/etc/passwd,readonly",
    ]
    .map(String::from)
    .to_vec();
    for cap in caps {
        run.extend(["--cap-add".to_string(), cap.clone()]);
    }
    run.push(TRACER_IMAGE.to_string());
    run.extend(args.iter().cloned());
    run
}

#[test]
fn the_daemonsets_image_and_capabilities_trace_a_client_in_another_container() {
    require_e2e!(DOCKERD, DOCKER, "debootstrap", "tar", "bpftool");
    let started = Instant::now();
    let yaml = std::fs::read_to_string(DAEMONSET).unwrap();
    assert!(
        yaml.contains("privileged: false") && !yaml.contains("privileged: true"),
        "the DaemonSet is not meant to be privileged"
    );
    assert_eq!(flow_list(&yaml, "drop"), ["ALL"], "capabilities.drop");
    let caps = flow_list(&yaml, "add");
    let args = flow_list(&yaml, "args");
    assert!(args.iter().any(|a| a == "--json"), "{args:?}");

    let (tar, built) = debian::rootfs_tar(debian::CLIENT_PACKAGES).unwrap();
    if let Some(s) = built {
        eprintln!("container root file system built in {s:.1} s");
    }
    let lab = Lab::with_unbound().unwrap();
    let docker = Dockerd::start(&lab, &lab.dir.join("docker")).unwrap();
    docker.import(&tar, debian::CLIENT_IMAGE).unwrap();
    let size = build_image(&docker, &lab, debian::CLIENT_IMAGE);
    eprintln!(
        "image {TRACER_IMAGE} built ({:.1} MB) {:.1} s after the test started",
        size as f64 / 1e6,
        started.elapsed().as_secs_f64()
    );
    assert!(
        size <= MAX_IMAGE_BYTES,
        "{TRACER_IMAGE} weighs {size} bytes"
    );

    // The client, created now and started once the tracer is ready: a shell that waits for
    // /go/curl, then execs curl (same process, so the pid the tracer reports is the one
    // `docker inspect` gives).
    let go = lab.dir.join("go");
    std::fs::create_dir_all(&go).unwrap();
    let pki = lab.dir.join("pki");
    let client_id = docker
        .run(
            &[
                &[
                    "create",
                    "--network",
                    "host",
                    "--user",
                    &format!("{CLIENT_UID}:{CLIENT_UID}"),
                    "-v",
                    &format!("{}:/pki:ro", pki.display()),
                    "-v",
                    &format!("{}:/go:ro", go.display()),
                    debian::CLIENT_IMAGE,
                    "sh",
                    "-c",
                    CLIENT_SCRIPT,
                    "sh",
                ][..],
                debian::CLIENT_CURL,
            ]
            .concat(),
        )
        .unwrap();

    let name = "doh-trace";
    let mut cmd = docker.cli();
    cmd.args(tracer_command(name, &caps, &args));
    let t = Instant::now();
    let mut tracer = Tracer::spawn(cmd).unwrap();
    eprintln!(
        "tracer container ready in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    let tracer_id = docker.inspect(name, "{{.Id}}").unwrap();
    let tracer_pid: u32 = docker
        .inspect(name, "{{.State.Pid}}")
        .unwrap()
        .parse()
        .unwrap();
    // It runs with exactly the DaemonSet's capabilities, under a seccomp filter.
    let want: u64 = caps.iter().map(|c| 1u64 << capability_bit(c)).sum();
    for set in ["CapEff", "CapPrm", "CapBnd"] {
        let have = u64::from_str_radix(&status_field(tracer_pid, set), 16).unwrap();
        assert_eq!(
            have, want,
            "{set} of the tracer: {have:#x}, the list {caps:?}"
        );
    }
    assert_eq!(
        status_field(tracer_pid, "Seccomp"),
        "2",
        "seccomp filter mode"
    );

    docker.run(&["start", &client_id]).unwrap();
    let client_pid: u32 = docker
        .inspect(&client_id, "{{.State.Pid}}")
        .unwrap()
        .parse()
        .unwrap();
    assert!(client_pid > 0, "the client is not running");
    std::thread::sleep(HOOK_GRACE);
    std::fs::write(go.join("curl"), "").unwrap();
    let exited = docker.run(&["wait", &client_id]).unwrap();
    let logs = docker.run(&["logs", &client_id]).unwrap_or_default();
    assert_eq!(exited, "7", "curl exited {exited}: {logs}");
    assert!(logs.contains("=> /tmp/private/libssl.so.3"), "{logs}");

    let mine = |seen: &[Value]| -> usize { seen.iter().filter(|v| v["pid"] == client_pid).count() };
    tracer.wait_for(WAIT, |seen| mine(seen) >= 2);
    // A duplicate would arrive right behind the originals; give it the chance.
    tracer.wait_for(Duration::from_millis(1000), |_| false);

    // The metrics endpoint the readiness probe asks counted them.
    let metrics = lab
        .command("curl")
        .args(["-sS", "--max-time", "5", "http://127.0.0.1:9853/metrics"])
        .output()
        .unwrap();
    let metrics = String::from_utf8_lossy(&metrics.stdout);
    let counted: u64 = metrics
        .lines()
        .filter(|l| {
            l.starts_with("doh_trace_lookups_total{")
                && l.contains("transport=\"doh\"")
                && l.contains("comm=\"curl\"")
        })
        .filter_map(|l| l.rsplit_once(' ')?.1.parse::<u64>().ok())
        .sum();
    assert!(counted >= 2, "metrics:\n{metrics}");

    // docker stop: SIGTERM to the tracer, which detaches everything and exits 0.
    let t = Instant::now();
    docker.run(&["stop", "--time", "30", name]).unwrap();
    let (status, stderr) = tracer.wait_exit(Duration::from_secs(35)).unwrap();
    eprintln!(
        "tracer container stopped in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    assert!(
        status.success(),
        "docker run: {status:?}; stderr:\n{stderr:#?}"
    );
    assert_eq!(docker.inspect(name, "{{.State.ExitCode}}").unwrap(), "0");
    assert_no_program_left();

    let cgroup_file = format!("/docker/{client_id}");
    let lookups: Vec<&Value> = tracer
        .seen
        .iter()
        .filter(|v| v["pid"] == client_pid)
        .collect();
    assert_eq!(lookups.len(), 2, "exactly two lookups: {lookups:#?}");
    for (qtype, answer) in [("A", "192.0.2.10"), ("AAAA", "2001:db8::10")] {
        let l: Vec<_> = lookups
            .iter()
            .filter(|l| l["qname"] == "www.doh.test" && l["qtype"] == qtype)
            .collect();
        assert_eq!(l.len(), 1, "www.doh.test {qtype} once: {lookups:#?}");
        let l = l[0];
        assert_eq!(l["comm"], "curl", "{l}");
        assert_eq!(l["uid"], CLIENT_UID, "{l}");
        assert_eq!(l["user"], CLIENT_USER, "{l}");
        assert_eq!(l["container_id"], client_id.as_str(), "{l}");
        assert_eq!(l["container_runtime"], docker.runtime(), "{l}");
        assert_eq!(l["cgroup"], cgroup_file.as_str(), "{l}");
        assert_eq!(l["transport"], "doh", "{l}");
        assert_eq!(l["tls_library"], "openssl", "{l}");
        assert_eq!(l["server"]["ip"], "127.0.0.1", "{l}");
        assert_eq!(l["server"]["port"], 8443, "{l}");
        assert_eq!(l["authority"], "127.0.0.1:8443", "{l}");
        assert_eq!(l["url"], UNBOUND_URL, "{l}");
        assert_eq!(l["status"], "ok", "{l}");
        assert_eq!(l["rcode"], "NOERROR", "{l}");
        assert_eq!(l["answers"], serde_json::json!([answer]), "{l}");
    }
    // The tracer never reports itself.
    assert!(
        !tracer
            .seen
            .iter()
            .any(|v| v["container_id"] == tracer_id.as_str()),
        "{:#?}",
        tracer.seen
    );
    eprintln!(
        "image e2e wall time {:.1} s",
        started.elapsed().as_secs_f64()
    );
}
