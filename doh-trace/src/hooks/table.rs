//! The declarative probe table: which eBPF program goes on which symbol (the tracepoints are
//! `doh_trace_common::TRACEPOINTS`), and the TLS stacks users name (`--stacks`).

use doh_trace_common::{names::programs, OPENSSL_FUNCTIONS};

/// Where a program attaches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hook {
    /// Function entry in a user-space library.
    Entry(&'static str),
    /// Function return in a user-space library.
    Return(&'static str),
}

impl Hook {
    /// The function's symbol.
    pub fn symbol(self) -> &'static str {
        let (Hook::Entry(s) | Hook::Return(s)) = self;
        s
    }
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

/// A TLS stack hooked by symbol: in its shared libraries, and in executables that define the
/// same symbols (linked statically).
#[derive(Debug)]
pub struct SymbolStack {
    pub stack: Stack,
    /// File names of its shared libraries.
    pub sonames: &'static [&'static str],
    pub probes: &'static [UprobeSpec],
}

/// The TLS stacks doh-trace knows, as users name them (`--stacks`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Stack {
    /// OpenSSL 1.1/3 (and BoringSSL, linked statically, by the same symbols).
    Openssl,
    /// GnuTLS 3.
    Gnutls,
    /// NSS, through NSPR's PR_Write/PR_Read (Firefox, Thunderbird).
    Nss,
    /// Go's crypto/tls (Go ≥ 1.17 on x86-64).
    Go,
}

impl Stack {
    /// Every stack.
    pub const ALL: &'static [Stack] = &[Stack::Openssl, Stack::Gnutls, Stack::Nss, Stack::Go];

    /// The name users see.
    pub fn name(self) -> &'static str {
        match self {
            Stack::Openssl => "openssl",
            Stack::Gnutls => "gnutls",
            Stack::Nss => "nss",
            Stack::Go => "go",
        }
    }

    /// What the stack covers, as the command line's help says.
    pub fn about(self) -> &'static str {
        match self {
            Stack::Openssl => {
                "OpenSSL 1.1/3 (and BoringSSL, linked statically, by the same symbols)"
            }
            Stack::Gnutls => "GnuTLS 3",
            Stack::Nss => "NSS, through NSPR's PR_Write/PR_Read (Firefox, Thunderbird)",
            Stack::Go => "Go's crypto/tls (Go ≥ 1.17 on x86-64)",
        }
    }

    /// The stack a user names.
    pub fn from_name(name: &str) -> Option<Stack> {
        Stack::ALL.iter().copied().find(|s| s.name() == name)
    }
}

const fn entry(program: &'static str, symbol: &'static str, required: bool) -> UprobeSpec {
    UprobeSpec {
        program,
        hook: Hook::Entry(symbol),
        required,
    }
}

const fn ret(program: &'static str, symbol: &'static str, required: bool) -> UprobeSpec {
    UprobeSpec {
        program,
        hook: Hook::Return(symbol),
        required,
    }
}

/// OpenSSL: the `_ex` forms only exist since 1.1.1 (and not in BoringSSL), so they are optional.
pub const OPENSSL: SymbolStack = SymbolStack {
    stack: Stack::Openssl,
    sonames: &["libssl.so.3", "libssl.so.1.1"],
    probes: &[
        entry(
            programs::OPENSSL_SSL_WRITE_ENTER,
            OPENSSL_FUNCTIONS[0],
            true,
        ),
        ret(programs::OPENSSL_SSL_EXIT, OPENSSL_FUNCTIONS[0], true),
        entry(programs::OPENSSL_SSL_READ_ENTER, OPENSSL_FUNCTIONS[1], true),
        ret(programs::OPENSSL_SSL_EXIT, OPENSSL_FUNCTIONS[1], true),
        entry(
            programs::OPENSSL_SSL_WRITE_EX_ENTER,
            OPENSSL_FUNCTIONS[2],
            false,
        ),
        ret(programs::OPENSSL_SSL_EXIT, OPENSSL_FUNCTIONS[2], false),
        entry(
            programs::OPENSSL_SSL_READ_EX_ENTER,
            OPENSSL_FUNCTIONS[3],
            false,
        ),
        ret(programs::OPENSSL_SSL_EXIT, OPENSSL_FUNCTIONS[3], false),
    ],
};

