//! Building doh-trace's eBPF object (`doh-trace-ebpf` for `bpfel-unknown-none`, with a nightly
//! whose LLVM matches bpf-linker's). One function for both callers: `cargo xtask build-ebpf`
//! and doh-trace's build script, which rebuilds the object whenever its sources change, so a
//! `cargo build` never embeds a stale one.
//!
//! The object lands in `target/ebpf/bpfel-unknown-none/release/doh-trace`: a target directory
//! of its own, so that the build script's nested cargo never waits for the lock of the build
//! that runs it. Beside it, `doh-trace.sources` holds a hash of the sources it was built from
//! ([`sources_hash`]); the tracer's tests compare it with the sources of the tree.

use std::{
    fmt, fs,
    io::{self, Write as _},
    path::{Path, PathBuf},
    process::Command,
};

/// LLVM major version bpf-linker is built against (scripts/setup.sh).
pub const LLVM_MAJOR: &str = "22";
/// Nightly toolchains tried in order: the default nightly, then the pinned one setup installs.
pub const NIGHTLIES: &[&str] = &["nightly", "nightly-2026-05-20"];
/// The eBPF target.
pub const TARGET: &str = "bpfel-unknown-none";

/// Why the object could not be built.
#[derive(Debug)]
pub enum BuildError {
    /// bpf-linker is not on PATH.
    NoLinker,
    /// No nightly with the right LLVM.
    NoNightly,
    /// cargo could not be started.
    Spawn(io::Error),
    /// The build failed.
    Failed(String),
    /// The sources could not be read.
    Sources(io::Error),
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BuildError::NoLinker => {
                write!(f, "bpf-linker is not installed: run scripts/setup.sh (or see README)")
            }
            BuildError::NoNightly => write!(
                f,
                "no nightly toolchain with LLVM {LLVM_MAJOR} found (tried {}): run scripts/setup.sh",
                NIGHTLIES.join(", ")
            ),
            BuildError::Spawn(e) => write!(f, "running cargo +nightly (is rustup installed?): {e}"),
            BuildError::Failed(why) => write!(f, "eBPF build failed ({why})"),
            BuildError::Sources(e) => write!(f, "reading the eBPF sources: {e}"),
        }
    }
}

impl std::error::Error for BuildError {}

/// Where the workspace's eBPF build puts things.
#[derive(Debug, Clone)]
pub struct Layout {
    /// The workspace root.
    pub root: PathBuf,
}

impl Layout {
    /// The layout of the workspace at `root`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Layout { root: root.into() }
    }

    /// The eBPF build's own target directory.
    pub fn target_dir(&self) -> PathBuf {
        self.root.join("target/ebpf")
    }

    /// The built object.
    pub fn object(&self) -> PathBuf {
        self.target_dir().join(TARGET).join("release/doh-trace")
    }

    /// The hash of the sources the object was built from.
    pub fn stamp(&self) -> PathBuf {
        self.target_dir()
            .join(TARGET)
            .join("release/doh-trace.sources")
    }

    /// The files and directories whose contents make the object: the eBPF crate and the
    /// crate of shared records.
    pub fn sources(&self) -> [PathBuf; 4] {
        [
            self.root.join("doh-trace-ebpf/Cargo.toml"),
            self.root.join("doh-trace-ebpf/src"),
            self.root.join("doh-trace-common/Cargo.toml"),
            self.root.join("doh-trace-common/src"),
        ]
    }
}

fn llvm_major(toolchain: &str) -> Option<String> {
    let out = Command::new("rustc")
        .arg(format!("+{toolchain}"))
        .arg("-vV")
        .env_remove("RUSTUP_TOOLCHAIN")
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let v = text
        .lines()
        .find_map(|l| l.strip_prefix("LLVM version: "))?;
    Some(v.split('.').next()?.to_string())
}

/// The nightly to use: `explicit` if given, else the first of [`NIGHTLIES`] with LLVM 22.
pub fn pick_toolchain(explicit: Option<&str>) -> Result<String, BuildError> {
    if let Some(t) = explicit {
        return Ok(t.to_string());
    }
    NIGHTLIES
        .iter()
        .find(|t| llvm_major(t).as_deref() == Some(LLVM_MAJOR))
        .map(|t| t.to_string())
        .ok_or(BuildError::NoNightly)
}

/// Environment a cargo build script or an outer cargo sets that must not reach the nested
/// nightly build (flags for another target, sanitizers of a fuzz build, the outer toolchain).
const SCRUBBED_ENV: &[&str] = &[
    "RUSTUP_TOOLCHAIN",
    "RUSTC",
    "RUSTC_WRAPPER",
    "RUSTC_WORKSPACE_WRAPPER",
    "RUSTFLAGS",
    "RUSTDOCFLAGS",
    "CARGO_ENCODED_RUSTFLAGS",
    "CARGO_BUILD_RUSTFLAGS",
    "CARGO_TARGET_DIR",
    "CARGO_BUILD_TARGET",
    "CARGO_MAKEFLAGS",
    "MAKEFLAGS",
    "MFLAGS",
];

