//! The kernels under test: Debian's stock packages, fetched with `apt-get download` and
//! unpacked with `dpkg -x` under `target/vm/kernels/` (never installed on the host), and for
//! each a small initrd of our own: busybox (Debian's busybox-static), the modules that reach
//! the root disk (virtio-pci, virtio-blk, ext4 and what they need, from their `.modinfo`), and an
//! `/init` that loads them, mounts `/dev/vda` and switches to the guest script.

use std::{
    collections::{BTreeSet, HashMap},
    fs,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{bail, Context as _, Result};

use super::run_checked;

/// Modules the initrd must make available (loaded or built in) to mount the root disk.
const ROOT_MODULES: &[&str] = &["virtio_pci", "virtio_blk", "ext4"];
/// Modules loaded too when the kernel has them as modules (ext4's checksum).
const EXTRA_MODULES: &[&str] = &["crc32c_generic", "crc32c_intel"];

/// The initrd's `/init` (busybox sh).
const INIT: &str = r#"#!/bin/busybox sh
# doh-trace vm-test initrd: load the root disk's modules, mount it, hand over to its init.
/bin/busybox mkdir -p /proc /sys /dev /newroot
/bin/busybox mount -t proc proc /proc
/bin/busybox mount -t sysfs sys /sys
/bin/busybox mount -t devtmpfs dev /dev
for m in $(/bin/busybox cat /modules.order); do /bin/busybox insmod "/modules/$m" 2>/dev/null; done
init=/sbin/init
for arg in $(/bin/busybox cat /proc/cmdline); do
  case "$arg" in init=*) init=${arg#init=} ;; esac
done
i=0
while [ ! -b /dev/vda ] && [ $i -lt 300 ]; do /bin/busybox sleep 0.1; i=$((i+1)); done
/bin/busybox mount -t ext4 -o rw /dev/vda /newroot || { echo "VMTEST-INITRD no root disk"; /bin/busybox poweroff -f; }
/bin/busybox umount /sys /proc
/bin/busybox mount --move /dev /newroot/dev
exec /bin/busybox switch_root /newroot "$init"
"#;

/// One kernel, ready to boot.
#[derive(Debug)]
pub struct Kernel {
    /// What the user asked for (`6.1`), used in result lines and log names.
    pub label: String,
    /// The Debian package.
    pub package: String,
    /// `uname -r`.
    pub release: String,
    pub vmlinuz: PathBuf,
    pub initrd: PathBuf,
}

/// The Debian package for `label`: a package name as is, or the newest stock amd64 image of a
/// series (`6.1` → `linux-image-6.1.0-57-amd64`, `6.12` → `linux-image-6.12.117+deb12-amd64`).
pub fn resolve(label: &str) -> Result<String> {
    if label.starts_with("linux-image-") {
        return Ok(label.to_string());
    }
    let prefix = format!("linux-image-{label}");
    let out = Command::new("apt-cache")
        .args(["pkgnames", &prefix])
        .output()
        .context("apt-cache")?;
    let names = String::from_utf8_lossy(&out.stdout);
    newest_stock(label, names.lines())
        .with_context(|| format!("no Debian package for kernel {label} (apt-get update?)"))
}

/// Of the package names, the newest stock (not cloud, rt, dbg, unsigned) amd64 image of the
/// series `label`.
fn newest_stock<'a>(label: &str, names: impl Iterator<Item = &'a str>) -> Option<String> {
    let prefix = format!("linux-image-{label}");
    names
        .filter_map(|n| {
            let rest = n.strip_prefix(&prefix)?;
            let version = rest.strip_suffix("-amd64")?;
            // `6.1` must not match 6.10 or 6.12: the series ends at a '.' or '-'.
            if !(version.starts_with('.') || version.starts_with('-')) {
                return None;
            }
            if ["cloud", "rt", "dbg", "unsigned"]
                .iter()
                .any(|w| version.contains(w))
            {
                return None;
            }
            let key: Vec<u64> = version
                .split(|c: char| !c.is_ascii_digit())
                .filter_map(|d| d.parse().ok())
                .collect();
            // The series' meta-package (`linux-image-6.12-amd64`) has no version of its own.
            (!key.is_empty()).then(|| (key, n.to_string()))
        })
        .max()
        .map(|(_, n)| n)
}

