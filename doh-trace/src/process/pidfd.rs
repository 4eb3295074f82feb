//! A traced process's TCP socket addresses, asked of a duplicate of its descriptor
//! (`pidfd_open` + `pidfd_getfd`, Linux 5.6, needs ptrace rights over the process).
//!
//! A few syscalls, whatever the host runs. To print `/proc/PID/net/tcp` instead, the kernel
//! walks every bucket of the host's TCP hash table (sized by memory, shared by all network
//! namespaces), however few sockets there are: 4.3 ms per read on the test machine, and 44 % of
//! the tracer's CPU under the load bench (docs/PERFORMANCE.md).
//!
//! The duplicate is only asked its type and names, then closed: the process's own descriptor,
//! and its connection, are untouched. No byte is read from it.

use std::{
    io,
    os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd},
};

use socket2::{SockRef, Type};

use super::SocketEnds;

/// Both ends of the TCP socket behind `fd` in process `pid`; None when the process or the
/// descriptor is gone, is not a TCP socket, or the kernel refuses (an LSM, no pidfd support):
/// the caller then falls back to /proc.
pub fn socket_ends(pid: u32, fd: i32) -> Option<SocketEnds> {
    let pid = libc::pid_t::try_from(pid).ok()?;
    // SAFETY: plain syscalls; a non-negative result is a new descriptor we own (close-on-exec).
    let process = owned(unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) }).ok()?;
    let socket =
        owned(unsafe { libc::syscall(libc::SYS_pidfd_getfd, process.as_raw_fd(), fd, 0) }).ok()?;
    let socket = SockRef::from(&socket);
    if socket.r#type().ok()? != Type::STREAM {
        return None;
    }
    Some(SocketEnds {
        local: unmapped(socket.local_addr().ok()?.as_socket()?),
        remote: unmapped(socket.peer_addr().ok()?.as_socket()?),
    })
}

/// The descriptor a syscall returned, or its error.
fn owned(ret: libc::c_long) -> io::Result<OwnedFd> {
    match libc::c_int::try_from(ret) {
        // SAFETY: a descriptor the kernel just gave us, owned by nobody else.
        Ok(fd) if fd >= 0 => Ok(unsafe { OwnedFd::from_raw_fd(fd) }),
        _ => Err(io::Error::last_os_error()),
    }
}

/// An IPv4 peer of an IPv6 socket (`::ffff:a.b.c.d`) as IPv4, as /proc's table is read too.
fn unmapped(addr: std::net::SocketAddr) -> std::net::SocketAddr {
    std::net::SocketAddr::new(addr.ip().to_canonical(), addr.port())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{TcpListener, TcpStream, UdpSocket};

    #[test]
    fn reads_both_ends_of_our_own_tcp_socket() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, _) = listener.accept().unwrap();
        let me = std::process::id();
        let ends = socket_ends(me, client.as_raw_fd()).expect("pidfd_getfd on our own socket");
        assert_eq!(ends.local, client.local_addr().unwrap());
        assert_eq!(ends.remote, client.peer_addr().unwrap());
        // The duplicate was closed, the socket was not: it still carries bytes.
        use std::io::{Read as _, Write as _};
        (&client).write_all(b"x").unwrap();
        let mut b = [0u8; 1];
        (&server).read_exact(&mut b).unwrap();
        assert_eq!(&b, b"x");
    }

    #[test]
    fn an_ipv4_peer_of_an_ipv6_socket_reads_as_ipv4() {
        let mapped: std::net::SocketAddr = "[::ffff:127.0.0.1]:853".parse().unwrap();
        assert_eq!(unmapped(mapped), "127.0.0.1:853".parse().unwrap());
        let v6: std::net::SocketAddr = "[::1]:853".parse().unwrap();
        assert_eq!(unmapped(v6), v6);
    }

    #[test]
    fn other_descriptors_have_no_tcp_ends() {
        let me = std::process::id();
        let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
        udp.connect("127.0.0.1:53").unwrap();
        assert!(socket_ends(me, udp.as_raw_fd()).is_none(), "UDP");
        let file = std::fs::File::open("/proc/self/comm").unwrap();
        assert!(socket_ends(me, file.as_raw_fd()).is_none(), "a file");
        assert!(socket_ends(me, -1).is_none(), "no descriptor");
        assert!(socket_ends(u32::MAX, 0).is_none(), "no process");
    }
}