/// GnuTLS: send/recv, and cork/uncork so that corked bytes are emitted once (all required:
/// a cork hook without its uncork hook would hide sends).
pub const GNUTLS: SymbolStack = SymbolStack {
    stack: Stack::Gnutls,
    sonames: &["libgnutls.so.30"],
    probes: &[
        entry(
            programs::GNUTLS_RECORD_SEND_ENTER,
            "gnutls_record_send",
            true,
        ),
        ret(programs::GNUTLS_RECORD_EXIT, "gnutls_record_send", true),
        entry(
            programs::GNUTLS_RECORD_RECV_ENTER,
            "gnutls_record_recv",
            true,
        ),
        ret(programs::GNUTLS_RECORD_EXIT, "gnutls_record_recv", true),
        entry(
            programs::GNUTLS_RECORD_CORK_ENTER,
            "gnutls_record_cork",
            true,
        ),
        entry(
            programs::GNUTLS_RECORD_UNCORK_ENTER,
            "gnutls_record_uncork",
            true,
        ),
    ],
};

/// NSPR, under NSS.
pub const NSPR: SymbolStack = SymbolStack {
    stack: Stack::Nss,
    sonames: &["libnspr4.so"],
    probes: &[
        entry(programs::NSPR_WRITE_ENTER, "PR_Write", true),
        ret(programs::NSPR_EXIT, "PR_Write", true),
        entry(programs::NSPR_READ_ENTER, "PR_Read", true),
        ret(programs::NSPR_EXIT, "PR_Read", true),
        entry(programs::NSPR_WRITE_ENTER, "PR_Send", false),
        ret(programs::NSPR_EXIT, "PR_Send", false),
        entry(programs::NSPR_RECV_ENTER, "PR_Recv", false),
        ret(programs::NSPR_EXIT, "PR_Recv", false),
    ],
};

/// The stacks hooked by symbol.
pub const SYMBOL_STACKS: &[&SymbolStack] = &[&OPENSSL, &GNUTLS, &NSPR];

/// Go crypto/tls programs: at the entry of Write and Read, and at each of their RETs.
pub const GO_WRITE_ENTER: &str = programs::GO_TLS_WRITE_ENTER;
pub const GO_READ_ENTER: &str = programs::GO_TLS_READ_ENTER;
pub const GO_RETURN: &str = programs::GO_TLS_RETURN;

/// The TLS stack a uprobe program serves: the programs a kernel's verifier may refuse without
/// stopping the tracer (that stack is turned off, the rest goes on). `None` for everything
/// else (the syscall tracepoints): a refused one is fatal.
pub fn optional_program_stack(program: &str) -> Option<Stack> {
    if [GO_WRITE_ENTER, GO_READ_ENTER, GO_RETURN].contains(&program) {
        return Some(Stack::Go);
    }
    SYMBOL_STACKS
        .iter()
        .find(|s| s.probes.iter().any(|p| p.program == program))
        .map(|s| s.stack)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_names_exactly_the_objects_uprobe_programs() {
        let mut named: Vec<&str> = SYMBOL_STACKS
            .iter()
            .flat_map(|s| s.probes.iter().map(|p| p.program))
            .chain([GO_WRITE_ENTER, GO_READ_ENTER, GO_RETURN])
            .collect();
        named.sort_unstable();
        named.dedup();
        let mut all = programs::ALL.to_vec();
        all.sort_unstable();
        assert_eq!(named, all);
    }

    #[test]
    fn every_uprobe_program_is_optional_for_its_stack_and_tracepoints_are_required() {
        for name in programs::ALL {
            assert!(
                optional_program_stack(name).is_some(),
                "{name} has no stack"
            );
        }
        assert_eq!(
            optional_program_stack(programs::OPENSSL_SSL_EXIT),
            Some(Stack::Openssl)
        );
        assert_eq!(
            optional_program_stack(programs::GNUTLS_RECORD_UNCORK_ENTER),
            Some(Stack::Gnutls)
        );
        assert_eq!(
            optional_program_stack(programs::NSPR_RECV_ENTER),
            Some(Stack::Nss)
        );
        assert_eq!(optional_program_stack(GO_RETURN), Some(Stack::Go));
        for tp in doh_trace_common::TRACEPOINTS {
            assert_eq!(optional_program_stack(tp.name), None, "{}", tp.name);
        }
    }
}
