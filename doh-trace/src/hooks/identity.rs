//! Which file a uprobe really lands on, so that each is hooked once. The kernel places a
//! uprobe on the inode *under* a stacked file system: for a file on overlayfs — every
//! container's root — that is the image layer's inode, one file for all the containers made
//! from the image, while `stat` (and `/proc/PID/maps`) show each container's own overlay device.
//! Hooking by (device, inode) would then attach the same probes to the same layer file once per
//! container, and every TLS call there would be reported once per container.
//!
//! On overlayfs the kernel's file handle (`name_to_handle_at` with `AT_HANDLE_FID`, Linux 6.5)
//! names the layer's inode, the same through every overlay mount; elsewhere (device, inode) does.
//! A kernel that gives no handle leaves the overlay's (device, inode).

use std::{
    fs::File,
    os::{fd::AsRawFd as _, unix::fs::MetadataExt as _},
};

/// The file a hook is placed on.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum HookId {
    /// (device, inode): the file itself.
    Inode(u64, u64),
    /// A stacked file system's handle type and bytes, naming the file underneath.
    Handle(i32, Vec<u8>),
}

/// `OVERLAYFS_SUPER_MAGIC` (linux/magic.h).
const OVERLAYFS_MAGIC: i64 = 0x794c_7630;
/// `AT_HANDLE_FID` (linux/fcntl.h, 6.5): a handle to identify the file, not to open it.
const AT_HANDLE_FID: i32 = 0x200;
/// `MAX_HANDLE_SZ` (linux/exportfs.h).
const MAX_HANDLE_SZ: usize = 128;

/// What a hook on `file` lands on (`file` must be open; None if it cannot be stat'ed).
pub fn hook_id(file: &File) -> Option<HookId> {
    let meta = file.metadata().ok()?;
    let inode = HookId::Inode(meta.dev(), meta.ino());
    if !on_overlayfs(file) {
        return Some(inode);
    }
    Some(file_handle(file).unwrap_or(inode))
}

fn on_overlayfs(file: &File) -> bool {
    // SAFETY: statfs is plain integers; all-zero is a valid value to be overwritten.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: a valid open descriptor and a statfs of the right type.
    let r = unsafe { libc::fstatfs(file.as_raw_fd(), &mut st) };
    #[allow(
        clippy::useless_conversion,
        reason = "f_type is i64 on x86-64 and aarch64, 32 bits on other targets"
    )]
    let f_type = i64::from(st.f_type);
    r == 0 && f_type == OVERLAYFS_MAGIC
}

/// The kernel's identifying file handle for `file`.
fn file_handle(file: &File) -> Option<HookId> {
    /// `struct file_handle` with room for the largest handle.
    #[repr(C)]
    struct Handle {
        bytes: u32,
        kind: i32,
        data: [u8; MAX_HANDLE_SZ],
    }
    let mut h = Handle {
        bytes: MAX_HANDLE_SZ as u32,
        kind: 0,
        data: [0; MAX_HANDLE_SZ],
    };
    let mut mount_id: i32 = 0;
    // SAFETY: a valid descriptor, an empty NUL-terminated path (AT_EMPTY_PATH: the descriptor
    // itself), a file_handle whose handle_bytes says how much room follows, and an int.
    let r = unsafe {
        libc::syscall(
            libc::SYS_name_to_handle_at,
            file.as_raw_fd(),
            c"".as_ptr(),
            &mut h as *mut Handle,
            &mut mount_id as *mut i32,
            libc::AT_EMPTY_PATH | AT_HANDLE_FID,
        )
    };
    let len = h.bytes as usize;
    (r == 0 && len <= MAX_HANDLE_SZ).then(|| HookId::Handle(h.kind, h.data[..len].to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plain_file_is_its_device_and_inode() {
        let file = File::open("/proc/self/exe").unwrap();
        let meta = file.metadata().unwrap();
        assert_eq!(hook_id(&file), Some(HookId::Inode(meta.dev(), meta.ino())));
    }

    /// Two overlay mounts over one lower directory (as two containers of one image): the
    /// same lower file has another device under each, and one hook identity.
    #[test]
    fn one_layer_file_under_two_overlays_is_one_hook() {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            eprintln!("SKIPPED: mounting overlayfs needs root");
            return;
        }
        let base = std::env::temp_dir().join(format!("hook-id-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        for d in ["lower", "u1", "w1", "m1", "u2", "w2", "m2"] {
            std::fs::create_dir_all(base.join(d)).unwrap();
        }
        std::fs::write(base.join("lower/libssl.so.3"), b"\x7fELF layer file").unwrap();
        std::fs::write(base.join("lower/other.so"), b"\x7fELF another").unwrap();
        let b = base.display();
        // A private mount namespace, so the mounts vanish with the shell.
        let script = format!(
            "mount -t overlay o -o lowerdir={b}/lower,upperdir={b}/u1,workdir={b}/w1 {b}/m1 && \
             mount -t overlay o -o lowerdir={b}/lower,upperdir={b}/u2,workdir={b}/w2 {b}/m2 && \
             exec sleep 30"
        );
        let mut holder = std::process::Command::new("unshare")
            .args(["-m", "--propagation", "private", "sh", "-c", &script])
            .spawn()
            .unwrap();
        let root = format!("/proc/{}/root", holder.id());
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let path = |m: &str, f: &str| format!("{root}{b}/{m}/{f}");
        while std::fs::metadata(path("m2", "libssl.so.3")).is_err() {
            assert!(std::time::Instant::now() < deadline, "overlays not mounted");
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let open = |m: &str, f: &str| File::open(path(m, f)).unwrap();
        let (a, c) = (open("m1", "libssl.so.3"), open("m2", "libssl.so.3"));
        let (da, dc) = (a.metadata().unwrap().dev(), c.metadata().unwrap().dev());
        let (ida, idc) = (hook_id(&a).unwrap(), hook_id(&c).unwrap());
        let other = hook_id(&open("m1", "other.so")).unwrap();
        let _ = holder.kill();
        let _ = holder.wait();
        let _ = std::fs::remove_dir_all(&base);
        assert_ne!(da, dc, "each overlay has its own device");
        assert!(matches!(ida, HookId::Handle(..)), "{ida:?}");
        assert_eq!(ida, idc, "the same layer file");
        assert_ne!(ida, other, "another file");
    }
}
