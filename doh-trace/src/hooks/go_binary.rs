//! Where to hook a Go program's TLS: the file offsets of `crypto/tls.(*Conn).Write` and
//! `crypto/tls.(*Conn).Read` and of every `RET` inside them, read from the bytes of an x86-64
//! ELF executable.
//!
//! Go programs crash under uretprobes (the runtime moves goroutine stacks and finds a foreign
//! return address), so the tracer probes each function's entry and each of its `RET`s instead.
//! With the register ABI (Go 1.17+ on amd64) the arguments are in registers at entry and the
//! results in registers at each `RET`; older Go is reported [`GoInspect::Unsupported`].
//!
//! * Go or not: a `.go.buildinfo`, `.gopclntab` or `.note.go.buildid` section, a
//!   `runtime.main` symbol, or the build-info blob at the start of the first writable segment
//!   (the rule of Go's `debug/buildinfo` when there are no section headers).
//! * Version (`debug/buildinfo`): the blob is `"\xff Go buildinf:"`, pointer size, flags; with
//!   flags & 2 (Go 1.18+) two uvarint-length strings follow the 32-byte header (version first),
//!   before that the header holds the address of a Go string header (pointer, length). Then the
//!   `runtime.buildVersion` symbol, then a bounded search for `go1.` in the blob.
//! * Functions: `.symtab` when it names both (size from the symbol), else the pclntab (see
//!   [`super::gopclntab`]): the `.gopclntab` or `.data.rel.ro.gopclntab` section, the
//!   `runtime.pclntab` symbol, or a search of the read-only data by header. A 1.18+ textStart
//!   of 0 (an externally linked PIE) is taken from its dynamic relocation's addend.
//! * Addresses become file offsets through the executable `PT_LOAD` holding the whole function.
//! * Each function's bytes are decoded in order with iced-x86; an undecodable instruction ends
//!   the walk (skipping a byte would decode misaligned garbage).
//!
//! Debian's dnss (Go 1.19.8, stripped, cgo so textStart 0x4023e0 is past `.text`'s start) ends
//! both functions with a `RET` followed by the `CALL runtime.morestack_noctxt; JMP entry`
//! stack-growth tail and `INT3` padding; `RET`s also sit in the middle of the body.

use super::gopclntab::{search, PclnVersion, Pclntab};
use iced_x86::{Decoder, DecoderOptions, Instruction, Mnemonic};
use object::{
    Architecture, Object, ObjectSection, ObjectSegment, ObjectSymbol, ReadRef, SectionFlags,
};
use object::{SegmentFlags, SymbolKind};
use std::ops::Range;

/// Symbol of the function writing plaintext to a TLS connection.
pub const WRITE_SYMBOL: &str = "crypto/tls.(*Conn).Write";
/// Symbol of the function reading plaintext from a TLS connection.
pub const READ_SYMBOL: &str = "crypto/tls.(*Conn).Read";
const BUILDINFO_MAGIC: &[u8] = b"\xff Go buildinf:";
/// Largest function walked for its `RET`s (Go's Write and Read are a few hundred bytes).
const MAX_FUNCTION: u64 = 1 << 20;
/// Most `RET`s probed in one function: each is a uprobe every call of it hits.
const MAX_RETURNS: usize = 64;

/// The outcome of looking at an executable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GoInspect {
    /// Not a Go program (or not an ELF file at all).
    NotGo,
    /// A Go program without `crypto/tls.(*Conn)` Write and Read (so it makes no TLS of its own).
    GoWithoutTls { go_version: Option<String> },
    /// Where to probe.
    Tls(GoTlsProbes),
    /// A Go program that cannot be probed, and why.
    Unsupported {
        go_version: Option<String>,
        why: String,
    },
}

/// The probe points of a Go program's TLS functions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GoTlsProbes {
    pub go_version: Option<String>,
    pub write: FuncProbes,
    pub read: FuncProbes,
    pub symbols_from: SymbolSource,
}

/// Where the function addresses came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SymbolSource {
    Symtab,
    Pclntab,
}

/// One function's probe points.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FuncProbes {
    /// Virtual address of the entry (as linked).
    pub address: u64,
    /// Length of the function in bytes (to the next function for the pclntab).
    pub size: u64,
    /// File offset of the entry.
    pub entry: u64,
    /// File offsets of each `RET`, ascending.
    pub returns: Vec<u64>,
}

/// Most bytes of one region (a section, a segment) read to look for the pclntab or the
/// build info: larger ones are not read (a hostile file cannot make the tracer read much).
const MAX_REGION: u64 = 256 << 20;

