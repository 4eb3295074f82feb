//! Function symbols of an ELF file, turned into the file offsets uprobes attach at — read
//! from the file the tracer opened, and nothing else.
//!
//! aya's own resolution reopens the file by path and, when a symbol is missing, follows the
//! file's `.gnu_debuglink` to another file the traced binary names (a FIFO there hangs the
//! tracer; and Node.js, which exports OpenSSL's functions, failed there with ENOENT). Here the
//! symbol tables of the opened file are read — `.dynsym`, then `.symtab` — through a read
//! cache (only the headers and the tables themselves are read, never the whole file), within
//! a bound on their size. Only 64-bit ELF files are read (the probes read the 64-bit ABI).

use std::{collections::HashMap, fs::File};

use object::{
    read::elf::{FileHeader as _, SectionHeader as _},
    Endianness, Object as _, ObjectSection as _, ObjectSymbol as _, ReadCache, ReadRef, SymbolKind,
};

/// Most bytes of symbol and string tables read from one file.
pub const MAX_SYMBOL_TABLES: u64 = 256 << 20;

/// Why a file's symbols could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SymbolsError {
    #[error("not an ELF file")]
    NotElf,
    #[error("symbol tables of {0} bytes (more than {MAX_SYMBOL_TABLES} are not read)")]
    TooLarge(u64),
}

/// Bytes of a 64-bit ELF file's symbol and string tables, from its section headers; None if it
/// is not one.
pub fn symbol_table_bytes<'a, R: ReadRef<'a>>(data: R) -> Option<u64> {
    let header = object::elf::FileHeader64::<Endianness>::parse(data).ok()?;
    let endian = header.endian().ok()?;
    let sections = header.sections(endian, data).ok()?;
    let total = sections
        .iter()
        .filter(|s| {
            matches!(
                s.sh_type(endian),
                object::elf::SHT_SYMTAB | object::elf::SHT_DYNSYM | object::elf::SHT_STRTAB
            )
        })
        .map(|s| s.sh_size(endian))
        .fold(0u64, u64::saturating_add);
    Some(total)
}

/// Parses an ELF file for its symbols, refusing files whose tables exceed the bound.
pub fn parse<'a, R: ReadRef<'a>>(data: R) -> Result<object::File<'a, R>, SymbolsError> {
    let tables = symbol_table_bytes(data).ok_or(SymbolsError::NotElf)?;
    if tables > MAX_SYMBOL_TABLES {
        return Err(SymbolsError::TooLarge(tables));
    }
    object::File::parse(data).map_err(|_| SymbolsError::NotElf)
}

/// The file offset of each function of `names` that `elf` (a file of `file_len` bytes) defines
/// (in `.dynsym` or `.symtab`), where a uprobe on it attaches: the symbol's address translated
/// through its section. An offset past the end of the file (a section header claiming more
/// than the file holds) is no function's.
pub fn function_offsets<'a, R: ReadRef<'a>>(
    elf: &object::File<'a, R>,
    names: &[&str],
    file_len: u64,
) -> HashMap<String, u64> {
    let mut found = HashMap::new();
    for sym in elf.dynamic_symbols().chain(elf.symbols()) {
        if !sym.is_definition() || sym.kind() != SymbolKind::Text {
            continue;
        }
        let Ok(name) = sym.name() else { continue };
        if found.contains_key(name) || !names.contains(&name) {
            continue;
        }
        if let Some(offset) = file_offset(elf, &sym).filter(|&o| o < file_len) {
            found.insert(name.to_string(), offset);
        }
    }
    found
}

/// Where a symbol's code is in the file.
fn file_offset<'a, R: ReadRef<'a>>(
    elf: &object::File<'a, R>,
    sym: &object::Symbol<'a, '_, R>,
) -> Option<u64> {
    let section = elf.section_by_index(sym.section_index()?).ok()?;
    let (offset, size) = section.file_range()?;
    let rel = sym.address().checked_sub(section.address())?;
    (rel < size).then_some(())?;
    offset.checked_add(rel)
}

