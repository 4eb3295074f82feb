//! Booting one kernel under QEMU: a copy-on-write overlay on the cached root image (so a boot
//! never changes the cache), the payload disk read-only, no network device, the serial console
//! written to `target/vm/logs/<kernel>.log`, and a deadline after which the VM is killed.
//! KVM is tried once per run and TCG (software emulation, single-threaded: the fastest here)
//! used when it fails.

use std::{
    fs::{self, File},
    path::{Path, PathBuf},
    process::{Command, Stdio},
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result};

use super::{kernels::Kernel, run_checked};

/// How the guest's CPU is provided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accel {
    Kvm,
    Tcg,
}

impl Accel {
    fn args(self) -> &'static [&'static str] {
        match self {
            Accel::Kvm => &["-accel", "kvm"],
            Accel::Tcg => &["-accel", "tcg,thread=single"],
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Accel::Kvm => "kvm",
            Accel::Tcg => "tcg",
        }
    }
}

/// How a boot ended.
#[derive(Debug)]
pub struct Boot {
    pub log: PathBuf,
    pub elapsed: Duration,
    pub timed_out: bool,
}

/// Whether KVM can run a guest here: `$DOH_TRACE_VM_ACCEL` (`kvm`/`tcg`) decides, else a
/// kernel is booted with KVM until it panics for want of a root disk (a few seconds when KVM
/// works; here QEMU either aborts, unable to set the guest's MSRs, or the guest hangs). A
/// failure is remembered in `target/vm/kvm-unusable`, so later runs go straight to TCG.
pub fn pick_accel(kernel: &Kernel, vm_dir: &Path) -> Accel {
    match std::env::var("DOH_TRACE_VM_ACCEL").as_deref() {
        Ok("kvm") => return Accel::Kvm,
        Ok("tcg") => return Accel::Tcg,
        _ => {}
    }
    if !Path::new("/dev/kvm").exists() {
        return Accel::Tcg;
    }
    let marker = vm_dir.join("kvm-unusable");
    if let Ok(why) = fs::read_to_string(&marker) {
        eprintln!(
            "vm-test: emulating (TCG): KVM failed here before ({}; delete {} to try again)",
            why.trim(),
            marker.display()
        );
        return Accel::Tcg;
    }
    let log = vm_dir.join("logs/kvm-probe.log");
    let Ok(out) = File::create(&log) else {
        return Accel::Tcg;
    };
    let Ok(err) = out.try_clone() else {
        return Accel::Tcg;
    };
    let child = Command::new("qemu-system-x86_64")
        .args(Accel::Kvm.args())
        .args(["-m", "512M", "-nic", "none", "-nographic", "-no-reboot"])
        .arg("-kernel")
        .arg(&kernel.vmlinuz)
        .args(["-append", "console=ttyS0 root=/dev/nonexistent panic=-1"])
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn();
    let Ok(mut child) = child else {
        return Accel::Tcg;
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    let ok = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status.success(),
            Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(200)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                break false;
            }
        }
    };
    let said = fs::read_to_string(&log).unwrap_or_default();
    if ok && said.contains("Kernel panic") {
        Accel::Kvm
    } else {
        let why = said
            .lines()
            .find(|l| l.contains("failed") || l.contains("error"))
            .map_or_else(
                || "the guest did not get past its boot loader in 30 s".to_string(),
                |l| l.trim().to_string(),
            );
        eprintln!("vm-test: KVM unusable here ({why}); emulating (TCG)");
        let _ = fs::write(&marker, format!("{why}\n"));
        Accel::Tcg
    }
}

/// Boots `kernel` on an overlay of `image` with `payload` attached, waits for the VM to
/// power off (or kills it at `timeout`), and returns where the console went.
pub fn boot(
    vm_dir: &Path,
    kernel: &Kernel,
    image: &Path,
    payload: &Path,
    accel: Accel,
    timeout: Duration,
) -> Result<Boot> {
    let logs = vm_dir.join("logs");
    let run = vm_dir.join("run");
    fs::create_dir_all(&logs)?;
    fs::create_dir_all(&run)?;
    let overlay = run.join(format!("{}.qcow2", kernel.label));
    let _ = fs::remove_file(&overlay);
    let image = fs::canonicalize(image)?;
    run_checked(
        Command::new("qemu-img")
            .args(["create", "-q", "-f", "qcow2", "-F", "raw", "-b"])
            .arg(&image)
            .arg(&overlay),
    )
    .context("qemu-img (qemu-utils) creating the overlay")?;
    let log = logs.join(format!("{}.log", kernel.label));
    let out = File::create(&log)?;
    let err = out.try_clone()?;
    let append = format!(
        "root=/dev/vda rw console=ttyS0 init=/vm-test.sh loglevel=4 panic=1 mitigations=off \
         vmtest.kernel={}",
        kernel.label
    );
    let started = Instant::now();
    let mut child = Command::new("qemu-system-x86_64")
        .args(accel.args())
        .args([
            "-m",
            "4G",
            "-smp",
            "2",
            "-nic",
            "none",
            "-nographic",
            "-no-reboot",
        ])
        .arg("-kernel")
        .arg(&kernel.vmlinuz)
        .arg("-initrd")
        .arg(&kernel.initrd)
        .arg("-drive")
        .arg(format!("file={},if=virtio,format=qcow2", overlay.display()))
        .arg("-drive")
        .arg(format!(
            "file={},if=virtio,format=raw,readonly=on",
            payload.display()
        ))
        .arg("-append")
        .arg(append)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .context("starting qemu-system-x86_64 (scripts/setup.sh installs qemu-system-x86)")?;
    let timed_out = loop {
        if child.try_wait()?.is_some() {
            break false;
        }
        if started.elapsed() > timeout {
            // Our own child, by its handle.
            let _ = child.kill();
            let _ = child.wait();
            break true;
        }
        thread::sleep(Duration::from_millis(500));
    };
    let _ = fs::remove_file(&overlay);
    Ok(Boot {
        log,
        elapsed: started.elapsed(),
        timed_out,
    })
}