/// Downloads, unpacks and builds the initrd of `label`'s kernel (each step only once).
pub fn prepare(kernels_dir: &Path, label: &str) -> Result<Kernel> {
    let package = resolve(label)?;
    let root = kernels_dir.join(&package);
    unpack(kernels_dir, &package, &root)?;
    let boot = root.join("boot");
    let vmlinuz = fs::read_dir(&boot)
        .with_context(|| format!("{} has no boot/", root.display()))?
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("vmlinuz-"))
        })
        .context("no vmlinuz in the kernel package")?;
    let release = vmlinuz
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.strip_prefix("vmlinuz-"))
        .context("vmlinuz name")?
        .to_string();
    let busybox = busybox(kernels_dir)?;
    let initrd = root.join("initrd.vmtest.img");
    if !initrd.exists() {
        build_initrd(&root.join("lib/modules").join(&release), &busybox, &initrd)
            .with_context(|| format!("building the initrd of {package}"))?;
    }
    Ok(Kernel {
        label: label.to_string(),
        package,
        release,
        vmlinuz,
        initrd,
    })
}

/// `apt-get download` + `dpkg -x` of `package` into `into` (skipped when already there).
fn unpack(kernels_dir: &Path, package: &str, into: &Path) -> Result<()> {
    let done = into.join(".unpacked");
    if done.exists() {
        return Ok(());
    }
    let deb = download(kernels_dir, package)?;
    if into.exists() {
        fs::remove_dir_all(into)?;
    }
    run_checked(Command::new("dpkg").arg("-x").arg(&deb).arg(into))?;
    fs::write(done, "")?;
    Ok(())
}

/// The `.deb` of `package` in `kernels_dir/debs`, downloaded if absent.
fn download(kernels_dir: &Path, package: &str) -> Result<PathBuf> {
    let debs = kernels_dir.join("debs");
    fs::create_dir_all(&debs)?;
    let find = || -> Result<Option<PathBuf>> {
        Ok(fs::read_dir(&debs)?.flatten().map(|e| e.path()).find(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(&format!("{package}_")) && n.ends_with(".deb"))
        }))
    };
    if let Some(deb) = find()? {
        return Ok(deb);
    }
    eprintln!("vm-test: downloading {package}");
    run_checked(
        Command::new("apt-get")
            // As root apt drops to its sandbox user, which cannot write into target/.
            .args(["download", "-q", "-o", "APT::Sandbox::User=root", package])
            .current_dir(&debs),
    )?;
    find()?.with_context(|| format!("apt-get download left no {package}_*.deb"))
}

/// Debian's static busybox, unpacked once.
fn busybox(kernels_dir: &Path) -> Result<PathBuf> {
    let root = kernels_dir.join("busybox-static");
    unpack(kernels_dir, "busybox-static", &root)?;
    let bin = root.join("bin/busybox");
    if !bin.exists() {
        bail!("busybox-static has no bin/busybox");
    }
    Ok(bin)
}

/// The initrd: `/init`, `/bin/busybox`, the root disk's modules (decompressed) and the order to
/// load them in, as a newc cpio archive.
fn build_initrd(modules_dir: &Path, busybox: &Path, out: &Path) -> Result<()> {
    let builtin = fs::read_to_string(modules_dir.join("modules.builtin")).unwrap_or_default();
    let mut paths = HashMap::new();
    index_modules(&modules_dir.join("kernel"), &mut paths)?;
    // Packages ship no modules.dep (depmod makes it at install): each module's own
    // `depends=` says what it needs.
    let mut bytes: HashMap<String, Vec<u8>> = HashMap::new();
    let order = load_order(&builtin, |name| {
        let Some(path) = paths.get(name) else {
            return Ok(None);
        };
        let data = decompressed(path)?;
        let deps = modinfo_depends(&data);
        bytes.insert(name.to_string(), data);
        Ok(Some(deps))
    })?;
    let mut archive = Cpio::default();
    archive.dir("bin");
    archive.dir("modules");
    archive.file("init", 0o755, INIT.as_bytes());
    archive.file("bin/busybox", 0o755, &fs::read(busybox)?);
    let mut names = String::new();
    for name in &order {
        let file = format!("{name}.ko");
        archive.file(&format!("modules/{file}"), 0o644, &bytes[name]);
        names.push_str(&file);
        names.push('\n');
    }
    archive.file("modules.order", 0o644, names.as_bytes());
    let tmp = out.with_extension("tmp");
    fs::write(&tmp, archive.finish())?;
    fs::rename(&tmp, out)?;
    Ok(())
}

