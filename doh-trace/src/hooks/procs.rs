//! Processes and the files they run: each process's executable and the mapped libraries whose
//! names a hooked stack uses — each **opened once**, identified by its descriptor, and used
//! through that descriptor from then on (inspected, symbols resolved, uprobes attached through
//! `/proc/self/fd/N`), so that nothing can swap the file between the look and the hook.
//!
//! The executable is opened through `/proc/PID/exe` and a library through
//! `/proc/PID/map_files/RANGE`: magic links to the very file the process maps, whichever mount
//! namespace (container) it lives in. Without the capability map_files needs, the path is
//! opened inside the process's root (`openat2` with `RESOLVE_IN_ROOT`, so a symlink planted in
//! a container resolves there and cannot lead outside). Either way the opened file must be the
//! one the maps line names (device, inode, from `fstat` of the descriptor) and a regular file;
//! files are opened non-blocking (a FIFO cannot hang the tracer) and identified by
//! (device, inode).

use std::{
    ffi::CString,
    fs::File,
    os::{
        fd::{AsRawFd as _, FromRawFd as _},
        unix::{ffi::OsStrExt as _, fs::MetadataExt as _, fs::OpenOptionsExt as _},
    },
    path::{Path, PathBuf},
    sync::Arc,
};

use super::identity::{self, HookId};

/// (device, inode) of a file.
pub type FileId = (u64, u64);

/// A file a process uses, open.
#[derive(Debug, Clone)]
pub struct ProcFile {
    /// The open file: everything done with it goes through this descriptor.
    pub file: Arc<File>,
    /// The path as the process sees it, with the process named when it lives in another mount
    /// namespace (a container).
    pub shown: String,
    /// The file's name (last path component).
    pub name: String,
    /// (device, inode) as `stat` and the maps line show it.
    pub id: FileId,
    /// What a hook on it lands on: the same file for every container of one image.
    pub hook_id: HookId,
}

impl ProcFile {
    /// The path that names this very open file to the kernel (for attaching uprobes).
    pub fn fd_path(&self) -> PathBuf {
        PathBuf::from(format!("/proc/self/fd/{}", self.file.as_raw_fd()))
    }
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

/// Opens `path` for reading without blocking on a FIFO; None unless it is a regular file.
fn open_regular(path: &Path) -> Option<(File, FileId)> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC | libc::O_NOCTTY)
        .open(path)
        .ok()?;
    identify(file)
}

/// The file's identity, from its descriptor; None unless it is a regular file.
fn identify(file: File) -> Option<(File, FileId)> {
    let meta = file.metadata().ok()?;
    meta.is_file().then(|| {
        let id = (meta.dev(), meta.ino());
        (file, id)
    })
}

/// The executable and the libraries named in `sonames` that process `pid` maps, opened, or None
/// if it is gone (or a kernel thread).
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
        let (file, id) = open_regular(&exe_link)?;
        let target = target.to_string_lossy();
        Some(ProcFile {
            hook_id: identity::hook_id(&file)?,
            file: Arc::new(file),
            shown: shown(&target),
            name: file_name(&target),
            id,
        })
    });
    let maps = std::fs::read_to_string(dir.join("maps")).ok()?;
    let mut libs: Vec<ProcFile> = Vec::new();
    for line in maps.lines() {
        let Some(mapped) = MapsLine::parse(line) else {
            continue;
        };
        let name = mapped.path.rsplit('/').next().unwrap_or(mapped.path);
        if !mapped.path.starts_with('/') || !sonames.contains(&name) {
            continue;
        }
        if libs.iter().any(|l| l.id == mapped.id) {
            continue;
        }
        let Some(file) = open_mapped(&dir, &mapped) else {
            continue;
        };
        let Some(hook_id) = identity::hook_id(&file) else {
            continue;
        };
        libs.push(ProcFile {
            hook_id,
            file: Arc::new(file),
            shown: shown(mapped.path),
            name: name.to_string(),
            id: mapped.id,
        });
    }
    Some(ProcFiles {
        pid,
        comm,
        exe,
        libs,
    })
}

/// A line of `/proc/PID/maps`: `address perms offset dev inode path`.
pub struct MapsLine<'a> {
    pub range: &'a str,
    /// The mapped file's (device, inode) as the kernel names it.
    pub id: FileId,
    pub path: &'a str,
}

impl<'a> MapsLine<'a> {
    /// One line of the maps file (a process's own: its mapped paths are its to name); None
    /// for an anonymous mapping or a line that is not one.
    pub fn parse(line: &'a str) -> Option<Self> {
        let mut fields = line.split_whitespace();
        let range = fields.next()?;
        let (major, minor) = fields.nth(2)?.split_once(':')?;
        let dev = libc::makedev(
            u32::from_str_radix(major, 16).ok()?,
            u32::from_str_radix(minor, 16).ok()?,
        );
        let inode: u64 = fields.next()?.parse().ok()?;
        let path = fields.next()?;
        Some(MapsLine {
            range,
            id: (dev, inode),
            path,
        })
    }
}