/// Finds where to probe Go's TLS in the ELF executable `elf` — bytes in memory, or a file read
/// piece by piece (`&object::ReadCache<&File>`: only the parts looked at are read). Never
/// panics.
pub fn inspect<'a, R: ReadRef<'a>>(elf: R) -> GoInspect {
    inspect_with(elf, true)
}

/// [`inspect`], optionally ignoring `.symtab` for the functions (to test the pclntab path).
fn inspect_with<'a, R: ReadRef<'a>>(elf: R, use_symtab: bool) -> GoInspect {
    let Ok(file) = object::File::parse(elf) else {
        return GoInspect::NotGo;
    };
    let img = Image::new(elf, &file);
    let syms = Symbols::read(&file);
    let blob = buildinfo_blob(&file, &img);
    let has_section = |n: &str| file.section_by_name(n).is_some();
    let is_go = blob.is_some()
        || [".gopclntab", ".data.rel.ro.gopclntab", ".note.go.buildid"]
            .into_iter()
            .any(has_section)
        || syms.main;
    if !is_go {
        return GoInspect::NotGo;
    }
    let go_version = go_version(blob, &img, &syms);
    let unsupported = |why: String| GoInspect::Unsupported {
        go_version: go_version.clone(),
        why,
    };
    if file.architecture() != Architecture::X86_64 || !file.is_64() || !file.is_little_endian() {
        return unsupported(format!("not x86-64 ({:?})", file.architecture()));
    }
    let pcln = pclntab(&file, &img, &syms);
    match (go_version.as_deref().and_then(go_release), &pcln) {
        (Some(v), _) if v < (1, 17) => {
            return unsupported(format!("Go 1.{} predates the register ABI (1.17)", v.1));
        }
        (Some(_), _) => {}
        (None, Some(Ok(t))) if t.version() >= PclnVersion::Go118 => {}
        (None, _) => return unsupported("Go version unknown".into()),
    }
    let found = match (use_symtab, syms.write.clone(), syms.read.clone()) {
        (true, Some(w), Some(r)) => (Some(w), Some(r), SymbolSource::Symtab),
        _ => match pcln {
            Some(Ok(t)) => match (t.find(WRITE_SYMBOL), t.find(READ_SYMBOL)) {
                (Ok(w), Ok(r)) => (w, r, SymbolSource::Pclntab),
                (Err(e), _) | (_, Err(e)) => return unsupported(e.to_string()),
            },
            Some(Err(e)) => return unsupported(e.to_string()),
            None if syms.any => (None, None, SymbolSource::Symtab),
            None => return unsupported("no symbols and no pclntab".into()),
        },
    };
    let (write, read, symbols_from) = match found {
        (None, None, _) => return GoInspect::GoWithoutTls { go_version },
        (Some(w), Some(r), source) => (w, r, source),
        (w, _, _) => {
            let missing = if w.is_none() {
                WRITE_SYMBOL
            } else {
                READ_SYMBOL
            };
            return unsupported(format!("{missing} not found"));
        }
    };
    match (
        img.probes(WRITE_SYMBOL, write),
        img.probes(READ_SYMBOL, read),
    ) {
        (Ok(write), Ok(read)) => GoInspect::Tls(GoTlsProbes {
            go_version,
            write,
            read,
            symbols_from,
        }),
        (Err(why), _) | (_, Err(why)) => unsupported(why),
    }
}

/// `(major, minor)` of a Go version string such as `go1.19.8` or `devel go1.22-abcdef`.
pub fn go_release(version: &str) -> Option<(u32, u32)> {
    version.match_indices("go").find_map(|(at, _)| {
        let rest = &version[at + 2..];
        let digits = |s: &str| s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
        let (major, rest) = rest.split_at(digits(rest));
        let minor = rest.strip_prefix('.')?;
        let minor = &minor[..digits(minor)];
        Some((major.parse().ok()?, minor.parse().ok()?))
    })
}

/// The symbols looked for in `.symtab`, in one pass.
#[derive(Default)]
struct Symbols {
    any: bool,
    main: bool,
    write: Option<Range<u64>>,
    read: Option<Range<u64>>,
    build_version: Option<u64>,
    pclntab: Option<Range<u64>>,
}