/// The file offsets of `names` in the open file `file`.
pub fn function_offsets_in(
    file: &File,
    names: &[&str],
) -> Result<HashMap<String, u64>, SymbolsError> {
    let cache = ReadCache::new(file);
    let elf = parse(&cache)?;
    let len = (&cache).len().map_err(|()| SymbolsError::NotElf)?;
    Ok(function_offsets(&elf, names, len))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn libc_functions_resolve_to_offsets_whose_bytes_are_code() {
        // The test binary maps a libc; open it as the tracer would and resolve two functions.
        let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
        let path = maps
            .lines()
            .find_map(|l| {
                l.split_whitespace()
                    .nth(5)
                    .filter(|p| p.ends_with("/libc.so.6"))
            })
            .expect("libc mapped");
        let file = File::open(path).unwrap();
        let offsets = function_offsets_in(&file, &["write", "read", "no_such_function"]).unwrap();
        assert_eq!(offsets.len(), 2, "{offsets:?}");
        // Independent oracle: the offset is where the symbol's address falls in the file,
        // which for libc's .text is address - (section addr - section offset); and the two
        // functions differ.
        assert_ne!(offsets["write"], offsets["read"]);
        let bytes = std::fs::read(path).unwrap();
        let elf = object::File::parse(&*bytes).unwrap();
        let text = elf.section_by_name(".text").unwrap();
        let (start, size) = text.file_range().unwrap();
        for off in offsets.values() {
            assert!((start..start + size).contains(off), "{off:#x} in .text");
        }
    }

    /// A shared library (gcc's, exporting SSL_write and friends) whose `.text` section header
    /// claims more bytes than the file holds (found by the elf_inspect fuzz target): its
    /// symbols' offsets past the end of the file are no functions'.
    #[test]
    fn offsets_past_the_end_of_the_file_are_refused() {
        // Copied: `object` reads ELF structures in place, which needs them aligned.
        let bytes = include_bytes!("../../tests/fixtures/elf/text_section_past_eof.so").to_vec();
        let len = bytes.len() as u64;
        let elf = parse(&*bytes).unwrap();
        let claimed: Vec<u64> = elf
            .dynamic_symbols()
            .filter(|s| s.name() == Ok("SSL_write") || s.name() == Ok("SSL_read"))
            .filter_map(|s| file_offset(&elf, &s))
            .collect();
        assert!(
            claimed.iter().any(|&o| o >= len),
            "{claimed:?} in {len} bytes"
        );
        let found = function_offsets(&elf, &["SSL_write", "SSL_read", "PR_Write"], len);
        assert!(found.values().all(|&o| o < len), "{found:?}");
    }

    #[test]
    fn debuglinks_are_never_followed_and_garbage_is_no_elf() {
        // A copy of this test binary: symbols come from the file itself or not at all.
        let me = File::open("/proc/self/exe").unwrap();
        let offsets = function_offsets_in(&me, &["main"]).unwrap();
        assert!(offsets.len() <= 1);
        assert_eq!(
            function_offsets_in(&File::open("/proc/self/cmdline").unwrap(), &["x"]),
            Err(SymbolsError::NotElf)
        );
        assert_eq!(symbol_table_bytes(&b"\x7fELF"[..]), None);
    }

    /// A 64-bit little-endian ELF header and section headers: the null one, a symbol table of
    /// `size` bytes (its contents are not there) and a one-byte section-name table.
    fn elf_claiming_symtab(size: u64) -> Vec<u8> {
        let mut b = vec![0u8; 64 + 3 * 64];
        b[..4].copy_from_slice(b"\x7fELF");
        b[4] = 2; // ELFCLASS64
        b[5] = 1; // little-endian
        b[6] = 1; // EV_CURRENT
        b[16..18].copy_from_slice(&3u16.to_le_bytes()); // ET_DYN
        b[18..20].copy_from_slice(&62u16.to_le_bytes()); // EM_X86_64
        b[20..24].copy_from_slice(&1u32.to_le_bytes());
        b[40..48].copy_from_slice(&64u64.to_le_bytes()); // e_shoff
        b[52..54].copy_from_slice(&64u16.to_le_bytes()); // e_ehsize
        b[58..60].copy_from_slice(&64u16.to_le_bytes()); // e_shentsize
        b[60..62].copy_from_slice(&3u16.to_le_bytes()); // e_shnum
        b[62..64].copy_from_slice(&2u16.to_le_bytes()); // e_shstrndx
        let sh = 128;
        b[sh + 4..sh + 8].copy_from_slice(&object::elf::SHT_SYMTAB.to_le_bytes());
        b[sh + 24..sh + 32].copy_from_slice(&192u64.to_le_bytes()); // sh_offset
        b[sh + 32..sh + 40].copy_from_slice(&size.to_le_bytes());
        let strtab = 192;
        b[strtab + 4..strtab + 8].copy_from_slice(&object::elf::SHT_STRTAB.to_le_bytes());
        b[strtab + 24..strtab + 32].copy_from_slice(&0u64.to_le_bytes());
        b[strtab + 32..strtab + 40].copy_from_slice(&1u64.to_le_bytes());
        b
    }

    #[test]
    fn symbol_tables_beyond_the_bound_are_not_read() {
        let huge = elf_claiming_symtab(1 << 40);
        assert_eq!(symbol_table_bytes(&huge[..]), Some((1 << 40) + 1));
        assert_eq!(
            parse(&huge[..]).err(),
            Some(SymbolsError::TooLarge((1 << 40) + 1))
        );
        let small = elf_claiming_symtab(0);
        assert_eq!(symbol_table_bytes(&small[..]), Some(1));
    }
}
