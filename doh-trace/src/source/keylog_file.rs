//! The live tracer's TLS key log (`doh-trace --keylog PATH`): where clients write their
//! `SSLKEYLOGFILE` lines while the tracer reads them.
//!
//! A path that does not exist becomes a FIFO, created mode 0600 by the tracer and removed when
//! it exits (if it is still the same FIFO): only root's clients can write to it unless the user
//! hands it over (`chown`). An existing FIFO or regular file is read as it is — a regular file
//! from its start, then as it grows. Nothing else is accepted, and no symbolic link is followed
//! (the last component is opened with `O_NOFOLLOW`, and everything after is done on that fd).
//! The text is hostile input like any other: [`crate::proto::tls::decrypt::KeyLog`] bounds it.
//!
//! A thread reads the file and hands the pieces to the event loop over a bounded channel, so
//! a writer that floods the FIFO is slowed down, never buffered without bound.

use std::{
    ffi::CString,
    fs::{File, OpenOptions},
    io::{self, Read as _},
    os::unix::{
        ffi::OsStrExt as _,
        fs::{FileTypeExt as _, MetadataExt as _, OpenOptionsExt as _, PermissionsExt as _},
    },
    path::{Path, PathBuf},
    time::Duration,
};

use tokio::sync::mpsc;

/// Pieces in flight between the reading thread and the event loop.
const CHANNEL_DEPTH: usize = 16;
/// Bytes read at once.
const READ_SIZE: usize = 16 * 1024;
/// How often a regular file is checked for new lines.
const FILE_POLL: Duration = Duration::from_millis(100);

/// An open key log.
#[derive(Debug)]
pub struct KeylogFile {
    file: File,
    fifo: bool,
    /// The FIFO this tracer made: (path, device, inode), removed at the end.
    created: Option<(PathBuf, u64, u64)>,
}

impl KeylogFile {
    /// Opens `path` as described in the module doc.
    pub fn open(path: &Path) -> io::Result<KeylogFile> {
        let c_path = CString::new(path.as_os_str().as_bytes())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "a NUL in the path"))?;
        // SAFETY: mkfifo with a NUL-terminated path; it never follows a link in the last
        // component (an existing link makes it fail with EEXIST).
        let made = unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) } == 0;
        if !made {
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::AlreadyExists {
                return Err(e);
            }
        }
        // O_RDWR for a FIFO: the tracer is a writer too, so reads never see an end of file
        // when the last client closes it; for a regular file O_RDONLY (see below).
        // O_NONBLOCK: opening a FIFO never waits (cleared below).
        let flags = libc::O_NOFOLLOW | libc::O_CLOEXEC | libc::O_NONBLOCK;
        let file = OpenOptions::new()
            .read(true)
            .custom_flags(flags)
            .open(path)?;
        let meta = file.metadata()?;
        let kind = meta.file_type();
        let (file, fifo) = if kind.is_fifo() {
            // The same FIFO through this fd, writable too.
            let again = OpenOptions::new()
                .read(true)
                .write(true)
                .custom_flags(libc::O_CLOEXEC)
                .open(fd_path(&file))?;
            (again, true)
        } else if kind.is_file() {
            (file, false)
        } else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "not a FIFO or a regular file",
            ));
        };
        let created = if made {
            // SAFETY: geteuid has no preconditions.
            let me = unsafe { libc::geteuid() };
            if !fifo || meta.uid() != me {
                return Err(io::Error::other(
                    "the FIFO just created was replaced by another file",
                ));
            }
            // Exactly 0600 whatever the umask was.
            file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
            Some((path.to_owned(), meta.dev(), meta.ino()))
        } else {
            None
        };
        set_blocking(&file)?;
        Ok(KeylogFile {
            file,
            fifo,
            created,
        })
    }

    /// Whether it is a FIFO (else a regular file).
    pub fn is_fifo(&self) -> bool {
        self.fifo
    }

    /// Whether this tracer created it.
    pub fn created(&self) -> bool {
        self.created.is_some()
    }

    /// Reads it on a thread of its own; the pieces come out of the receiver (split anywhere,
    /// in order). Returns the FIFO to remove when done, if the tracer created it.
    pub fn spawn_reader(self) -> io::Result<(mpsc::Receiver<Vec<u8>>, CreatedFifo)> {
        let (tx, rx) = mpsc::channel(CHANNEL_DEPTH);
        let KeylogFile {
            mut file, created, ..
        } = self;
        std::thread::Builder::new()
            .name("keylog".into())
            .spawn(move || {
                let mut buf = vec![0u8; READ_SIZE];
                loop {
                    match file.read(&mut buf) {
                        // A regular file's end, for now (a FIFO opened read-write has none).
                        Ok(0) => std::thread::sleep(FILE_POLL),
                        Ok(n) => {
                            if tx.blocking_send(buf[..n].to_vec()).is_err() {
                                return;
                            }
                        }
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        Err(e) => {
                            eprintln!("doh-trace: reading the key log stopped: {e}");
                            return;
                        }
                    }
                }
            })?;
        Ok((rx, CreatedFifo(created)))
    }
}

