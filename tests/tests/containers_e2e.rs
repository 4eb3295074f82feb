//! Privileged end to end: DoH from Docker containers whose image carries its own OpenSSL.
//!
//! Debian's docker.io daemon runs privately in the lab's network namespace
//! (`doh_trace_tests::docker`); the image is `docker import` of a Debian root built by
//! debootstrap (cached under `target/containers/`), so the container's libssl is its own file,
//! not the host's. Clients run with `--network host` (the lab's loopback, where unbound serves
//! DoH): python in two containers started before the tracer (their libssl already mapped), and
//! curl and python in containers started after it. Each lookup must carry the client's host pid, the
//! container's full id as `docker inspect` gives it, the runtime, the cgroup, the resolver and
//! the answer, and appear once; the image's libssl is hooked once for all four containers; a
//! second tracer run with `--container ID` reports that container's lookups only.
//!
//! Run as root, one test at a time (each starts its own tracer, which sees every process).

use std::{
    os::unix::fs::MetadataExt as _,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use doh_trace_tests::{
    debian,
    docker::{Dockerd, Engine, Podman, DOCKER, DOCKERD, PODMAN},
    require_e2e, Lab, Tracer, UNBOUND_URL,
};
use serde_json::Value;

/// What the image needs: curl (libcurl, OpenSSL), CPython's ssl module with dnspython, httpx, h2.
const PACKAGES: &[&str] = debian::CLIENT_PACKAGES;
const IMAGE: &str = debian::CLIENT_IMAGE;
const LIBSSL: &str = "/usr/lib/x86_64-linux-gnu/libssl.so.3";
const WAIT: Duration = Duration::from_secs(20);

/// A container created (not started) running `client`; with `wait`, its command first waits
/// for `/go/NAME` (a shell loop), then execs `client` (in the same process).
struct Client {
    name: &'static str,
    id: String,
    pid: u32,
    comm: &'static str,
    cgroup_file: String,
}

fn create(
    docker: &dyn Engine,
    lab: &Lab,
    go: &Path,
    name: &'static str,
    wait: bool,
    client: &[&str],
) -> String {
    let lab_dir = concat!(env!("CARGO_MANIFEST_DIR"), "/lab");
    let pki = lab.dir.join("pki");
    let script = format!(
        "until [ -e /go/{name} ]; do sleep 0.05; done; exec \"$@\"",
        name = name
    );
    let mut args: Vec<String> = [
        "create",
        "--network",
        "host",
        "--name",
        name,
        "-v",
        &format!("{}:/pki:ro", pki.display()),
        "-v",
        &format!("{lab_dir}:/lab:ro"),
        "-v",
        &format!("{}:/go:ro", go.display()),
        IMAGE,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    if wait {
        args.extend(["sh", "-c", &script, "sh"].map(String::from));
    }
    args.extend(client.iter().map(|s| s.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    docker.run(&args).unwrap()
}

/// Starts a created container and returns it with its host pid and its cgroup file.
fn start(docker: &dyn Engine, id: String, name: &'static str, comm: &'static str) -> Client {
    docker.run(&["start", &id]).unwrap();
    let pid: u32 = docker
        .inspect(&id, "{{.State.Pid}}")
        .unwrap()
        .parse()
        .unwrap();
    assert!(pid > 0, "{name} is not running");
    let cgroup_file = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    Client {
        name,
        id,
        pid,
        comm,
        cgroup_file,
    }
}

/// Lets a started client go and waits for its container to exit with `code`; returns its output.
fn finish(docker: &dyn Engine, go: &Path, c: &Client, code: &str) -> String {
    std::fs::write(go.join(c.name), "").unwrap();
    let exited = docker.run(&["wait", &c.id]).unwrap();
    let logs = docker.run(&["logs", &c.id]).unwrap_or_default();
    assert_eq!(exited, code, "{} exited {exited}: {logs}", c.name);
    logs
}

fn python(specs: &[&'static str]) -> Vec<&'static str> {
    let mut v = vec!["python3", "/lab/doh_client.py", "/pki/ca.pem", UNBOUND_URL];
    v.extend_from_slice(specs);
    v
}

fn of(seen: &[Value], pid: u32) -> Vec<&Value> {
    seen.iter()
        .filter(|v| v["pid"] == pid && v.get("closed_by").is_none())
        .collect()
}

/// Every lookup of `c` is one of `expected` (name, type, answer), each exactly once, carrying
/// the container, its cgroup and the resolver.
fn check_client(seen: &[Value], c: &Client, expected: &[(&str, &str, &str)], engine: &dyn Engine) {
    let mine = of(seen, c.pid);
    assert_eq!(
        mine.len(),
        expected.len(),
        "{}: exactly {} lookups: {mine:#?}",
        c.name,
        expected.len()
    );
    for (qname, qtype, answer) in expected {
        let l: Vec<_> = mine
            .iter()
            .filter(|l| l["qname"] == *qname && l["qtype"] == *qtype)
            .collect();
        assert_eq!(l.len(), 1, "{} {qname} {qtype} once: {mine:#?}", c.name);
        let l = l[0];
        assert_eq!(l["comm"], c.comm, "{l}");
        assert_eq!(l["container_id"], c.id.as_str(), "{l}");
        assert_eq!(l["container_runtime"], engine.runtime(), "{l}");
        // The cgroupfs drivers put each container in /docker/<id> (dockerd) or
        // /libpod_parent/libpod-<id> (Podman), which the process's own cgroup file names.
        let cgroup = l["cgroup"]
            .as_str()
            .unwrap_or_else(|| panic!("no cgroup: {l}"));
        let want = match engine.runtime() {
            "docker" => format!("/docker/{}", c.id),
            _ => format!("/libpod_parent/libpod-{}", c.id),
        };
        assert_eq!(cgroup, want, "{l}");
        assert!(
            c.cgroup_file
                .lines()
                .any(|line| line.rsplit_once(':').map(|(_, p)| p) == Some(cgroup)),
            "{cgroup} is not in /proc/{}/cgroup:\n{}",
            c.pid,
            c.cgroup_file
        );
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
}

/// (device, inode) of a file.
fn identity(path: &Path) -> (u64, u64) {
    let m = std::fs::metadata(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    (m.dev(), m.ino())
}

#[test]
fn docker_containers_lookups_carry_the_host_pid_the_container_and_the_resolver() {
    require_e2e!(DOCKERD, DOCKER, "debootstrap", "tar");
    let started = Instant::now();
    let (tar, built) = debian::rootfs_tar(PACKAGES).unwrap();
    if let Some(s) = built {
        eprintln!("container root file system built in {s:.1} s");
    }
    let lab = Lab::with_unbound().unwrap();
    let docker = Dockerd::start(&lab, &lab.dir.join("docker")).unwrap();
    let t = Instant::now();
    docker.import(&tar, IMAGE).unwrap();
    eprintln!(
        "dockerd up and image imported {:.1} s after the test started (import {:.1} s)",
        started.elapsed().as_secs_f64(),
        t.elapsed().as_secs_f64()
    );
    clients_before_and_after_the_tracer(&docker, &lab, started);
}

/// Podman (runc; crun cannot start containers here, see `doh_trace_tests::docker::Podman`).
#[test]
fn podman_containers_lookups_carry_the_host_pid_the_container_and_the_resolver() {
    require_e2e!(PODMAN, "runc", "debootstrap", "tar");
    let started = Instant::now();
    let (tar, _) = debian::rootfs_tar(PACKAGES).unwrap();
    let lab = Lab::with_unbound().unwrap();
    let podman = Podman::new(&lab, &lab.dir.join("podman")).unwrap();
    podman.import(&tar, IMAGE).unwrap();
    eprintln!(
        "podman image imported {:.1} s after the test started",
        started.elapsed().as_secs_f64()
    );
    clients_before_and_after_the_tracer(&podman, &lab, started);
}

/// Two python containers started before the tracer, curl and python ones after, a second
/// tracer filtering by the curl container: every lookup once, with pid, container, runtime,
/// cgroup, resolver and answer; the image's libssl hooked once.
fn clients_before_and_after_the_tracer(docker: &dyn Engine, lab: &Lab, started: Instant) {
    // The image's libssl is its own file, not the host's.
    let layer = PathBuf::from(
        docker
            .inspect(IMAGE, "{{.GraphDriver.Data.UpperDir}}")
            .unwrap(),
    );
    let image_libssl = identity(&layer.join(LIBSSL.trim_start_matches('/')));
    assert_ne!(image_libssl, identity(Path::new(LIBSSL)));

    let go = lab.dir.join("go");
    std::fs::create_dir_all(&go).unwrap();
    let www = [
        ("www.doh.test", "A", "192.0.2.10"),
        ("www.doh.test", "AAAA", "2001:db8::10"),
    ];

    // Started before the tracer, two of them (two overlay mounts of one image layer): python
    // with its ssl module (so the image's libssl) loaded, waiting for /go/NAME.
    let wait_then_run = "import os, sys, time, runpy, ssl, dns.query\n\
                         while not os.path.exists(sys.argv[1]): time.sleep(0.05)\n\
                         sys.argv = sys.argv[2:]\n\
                         runpy.run_path(sys.argv[0], run_name='__main__')\n";
    let mut befores = Vec::new();
    for name in ["before", "before2"] {
        let go_file = format!("/go/{name}");
        let mut cmd = vec!["python3", "-c", wait_then_run, &go_file];
        cmd.extend(&python(&["www.doh.test/A", "www.doh.test/AAAA"])[1..]);
        let id = create(docker, lab, &go, name, false, &cmd);
        befores.push(start(docker, id, name, "python3"));
    }
    for before in &befores {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !std::fs::read_to_string(format!("/proc/{}/maps", before.pid))
            .unwrap_or_default()
            .contains("libssl.so.3")
        {
            assert!(Instant::now() < deadline, "python never mapped libssl");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    // Created now, started after the tracer: curl and python.
    let curl_cmd = debian::CLIENT_CURL;
    let curl_id = create(docker, lab, &go, "curl", true, curl_cmd);
    let py_id = create(
        docker,
        lab,
        &go,
        "python",
        true,
        &python(&["www.doh.test/A", "www.doh.test/AAAA"]),
    );

    let t = Instant::now();
    // Both at once: each takes seconds to load and hook.
    let (tracer, only_curl) = std::thread::scope(|s| {
        let all = s.spawn(|| Tracer::start(&[]));
        let one = s.spawn(|| Tracer::start(&["--container", &curl_id]));
        (all.join().unwrap(), one.join().unwrap())
    });
    let (mut tracer, mut only_curl) = (tracer.unwrap(), only_curl.unwrap());
    eprintln!("both tracers ready in {:.1} s", t.elapsed().as_secs_f64());

    for before in &befores {
        let out = finish(docker, &go, before, "0");
        assert_eq!(out.lines().count(), 2, "{out}");
    }
    let curl = start(docker, curl_id, "curl", "curl");
    finish(docker, &go, &curl, "7");
    let py = start(docker, py_id, "python", "python3");
    let out = finish(docker, &go, &py, "0");
    assert_eq!(out.lines().count(), 2, "{out}");
    eprintln!(
        "clients done {:.1} s after the test started",
        started.elapsed().as_secs_f64()
    );

    let clients = [&befores[0], &befores[1], &curl, &py];
    tracer.wait_for(WAIT, |seen| {
        clients.iter().all(|c| of(seen, c.pid).len() >= 2)
    });
    only_curl.wait_for(WAIT, |seen| of(seen, curl.pid).len() >= 2);
    eprintln!(
        "lookups seen {:.1} s after the test started",
        started.elapsed().as_secs_f64()
    );
    // A duplicate would arrive right behind the originals; give it the chance.
    tracer.wait_for(Duration::from_millis(1000), |_| false);
    // Both detach at once (each takes seconds); a second SIGINT to a stopping tracer is
    // harmless (its handler stays installed).
    only_curl.signal(libc::SIGINT);
    tracer.signal(libc::SIGINT);
    let (status, _) = only_curl.stop(libc::SIGINT).unwrap();
    assert!(status.success(), "filtered tracer: {status:?}");
    let stderr = tracer.stop_cleanly(libc::SIGINT);

    for c in clients {
        check_client(&tracer.seen, c, &www, docker);
    }
    // Nothing else came from these containers.
    let ids: Vec<&str> = clients.iter().map(|c| c.id.as_str()).collect();
    let from_containers = tracer
        .seen
        .iter()
        .filter(|v| {
            v["container_id"]
                .as_str()
                .is_some_and(|id| ids.contains(&id))
        })
        .count();
    assert_eq!(from_containers, 8, "{:#?}", tracer.seen);

    // --container: that container's lookups and nothing else.
    check_client(&only_curl.seen, &curl, &www, docker);
    assert_eq!(only_curl.seen.len(), 2, "{:#?}", only_curl.seen);

    // The image's libssl (one file under all four containers) hooked once, and nothing failed.
    let in_containers: Vec<&String> = stderr
        .iter()
        .filter(|l| {
            l.contains("hooked openssl")
                && l.contains(&format!("in {LIBSSL} (in the mount namespace of pid"))
        })
        .collect();
    assert_eq!(in_containers.len(), 1, "{stderr:#?}");
    let failed: Vec<&String> = stderr
        .iter()
        .filter(|l| l.contains("could not hook"))
        .collect();
    assert!(failed.is_empty(), "{failed:#?}");
    eprintln!(
        "containers e2e wall time {:.1} s",
        started.elapsed().as_secs_f64()
    );
}