/// Opens the file mapped at a maps line: through `map_files/RANGE` (needs CAP_SYS_ADMIN or
/// CAP_CHECKPOINT_RESTORE), else by its path inside the process's root. Accepted only if the
/// descriptor is the very file the line names (device and inode).
fn open_mapped(dir: &Path, line: &MapsLine<'_>) -> Option<File> {
    let opened = open_regular(&dir.join("map_files").join(line.range))
        .or_else(|| open_in_root(&dir.join("root"), line.path));
    let (file, id) = opened?;
    (id == line.id).then_some(file)
}

/// Opens `path` as the process whose root is `root` (a `/proc/PID/root` magic link) sees it:
/// every component, symlinks included, resolved inside that root.
fn open_in_root(root: &Path, path: &str) -> Option<(File, FileId)> {
    let root = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC)
        .open(root)
        .ok()?;
    let path = CString::new(
        Path::new(path.trim_start_matches('/'))
            .as_os_str()
            .as_bytes(),
    )
    .ok()?;
    // SAFETY: open_how is plain integers; all-zero is its valid empty value.
    let mut how: libc::open_how = unsafe { std::mem::zeroed() };
    how.flags = (libc::O_RDONLY | libc::O_NONBLOCK | libc::O_CLOEXEC | libc::O_NOCTTY) as u64;
    how.resolve = libc::RESOLVE_IN_ROOT | libc::RESOLVE_NO_MAGICLINKS;
    // SAFETY: openat2 with a valid directory fd, a NUL-terminated path and an open_how of the
    // size passed; a returned fd is owned by the File made from it.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_openat2,
            root.as_raw_fd(),
            path.as_ptr(),
            &how as *const libc::open_how,
            std::mem::size_of::<libc::open_how>(),
        )
    };
    if fd < 0 {
        return None;
    }
    // SAFETY: a new descriptor this process owns.
    identify(unsafe { File::from_raw_fd(fd as i32) })
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

/// The standard library directories, where the dynamic loader finds a soname.
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

/// Library files named in `sonames` in the standard directories of the tracer's own system,
/// opened (once each, by identity).
pub fn system_libraries(sonames: &[&str]) -> Vec<ProcFile> {
    libraries_in(
        sonames,
        |path| open_regular(Path::new(path)),
        str::to_string,
    )
}

/// Library files named in `sonames` in the standard directories of the root process `pid`
/// sees (a container's), opened inside that root: what the process will map when its dynamic
/// loader gets to them, so they can be hooked before. Empty when `pid` shares the tracer's
/// mount namespace ([`system_libraries`] are those) or is gone.
pub fn root_libraries(proc: &Path, pid: u32, sonames: &[&str]) -> Vec<ProcFile> {
    if !in_other_mount_ns(proc, pid) {
        return Vec::new();
    }
    let root = proc.join(pid.to_string()).join("root");
    libraries_in(
        sonames,
        |path| open_in_root(&root, path),
        |path| format!("{path} (in the mount namespace of pid {pid})"),
    )
}

