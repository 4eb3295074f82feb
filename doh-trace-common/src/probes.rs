//! What the tracer attaches to: the kernel tracepoints (each program has its tracepoint's
//! name) and the libssl functions the OpenSSL uprobes hook.

/// The libssl functions whose entry and return the OpenSSL uprobes hook: `SSL_write`,
/// `SSL_read`, `SSL_write_ex`, `SSL_read_ex`. The loader's probe table names them from here,
/// and so does `cargo xtask bench`, whose bare-uprobe floor must probe the same functions.
pub const OPENSSL_FUNCTIONS: [&str; 4] = ["SSL_write", "SSL_read", "SSL_write_ex", "SSL_read_ex"];

/// A kernel tracepoint the tracer attaches; its eBPF program has the tracepoint's name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tracepoint {
    /// The tracefs category (`syscalls`, `sched`).
    pub category: &'static str,
    /// The tracepoint, and the name of the program attached to it.
    pub name: &'static str,
}

impl Tracepoint {
    const fn syscall(name: &'static str) -> Tracepoint {
        Tracepoint {
            category: "syscalls",
            name,
        }
    }

    const fn sched(name: &'static str) -> Tracepoint {
        Tracepoint {
            category: "sched",
            name,
        }
    }
}

/// Every tracepoint the tracer attaches (all required; present on every kernel ≥ 4.x). The
/// syscall ones fire for every process, also with `--pid`; `cargo xtask bench` attaches empty
/// programs to the same list for the floor that costs other processes.
pub const TRACEPOINTS: [Tracepoint; 31] = [
    Tracepoint::syscall("sys_enter_write"),
    Tracepoint::syscall("sys_exit_write"),
    Tracepoint::syscall("sys_enter_writev"),
    Tracepoint::syscall("sys_exit_writev"),
    Tracepoint::syscall("sys_enter_sendto"),
    Tracepoint::syscall("sys_exit_sendto"),
    Tracepoint::syscall("sys_enter_sendmsg"),
    Tracepoint::syscall("sys_exit_sendmsg"),
    Tracepoint::syscall("sys_enter_sendmmsg"),
    Tracepoint::syscall("sys_exit_sendmmsg"),
    Tracepoint::syscall("sys_enter_read"),
    Tracepoint::syscall("sys_exit_read"),
    Tracepoint::syscall("sys_enter_readv"),
    Tracepoint::syscall("sys_exit_readv"),
    Tracepoint::syscall("sys_enter_recvfrom"),
    Tracepoint::syscall("sys_exit_recvfrom"),
    Tracepoint::syscall("sys_enter_recvmsg"),
    Tracepoint::syscall("sys_exit_recvmsg"),
    Tracepoint::syscall("sys_enter_recvmmsg"),
    Tracepoint::syscall("sys_exit_recvmmsg"),
    Tracepoint::syscall("sys_enter_socket"),
    Tracepoint::syscall("sys_exit_socket"),
    Tracepoint::syscall("sys_enter_connect"),
    Tracepoint::syscall("sys_exit_connect"),
    Tracepoint::syscall("sys_enter_accept4"),
    Tracepoint::syscall("sys_exit_accept4"),
    Tracepoint::syscall("sys_enter_accept"),
    Tracepoint::syscall("sys_exit_accept"),
    Tracepoint::syscall("sys_enter_close"),
    Tracepoint::sched("sched_process_exit"),
    Tracepoint::sched("sched_process_exec"),
];