/// Every module file below `dir`, by module name.
fn index_modules(dir: &Path, into: &mut HashMap<String, PathBuf>) -> Result<()> {
    for entry in fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let entry = entry?;
        let path = entry.path();
        if entry.file_type()?.is_dir() {
            index_modules(&path, into)?;
        } else if path.to_string_lossy().contains(".ko") {
            into.insert(module_name(&path.to_string_lossy()), path);
        }
    }
    Ok(())
}

/// The modules a module needs, from its `.modinfo` (`depends=a,b`).
fn modinfo_depends(elf: &[u8]) -> Vec<String> {
    let key = b"\0depends=";
    let Some(at) = elf.windows(key.len()).position(|w| w == key) else {
        return Vec::new();
    };
    let rest = &elf[at + key.len()..];
    let end = rest.iter().position(|&b| b == 0).unwrap_or(rest.len());
    String::from_utf8_lossy(&rest[..end])
        .split(',')
        .filter(|d| !d.is_empty())
        .map(module_name)
        .collect()
}

/// The modules to load, what each needs first. `deps(name)` gives a module's dependencies, or
/// `None` when the kernel has no such module file.
fn load_order(
    builtin: &str,
    mut deps: impl FnMut(&str) -> Result<Option<Vec<String>>>,
) -> Result<Vec<String>> {
    let is_builtin = |name: &str| builtin.lines().any(|l| module_name(l) == name);
    let mut order = Vec::new();
    let mut seen = BTreeSet::new();
    let wanted = ROOT_MODULES
        .iter()
        .map(|m| (m, true))
        .chain(EXTRA_MODULES.iter().map(|m| (m, false)));
    // Depth-first, dependencies before the module that needs them.
    let mut stack: Vec<(String, bool, bool)> = Vec::new();
    for (name, required) in wanted {
        stack.push(((*name).to_string(), required, false));
        while let Some((name, required, expanded)) = stack.pop() {
            if expanded {
                order.push(name);
                continue;
            }
            if !seen.insert(name.clone()) {
                continue;
            }
            match deps(&name)? {
                Some(needs) => {
                    stack.push((name, required, true));
                    for d in needs.into_iter().rev() {
                        stack.push((d, true, false));
                    }
                }
                None if required && !is_builtin(&name) => {
                    bail!("the kernel has neither a module nor a built-in {name}")
                }
                None => {}
            }
        }
    }
    Ok(order)
}

/// `kernel/fs/ext4/ext4.ko.xz` → `ext4`; dashes and underscores are the same to the kernel.
fn module_name(path: &str) -> String {
    let file = path.trim().rsplit('/').next().unwrap_or(path);
    let stem = file.split(".ko").next().unwrap_or(file);
    stem.replace('-', "_")
}

/// A module file's bytes, decompressed (busybox's insmod takes plain ELF).
fn decompressed(path: &Path) -> Result<Vec<u8>> {
    let name = path.to_string_lossy();
    let tool = if name.ends_with(".xz") {
        "xz"
    } else if name.ends_with(".zst") {
        "zstd"
    } else if name.ends_with(".gz") {
        "gzip"
    } else {
        return fs::read(path).with_context(|| format!("reading {name}"));
    };
    let out = Command::new(tool)
        .arg("-dc")
        .arg(path)
        .output()
        .with_context(|| format!("{tool} (scripts/setup.sh installs it)"))?;
    if !out.status.success() {
        bail!("{tool} -dc {name} failed");
    }
    Ok(out.stdout)
}

/// A newc ("070701") cpio archive, what the kernel unpacks as an initramfs.
#[derive(Default)]
struct Cpio {
    bytes: Vec<u8>,
    ino: u32,
}

