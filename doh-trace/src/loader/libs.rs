//! Finding the TLS libraries to hook: standard library directories plus every library mapped
//! by a running process (through `/proc/PID/root`, so containers count), deduplicated by
//! file identity (device, inode).

use std::{
    collections::HashSet,
    os::unix::fs::MetadataExt,
    path::{Path, PathBuf},
};

/// Directories searched for shared libraries.
const LIB_DIRS: &[&str] = &[
    "/lib",
    "/lib64",
    "/usr/lib",
    "/usr/lib64",
    "/usr/local/lib",
    "/usr/local/lib64",
    "/lib/x86_64-linux-gnu",
    "/usr/lib/x86_64-linux-gnu",
    "/lib/aarch64-linux-gnu",
    "/usr/lib/aarch64-linux-gnu",
];

/// A library file to hook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LibFile {
    /// A path that opens the file from the tracer's mount namespace.
    pub path: PathBuf,
    /// (device, inode)
    pub id: (u64, u64),
}

/// Finds every file named one of `sonames`, in `LIB_DIRS` and in processes' maps under `proc`.
pub fn find(sonames: &[&str], proc: &Path) -> Vec<LibFile> {
    let mut seen = HashSet::new();
    let mut found = Vec::new();
    let mut add = |path: PathBuf| {
        if let Ok(meta) = std::fs::metadata(&path) {
            if meta.is_file() && seen.insert((meta.dev(), meta.ino())) {
                found.push(LibFile {
                    path,
                    id: (meta.dev(), meta.ino()),
                });
            }
        }
    };
    for dir in LIB_DIRS {
        for name in sonames {
            add(Path::new(dir).join(name));
        }
    }
    for (pid, mapped) in mapped_files(proc) {
        let matches = mapped
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| sonames.contains(&n));
        if matches {
            // Open it through the process's root so libraries inside containers resolve too.
            let rel = mapped.strip_prefix("/").unwrap_or(&mapped);
            add(proc.join(pid.to_string()).join("root").join(rel));
        }
    }
    found
}

/// (pid, path) for every file-backed mapping of every process under `proc`.
fn mapped_files(proc: &Path) -> Vec<(u32, PathBuf)> {
    let Ok(dir) = std::fs::read_dir(proc) else {
        return Vec::new();
    };
    let mut out = HashSet::new();
    for entry in dir.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(maps) = std::fs::read_to_string(entry.path().join("maps")) else {
            continue;
        };
        for line in maps.lines() {
            // address perms offset dev inode path
            if let Some(path) = line.split_whitespace().nth(5) {
                if path.starts_with('/') {
                    out.insert((pid, PathBuf::from(path)));
                }
            }
        }
    }
    out.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_libc_once_per_file_however_many_processes_map_it() {
        // Every process here maps libc, and /lib often links to /usr/lib.
        let libs = find(&["libc.so.6"], Path::new("/proc"));
        assert!(!libs.is_empty());
        let mut ids: Vec<_> = libs.iter().map(|l| l.id).collect();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), libs.len(), "{libs:?}");
    }
}