impl Symbols {
    fn read<'a, R: ReadRef<'a>>(file: &object::File<'a, R>) -> Self {
        let mut s = Symbols::default();
        let (mut pcln, mut epcln) = (None, None);
        for sym in file.symbols() {
            s.any = true;
            let range = sym.address()..sym.address().saturating_add(sym.size());
            let func = sym.kind() == SymbolKind::Text && sym.size() > 0;
            match sym.name_bytes() {
                Ok(b"runtime.main") => s.main = true,
                Ok(n) if func && n == WRITE_SYMBOL.as_bytes() => s.write = Some(range),
                Ok(n) if func && n == READ_SYMBOL.as_bytes() => s.read = Some(range),
                Ok(b"runtime.buildVersion") => s.build_version = Some(sym.address()),
                Ok(b"runtime.pclntab") => pcln = Some(sym.address()),
                Ok(b"runtime.epclntab") => epcln = Some(sym.address()),
                _ => {}
            }
        }
        s.pclntab = pcln
            .zip(epcln)
            .map(|(a, b)| a..b)
            .filter(|r| r.start < r.end);
        s
    }
}

/// The file's `PT_LOAD` segments, for turning addresses into file bytes.
struct Image<R> {
    data: R,
    /// The file's size.
    len: u64,
    loads: Vec<Load>,
}

/// A `PT_LOAD` segment: address, file offset, size in the file, permissions.
#[derive(Clone, Copy)]
struct Load {
    addr: u64,
    offset: u64,
    size: u64,
    exec: bool,
    write: bool,
}

impl<'a, R: ReadRef<'a>> Image<R> {
    fn new(data: R, file: &object::File<'a, R>) -> Self {
        let loads = file.segments().map(|seg| {
            let (offset, size) = seg.file_range();
            let flags = match seg.flags() {
                SegmentFlags::Elf { p_flags } => p_flags,
                _ => 0,
            };
            let (exec, write) = (
                flags & object::elf::PF_X != 0,
                flags & object::elf::PF_W != 0,
            );
            Load {
                addr: seg.address(),
                offset,
                size,
                exec,
                write,
            }
        });
        Image {
            len: data.len().unwrap_or(0),
            data,
            loads: loads.collect(),
        }
    }

    /// File range of `len` bytes at `addr`, within one segment, and whether it is executable.
    fn locate(&self, addr: u64, len: u64) -> Option<(Range<u64>, bool)> {
        self.loads.iter().find_map(
            |&Load {
                 addr: vaddr,
                 offset,
                 size,
                 exec,
                 ..
             }| {
                let rel = addr.checked_sub(vaddr)?;
                (rel.checked_add(len)? <= size).then_some(())?;
                let start = offset.checked_add(rel)?;
                let end = start.checked_add(len)?;
                (end <= self.len).then_some((start..end, exec))
            },
        )
    }

    fn read(&self, addr: u64, len: u64) -> Option<&'a [u8]> {
        if len > MAX_REGION {
            return None;
        }
        let (r, _) = self.locate(addr, len)?;
        self.data.read_bytes_at(r.start, r.end - r.start).ok()
    }

    /// A Go string (pointer, length) at `addr`, if short and UTF-8.
    fn go_string(&self, addr: u64) -> Option<String> {
        let header = self.read(addr, 16)?;
        let ptr = u64::from_le_bytes(header[..8].try_into().ok()?);
        let len = u64::from_le_bytes(header[8..].try_into().ok()?);
        (len > 0 && len <= 256).then_some(())?;
        String::from_utf8(self.read(ptr, len)?.to_vec()).ok()
    }

    /// The entry and `RET` offsets of the function `name` at `range`.
    fn probes(&self, name: &str, range: Range<u64>) -> Result<FuncProbes, String> {
        let size = range.end.saturating_sub(range.start);
        let (code, exec) = self
            .locate(range.start, size)
            .ok_or_else(|| format!("{name} at {:#x} is not in the file", range.start))?;
        if !exec {
            return Err(format!(
                "{name} at {:#x} is not in an executable segment",
                range.start
            ));
        }
        let base = code.start;
        if size > MAX_FUNCTION {
            return Err(format!(
                "{name} at {:#x} is implausibly large ({size} bytes)",
                range.start
            ));
        }
        let bytes = self
            .data
            .read_bytes_at(code.start, size)
            .map_err(|()| format!("{name} at {:#x} could not be read", range.start))?;
        let mut decoder = Decoder::with_ip(64, bytes, range.start, DecoderOptions::NONE);
        let mut insn = Instruction::default();
        let mut returns = Vec::new();
        while decoder.can_decode() {
            decoder.decode_out(&mut insn);
            if insn.is_invalid() {
                break;
            }
            if insn.mnemonic() == Mnemonic::Ret {
                if returns.len() >= MAX_RETURNS {
                    return Err(format!(
                        "{name} at {:#x} has more than {MAX_RETURNS} RET instructions",
                        range.start
                    ));
                }
                returns.push(base + (insn.ip() - range.start));
            }
        }
        if returns.is_empty() {
            return Err(format!("no RET found in {name} at {:#x}", range.start));
        }
        Ok(FuncProbes {
            address: range.start,
            size,
            entry: base,
            returns,
        })
    }
}

