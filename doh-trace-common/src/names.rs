//! The names the loader looks things up by in the eBPF object — maps, globals, programs —
//! written once. On the eBPF side they are the identifiers of the statics and functions
//! (`doh-trace-ebpf/src/maps.rs`, `probes/`); the tracer's tests check that the object it
//! embeds has every one of them.

/// Maps the loader opens.
pub mod maps {
    /// The ring buffer every event goes through.
    pub const EVENTS: &str = "EVENTS";
    /// Whether the tracer drains the ring buffer on its own timer.
    pub const DRAINING: &str = "DRAINING";
    /// The per-CPU counters (`Stat`).
    pub const STATS: &str = "STATS";
    /// Ports whose datagrams are DNS.
    pub const DNS_PORTS: &str = "DNS_PORTS";
    /// `--pid` processes beyond those compared inline.
    pub const SCOPE_TGIDS: &str = "SCOPE_TGIDS";
    /// Per-connection capture policy (`Capture`).
    pub const CAPTURE: &str = crate::LruMap::Capture.name();
    /// The socket of each TLS object (`TlsObjKey` → fd): userspace adds the ones it binds.
    pub const TLS_FDS: &str = crate::LruMap::TlsFds.name();

    /// Every map the loader opens.
    pub const ALL: [&str; 7] = [
        EVENTS,
        DRAINING,
        STATS,
        DNS_PORTS,
        SCOPE_TGIDS,
        CAPTURE,
        TLS_FDS,
    ];
}

/// Read-only globals the loader sets before loading.
pub mod globals {
    /// The tracer's own tgid (never traced).
    pub const TRACER_TGID: &str = "TRACER_TGID";
    /// How many processes `--pid` named.
    pub const SCOPE_PID_COUNT: &str = "SCOPE_PID_COUNT";
    /// The named processes, when they fit inline.
    pub const SCOPE_PIDS: &str = "SCOPE_PIDS";

    /// Every global the loader sets.
    pub const ALL: [&str; 3] = [TRACER_TGID, SCOPE_PID_COUNT, SCOPE_PIDS];
}

/// Uprobe programs (the tracepoint programs are named after their tracepoint,
/// [`crate::TRACEPOINTS`]).
pub mod programs {
    /// `SSL_write` entry.
    pub const OPENSSL_SSL_WRITE_ENTER: &str = "openssl_ssl_write_enter";
    /// `SSL_write_ex` entry.
    pub const OPENSSL_SSL_WRITE_EX_ENTER: &str = "openssl_ssl_write_ex_enter";
    /// `SSL_read` entry.
    pub const OPENSSL_SSL_READ_ENTER: &str = "openssl_ssl_read_enter";
    /// `SSL_read_ex` entry.
    pub const OPENSSL_SSL_READ_EX_ENTER: &str = "openssl_ssl_read_ex_enter";
    /// Return of the four OpenSSL functions.
    pub const OPENSSL_SSL_EXIT: &str = "openssl_ssl_exit";
    /// `gnutls_record_send` entry.
    pub const GNUTLS_RECORD_SEND_ENTER: &str = "gnutls_record_send_enter";
    /// `gnutls_record_recv` entry.
    pub const GNUTLS_RECORD_RECV_ENTER: &str = "gnutls_record_recv_enter";
    /// Return of `gnutls_record_send`/`gnutls_record_recv`.
    pub const GNUTLS_RECORD_EXIT: &str = "gnutls_record_exit";
    /// `gnutls_record_cork` entry.
    pub const GNUTLS_RECORD_CORK_ENTER: &str = "gnutls_record_cork_enter";
    /// `gnutls_record_uncork` entry.
    pub const GNUTLS_RECORD_UNCORK_ENTER: &str = "gnutls_record_uncork_enter";
    /// `PR_Write`/`PR_Send` entry.
    pub const NSPR_WRITE_ENTER: &str = "nspr_write_enter";
    /// `PR_Read` entry.
    pub const NSPR_READ_ENTER: &str = "nspr_read_enter";
    /// `PR_Recv` entry.
    pub const NSPR_RECV_ENTER: &str = "nspr_recv_enter";
    /// Return of the NSPR functions.
    pub const NSPR_EXIT: &str = "nspr_exit";
    /// Go `crypto/tls.(*Conn).Write` entry.
    pub const GO_TLS_WRITE_ENTER: &str = "go_tls_write_enter";
    /// Go `crypto/tls.(*Conn).Read` entry.
    pub const GO_TLS_READ_ENTER: &str = "go_tls_read_enter";
    /// Every RET of Go's Write and Read.
    pub const GO_TLS_RETURN: &str = "go_tls_return";

    /// Every uprobe program.
    pub const ALL: [&str; 17] = [
        OPENSSL_SSL_WRITE_ENTER,
        OPENSSL_SSL_WRITE_EX_ENTER,
        OPENSSL_SSL_READ_ENTER,
        OPENSSL_SSL_READ_EX_ENTER,
        OPENSSL_SSL_EXIT,
        GNUTLS_RECORD_SEND_ENTER,
        GNUTLS_RECORD_RECV_ENTER,
        GNUTLS_RECORD_EXIT,
        GNUTLS_RECORD_CORK_ENTER,
        GNUTLS_RECORD_UNCORK_ENTER,
        NSPR_WRITE_ENTER,
        NSPR_READ_ENTER,
        NSPR_RECV_ENTER,
        NSPR_EXIT,
        GO_TLS_WRITE_ENTER,
        GO_TLS_READ_ENTER,
        GO_TLS_RETURN,
    ];
}