/// The files `open` gives for each soname in each of [`LIB_DIRS`], once per hook identity
/// (`/lib` often links to `/usr/lib`).
fn libraries_in(
    sonames: &[&str],
    open: impl Fn(&str) -> Option<(File, FileId)>,
    shown: impl Fn(&str) -> String,
) -> Vec<ProcFile> {
    let mut found: Vec<ProcFile> = Vec::new();
    for dir in LIB_DIRS {
        for name in sonames {
            let path = format!("{dir}/{name}");
            let Some((file, id)) = open(&path) else {
                continue;
            };
            let Some(hook_id) = identity::hook_id(&file) else {
                continue;
            };
            if found.iter().all(|f| f.hook_id != hook_id) {
                found.push(ProcFile {
                    hook_id,
                    file: Arc::new(file),
                    shown: shown(&path),
                    name: name.to_string(),
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
        // The descriptor is the file the process maps, and its fd path names it.
        let via_fd = std::fs::metadata(files.libs[0].fd_path()).unwrap();
        assert_eq!((via_fd.dev(), via_fd.ino()), files.libs[0].id);
        let lib = files.libs[0].file.metadata().unwrap();
        assert_eq!((lib.dev(), lib.ino()), files.libs[0].id);
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
        let mut mapped = MapsLine::parse(line).unwrap();
        mapped.range = "0-0";
        let file = open_mapped(&dir, &mapped).expect("same file");
        let meta = std::fs::metadata(path).unwrap();
        let opened = file.metadata().unwrap();
        assert_eq!((opened.dev(), opened.ino()), (meta.dev(), meta.ino()));
        // The same line naming another inode (as if the path now led elsewhere): refused.
        mapped.id.1 += 1;
        assert!(open_mapped(&dir, &mapped).is_none());
    }

    #[test]
    fn a_path_in_a_containers_root_resolves_inside_it_and_only_regular_files_open() {
        let root = std::env::temp_dir().join(format!("procs-root-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(root.join("usr/lib")).unwrap();
        std::fs::create_dir_all(root.join("etc")).unwrap();
        std::fs::write(root.join("etc/hostname"), "inside").unwrap();
        // An absolute symlink, as a container's image may plant: it must not leave the root.
        std::os::unix::fs::symlink("/etc/hostname", root.join("usr/lib/libssl.so.3")).unwrap();
        let (mut file, _) = open_in_root(&root, "/usr/lib/libssl.so.3").expect("opens");
        let mut text = String::new();
        std::io::Read::read_to_string(&mut file, &mut text).unwrap();
        assert_eq!(text, "inside");
        // Escaping with `..` stays inside too.
        std::os::unix::fs::symlink("../../../../etc/hostname", root.join("usr/lib/up.so")).unwrap();
        let (mut file, _) = open_in_root(&root, "/usr/lib/up.so").expect("opens");
        text.clear();
        std::io::Read::read_to_string(&mut file, &mut text).unwrap();
        assert_eq!(text, "inside");
        // A FIFO (or any non-regular file) is refused at once, never waited on.
        let fifo = root.join("usr/lib/libgnutls.so.30");
        let c = CString::new(fifo.as_os_str().as_bytes()).unwrap();
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        assert!(open_in_root(&root, "/usr/lib/libgnutls.so.30").is_none());
        assert!(open_regular(&fifo).is_none());
        assert!(open_regular(&root.join("usr/lib")).is_none(), "a directory");
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn a_process_that_execs_after_the_scan_cannot_swap_the_file() {
        // The scan opens the shell's executable; the shell then execs another program. What
        // the hooks would attach to (the descriptor's path) is still the file scanned.
        use std::io::Write as _;
        let mut child = std::process::Command::new("/bin/sh")
            .args(["-c", "read x; exec /bin/sleep 5"])
            .stdin(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let pid = child.id();
        let proc = Path::new("/proc");
        let exe_of = |pid: u32| {
            let m = std::fs::metadata(format!("/proc/{pid}/exe")).ok()?;
            Some((m.dev(), m.ino()))
        };
        let scanned = scan(proc, pid, &[])
            .unwrap()
            .exe
            .expect("the shell's executable");
        let shell = exe_of(pid).unwrap();
        assert_eq!(scanned.id, shell);
        child.stdin.take().unwrap().write_all(b"go\n").unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while exe_of(pid) == Some(shell) {
            assert!(
                std::time::Instant::now() < deadline,
                "the shell did not exec"
            );
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        let now = exe_of(pid).unwrap();
        assert_ne!(now, shell, "the process runs another file now");
        let via_fd = std::fs::metadata(scanned.fd_path()).unwrap();
        assert_eq!(
            (via_fd.dev(), via_fd.ino()),
            shell,
            "the descriptor names the scanned file"
        );
        let _ = child.kill();
        let _ = child.wait();
    }

    #[test]
    fn a_containers_own_libraries_are_found_inside_its_root_before_it_maps_them() {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            eprintln!("SKIPPED: a private mount namespace needs root");
            return;
        }
        // A process in a mount namespace of its own, whose /usr/local/lib holds a library the
        // tracer's own system does not have (a tmpfs only that namespace sees).
        let name = format!("libdohtest{}.so.1", std::process::id());
        let script = format!(
            "mount -t tmpfs t /usr/local/lib && printf '\\177ELF' > /usr/local/lib/{name} && \
             exec sleep 30"
        );
        let mut child = std::process::Command::new("unshare")
            .args(["-m", "--propagation", "private", "sh", "-c", &script])
            .spawn()
            .unwrap();
        let pid = child.id();
        let proc = Path::new("/proc");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let found = loop {
            let found = root_libraries(proc, pid, &[name.as_str()]);
            if !found.is_empty() || std::time::Instant::now() > deadline {
                break found;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        };
        let _ = child.kill();
        let _ = child.wait();
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(
            found[0].shown,
            format!("/usr/local/lib/{name} (in the mount namespace of pid {pid})")
        );
        assert!(system_libraries(&[name.as_str()]).is_empty());
        // Our own mount namespace: the system libraries are those, nothing is added.
        assert!(root_libraries(proc, std::process::id(), &["libc.so.6"]).is_empty());
    }

    #[test]
    fn a_gone_process_scans_as_none() {
        assert!(scan(Path::new("/proc"), u32::MAX - 1, &["libc.so.6"]).is_none());
    }
}
