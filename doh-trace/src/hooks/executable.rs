//! What TLS stack an executable carries inside itself: Go's crypto/tls, or a TLS library linked
//! statically (OpenSSL/BoringSSL, GnuTLS, NSPR by their symbols) — and, when none can be
//! hooked, what it seems to carry and why it cannot be (stripped static OpenSSL/BoringSSL,
//! rustls).
//!
//! Executables are read through `object`'s read cache: only the headers, symbol tables and the
//! sections looked at are read, so a 200 MiB browser costs a few reads. A Go binary is read
//! whole (bounded) for its `.gopclntab`.

use std::{fs::File, path::Path};

use object::{Object as _, ObjectSection as _, ObjectSymbol as _, ReadCache};

use super::go_binary::{self, GoInspect, GoTlsProbes};
use crate::hooks::table::{Stack, SymbolStack, SYMBOL_STACKS};

/// Go binaries larger than this are not inspected.
const MAX_GO_BINARY: u64 = 1 << 30;
/// At most this much of `.rodata` is searched for library version strings.
const MAX_RODATA_SCAN: u64 = 64 << 20;

/// What an executable carries.
#[derive(Debug)]
pub enum Carried {
    /// Nothing of interest (TLS, if any, comes from shared libraries).
    Nothing,
    /// Stacks hooked by symbol, linked statically (their symbols are defined in the file).
    Static(Vec<&'static SymbolStack>),
    /// Go crypto/tls, with where to probe.
    Go(GoTlsProbes),
    /// A TLS stack that cannot be hooked: (what, why).
    Unhookable(String, String),
}

/// Inspects the executable at `path` (only the stacks in `enabled`).
pub fn inspect(path: &Path, enabled: &[Stack]) -> std::io::Result<Carried> {
    let file = File::open(path)?;
    let len = file.metadata()?.len();
    let cache = ReadCache::new(file);
    let Ok(elf) = object::File::parse(&cache) else {
        return Ok(Carried::Nothing);
    };
    let is_go = elf.section_by_name(".gopclntab").is_some()
        || elf.section_by_name(".go.buildinfo").is_some();
    if is_go {
        if !enabled.contains(&Stack::Go) {
            return Ok(Carried::Nothing);
        }
        if len > MAX_GO_BINARY {
            return Ok(Carried::Unhookable(
                "Go crypto/tls".into(),
                format!("executable too large to inspect ({len} bytes)"),
            ));
        }
        let bytes = std::fs::read(path)?;
        return Ok(match go_binary::inspect(&bytes) {
            GoInspect::Tls(probes) => Carried::Go(probes),
            GoInspect::NotGo | GoInspect::GoWithoutTls { .. } => Carried::Nothing,
            GoInspect::Unsupported { go_version, why } => Carried::Unhookable(
                format!(
                    "Go crypto/tls ({})",
                    go_version.as_deref().unwrap_or("unknown Go version")
                ),
                why,
            ),
        });
    }

    let mut defined: Vec<String> = Vec::new();
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
        if sym.is_definition() && sym.kind() == object::SymbolKind::Text {
            if tls_function {
                defined.push(name.to_string());
            }
            if !mentions_rustls && name.contains("rustls") {
                mentions_rustls = true;
            }
        }
    }
    let stacks: Vec<&'static SymbolStack> = SYMBOL_STACKS
        .iter()
        .copied()
        .filter(|s| enabled.contains(&s.stack))
        .filter(|s| {
            s.probes
                .iter()
                .filter(|p| p.required)
                .all(|p| defined.iter().any(|d| d == p.hook.symbol()))
        })
        .collect();
    if !stacks.is_empty() {
        return Ok(Carried::Static(stacks));
    }
    if mentions_rustls {
        return Ok(Carried::Unhookable(
            "rustls (linked statically)".into(),
            "rustls has no stable, non-inlined functions whose arguments are the plaintext; \
             not hooked"
                .into(),
        ));
    }
    let stripped = elf.section_by_name(".symtab").is_none();
    if stripped && !imports_tls {
        if let Some(what) = static_library_marker(&elf) {
            return Ok(Carried::Unhookable(
                format!("{what} (linked statically)"),
                "the executable is stripped: no symbols to attach to".into(),
            ));
        }
    }
    Ok(Carried::Nothing)
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

    #[test]
    fn a_dynamically_linked_client_carries_nothing_itself() {
        // curl links libssl.so.3: its TLS is hooked in the library, not in the executable.
        let curl = Path::new("/usr/bin/curl");
        if !curl.exists() {
            eprintln!("skipped: /usr/bin/curl not installed");
            return;
        }
        assert!(matches!(
            inspect(curl, Stack::ALL).unwrap(),
            Carried::Nothing
        ));
    }

    #[test]
    fn a_stripped_go_program_carries_go_crypto_tls() {
        let dnss = Path::new("/usr/bin/dnss");
        if !dnss.exists() {
            if std::env::var("DOH_TRACE_E2E").as_deref() == Ok("require") {
                panic!("/usr/bin/dnss is required (apt-get install dnss)");
            }
            eprintln!("skipped: /usr/bin/dnss not installed (apt-get install dnss)");
            return;
        }
        match inspect(dnss, Stack::ALL).unwrap() {
            Carried::Go(p) => {
                assert!(!p.write.returns.is_empty() && !p.read.returns.is_empty());
            }
            other => panic!("{other:?}"),
        }
        // With Go not enabled, nothing is reported for it.
        assert!(matches!(
            inspect(dnss, &[Stack::Openssl]).unwrap(),
            Carried::Nothing
        ));
    }

    #[test]
    fn not_an_elf_file_carries_nothing() {
        let me = std::env::current_dir().unwrap().join("Cargo.toml");
        assert!(matches!(
            inspect(&me, Stack::ALL).unwrap(),
            Carried::Nothing
        ));
    }
}