/// The build-info blob: at a 16-byte aligned address in the first 64 KiB of `.go.buildinfo`
/// (Go's `debug/buildinfo` rule), or, without section headers, anywhere in the first writable,
/// non-executable segment (Go looks at its first 64 KiB only, but with cgo dnss has 68 KiB of C
/// data first).
fn buildinfo_blob<'a, R: ReadRef<'a>>(
    file: &object::File<'a, R>,
    img: &Image<R>,
) -> Option<&'a [u8]> {
    let (addr, region) = match file.section_by_name(".go.buildinfo") {
        Some(section) => {
            let (offset, size) = section.file_range()?;
            let data = img.data.read_bytes_at(offset, size.min(64 << 10)).ok()?;
            (section.address(), data)
        }
        None => {
            let load = img.loads.iter().find(|l| !l.exec && l.write)?;
            (load.addr, img.read(load.addr, load.size)?)
        }
    };
    let first = usize::try_from(addr.wrapping_neg() % 16).ok()?;
    let mut starts = (first..region.len()).step_by(16).map(|at| &region[at..]);
    starts.find(|r| r.starts_with(BUILDINFO_MAGIC) && r.len() >= 32)
}

/// The Go version from the blob, `runtime.buildVersion`, or a `go1.` string in the blob.
fn go_version<'a, R: ReadRef<'a>>(
    blob: Option<&[u8]>,
    img: &Image<R>,
    syms: &Symbols,
) -> Option<String> {
    let from_blob = blob.and_then(|b| {
        if b[15] & 2 != 0 {
            let (len, used) = uvarint(&b[32..])?;
            let start = 32 + used;
            let s = b.get(start..start.checked_add(usize::try_from(len).ok()?)?)?;
            String::from_utf8(s.to_vec()).ok()
        } else if b[14] == 8 && b[15] == 0 {
            img.go_string(u64::from_le_bytes(b[16..24].try_into().ok()?))
        } else {
            None
        }
    });
    let from_symbol = || syms.build_version.and_then(|addr| img.go_string(addr));
    let from_search = || {
        let b = blob?;
        let at = b.windows(4).position(|w| w == b"go1.")?;
        let len = b[at..]
            .iter()
            .take(64)
            .take_while(|c| c.is_ascii_graphic())
            .count();
        String::from_utf8(b[at..at + len].to_vec()).ok()
    };
    from_blob
        .filter(|v| !v.is_empty())
        .or_else(from_symbol)
        .or_else(from_search)
}

fn uvarint(b: &[u8]) -> Option<(u64, usize)> {
    let mut value = 0u64;
    for (i, &byte) in b.iter().enumerate().take(10) {
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Some((value, i + 1));
        }
    }
    None
}

/// The pclntab, if there is one, with its textStart relocated when the file holds 0.
fn pclntab<'a, R: ReadRef<'a>>(
    file: &object::File<'a, R>,
    img: &Image<R>,
    syms: &Symbols,
) -> Option<Result<Pclntab<'a>, super::gopclntab::PclnError>> {
    let named = [".gopclntab", ".data.rel.ro.gopclntab"]
        .iter()
        .find_map(|n| file.section_by_name(n));
    let (addr, table) = if let Some(section) = named {
        (section.address(), Pclntab::parse(section_data(section)?))
    } else if let Some(r) = &syms.pclntab {
        (r.start, Pclntab::parse(img.read(r.start, r.end - r.start)?))
    } else {
        // Read-only data: allocated sections that are not code, or without section headers the
        // segments that are not executable.
        let (alloc, exec) = (
            u64::from(object::elf::SHF_ALLOC),
            u64::from(object::elf::SHF_EXECINSTR),
        );
        let sections = file.sections().filter(|s| {
            matches!(s.flags(), SectionFlags::Elf { sh_flags } if sh_flags & (alloc | exec) == alloc)
        });
        let mut regions: Vec<(u64, &'a [u8])> = sections
            .filter_map(|s| Some((s.address(), section_data(s)?)))
            .collect();
        if file.sections().next().is_none() {
            let data = img.loads.iter().filter(|l| !l.exec);
            regions.extend(data.filter_map(|l| Some((l.addr, img.read(l.addr, l.size)?))));
        }
        regions.into_iter().find_map(|(addr, data)| {
            let (at, table) = search(data)?;
            Some((addr.wrapping_add(at as u64), Ok(table)))
        })?
    };
    Some(table.map(|t| match t.text_start_field() {
        Some(field) if t.text_start() == 0 => {
            let at = addr.wrapping_add(field as u64);
            let relocated = file.dynamic_relocations().and_then(|mut relocs| {
                relocs
                    .find(|(offset, _)| *offset == at)
                    .map(|(_, r)| r.addend() as u64)
            });
            t.with_text_start(relocated.unwrap_or(0))
        }
        _ => t,
    }))
}

