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

/// Syscall and scheduler tracepoints (all required; present on every kernel ≥ 4.x).
pub const TRACEPOINTS: &[TracepointSpec] = &[
    TracepointSpec {
        program: "sys_enter_write",
        category: "syscalls",
        name: "sys_enter_write",
    },
    TracepointSpec {
        program: "sys_exit_write",
        category: "syscalls",
        name: "sys_exit_write",
    },
    TracepointSpec {
        program: "sys_enter_writev",
        category: "syscalls",
        name: "sys_enter_writev",
    },
    TracepointSpec {
        program: "sys_enter_sendto",
        category: "syscalls",
        name: "sys_enter_sendto",
    },
    TracepointSpec {
        program: "sys_exit_sendto",
        category: "syscalls",
        name: "sys_exit_sendto",
    },
    TracepointSpec {
        program: "sys_enter_sendmsg",
        category: "syscalls",
        name: "sys_enter_sendmsg",
    },
    TracepointSpec {
        program: "sys_enter_read",
        category: "syscalls",
        name: "sys_enter_read",
    },
    TracepointSpec {
        program: "sys_exit_read",
        category: "syscalls",
        name: "sys_exit_read",
    },
    TracepointSpec {
        program: "sys_enter_readv",
        category: "syscalls",
        name: "sys_enter_readv",
    },
    TracepointSpec {
        program: "sys_enter_recvfrom",
        category: "syscalls",
        name: "sys_enter_recvfrom",
    },
    TracepointSpec {
        program: "sys_exit_recvfrom",
        category: "syscalls",
        name: "sys_exit_recvfrom",
    },
    TracepointSpec {
        program: "sys_enter_recvmsg",
        category: "syscalls",
        name: "sys_enter_recvmsg",
    },
    TracepointSpec {
        program: "sys_enter_connect",
        category: "syscalls",
        name: "sys_enter_connect",
    },
    TracepointSpec {
        program: "sys_exit_connect",
        category: "syscalls",
        name: "sys_exit_connect",
    },
    TracepointSpec {
        program: "sys_enter_accept4",
        category: "syscalls",
        name: "sys_enter_accept4",
    },
    TracepointSpec {
        program: "sys_exit_accept4",
        category: "syscalls",
        name: "sys_exit_accept4",
    },
    TracepointSpec {
        program: "sys_enter_accept",
        category: "syscalls",
        name: "sys_enter_accept",
    },
    TracepointSpec {
        program: "sys_exit_accept",
        category: "syscalls",
        name: "sys_exit_accept",
    },
    TracepointSpec {
        program: "sys_enter_close",
        category: "syscalls",
        name: "sys_enter_close",
    },
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
