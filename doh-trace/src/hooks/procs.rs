//! Processes and the files they run: each process's executable and the mapped libraries whose
//! names a hooked stack uses, opened through `/proc/PID/exe` and `/proc/PID/map_files/…`.
//!
//! Those are links to the very file the process maps, whichever mount namespace (container) it
//! lives in: nothing is resolved inside the container's root, so a symlink there can never
//! lead the tracer to another file. Without the capability map_files needs, the path under
//! `/proc/PID/root` is used only when it is the same file (device, inode) the maps line names.
//! Files are identified by (device, inode).

use std::{
    os::unix::fs::MetadataExt,
    path::{Path, PathBuf},
};

/// (device, inode) of a file.
pub type FileId = (u64, u64);

/// A file a process uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcFile {
    /// Opens the file from the tracer (a `/proc` magic link, valid while the process lives).
    pub open_path: PathBuf,
    /// The path as the process sees it, with the process named when it lives in another mount
    /// namespace (a container).
    pub shown: String,
    /// The file's name (last path component).
    pub name: String,
    pub id: FileId,
}

/// What one process runs.
#[derive(Debug, Clone, Default)]
pub struct ProcFiles {
    pub pid: u32,
    /// `/proc/PID/comm`.
    pub comm: String,
    pub exe: Option<ProcFile>,
    /// Mapped files whose name is one of the sonames asked for.
    pub libs: Vec<ProcFile>,
}

/// Every process id under `proc`.
pub fn pids(proc: &Path) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir(proc) else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .collect()
}

/// The executable and the libraries named in `sonames` that process `pid` maps, or None if it
/// is gone (or a kernel thread).
pub fn scan(proc: &Path, pid: u32, sonames: &[&str]) -> Option<ProcFiles> {
    let dir = proc.join(pid.to_string());
    let comm = std::fs::read_to_string(dir.join("comm"))
        .ok()?
        .trim_end()
        .to_string();
    let foreign = in_other_mount_ns(proc, pid);
    let shown = |path: &str| {
        if foreign {
            format!("{path} (in the mount namespace of pid {pid})")
        } else {
            path.to_string()
        }
    };
    let exe_link = dir.join("exe");
    let exe = std::fs::read_link(&exe_link).ok().and_then(|target| {
        let meta = std::fs::metadata(&exe_link).ok()?;
        Some(ProcFile {
            shown: shown(&target.to_string_lossy()),
            name: file_name(&target.to_string_lossy()),
            open_path: exe_link,
            id: (meta.dev(), meta.ino()),
        })
    });
    let maps = std::fs::read_to_string(dir.join("maps")).ok()?;
    let mut libs: Vec<ProcFile> = Vec::new();
    for line in maps.lines() {
        // address perms offset dev inode path
        let mut fields = line.split_whitespace();
        let (Some(range), Some(path)) = (fields.next(), fields.nth(4)) else {
            continue;
        };
        let name = path.rsplit('/').next().unwrap_or(path);
        if !path.starts_with('/') || !sonames.contains(&name) {
            continue;
        }
        let Some((open_path, id)) = open_mapped(&dir, range, line, path) else {
            continue;
        };
        if libs.iter().all(|l| l.id != id) {
            libs.push(ProcFile {
                open_path,
                shown: shown(path),
                name: name.to_string(),
                id,
            });
        }
    }
    Some(ProcFiles {
        pid,
        comm,
        exe,
        libs,
    })
}

/// A path that opens the file mapped at `range`, and its identity: `map_files/RANGE` (needs
/// CAP_SYS_ADMIN or CAP_CHECKPOINT_RESTORE), else the path under the process's root, accepted
/// only if it is the very file the maps line names (device and inode), so a symlink planted
/// in a container cannot send the tracer elsewhere.
fn open_mapped(dir: &Path, range: &str, line: &str, path: &str) -> Option<(PathBuf, FileId)> {
    let link = dir.join("map_files").join(range);
    if let Ok(meta) = std::fs::metadata(&link) {
        return Some((link, (meta.dev(), meta.ino())));
    }
    // address perms offset dev inode path: dev is "major:minor" in hex.
    let mut fields = line.split_whitespace().skip(3);
    let (major, minor) = fields.next()?.split_once(':')?;
    let dev = libc::makedev(
        u32::from_str_radix(major, 16).ok()?,
        u32::from_str_radix(minor, 16).ok()?,
    );
    let inode: u64 = fields.next()?.parse().ok()?;
    let under_root = dir.join("root").join(path.trim_start_matches('/'));
    let meta = std::fs::metadata(&under_root).ok()?;
    (meta.dev() == dev && meta.ino() == inode).then_some((under_root, (dev, inode)))
}

