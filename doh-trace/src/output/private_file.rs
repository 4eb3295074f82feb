//! Creating the files the tracer writes (`-w` pcapng, `record -o`): they hold DNS data of every
//! user on the host, and the tracer runs as root, so each is created mode 0600 and never
//! through a symbolic link (a user who plants `/tmp/dns.pcapng -> /etc/shadow` gets an error,
//! not a truncated shadow file). An existing regular file is refused unless the user asked for
//! it to be overwritten (`--force`): then it is truncated and made 0600. A FIFO is written to
//! as it is (`-w >(wireshark -k -i -)`); anything else is refused.

use std::{
    fs::{File, OpenOptions},
    io,
    os::unix::fs::{FileTypeExt as _, OpenOptionsExt as _, PermissionsExt as _},
    path::Path,
};

/// Opens `path` for writing as described in the module doc; `overwrite`: an existing regular
/// file may be truncated.
pub fn create_private(path: &Path, overwrite: bool) -> io::Result<File> {
    // O_NOFOLLOW: the last component may not be a symbolic link (O_EXCL refuses one too).
    let flags = libc::O_NOFOLLOW | libc::O_CLOEXEC;
    match OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(flags)
        .open(path)
    {
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        other => return other,
    }
    let file = OpenOptions::new()
        .write(true)
        // O_NONBLOCK: a FIFO with no reader yet fails at once instead of hanging the tracer
        // (cleared below).
        .custom_flags(flags | libc::O_NONBLOCK)
        .open(path)?;
    let kind = file.metadata()?.file_type();
    if kind.is_file() {
        if !overwrite {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                "the file exists (--force overwrites it)",
            ));
        }
        // Checked on the open file, so what is truncated is what was checked.
        file.set_len(0)?;
        file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    } else if !kind.is_fifo() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a regular file or a FIFO",
        ));
    }
    set_blocking(&file)?;
    Ok(file)
}

fn set_blocking(file: &File) -> io::Result<()> {
    use std::os::fd::AsRawFd as _;
    let fd = file.as_raw_fd();
    // SAFETY: fcntl on a descriptor we own.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    if flags < 0 || unsafe { libc::fcntl(fd, libc::F_SETFL, flags & !libc::O_NONBLOCK) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::{io::Write as _, os::unix::fs::symlink};

    fn dir() -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!(
            "doh-trace-private-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn new_and_existing_files_are_0600_and_truncated_only_when_asked() {
        let d = dir();
        let new = d.join("new.pcapng");
        create_private(&new, false)
            .unwrap()
            .write_all(b"x")
            .unwrap();
        assert_eq!(
            std::fs::metadata(&new).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let old = d.join("old.pcapng");
        std::fs::write(&old, b"someone's data").unwrap();
        std::fs::set_permissions(&old, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = create_private(&old, false).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(std::fs::read(&old).unwrap(), b"someone's data");
        drop(create_private(&old, true).unwrap());
        let meta = std::fs::metadata(&old).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        assert_eq!(meta.len(), 0);
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn a_symbolic_link_is_never_followed() {
        let d = dir();
        let victim = d.join("victim");
        std::fs::write(&victim, b"keep me").unwrap();
        let link = d.join("dns.pcapng");
        symlink(&victim, &link).unwrap();
        for overwrite in [false, true] {
            let e = create_private(&link, overwrite).unwrap_err();
            assert!(
                [Some(libc::ELOOP), Some(libc::EEXIST)].contains(&e.raw_os_error()),
                "{e}"
            );
        }
        assert_eq!(std::fs::read(&victim).unwrap(), b"keep me");
        // A dangling link is not created through either.
        let dangling = d.join("dangling");
        symlink(d.join("nowhere"), &dangling).unwrap();
        assert!(create_private(&dangling, true).is_err());
        assert!(!d.join("nowhere").exists());
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn a_directory_is_refused() {
        let d = dir();
        assert!(create_private(&d, true).is_err());
        std::fs::remove_dir_all(&d).unwrap();
    }
}