/// Builds the object with `toolchain` (or the one [`pick_toolchain`] finds), writing its
/// sources' hash beside it. `log` receives cargo's output lines (the build script turns them
/// into warnings). Returns the object's path.
pub fn build(
    layout: &Layout,
    toolchain: Option<&str>,
    mut log: impl FnMut(&str),
) -> Result<PathBuf, BuildError> {
    if Command::new("bpf-linker")
        .arg("--version")
        .output()
        .is_err()
    {
        return Err(BuildError::NoLinker);
    }
    let toolchain = pick_toolchain(toolchain)?;
    // Hashed before building: an edit made during the build leaves a stale stamp, never a
    // stamp that claims sources the object was not built from.
    let hash = sources_hash(layout).map_err(BuildError::Sources)?;
    let mut cmd = Command::new("cargo");
    cmd.current_dir(layout.root.join("doh-trace-ebpf"));
    for var in SCRUBBED_ENV {
        cmd.env_remove(var);
    }
    // Any CARGO_CFG_*/CARGO_FEATURE_* of a build script describe the outer target.
    for (var, _) in std::env::vars_os() {
        let var = var.to_string_lossy();
        if var.starts_with("CARGO_CFG_") || var.starts_with("CARGO_FEATURE_") {
            cmd.env_remove(&*var);
        }
    }
    let out = cmd
        .env("CARGO_TARGET_DIR", layout.target_dir())
        // The workspace's release profile uses fat LTO for the userspace tracer; bpf-linker
        // links the eBPF crate's bitcode itself.
        .env("CARGO_PROFILE_RELEASE_LTO", "false")
        .arg(format!("+{toolchain}"))
        .args([
            "build",
            "--release",
            "--target",
            TARGET,
            "-Z",
            "build-std=core",
        ])
        .output()
        .map_err(BuildError::Spawn)?;
    for line in String::from_utf8_lossy(&out.stderr).lines() {
        log(line);
    }
    if !out.status.success() {
        return Err(BuildError::Failed(out.status.to_string()));
    }
    let stamp = layout.stamp();
    fs::File::create(&stamp)
        .and_then(|mut f| writeln!(f, "{hash:016x}"))
        .map_err(BuildError::Sources)?;
    log(&format!("eBPF object built with {toolchain}"));
    Ok(layout.object())
}

/// The hash the object at [`Layout::object`] was built from, if a build wrote one.
pub fn built_from(layout: &Layout) -> Option<u64> {
    let text = fs::read_to_string(layout.stamp()).ok()?;
    u64::from_str_radix(text.trim(), 16).ok()
}

/// A hash (FNV-1a, 64 bits: change detection, not security) of the eBPF object's sources:
/// every file's path relative to the root and its contents, in path order.
pub fn sources_hash(layout: &Layout) -> io::Result<u64> {
    let mut files = Vec::new();
    for path in layout.sources() {
        collect(&path, &mut files)?;
    }
    files.sort();
    let mut h = Fnv::default();
    for file in files {
        let rel = file.strip_prefix(&layout.root).unwrap_or(&file);
        h.write(rel.to_string_lossy().as_bytes());
        h.write(&[0]);
        h.write(&fs::read(&file)?);
        h.write(&[0]);
    }
    Ok(h.0)
}

/// Every regular file at or below `path`.
fn collect(path: &Path, out: &mut Vec<PathBuf>) -> io::Result<()> {
    let meta = fs::symlink_metadata(path)?;
    if meta.is_dir() {
        for entry in fs::read_dir(path)? {
            collect(&entry?.path(), out)?;
        }
    } else if meta.is_file() {
        out.push(path.to_path_buf());
    }
    Ok(())
}

struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
}

impl Fnv {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 ^= u64::from(b);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hash_changes_with_any_source_file_and_nothing_else() {
        let root = std::env::temp_dir().join(format!("ebpf-build-test-{}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        for dir in ["doh-trace-ebpf/src/probes", "doh-trace-common/src"] {
            fs::create_dir_all(root.join(dir)).unwrap();
        }
        let layout = Layout::new(&root);
        for (file, text) in [
            ("doh-trace-ebpf/Cargo.toml", "[package]"),
            ("doh-trace-ebpf/src/main.rs", "fn main() {}"),
            ("doh-trace-ebpf/src/probes/a.rs", "a"),
            ("doh-trace-common/Cargo.toml", "[package]"),
            ("doh-trace-common/src/lib.rs", "//!"),
        ] {
            fs::write(root.join(file), text).unwrap();
        }
        let before = sources_hash(&layout).unwrap();
        assert_eq!(sources_hash(&layout).unwrap(), before, "deterministic");
        fs::write(root.join("README"), "not a source").unwrap();
        assert_eq!(sources_hash(&layout).unwrap(), before);
        fs::write(root.join("doh-trace-ebpf/src/probes/a.rs"), "b").unwrap();
        let edited = sources_hash(&layout).unwrap();
        assert_ne!(edited, before, "an edited source");
        fs::rename(
            root.join("doh-trace-ebpf/src/probes/a.rs"),
            root.join("doh-trace-ebpf/src/probes/c.rs"),
        )
        .unwrap();
        assert_ne!(sources_hash(&layout).unwrap(), edited, "a renamed source");
        fs::remove_dir_all(&root).unwrap();
    }
}
