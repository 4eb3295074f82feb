//! What TLS stack an executable carries inside itself: Go's crypto/tls, or a TLS library linked
//! statically (OpenSSL/BoringSSL, GnuTLS, NSPR by their symbols) — and, when none can be
//! hooked, what it seems to carry and why it cannot be (stripped static OpenSSL/BoringSSL,
//! rustls).
//!
//! Executables are read from the file the tracer opened, through `object`'s read cache: only
//! the headers, symbol tables and the sections looked at are read, so a 200 MiB browser costs
//! a few reads, and no region larger than a bound is read at all. The functions a stack hooks
//! come back as file offsets ([`super::symbols`]), ready to attach through the same file.

use std::{collections::HashMap, fs::File};

use object::{Object as _, ObjectSection as _, ObjectSymbol as _, ReadCache, ReadRef as _};

use super::{
    go_binary::{self, GoInspect, GoTlsProbes},
    symbols::{self, SymbolsError},
    table::{Stack, SymbolStack, SYMBOL_STACKS},
};

/// At most this much of `.rodata` is searched for library version strings.
const MAX_RODATA_SCAN: u64 = 64 << 20;

/// A symbol stack found in a file, with the file offset of every function it hooks there.
#[derive(Debug, Clone)]
pub struct Resolved {
    pub stack: &'static SymbolStack,
    /// Symbol → file offset, for each hooked function the file defines (every required one).
    pub offsets: HashMap<String, u64>,
}

impl Resolved {
    /// Where `symbol` is in the file, if the file defines it.
    pub fn offset(&self, symbol: &str) -> Option<u64> {
        self.offsets.get(symbol).copied()
    }
}

/// What an executable carries.
#[derive(Debug)]
pub enum Carried {
    /// Nothing of interest (TLS, if any, comes from shared libraries).
    Nothing,
    /// Stacks hooked by symbol, linked statically or exported by the executable.
    Static(Vec<Resolved>),
    /// Go crypto/tls, with where to probe.
    Go(GoTlsProbes),
    /// A TLS stack that cannot be hooked: (what, why).
    Unhookable(String, String),
}

/// The functions `stack` hooks, where `elf` defines them; None unless it defines every
/// required one.
fn resolve_in<'a, R: object::ReadRef<'a>>(
    elf: &object::File<'a, R>,
    file_len: u64,
    stack: &'static SymbolStack,
) -> Option<Resolved> {
    let names: Vec<&str> = stack.probes.iter().map(|p| p.hook.symbol()).collect();
    let offsets = symbols::function_offsets(elf, &names, file_len);
    let complete = stack
        .probes
        .iter()
        .filter(|p| p.required)
        .all(|p| offsets.contains_key(p.hook.symbol()));
    complete.then_some(Resolved { stack, offsets })
}

/// A shared library of `stack` (libssl.so.3, …), opened: where its hooked functions are.
pub fn resolve_library(file: &File, stack: &'static SymbolStack) -> Result<Resolved, String> {
    let cache = ReadCache::new(file);
    let elf = symbols::parse(&cache).map_err(|e| e.to_string())?;
    let len = (&cache).len().unwrap_or(0);
    resolve_in(&elf, len, stack).ok_or_else(|| {
        let missing: Vec<&str> = stack
            .probes
            .iter()
            .filter(|p| p.required)
            .map(|p| p.hook.symbol())
            .collect();
        format!("does not define all of {}", missing.join(", "))
    })
}

/// Inspects the opened executable `file` (only the stacks in `enabled`).
pub fn inspect(file: &File, enabled: &[Stack]) -> std::io::Result<Carried> {
    Ok(inspect_data(&ReadCache::new(file), enabled))
}

/// [`inspect`] on an executable's bytes, or a read cache over its file.
pub fn inspect_data<'a, R: object::ReadRef<'a>>(data: R, enabled: &[Stack]) -> Carried {
    let elf = match symbols::parse(data) {
        Ok(elf) => elf,
        Err(SymbolsError::NotElf) => return Carried::Nothing,
        Err(e @ SymbolsError::TooLarge(_)) => {
            return Carried::Unhookable("its TLS".into(), e.to_string())
        }
    };
    let is_go = elf.section_by_name(".gopclntab").is_some()
        || elf.section_by_name(".go.buildinfo").is_some();
    if is_go {
        if !enabled.contains(&Stack::Go) {
            return Carried::Nothing;
        }
        return match go_binary::inspect(data) {
            GoInspect::Tls(probes) => Carried::Go(probes),
            GoInspect::NotGo | GoInspect::GoWithoutTls { .. } => Carried::Nothing,
            GoInspect::Unsupported { go_version, why } => Carried::Unhookable(
                format!(
                    "Go crypto/tls ({})",
                    go_version.as_deref().unwrap_or("unknown Go version")
                ),
                why,
            ),
        };
    }

    let mut mentions_rustls = false;
    // A TLS function imported (undefined) means a shared TLS library, hooked there.
    let mut imports_tls = false;
    for sym in elf.symbols().chain(elf.dynamic_symbols()) {
        let Ok(name) = sym.name() else { continue };
        let tls_function = SYMBOL_STACKS
            .iter()
            .any(|s| s.probes.iter().any(|p| p.hook.symbol() == name));
        if sym.is_undefined() && tls_function {
            imports_tls = true;
        }
        if sym.is_definition()
            && sym.kind() == object::SymbolKind::Text
            && !mentions_rustls
            && name.contains("rustls")
        {
            mentions_rustls = true;
        }
    }
    let stacks: Vec<Resolved> = SYMBOL_STACKS
        .iter()
        .copied()
        .filter(|s| enabled.contains(&s.stack))
        .filter_map(|s| resolve_in(&elf, data.len().unwrap_or(0), s))
        .collect();
    if !stacks.is_empty() {
        return Carried::Static(stacks);
    }
    if mentions_rustls {
        return Carried::Unhookable(
            "rustls (linked statically)".into(),
            "rustls has no stable, non-inlined functions whose arguments are the plaintext; \
             not hooked"
                .into(),
        );
    }
    let stripped = elf.section_by_name(".symtab").is_none();
    if stripped && !imports_tls {
        if let Some(what) = static_library_marker(&elf) {
            return Carried::Unhookable(
                format!("{what} (linked statically)"),
                "the executable is stripped: no symbols to attach to".into(),
            );
        }
    }
    Carried::Nothing
}