fn file_name(path: &str) -> String {
    path.rsplit('/').next().unwrap_or(path).to_string()
}

/// Whether `pid` lives in another mount namespace than the tracer.
fn in_other_mount_ns(proc: &Path, pid: u32) -> bool {
    let theirs = std::fs::read_link(proc.join(pid.to_string()).join("ns/mnt")).ok();
    let ours = std::fs::read_link(proc.join("self/ns/mnt")).ok();
    theirs.is_some() && theirs != ours
}

/// Library files named in `sonames` in the standard directories of the tracer's own system.
pub fn system_libraries(sonames: &[&str]) -> Vec<ProcFile> {
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
    let mut found: Vec<ProcFile> = Vec::new();
    for dir in LIB_DIRS {
        for name in sonames {
            let path = Path::new(dir).join(name);
            let Ok(meta) = std::fs::metadata(&path) else {
                continue;
            };
            let id = (meta.dev(), meta.ino());
            if meta.is_file() && found.iter().all(|f| f.id != id) {
                found.push(ProcFile {
                    shown: path.display().to_string(),
                    name: name.to_string(),
                    open_path: path,
                    id,
                });
            }
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_maps_libc_once_and_runs_its_test_binary() {
        let me = std::process::id();
        let files = scan(Path::new("/proc"), me, &["libc.so.6"]).expect("own /proc entry");
        assert_eq!(files.libs.len(), 1, "{files:?}");
        assert!(files.libs[0].shown.ends_with("/libc.so.6"), "{files:?}");
        let exe = files.exe.expect("own executable");
        let own = std::fs::metadata("/proc/self/exe").unwrap();
        assert_eq!(exe.id, (own.dev(), own.ino()));
        // The magic link opens the same file the process maps.
        let via_link = std::fs::metadata(&files.libs[0].open_path).unwrap();
        assert_eq!((via_link.dev(), via_link.ino()), files.libs[0].id);
    }

    #[test]
    fn system_libraries_are_deduplicated_by_identity() {
        // /lib often links to /usr/lib: the same libc must appear once.
        let libs = system_libraries(&["libc.so.6"]);
        assert!(!libs.is_empty());
        let mut ids: Vec<_> = libs.iter().map(|l| l.id).collect();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), libs.len(), "{libs:?}");
    }

    #[test]
    fn the_root_path_fallback_accepts_only_the_mapped_file() {
        let me = std::process::id();
        let dir = Path::new("/proc").join(me.to_string());
        let maps = std::fs::read_to_string(dir.join("maps")).unwrap();
        let line = maps
            .lines()
            .find(|l| l.ends_with("/libc.so.6"))
            .expect("libc mapped");
        let path = line.split_whitespace().nth(5).unwrap();
        // A range map_files does not have: the fallback must be taken.
        let (open, id) = open_mapped(&dir, "0-0", line, path).expect("same file");
        assert!(open.starts_with(dir.join("root")), "{open:?}");
        let meta = std::fs::metadata(path).unwrap();
        assert_eq!(id, (meta.dev(), meta.ino()));
        // The same line naming another inode (as if the path now led elsewhere): refused.
        let fields: Vec<&str> = line.split_whitespace().collect();
        let forged = format!(
            "{} {} {} {} {} {}",
            fields[0],
            fields[1],
            fields[2],
            fields[3],
            meta.ino() + 1,
            path
        );
        assert!(open_mapped(&dir, "0-0", &forged, path).is_none());
    }

    #[test]
    fn a_gone_process_scans_as_none() {
        assert!(scan(Path::new("/proc"), u32::MAX - 1, &["libc.so.6"]).is_none());
    }
}
