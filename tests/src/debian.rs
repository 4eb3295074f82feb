//! Debian root file systems made of Debian packages only: the mirror this host's apt uses, and
//! a minimal root built by debootstrap and cached as a tarball under `target/`, for container
//! images (`docker import`) that never ask a registry.

use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
    time::Instant,
};

use anyhow::{bail, Context as _, Result};

/// The packages of the clients' container image (curl with libcurl and OpenSSL, CPython's ssl
/// module with dnspython, httpx and h2): one cached root file system for every container test.
pub const CLIENT_PACKAGES: &[&str] = &[
    "curl",
    "ca-certificates",
    "python3",
    "python3-httpx",
    "python3-h2",
    "python3-dnspython",
];

/// curl's DoH lookups of www.doh.test from a container of [`CLIENT_IMAGE`], the lab CA
/// mounted at /pki. It then fails to connect (exit 7: nothing listens there): only its
/// lookups matter.
pub const CLIENT_CURL: &[&str] = &[
    "curl",
    "-sS",
    "--max-time",
    "10",
    "--cacert",
    "/pki/ca.pem",
    "--doh-url",
    crate::UNBOUND_URL,
    "-o",
    "/dev/null",
    "http://www.doh.test:18080/",
];

/// The name the container tests give the image imported from [`CLIENT_PACKAGES`]' root.
pub const CLIENT_IMAGE: &str = "doh-trace-e2e/debian-clients:1";

/// The Debian mirror this host's apt uses for its main suite (`$DOH_TRACE_VM_MIRROR` wins).
pub fn mirror() -> Result<String> {
    if let Ok(m) = std::env::var("DOH_TRACE_VM_MIRROR") {
        return Ok(m);
    }
    let mut texts = Vec::new();
    if let Ok(t) = fs::read_to_string("/etc/apt/sources.list") {
        texts.push(t);
    }
    if let Ok(dir) = fs::read_dir("/etc/apt/sources.list.d") {
        for entry in dir.flatten() {
            let p = entry.path();
            let name = p.to_string_lossy().into_owned();
            if name.ends_with(".sources") || name.ends_with(".list") {
                if let Ok(t) = fs::read_to_string(&p) {
                    texts.push(t);
                }
            }
        }
    }
    texts
        .iter()
        .find_map(|t| debian_uri(t))
        .context("no Debian mirror in /etc/apt (set DOH_TRACE_VM_MIRROR)")
}

/// The first `/debian` URI (not the security archive) in a sources file of either format.
pub fn debian_uri(text: &str) -> Option<String> {
    text.lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .flat_map(|l| {
            let l = l.trim();
            let words: Vec<&str> = if let Some(rest) = l.strip_prefix("URIs:") {
                rest.split_whitespace().collect()
            } else if l.starts_with("deb ") {
                l.split_whitespace()
                    .filter(|w| w.contains("://"))
                    .take(1)
                    .collect()
            } else {
                Vec::new()
            };
            words.into_iter().map(str::to_owned).collect::<Vec<_>>()
        })
        .find(|u| u.trim_end_matches('/').ends_with("/debian"))
}

/// This host's Debian suite (`VERSION_CODENAME` of /etc/os-release), e.g. `bookworm`.
pub fn host_suite() -> Result<String> {
    let text = fs::read_to_string("/etc/os-release").context("reading /etc/os-release")?;
    text.lines()
        .find_map(|l| l.strip_prefix("VERSION_CODENAME="))
        .map(|s| s.trim_matches('"').to_string())
        .filter(|s| !s.is_empty())
        .context("no VERSION_CODENAME in /etc/os-release")
}

/// FNV-1a: a hash that stays the same across Rust versions (cache keys on disk).
pub fn stable_hash(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The workspace's target directory (`$CARGO_TARGET_DIR`, else `target/`).
pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"))
}

/// A tarball of a minimal Debian root (debootstrap `minbase` of this host's suite) with
/// `packages` installed, built on first use and cached as
/// `target/containers/rootfs-<key>.tar` (the key hashes the suite and the package list).
/// Returns its path and how long building it took (None: it was cached).
pub fn rootfs_tar(packages: &[&str]) -> Result<(PathBuf, Option<f64>)> {
    let suite = host_suite()?;
    let mut key_text = format!("{suite}\n");
    for p in packages {
        key_text.push_str(p);
        key_text.push('\n');
    }
    let key = stable_hash(key_text.as_bytes());
    let dir = target_dir().join("containers");
    let tar = dir.join(format!("rootfs-{key:016x}.tar"));
    if tar.exists() {
        return Ok((tar, None));
    }
    fs::create_dir_all(&dir)?;
    let started = Instant::now();
    let root = dir.join(format!("rootfs-{key:016x}.tmp"));
    if root.exists() {
        fs::remove_dir_all(&root).with_context(|| format!("removing {}", root.display()))?;
    }
    eprintln!(
        "building a Debian {suite} root with {} for the container image (debootstrap, cached in {})",
        packages.join(","),
        tar.display()
    );
    checked(
        Command::new("debootstrap")
            .arg("--variant=minbase")
            .arg(format!("--include={}", packages.join(",")))
            .arg(&suite)
            .arg(&root)
            .arg(mirror()?),
    )
    .context("debootstrap (scripts/setup.sh installs it)")?;
    for sub in ["var/cache/apt/archives", "var/lib/apt/lists"] {
        if let Ok(entries) = fs::read_dir(root.join(sub)) {
            for e in entries.flatten() {
                if e.path().is_file() {
                    fs::remove_file(e.path())?;
                }
            }
        }
    }
    let tmp = tar.with_extension("tar.tmp");
    checked(
        Command::new("tar")
            .arg("-C")
            .arg(&root)
            .args(["--numeric-owner", "-cf"])
            .arg(&tmp)
            .arg("."),
    )?;
    fs::rename(&tmp, &tar)?;
    fs::remove_dir_all(&root)?;
    // Older roots (another package list or suite) go, so the cache does not grow.
    for entry in fs::read_dir(&dir)?.flatten() {
        let p = entry.path();
        let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if name.starts_with("rootfs-") && name.ends_with(".tar") && p != tar {
            let _ = fs::remove_file(&p);
        }
    }
    Ok((tar, Some(started.elapsed().as_secs_f64())))
}

fn checked(cmd: &mut Command) -> Result<()> {
    let out = cmd
        .output()
        .with_context(|| format!("running {:?}", cmd.get_program()))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let lines: Vec<&str> = err.lines().collect();
        let tail = lines[lines.len().saturating_sub(20)..].join("\n");
        bail!("{cmd:?} failed ({}): {tail}", out.status);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mirror_is_read_from_either_sources_format() {
        let deb822 = "Types: deb\nURIs: http://mirror.example/debian\nSuites: bookworm\n\n\
                      Types: deb\nURIs: http://mirror.example/debian-security\n";
        assert_eq!(
            debian_uri(deb822).as_deref(),
            Some("http://mirror.example/debian")
        );
        let list = "# deb http://old.example/debian bookworm main\n\
                    deb [arch=amd64] http://mirror.example/debian/ bookworm main\n";
        assert_eq!(
            debian_uri(list).as_deref(),
            Some("http://mirror.example/debian/")
        );
        assert_eq!(debian_uri("deb http://x.example/ubuntu jammy main"), None);
    }

    #[test]
    fn the_cache_hash_is_fnv1a() {
        assert_eq!(stable_hash(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(stable_hash(b"a"), 0xaf63_dc4c_8601_ec8c);
    }
}