/// The FIFO the tracer created, removed when this is dropped — if the path still names it.
#[derive(Debug)]
pub struct CreatedFifo(Option<(PathBuf, u64, u64)>);

impl Drop for CreatedFifo {
    fn drop(&mut self) {
        if let Some((path, dev, ino)) = &self.0 {
            if std::fs::symlink_metadata(path)
                .is_ok_and(|m| m.file_type().is_fifo() && m.dev() == *dev && m.ino() == *ino)
            {
                let _ = std::fs::remove_file(path);
            }
        }
    }
}

/// The path through which `file`'s own descriptor reopens the same file.
fn fd_path(file: &File) -> PathBuf {
    use std::os::fd::AsRawFd as _;
    PathBuf::from(format!("/proc/self/fd/{}", file.as_raw_fd()))
}

fn set_blocking(file: &File) -> io::Result<()> {
    use std::os::fd::AsRawFd as _;
    let fd = file.as_raw_fd();
    // SAFETY: fcntl on a descriptor we own.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    if flags < 0
        // SAFETY: as above.
        || unsafe { libc::fcntl(fd, libc::F_SETFL, flags & !libc::O_NONBLOCK) } < 0
    {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write as _;

    fn dir(test: &str) -> PathBuf {
        let d =
            std::env::temp_dir().join(format!("doh-trace-keylog-{}-{test}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[tokio::test]
    async fn a_new_path_becomes_a_private_fifo_removed_at_the_end() {
        let d = dir("fifo");
        let path = d.join("keys");
        std::fs::create_dir_all(&d).unwrap();
        let k = KeylogFile::open(&path).unwrap();
        assert!(k.is_fifo() && k.created());
        let m = std::fs::symlink_metadata(&path).unwrap();
        assert!(m.file_type().is_fifo());
        assert_eq!(m.mode() & 0o777, 0o600);
        let (mut rx, created) = k.spawn_reader().unwrap();
        // A client opens it, writes, closes; another does the same: both arrive.
        for line in ["CLIENT_RANDOM aa bb\n", "CLIENT_RANDOM cc dd\n"] {
            let mut w = OpenOptions::new().append(true).open(&path).unwrap();
            w.write_all(line.as_bytes()).unwrap();
        }
        let mut got = Vec::new();
        while got.len() < 40 {
            got.extend(rx.recv().await.unwrap());
        }
        assert_eq!(got, b"CLIENT_RANDOM aa bb\nCLIENT_RANDOM cc dd\n");
        drop(created);
        assert!(std::fs::symlink_metadata(&path).is_err(), "removed");
    }

    #[tokio::test]
    async fn an_existing_file_is_read_and_followed_and_kept() {
        let d = dir("file");
        let path = d.join("keys.log");
        std::fs::write(&path, "CLIENT_RANDOM 01 02\n").unwrap();
        let k = KeylogFile::open(&path).unwrap();
        assert!(!k.is_fifo() && !k.created());
        let (mut rx, created) = k.spawn_reader().unwrap();
        assert_eq!(rx.recv().await.unwrap(), b"CLIENT_RANDOM 01 02\n");
        let mut w = OpenOptions::new().append(true).open(&path).unwrap();
        w.write_all(b"CLIENT_RANDOM 03 04\n").unwrap();
        assert_eq!(rx.recv().await.unwrap(), b"CLIENT_RANDOM 03 04\n");
        drop(created);
        assert!(path.exists(), "a file the tracer did not make stays");
    }

    #[test]
    fn links_and_other_kinds_are_refused() {
        let d = dir("refused");
        let target = d.join("target");
        std::fs::write(&target, "x").unwrap();
        let link = d.join("link");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        assert!(KeylogFile::open(&link).is_err(), "a symbolic link");
        assert!(KeylogFile::open(&d).is_err(), "a directory");
        assert_eq!(std::fs::read(&target).unwrap(), b"x");
    }
}
