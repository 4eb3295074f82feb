//! The declarative probe table: which eBPF program goes on which symbol or tracepoint.

/// Where a program attaches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hook {
    /// Function entry in a user-space library.
    Entry(&'static str),
    /// Function return in a user-space library.
    Return(&'static str),
}

/// A uprobe of one TLS library family.
#[derive(Debug, Clone, Copy)]
pub struct UprobeSpec {
    /// Program name in the eBPF object.
    pub program: &'static str,
    pub hook: Hook,
    /// Without it the library cannot be traced at all.
    pub required: bool,
}

/// A kernel tracepoint.
#[derive(Debug, Clone, Copy)]
pub struct TracepointSpec {
    pub program: &'static str,
    pub category: &'static str,
    pub name: &'static str,
}

/// OpenSSL: the `_ex` forms only exist since 1.1.1, so they are optional.
pub const OPENSSL: &[UprobeSpec] = &[
    UprobeSpec {
        program: "openssl_ssl_write_enter",
        hook: Hook::Entry("SSL_write"),
        required: true,
    },
    UprobeSpec {
        program: "openssl_ssl_exit",
        hook: Hook::Return("SSL_write"),
        required: true,
    },
    UprobeSpec {
        program: "openssl_ssl_read_enter",
        hook: Hook::Entry("SSL_read"),
        required: true,
    },
    UprobeSpec {
        program: "openssl_ssl_exit",
        hook: Hook::Return("SSL_read"),
        required: true,
    },
    UprobeSpec {
        program: "openssl_ssl_write_ex_enter",
        hook: Hook::Entry("SSL_write_ex"),
        required: false,
    },
    UprobeSpec {
        program: "openssl_ssl_exit",
        hook: Hook::Return("SSL_write_ex"),
        required: false,
    },
    UprobeSpec {
        program: "openssl_ssl_read_ex_enter",
        hook: Hook::Entry("SSL_read_ex"),
        required: false,
    },
    UprobeSpec {
        program: "openssl_ssl_exit",
        hook: Hook::Return("SSL_read_ex"),
        required: false,
    },
];

/// File names of the OpenSSL libraries doh-trace hooks.
pub const OPENSSL_SONAMES: &[&str] = &["libssl.so.3", "libssl.so.1.1"];

/// A `syscalls:` tracepoint whose program has the tracepoint's name.
const fn syscall(name: &'static str) -> TracepointSpec {
    TracepointSpec {
        program: name,
        category: "syscalls",
        name,
    }
}

/// Syscall and scheduler tracepoints (all required; present on every kernel ≥ 4.x).
pub const TRACEPOINTS: &[TracepointSpec] = &[
    syscall("sys_enter_write"),
    syscall("sys_exit_write"),
    syscall("sys_enter_writev"),
    syscall("sys_exit_writev"),
    syscall("sys_enter_sendto"),
    syscall("sys_exit_sendto"),
    syscall("sys_enter_sendmsg"),
    syscall("sys_exit_sendmsg"),
    syscall("sys_enter_sendmmsg"),
    syscall("sys_exit_sendmmsg"),
    syscall("sys_enter_read"),
    syscall("sys_exit_read"),
    syscall("sys_enter_readv"),
    syscall("sys_exit_readv"),
    syscall("sys_enter_recvfrom"),
    syscall("sys_exit_recvfrom"),
    syscall("sys_enter_recvmsg"),
    syscall("sys_exit_recvmsg"),
    syscall("sys_enter_recvmmsg"),
    syscall("sys_exit_recvmmsg"),
    syscall("sys_enter_socket"),
    syscall("sys_exit_socket"),
    syscall("sys_enter_connect"),
    syscall("sys_exit_connect"),
    syscall("sys_enter_accept4"),
    syscall("sys_exit_accept4"),
    syscall("sys_enter_accept"),
    syscall("sys_exit_accept"),
    syscall("sys_enter_close"),
    TracepointSpec {
        program: "sched_process_exit",
        category: "sched",
        name: "sched_process_exit",
    },
    TracepointSpec {
        program: "sched_process_exec",
        category: "sched",
        name: "sched_process_exec",
    },
];