/// A section's bytes, unless it is larger than [`MAX_REGION`].
fn section_data<'a, R: ReadRef<'a>>(section: object::Section<'a, '_, R>) -> Option<&'a [u8]> {
    (section.size() <= MAX_REGION).then_some(())?;
    section.data().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use iced_x86::Register;

    /// The bytes of `path`, or `None` after saying the test is skipped.
    fn installed(path: &str, required: bool, hint: &str) -> Option<Vec<u8>> {
        match std::fs::read(path) {
            Ok(bytes) => Some(bytes),
            Err(e) if required && std::env::var("DOH_TRACE_E2E").as_deref() == Ok("require") => {
                panic!("{path}: {e}; DOH_TRACE_E2E=require ({hint})")
            }
            Err(_) => {
                println!("skipped: {path} not installed ({hint})");
                None
            }
        }
    }

    fn dnss() -> Option<Vec<u8>> {
        installed("/usr/bin/dnss", true, "apt-get install dnss")
    }

    /// Go's amd64 prologue compares the stack pointer with g.stackguard0, [R14+16] under the
    /// register ABI, in its first or second instruction: a check that `entry` is a Go entry.
    fn checks_stack(bytes: &[u8], f: &FuncProbes) -> bool {
        let code = &bytes[f.entry as usize..(f.entry + f.size) as usize];
        let mut decoder = Decoder::with_ip(64, code, f.address, DecoderOptions::NONE);
        decoder.iter().take(2).any(|i| {
            i.mnemonic() == Mnemonic::Cmp
                && i.memory_base() == Register::R14
                && i.memory_displacement64() == 16
        })
    }

    fn check(bytes: &[u8], name: &str, f: &FuncProbes) {
        assert!(
            checks_stack(bytes, f),
            "{name}: no stack check at {:#x}",
            f.entry
        );
        assert!(!f.returns.is_empty() && f.returns.windows(2).all(|w| w[0] < w[1]));
        for &ret in &f.returns {
            assert!(
                f.entry < ret && ret < f.entry + f.size,
                "{name}: RET at {ret:#x} outside"
            );
            assert!(
                matches!(bytes[ret as usize], 0xc3 | 0xc2),
                "{name}: {ret:#x} is no RET"
            );
        }
        let rets: Vec<String> = f.returns.iter().map(|r| format!("{r:#x}")).collect();
        println!(
            "{name}: {:#x} (file {:#x}, {} bytes), RETs {}",
            f.address,
            f.entry,
            f.size,
            rets.join(" ")
        );
    }

    fn tls(result: GoInspect) -> GoTlsProbes {
        match result {
            GoInspect::Tls(probes) => probes,
            other => panic!("expected probes, got {other:?}"),
        }
    }

    #[test]
    fn dnss_stripped_go_1_19_from_the_pclntab() {
        let Some(bytes) = dnss() else { return };
        let probes = tls(inspect(&bytes[..]));
        assert_eq!(probes.go_version.as_deref(), Some("go1.19.8"));
        assert_eq!(probes.symbols_from, SymbolSource::Pclntab);
        check(&bytes, WRITE_SYMBOL, &probes.write);
        check(&bytes, READ_SYMBOL, &probes.read);
        // The same table gives runtime.main a Go entry too, and its first function starts at
        // textStart (0x4023e0 with cgo, past .text's start).
        let file = object::File::parse(&*bytes).unwrap();
        let table =
            Pclntab::parse(file.section_by_name(".gopclntab").unwrap().data().unwrap()).unwrap();
        assert_eq!(
            (table.version(), table.entry(0)),
            (PclnVersion::Go118, Some(table.text_start()))
        );
        let main = table.find("runtime.main").unwrap().unwrap();
        check(
            &bytes,
            "runtime.main",
            &Image::new(&bytes[..], &file)
                .probes("runtime.main", main)
                .unwrap(),
        );
    }

    #[test]
    fn dnss_without_section_headers_is_found_by_scanning() {
        let Some(mut bytes) = dnss() else { return };
        let whole = tls(inspect(&bytes[..]));
        bytes[0x28..0x30].fill(0); // e_shoff
        bytes[0x3c..0x40].fill(0); // e_shnum, e_shstrndx
        assert_eq!(tls(inspect(&bytes[..])), whole);
    }

    #[test]
    fn damaged_dnss_is_unsupported_or_not_go() {
        let Some(bytes) = dnss() else { return };
        let cuts = (1..7).map(|k| bytes.len() * k / 7).chain([4096, 64, 0]);
        for cut in cuts {
            assert_eq!(
                inspect(&bytes[..cut]),
                GoInspect::NotGo,
                "prefix of {cut} bytes"
            );
        }
        let file = object::File::parse(&*bytes).unwrap();
        let pcln = file
            .section_by_name(".gopclntab")
            .unwrap()
            .file_range()
            .unwrap()
            .0 as usize;
        let unsupported = |at: usize, patch: &[u8]| {
            let mut b = bytes.clone();
            b[at..at + patch.len()].copy_from_slice(patch);
            match inspect(&b[..]) {
                GoInspect::Unsupported { go_version, why } => {
                    assert_eq!(go_version.as_deref(), Some("go1.19.8"));
                    why
                }
                other => panic!("patch at {at:#x}: {other:?}"),
            }
        };
        assert!(unsupported(pcln, &[0; 4]).contains("magic"));
        assert!(unsupported(pcln + 8, &[0xff; 8]).contains("runs past the end"));
        let write = tls(inspect(&bytes[..])).write;
        assert!(
            unsupported(write.entry as usize, &vec![0x06; write.size as usize]).contains("no RET")
        );
    }

    #[test]
    fn other_files_are_not_go() {
        for garbage in [
            &b""[..],
            b"\x7fELF",
            &[0x7f; 4096],
            &(0..=255).cycle().take(10_000).collect::<Vec<u8>>(),
        ] {
            assert_eq!(inspect(garbage), GoInspect::NotGo);
        }
        if let Some(ls) = installed("/bin/ls", false, "coreutils") {
            assert_eq!(inspect(&ls[..]), GoInspect::NotGo);
        }
    }

    #[test]
    fn unstripped_go_binaries_from_the_symtab_and_the_pclntab() {
        // Not Debian packages: checked when present (docker 1.24 has .symtab and keeps its
        // pclntab inside .data.rel.ro; kubectl 1.23 is stripped).
        for path in [
            "/usr/local/bin/docker",
            "/usr/lib/google-cloud-sdk/bin/kubectl",
        ] {
            let Some(bytes) = installed(path, false, "optional") else {
                continue;
            };
            let probes = tls(inspect(&bytes[..]));
            println!(
                "{path}: {:?} from {:?}",
                probes.go_version, probes.symbols_from
            );
            check(&bytes, WRITE_SYMBOL, &probes.write);
            check(&bytes, READ_SYMBOL, &probes.read);
            let pcln = tls(inspect_with(&bytes[..], false));
            assert_eq!(pcln.symbols_from, SymbolSource::Pclntab);
            for (a, b) in [(&probes.write, &pcln.write), (&probes.read, &pcln.read)] {
                assert_eq!((a.entry, &a.returns), (b.entry, &b.returns));
            }
            // Without the runtime.pclntab symbol, docker's table is found inside .data.rel.ro.
            let mut renamed = bytes;
            let name = b"\0runtime.pclntab\0";
            if let Some(at) = renamed.windows(name.len()).position(|w| w == name) {
                renamed[at + name.len() - 2] = b'X';
                assert_eq!(tls(inspect_with(&renamed[..], false)), pcln);
            }
        }
    }

    #[test]
    fn release_numbers() {
        assert_eq!(go_release("go1.19.8"), Some((1, 19)));
        assert_eq!(go_release("devel go1.22-abc Tue"), Some((1, 22)));
        assert_eq!(go_release("go1.21rc2"), Some((1, 21)));
        assert_eq!(go_release("gopher"), None);
    }
}
