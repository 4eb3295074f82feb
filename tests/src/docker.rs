//! Container engines for the end-to-end tests. A private Docker daemon: Debian's docker.io
//! `dockerd` started inside a lab's network namespace and in a mount namespace of its own (so
//! its overlay and netns mounts vanish with it, and a private /run takes what it writes
//! there), with its socket, data, exec root, pid file and configuration in a work directory —
//! nothing of the host's Docker is touched. Images are made with `docker import` from a local
//! root file system; no registry is ever asked. Podman the same way, without a daemon
//! ([`Podman`]); both behind [`Engine`].

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    thread,
    time::{Duration, Instant},
};

use anyhow::{bail, Context as _, Result};

use crate::{signal, Lab};

/// Debian's Docker client (not another `docker` earlier on PATH).
pub const DOCKER: &str = "/usr/bin/docker";
/// Debian's Docker daemon.
pub const DOCKERD: &str = "/usr/sbin/dockerd";

/// A running private dockerd.
pub struct Dockerd {
    dir: PathBuf,
    child: Child,
}

impl Dockerd {
    /// Starts dockerd in `lab`'s network namespace with its state under `dir` (created), and
    /// waits until it answers.
    pub fn start(lab: &Lab, dir: &Path) -> Result<Dockerd> {
        std::fs::create_dir_all(dir.join("client"))?;
        std::fs::write(dir.join("daemon.json"), "{}\n")?;
        let log = std::fs::File::create(dir.join("dockerd.log"))?;
        let d = |f: &str| dir.join(f);
        let mut cmd = lab.command("unshare");
        // A tmpfs on /run in its mount namespace takes what dockerd and containerd write
        // there whatever their flags (/run/docker/plugins, shim sockets in /run/containerd).
        cmd.args(["-m", "--propagation", "private", "--", "sh", "-c"])
            .arg("mount -t tmpfs -o mode=0755 doh-trace-e2e /run && exec \"$0\" \"$@\"")
            .arg(DOCKERD)
            .args([
                "--iptables=false",
                "--ip6tables=false",
                "--ip-forward=false",
                "--ip-masq=false",
                "--bridge=none",
                "--userland-proxy=false",
            ])
            .arg(format!("--host=unix://{}", d("docker.sock").display()))
            .arg("--data-root")
            .arg(d("root"))
            .arg("--exec-root")
            .arg(d("exec"))
            .arg("--pidfile")
            .arg(d("dockerd.pid"))
            .arg("--config-file")
            .arg(d("daemon.json"))
            .stdout(log.try_clone()?)
            .stderr(log);
        let child = cmd.spawn().context("starting dockerd")?;
        let docker = Dockerd {
            dir: dir.to_path_buf(),
            child,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let ok = docker
                .cli()
                .args(["version", "--format", "{{.Server.Version}}"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if ok {
                return Ok(docker);
            }
            if Instant::now() > deadline {
                bail!("dockerd did not answer within 60 s; log:\n{}", docker.log());
            }
            thread::sleep(Duration::from_millis(200));
        }
    }

    /// dockerd's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("dockerd.log")).unwrap_or_default()
    }

    /// The client, talking to this daemon only (its own config directory too).
    pub fn cli(&self) -> Command {
        let mut c = Command::new(DOCKER);
        c.arg("--config")
            .arg(self.dir.join("client"))
            .arg("-H")
            .arg(format!("unix://{}", self.dir.join("docker.sock").display()));
        c
    }

    /// `docker import` of the root file system in `tar` as image `name`.
    pub fn import(&self, tar: &Path, name: &str) -> Result<()> {
        let file = std::fs::File::open(tar).with_context(|| format!("{}", tar.display()))?;
        let out = self
            .cli()
            .args(["import", "-", name])
            .stdin(file)
            .output()
            .context("docker import")?;
        if !out.status.success() {
            bail!(
                "docker import failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(())
    }
}

impl Drop for Dockerd {
    fn drop(&mut self) {
        if let Ok(ids) = self.run(&["ps", "-aq"]) {
            for id in ids.split_whitespace() {
                let _ = self.run(&["rm", "-f", id]);
            }
        }
        signal(&self.child, libc::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(30);
        while matches!(self.child.try_wait(), Ok(None)) {
            if Instant::now() > deadline {
                let _ = self.child.kill();
                break;
            }
            thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Debian's Podman.
pub const PODMAN: &str = "/usr/bin/podman";

/// Podman (no daemon) with its storage, run state and configuration in a work directory,
/// each command run in `lab`'s network namespace and in a mount namespace of its own (so the
/// overlay mounts of a container live only as long as its conmon). The runtime is runc with
/// the container's `nofile`/`nproc` limits set below the tracer host's: Podman's default
/// raises them, which needs CAP_SYS_RESOURCE (crun then fails with `setrlimit RLIMIT_NOFILE:
/// Operation not permitted`, and crun refuses a hybrid cgroup hierarchy too).
pub struct Podman {
    dir: PathBuf,
    net: PathBuf,
}

impl Podman {
    /// Podman with its state under `dir` (created), for containers in `lab`'s namespace.
    pub fn new(lab: &Lab, dir: &Path) -> Result<Podman> {
        std::fs::create_dir_all(dir)?;
        std::fs::write(
            dir.join("containers.conf"),
            "[containers]\ndefault_ulimits = [\"nofile=1024:1024\", \"nproc=1024:1024\"]\n\
             [engine]\ncgroup_manager = \"cgroupfs\"\nevents_logger = \"file\"\nruntime = \"runc\"\n",
        )?;
        Ok(Podman {
            dir: dir.to_path_buf(),
            net: lab.net_ns(),
        })
    }

    fn cli(&self) -> Command {
        let mut c = Command::new("nsenter");
        c.arg(format!("--net={}", self.net.display()))
            .args([
                "--",
                "unshare",
                "-m",
                "--propagation",
                "private",
                "--",
                PODMAN,
            ])
            .arg("--root")
            .arg(self.dir.join("root"))
            .arg("--runroot")
            .arg(self.dir.join("run"))
            .arg("--tmpdir")
            .arg(self.dir.join("tmp"))
            .args(["--storage-driver", "overlay"])
            .env("CONTAINERS_CONF", self.dir.join("containers.conf"));
        c
    }

    /// `podman import` of the root file system in `tar` as image `name`.
    pub fn import(&self, tar: &Path, name: &str) -> Result<()> {
        let file = std::fs::File::open(tar).with_context(|| format!("{}", tar.display()))?;
        let out = self
            .cli()
            .args(["import", "-", name])
            .stdin(file)
            .output()
            .context("podman import")?;
        if !out.status.success() {
            bail!(
                "podman import failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(())
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        let _ = self.run(&["rm", "-af"]);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A container engine's command line: `docker` or `podman`, the same verbs.
pub trait Engine {
    /// Runs `ENGINE ARGS` and returns its trimmed stdout.
    fn run(&self, args: &[&str]) -> Result<String>;
    /// The runtime doh-trace should name for the engine's containers.
    fn runtime(&self) -> &'static str;
    /// `ENGINE inspect --format FORMAT ID`.
    fn inspect(&self, id: &str, format: &str) -> Result<String> {
        self.run(&["inspect", "--format", format, id])
    }
}

fn run_cli(mut cmd: Command, args: &[&str]) -> Result<String> {
    let out = cmd
        .args(args)
        .output()
        .with_context(|| format!("{:?} {args:?}", cmd.get_program()))?;
    if !out.status.success() {
        bail!(
            "{args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim_end()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

impl Engine for Dockerd {
    fn run(&self, args: &[&str]) -> Result<String> {
        run_cli(self.cli(), args)
    }
    fn runtime(&self) -> &'static str {
        "docker"
    }
}

impl Engine for Podman {
    fn run(&self, args: &[&str]) -> Result<String> {
        run_cli(self.cli(), args)
    }
    fn runtime(&self) -> &'static str {
        "podman"
    }
}