/// A TLS library's version string in `.rodata`, if one is there.
fn static_library_marker<'d, R: object::ReadRef<'d>>(
    elf: &object::File<'d, R>,
) -> Option<&'static str> {
    let rodata = elf.section_by_name(".rodata")?;
    if rodata.size() > MAX_RODATA_SCAN {
        return None;
    }
    let data = rodata.data().ok()?;
    const MARKERS: &[(&[u8], &str)] = &[
        (b"BoringSSL", "BoringSSL"),
        (b"OpenSSL 3.", "OpenSSL"),
        (b"OpenSSL 1.", "OpenSSL"),
        (b"rustls", "rustls"),
    ];
    MARKERS
        .iter()
        .find(|(needle, _)| data.windows(needle.len()).any(|w| w == *needle))
        .map(|(_, what)| *what)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open(path: &str) -> Option<File> {
        match File::open(path) {
            Ok(f) => Some(f),
            Err(e) if std::env::var("DOH_TRACE_E2E").as_deref() == Ok("require") => {
                panic!("{path}: {e}; DOH_TRACE_E2E=require (scripts/setup.sh installs it)")
            }
            Err(_) => {
                eprintln!("skipped: {path} not installed");
                None
            }
        }
    }

    #[test]
    fn a_dynamically_linked_client_carries_nothing_itself() {
        // curl links libssl.so.3: its TLS is hooked in the library, not in the executable.
        let Some(curl) = open("/usr/bin/curl") else {
            return;
        };
        assert!(matches!(
            inspect(&curl, Stack::ALL).unwrap(),
            Carried::Nothing
        ));
    }

    #[test]
    fn node_exports_openssl_and_is_resolved_from_its_own_file() {
        // Node.js bundles OpenSSL and exports SSL_write & co.; it has a .gnu_debuglink to a
        // debug file that is not installed — which must not matter.
        let Some(node) = open("/usr/bin/node") else {
            return;
        };
        let Carried::Static(stacks) = inspect(&node, &[Stack::Openssl]).unwrap() else {
            panic!("node carries OpenSSL")
        };
        assert_eq!(stacks.len(), 1);
        for f in doh_trace_common::OPENSSL_FUNCTIONS {
            assert!(
                stacks[0].offset(f).is_some(),
                "{f}: {:?}",
                stacks[0].offsets
            );
        }
    }

    #[test]
    fn the_system_libssl_resolves_every_hooked_function() {
        let libssl = open("/usr/lib/x86_64-linux-gnu/libssl.so.3")
            .expect("libssl3 is installed (curl and python3 need it)");
        let r = resolve_library(&libssl, &super::super::table::OPENSSL).unwrap();
        assert_eq!(r.offsets.len(), 4, "{:?}", r.offsets);
        for f in ["SSL_write", "SSL_read", "SSL_write_ex", "SSL_read_ex"] {
            assert!(r.offset(f).is_some(), "{f}");
        }
        let libc = File::open("/proc/self/exe").unwrap();
        assert!(resolve_library(&libc, &super::super::table::OPENSSL).is_err());
    }

    #[test]
    fn a_stripped_go_program_carries_go_crypto_tls() {
        let Some(dnss) = open("/usr/bin/dnss") else {
            return;
        };
        match inspect(&dnss, Stack::ALL).unwrap() {
            Carried::Go(p) => {
                assert!(!p.write.returns.is_empty() && !p.read.returns.is_empty());
            }
            other => panic!("{other:?}"),
        }
        // With Go not enabled, nothing is reported for it.
        assert!(matches!(
            inspect(&dnss, &[Stack::Openssl]).unwrap(),
            Carried::Nothing
        ));
    }

    #[test]
    fn not_an_elf_file_carries_nothing() {
        let me = File::open(std::env::current_dir().unwrap().join("Cargo.toml")).unwrap();
        assert!(matches!(
            inspect(&me, Stack::ALL).unwrap(),
            Carried::Nothing
        ));
    }
}
