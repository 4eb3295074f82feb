//! Reading a few bytes of a traced process's memory (`process_vm_readv`, needs ptrace rights
//! over the process, which root has): how a TLS object on a memory BIO is bound to its socket
//! (`conn/binding.rs`). What is read is compared with a ClientHello's random and dropped.

/// Copies what is readable of `buf.len()` bytes at `addr` in process `pid` into `buf`; how
/// many bytes were (0 when the process is gone, the address unmapped, or access refused).
pub fn read(pid: u32, addr: u64, buf: &mut [u8]) -> usize {
    let (Ok(pid), Ok(addr)) = (libc::pid_t::try_from(pid), usize::try_from(addr)) else {
        return 0;
    };
    let local = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    let remote = libc::iovec {
        iov_base: addr as *mut libc::c_void,
        iov_len: buf.len(),
    };
    // SAFETY: `local` describes `buf`, which we own mutably for the call; `remote` is only read
    // by the kernel, in the other process, which checks it.
    let n = unsafe { libc::process_vm_readv(pid, &local, 1, &remote, 1, 0) };
    usize::try_from(n).unwrap_or(0).min(buf.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_our_own_memory_and_nothing_unmapped() {
        let secret: [u8; 32] = core::array::from_fn(|i| i as u8 ^ 0xa5);
        let mut buf = [0u8; 32];
        let n = read(std::process::id(), secret.as_ptr() as u64, &mut buf);
        assert_eq!(n, 32);
        assert_eq!(buf, secret);
        assert_eq!(
            read(std::process::id(), 8, &mut buf),
            0,
            "page zero is never mapped"
        );
    }
}
