//! The guest's root file system: a Debian root made by debootstrap (Debian packages only) with
//! the test peers and the guest script at `/vm-test.sh`, packed into a raw ext4 image
//! (`mkfs.ext4 -d`). Cached as `target/vm/image-<key>.raw`, the key a hash of the package
//! list, the guest script and the suite, so a rerun reuses it; boots write to an overlay.

use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
    time::Instant,
};

use anyhow::{bail, Context as _, Result};

use super::{run_checked, stable_hash};

/// The guest's packages beyond debootstrap's minimal base: the DoH/DoT servers, the clients
/// of each TLS stack, and what the tests' lab uses (test PKI, namespaces, bpftool).
pub const PACKAGES: &[&str] = &[
    "unbound",
    "dnsdist",
    "curl",
    "openssl",
    "ca-certificates",
    "iproute2",
    "procps",
    "bpftool",
    "python3",
    "python3-httpx",
    "python3-h2",
    "python3-dnspython",
    "knot-dnsutils",
    "bind9-dnsutils",
    "dnss",
];

/// The guest's init: mounts, loopback, the tests, their result lines, power-off.
pub const GUEST_SCRIPT: &str = include_str!("vm-test.sh");

/// Free space left in the image beyond what the root file system takes, in MiB.
const FREE_MIB: u64 = 768;

/// The cached image for `suite`, built first if it is missing. Returns its path and whether
/// it was built now.
pub fn ensure(vm_dir: &Path, suite: &str) -> Result<(PathBuf, bool)> {
    let key = image_key(suite);
    let image = vm_dir.join(format!("image-{key:016x}.raw"));
    if image.exists() {
        return Ok((image, false));
    }
    fs::create_dir_all(vm_dir)?;
    remove_stale(vm_dir, &image)?;
    let started = Instant::now();
    let root = vm_dir.join(format!("rootfs-{key:016x}.tmp"));
    if root.exists() {
        fs::remove_dir_all(&root).with_context(|| format!("removing {}", root.display()))?;
    }
    let mirror = doh_trace_tests::debian::mirror()?;
    eprintln!(
        "vm-test: building the guest image ({suite}, {} packages) with debootstrap",
        PACKAGES.len()
    );
    run_checked(
        Command::new("debootstrap")
            .arg("--variant=minbase")
            .arg(format!("--include={}", PACKAGES.join(",")))
            .arg(suite)
            .arg(&root)
            .arg(&mirror),
    )
    .context("debootstrap (scripts/setup.sh installs it)")?;
    let script = root.join("vm-test.sh");
    fs::write(&script, GUEST_SCRIPT)?;
    set_mode(&script, 0o755)?;
    for dir in ["var/cache/apt/archives", "var/lib/apt/lists"] {
        clear_files(&root.join(dir))?;
    }
    let used_mib = du_mib(&root)?;
    let tmp = image.with_extension("raw.tmp");
    run_checked(
        Command::new("mkfs.ext4")
            .args(["-q", "-F", "-L", "vmroot", "-d"])
            .arg(&root)
            .arg(&tmp)
            .arg(format!("{}M", used_mib + FREE_MIB)),
    )
    .context("mkfs.ext4 -d (e2fsprogs ≥ 1.43)")?;
    fs::rename(&tmp, &image)?;
    fs::remove_dir_all(&root)?;
    eprintln!(
        "vm-test: guest image {} ({} MiB) built in {:.0} s",
        image.display(),
        used_mib + FREE_MIB,
        started.elapsed().as_secs_f64()
    );
    Ok((image, true))
}

/// The cache key: what goes into the image.
fn image_key(suite: &str) -> u64 {
    let mut text = format!("{suite}\n");
    for p in PACKAGES {
        text.push_str(p);
        text.push('\n');
    }
    text.push_str(GUEST_SCRIPT);
    text.push_str(&FREE_MIB.to_string());
    stable_hash(text.as_bytes())
}

/// Older images (another package list or guest script) go, so the cache does not grow.
fn remove_stale(vm_dir: &Path, keep: &Path) -> Result<()> {
    for entry in fs::read_dir(vm_dir)? {
        let path = entry?.path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if name.starts_with("image-") && path != keep {
            fs::remove_file(&path).with_context(|| format!("removing {}", path.display()))?;
        }
    }
    Ok(())
}

fn du_mib(dir: &Path) -> Result<u64> {
    let out = Command::new("du")
        .args(["-sm", "--apparent-size"])
        .arg(dir)
        .output()?;
    if !out.status.success() {
        bail!("du {} failed", dir.display());
    }
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .context("du's output")
}

fn clear_files(dir: &Path) -> Result<()> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Ok(());
    };
    for entry in entries.flatten() {
        let p = entry.path();
        if p.is_file() {
            fs::remove_file(&p)?;
        }
    }
    Ok(())
}

fn set_mode(path: &Path, mode: u32) -> Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    fs::set_permissions(path, fs::Permissions::from_mode(mode))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_image_key_changes_with_the_guest_script_and_suite() {
        assert_eq!(image_key("bookworm"), image_key("bookworm"));
        assert_ne!(image_key("bookworm"), image_key("trixie"));
    }
}