impl Cpio {
    fn dir(&mut self, name: &str) {
        self.entry(name, 0o040_755, &[]);
    }

    fn file(&mut self, name: &str, perm: u32, data: &[u8]) {
        self.entry(name, 0o100_000 | perm, data);
    }

    fn entry(&mut self, name: &str, mode: u32, data: &[u8]) {
        self.ino += 1;
        let fields = [
            self.ino,
            mode,
            0,
            0,
            1,
            0,
            u32::try_from(data.len()).expect("initrd files are small"),
            0,
            0,
            0,
            0,
            u32::try_from(name.len() + 1).expect("short names"),
            0,
        ];
        self.bytes.extend_from_slice(b"070701");
        for f in fields {
            self.bytes.extend_from_slice(format!("{f:08x}").as_bytes());
        }
        self.bytes.extend_from_slice(name.as_bytes());
        self.bytes.push(0);
        self.pad();
        self.bytes.extend_from_slice(data);
        self.pad();
    }

    fn pad(&mut self) {
        while !self.bytes.len().is_multiple_of(4) {
            self.bytes.push(0);
        }
    }

    fn finish(mut self) -> Vec<u8> {
        self.entry("TRAILER!!!", 0, &[]);
        self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_newest_stock_image_of_a_series_is_chosen() {
        let names = [
            "linux-image-6.1.0-9-amd64",
            "linux-image-6.1.0-57-amd64",
            "linux-image-6.1.0-57-cloud-amd64",
            "linux-image-6.1.0-58-amd64-unsigned",
            "linux-image-6.12.117+deb12-amd64",
            "linux-image-6.12.9+deb12-amd64",
            "linux-image-6.12-amd64",
            "linux-image-6.12.117+deb12-rt-amd64",
        ];
        assert_eq!(
            newest_stock("6.1", names.iter().copied()).as_deref(),
            Some("linux-image-6.1.0-57-amd64")
        );
        assert_eq!(
            newest_stock("6.12", names.iter().copied()).as_deref(),
            Some("linux-image-6.12.117+deb12-amd64")
        );
        assert_eq!(newest_stock("5.10", names.iter().copied()), None);
    }

    #[test]
    fn modules_load_after_what_they_need_and_built_ins_are_skipped() {
        let deps: HashMap<&str, &[&str]> = HashMap::from([
            ("ext4", &["crc16", "mbcache", "jbd2"][..]),
            ("jbd2", &[][..]),
            ("mbcache", &[][..]),
            ("crc16", &[][..]),
            ("virtio_blk", &["virtio_ring"][..]),
            ("virtio_ring", &[][..]),
        ]);
        let lookup = |n: &str| {
            Ok(deps
                .get(n)
                .map(|d| d.iter().map(|s| s.to_string()).collect()))
        };
        let builtin = "kernel/drivers/virtio/virtio_pci.ko\n";
        let order = load_order(builtin, lookup).unwrap();
        assert_eq!(
            order,
            [
                "virtio_ring",
                "virtio_blk",
                "crc16",
                "mbcache",
                "jbd2",
                "ext4"
            ]
        );
        assert!(load_order("", |_| Ok(None)).is_err());
    }

    #[test]
    fn a_modules_dependencies_come_from_its_modinfo() {
        let elf = b"\x7fELF...\0license=GPL\0depends=jbd2,crc16,mbcache\0intree=Y\0";
        assert_eq!(modinfo_depends(elf), ["jbd2", "crc16", "mbcache"]);
        assert!(modinfo_depends(b"\0depends=\0").is_empty());
        assert_eq!(
            module_name("kernel/arch/x86/crypto/crc32c-intel.ko.xz"),
            "crc32c_intel"
        );
    }

    #[test]
    fn the_cpio_archive_is_newc_with_a_trailer() {
        let mut c = Cpio::default();
        c.file("init", 0o755, b"#!/bin/sh\n");
        let bytes = c.finish();
        assert!(bytes.starts_with(b"070701"));
        assert_eq!(bytes.len() % 4, 0);
        assert!(bytes.windows(10).any(|w| w == b"TRAILER!!!"));
    }
}
