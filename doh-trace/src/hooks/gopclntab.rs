//! Reading function names and entry addresses from a Go binary's pclntab (`runtime.pclntab`,
//! the `.gopclntab` section of ELF executables), which Go keeps even in stripped binaries.
//!
//! Layout, checked against Go's `debug/gosym/pclntab.go` (`parsePclnTab`, `funcTab`, `funcData`)
//! and the `pcHeader`/`functab`/`_func` structs of `runtime/symtab.go` / `runtime/runtime2.go`,
//! then against real binaries (Debian's dnss, Go 1.19.8; a Go 1.24 docker):
//!
//! * header: magic `u32`, two zero bytes, `minLC` (pc quantum: 1, 2 or 4), `ptrSize` (4 or 8),
//!   then pointer-sized words. Magic `0xfffffffb` is Go 1.2–1.15 (not read here: no register ABI
//!   anyway), `0xfffffffa` Go 1.16–1.17, `0xfffffff0` Go 1.18–1.19, `0xfffffff1` Go 1.20+.
//! * 1.18+ words: nfunc, nfiles, textStart, funcnameOffset, cuOffset, filetabOffset,
//!   pctabOffset, pclnOffset. 1.16–1.17: the same without textStart. Offsets count from the
//!   start of the table; the tables follow in that order (the linker writes them so; required
//!   here as a sanity check).
//! * functab at pclnOffset: `nfunc` pairs (entry, funcoff) then one more entry (the end of the
//!   last function): `u32` fields with entry = textStart + entryoff for 1.18+, pointer-sized
//!   fields with absolute entries for 1.16–1.17. A function ends where the next one starts.
//! * `_func` at pclnOffset + funcoff: entry (`u32` offset for 1.18+, `uintptr` before), then
//!   `nameOff int32`, an offset into funcnametab of a NUL-terminated name.
//!
//! Only little-endian tables are read (the callers want x86-64). Multiple text sections
//! (`textsectmap`, only made on ppc64/arm) are not handled. Every read is bounds-checked and
//! `nfunc` is bounded by the size of the table, so hostile input costs at most linear time.

use std::ops::Range;

/// Which pclntab layout a table uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum PclnVersion {
    /// Magic 0xfffffffa, Go 1.16–1.17: absolute pointer-sized entries.
    Go116,
    /// Magic 0xfffffff0, Go 1.18–1.19: `u32` entry offsets from textStart.
    Go118,
    /// Magic 0xfffffff1, Go 1.20+: same layout as 1.18.
    Go120,
}

/// Why a table cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PclnError {
    #[error("pclntab shorter than its header")]
    Truncated,
    #[error("pclntab magic {0:#010x} is not a known format")]
    UnknownMagic(u32),
    #[error("pclntab magic 0xfffffffb (Go 1.2-1.15) is not supported")]
    Go12,
    #[error("pclntab header: {0}")]
    BadHeader(&'static str),
    #[error("pclntab entry of {0} disagrees with its function table")]
    Inconsistent(String),
}

/// A parsed pclntab header over the table's bytes.
#[derive(Debug, Clone)]
pub struct Pclntab<'a> {
    data: &'a [u8],
    version: PclnVersion,
    ptr_size: usize,
    nfunc: usize,
    text_start: u64,
    funcnames: usize,
    functab: usize,
}

/// Size of the 8-byte fixed header part that precedes the words.
const FIXED: usize = 8;

fn u32_at(data: &[u8], at: usize) -> Option<u32> {
    let b = data.get(at..at.checked_add(4)?)?;
    Some(u32::from_le_bytes(b.try_into().ok()?))
}

fn uint_at(data: &[u8], at: usize, size: usize) -> Option<u64> {
    match size {
        4 => u32_at(data, at).map(u64::from),
        8 => {
            let b = data.get(at..at.checked_add(8)?)?;
            Some(u64::from_le_bytes(b.try_into().ok()?))
        }
        _ => None,
    }
}

impl<'a> Pclntab<'a> {
    /// Parses the header at the start of `data` (which may run past the table's end).
    pub fn parse(data: &'a [u8]) -> Result<Self, PclnError> {
        let magic = u32_at(data, 0).ok_or(PclnError::Truncated)?;
        let version = match magic {
            0xffff_fffa => PclnVersion::Go116,
            0xffff_fff0 => PclnVersion::Go118,
            0xffff_fff1 => PclnVersion::Go120,
            0xffff_fffb => return Err(PclnError::Go12),
            other => return Err(PclnError::UnknownMagic(other)),
        };
        let fixed = data.get(..FIXED).ok_or(PclnError::Truncated)?;
        if fixed[4] != 0 || fixed[5] != 0 || !matches!(fixed[6], 1 | 2 | 4) {
            return Err(PclnError::BadHeader("padding or pc quantum"));
        }
        let ptr_size = usize::from(fixed[7]);
        if ptr_size != 4 && ptr_size != 8 {
            return Err(PclnError::BadHeader("pointer size"));
        }
        let word =
            |i: usize| uint_at(data, FIXED + i * ptr_size, ptr_size).ok_or(PclnError::Truncated);
        // Word indexes of nfunc, textStart, funcnameOffset..pclnOffset.
        let (text_start, first_offset) = match version {
            PclnVersion::Go116 => (0, 2),
            PclnVersion::Go118 | PclnVersion::Go120 => (word(2)?, 3),
        };
        let header_len = FIXED + (first_offset + 5) * ptr_size;
        let mut offsets = [0usize; 5];
        for (k, slot) in offsets.iter_mut().enumerate() {
            let v = word(first_offset + k)?;
            *slot = usize::try_from(v)
                .ok()
                .filter(|&v| v <= data.len())
                .ok_or(PclnError::BadHeader("table offset past the end"))?;
        }
        if offsets[0] < header_len || offsets.windows(2).any(|w| w[0] > w[1]) {
            return Err(PclnError::BadHeader("table offsets out of order"));
        }
        let [funcnames, _, _, _, functab] = offsets;
        let field = if version >= PclnVersion::Go118 {
            4
        } else {
            ptr_size
        };
        let room = (data.len() - functab) / field;
        let nfunc = usize::try_from(word(0)?)
            .ok()
            .filter(|&n| {
                n.checked_mul(2)
                    .and_then(|x| x.checked_add(1))
                    .is_some_and(|f| f <= room)
            })
            .ok_or(PclnError::BadHeader("function table runs past the end"))?;
        Ok(Pclntab {
            data,
            version,
            ptr_size,
            nfunc,
            text_start,
            funcnames,
            functab,
        })
    }

    /// The table's layout.
    pub fn version(&self) -> PclnVersion {
        self.version
    }

    /// Number of functions.
    pub fn len(&self) -> usize {
        self.nfunc
    }

    /// Whether the table lists no function.
    pub fn is_empty(&self) -> bool {
        self.nfunc == 0
    }

    /// The base of 1.18+ entry offsets as stored in the header (0 before 1.18).
    pub fn text_start(&self) -> u64 {
        self.text_start
    }

    /// Where the textStart word sits in the table (1.18+), for finding its dynamic relocation
    /// when the file holds 0 there.
    pub fn text_start_field(&self) -> Option<usize> {
        (self.version >= PclnVersion::Go118).then_some(FIXED + 2 * self.ptr_size)
    }

    /// The same table with textStart replaced (by a relocated value).
    pub fn with_text_start(mut self, text_start: u64) -> Self {
        if self.version >= PclnVersion::Go118 {
            self.text_start = text_start;
        }
        self
    }

    fn field_size(&self) -> usize {
        if self.version >= PclnVersion::Go118 {
            4
        } else {
            self.ptr_size
        }
    }

    fn functab_field(&self, index: usize) -> Option<u64> {
        let at = self
            .functab
            .checked_add(index.checked_mul(self.field_size())?)?;
        uint_at(self.data, at, self.field_size())
    }

    /// Entry address of function `i`; `i == len()` gives the end of the last function.
    pub fn entry(&self, i: usize) -> Option<u64> {
        if i > self.nfunc {
            return None;
        }
        let raw = self.functab_field(2 * i)?;
        match self.version {
            PclnVersion::Go116 => Some(raw),
            _ => self.text_start.checked_add(raw),
        }
    }

    /// The `_func` record of function `i`.
    fn func(&self, i: usize) -> Option<usize> {
        if i >= self.nfunc {
            return None;
        }
        let off = usize::try_from(self.functab_field(2 * i + 1)?).ok()?;
        self.functab
            .checked_add(off)
            .filter(|&at| at < self.data.len())
    }

    /// The entry recorded in function `i`'s own `_func` record.
    fn func_entry(&self, i: usize) -> Option<u64> {
        let at = self.func(i)?;
        match self.version {
            PclnVersion::Go116 => uint_at(self.data, at, self.ptr_size),
            _ => self
                .text_start
                .checked_add(u64::from(u32_at(self.data, at)?)),
        }
    }

    /// Where function `i`'s name starts in the table.
    fn name_start(&self, i: usize) -> Option<usize> {
        let at = self.func(i)?.checked_add(self.field_size())?;
        let name_off = usize::try_from(i32::try_from(u32_at(self.data, at)?).ok()?).ok()?;
        self.funcnames
            .checked_add(name_off)
            .filter(|&s| s < self.data.len())
    }

    /// Function `i`'s name, without its NUL (at most 4 KiB are looked at).
    pub fn name(&self, i: usize) -> Option<&'a [u8]> {
        let start = self.name_start(i)?;
        let rest = &self.data[start..];
        let window = &rest[..rest.len().min(4096)];
        let len = window.iter().position(|&b| b == 0)?;
        Some(&window[..len])
    }

    /// The address range of the function named exactly `name`, checking that its `_func`
    /// record agrees with the function table.
    pub fn find(&self, name: &str) -> Result<Option<Range<u64>>, PclnError> {
        let want = name.as_bytes();
        for i in 0..self.nfunc {
            let Some(start) = self.name_start(i) else {
                continue;
            };
            let end = start.saturating_add(want.len());
            if self.data.get(start..end) != Some(want) || self.data.get(end) != Some(&0) {
                continue;
            }
            let entry = self.entry(i);
            let inconsistent = || PclnError::Inconsistent(name.to_string());
            if entry.is_none() || entry != self.func_entry(i) {
                return Err(inconsistent());
            }
            let (entry, next) = (entry.unwrap_or(0), self.entry(i + 1).unwrap_or(0));
            return match next > entry {
                true => Ok(Some(entry..next)),
                false => Err(inconsistent()),
            };
        }
        Ok(None)
    }

    /// Whether the first and last functions' records agree with the function table: tells a
    /// real table from bytes that only happen to start like one.
    pub fn looks_valid(&self) -> bool {
        self.nfunc > 0
            && [0, self.nfunc - 1].iter().all(|&i| {
                self.entry(i)
                    .is_some_and(|e| Some(e) == self.func_entry(i) && self.name(i).is_some())
            })
            && self.entry(0) < self.entry(self.nfunc)
    }
}

/// Finds a pclntab inside `data` (a read-only data region) by its header, for binaries whose
/// table has no section of its own (external linking merges it into `.data.rel.ro`). Returns
/// the table's position and header; the first candidate that [`Pclntab::looks_valid`] wins.
pub fn search(data: &[u8]) -> Option<(usize, Pclntab<'_>)> {
    let mut at = 0;
    while let Some(found) = data.get(at..)?.windows(FIXED).position(looks_like_header) {
        let pos = at + found;
        if let Ok(table) = Pclntab::parse(&data[pos..]) {
            if table.looks_valid() {
                return Some((pos, table));
            }
        }
        at = pos + 1;
    }
    None
}

fn looks_like_header(b: &[u8]) -> bool {
    matches!(b[0], 0xf0 | 0xf1 | 0xfa) && b[1..6] == [0xff, 0xff, 0xff, 0, 0] && b[7] == 8
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A synthetic table with functions `(name, entry)` (entries ascending) ending at `end`.
    fn table(version: PclnVersion, text_start: u64, funcs: &[(&str, u64)], end: u64) -> Vec<u8> {
        let (magic, words, field) = match version {
            PclnVersion::Go116 => (0xffff_fffau32, 7, 8),
            PclnVersion::Go118 => (0xffff_fff0, 8, 4),
            PclnVersion::Go120 => (0xffff_fff1, 8, 4),
        };
        let header = FIXED + words * 8;
        let mut names = Vec::new();
        let mut name_offs = Vec::new();
        for (name, _) in funcs {
            name_offs.push(names.len() as u32);
            names.extend_from_slice(name.as_bytes());
            names.push(0);
        }
        let functab = header + names.len();
        let records = functab + (2 * funcs.len() + 1) * field;
        let rel = |e: u64| if field == 4 { e - text_start } else { e };
        let put = |out: &mut Vec<u8>, v: u64| match field {
            4 => out.extend_from_slice(&(v as u32).to_le_bytes()),
            _ => out.extend_from_slice(&v.to_le_bytes()),
        };
        let mut out = magic.to_le_bytes().to_vec();
        out.extend_from_slice(&[0, 0, 1, 8]);
        let mut hdr = vec![funcs.len() as u64, 0];
        if field == 4 {
            hdr.push(text_start);
        }
        hdr.extend([
            header as u64,
            functab as u64,
            functab as u64,
            functab as u64,
            functab as u64,
        ]);
        hdr.iter()
            .for_each(|w| out.extend_from_slice(&w.to_le_bytes()));
        out.extend_from_slice(&names);
        let record_len = field + 4;
        for (i, (_, entry)) in funcs.iter().enumerate() {
            put(&mut out, rel(*entry));
            put(&mut out, (records - functab + i * record_len) as u64);
        }
        put(&mut out, rel(end));
        for (i, (_, entry)) in funcs.iter().enumerate() {
            put(&mut out, rel(*entry));
            out.extend_from_slice(&name_offs[i].to_le_bytes());
        }
        out
    }

    const FUNCS: [(&str, u64); 3] = [
        ("runtime.main", 0x40_1000),
        ("crypto/tls.(*Conn).Write", 0x40_1100),
        ("crypto/tls.(*Conn).Read", 0x40_1180),
    ];

    #[test]
    fn synthetic_tables_of_each_version() {
        for version in [PclnVersion::Go116, PclnVersion::Go118, PclnVersion::Go120] {
            let bytes = table(version, 0x40_0f00, &FUNCS, 0x40_1200);
            let t = Pclntab::parse(&bytes).unwrap();
            assert_eq!((t.version(), t.len()), (version, 3));
            assert!(t.looks_valid());
            assert_eq!(
                t.find("crypto/tls.(*Conn).Write"),
                Ok(Some(0x40_1100..0x40_1180))
            );
            assert_eq!(
                t.find("crypto/tls.(*Conn).Read"),
                Ok(Some(0x40_1180..0x40_1200))
            );
            assert_eq!(t.find("crypto/tls.(*Conn).Wri"), Ok(None));
            assert_eq!(t.name(0), Some(&b"runtime.main"[..]));
            // Found again inside surrounding bytes.
            let mut padded = vec![0xff; 37];
            padded.extend_from_slice(&bytes);
            assert_eq!(search(&padded).map(|(at, t)| (at, t.len())), Some((37, 3)));
        }
    }

    #[test]
    fn broken_tables_are_errors() {
        let good = table(PclnVersion::Go118, 0x40_0f00, &FUNCS, 0x40_1200);
        assert_eq!(Pclntab::parse(&good[..3]).err(), Some(PclnError::Truncated));
        let mut old = good.clone();
        old[0] = 0xfb;
        assert_eq!(Pclntab::parse(&old).err(), Some(PclnError::Go12));
        // nfunc larger than what fits.
        let mut many = good.clone();
        many[8..16].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(matches!(
            Pclntab::parse(&many),
            Err(PclnError::BadHeader(_))
        ));
        // A record whose entry disagrees with the function table.
        let mut skewed = good.clone();
        let n = skewed.len();
        skewed[n - 8] ^= 1;
        let t = Pclntab::parse(&skewed).unwrap();
        assert!(matches!(
            t.find("crypto/tls.(*Conn).Read"),
            Err(PclnError::Inconsistent(_))
        ));
        // Every prefix parses or fails without panicking.
        for cut in 0..good.len() {
            if let Ok(t) = Pclntab::parse(&good[..cut]) {
                let _ = (t.find("crypto/tls.(*Conn).Read"), t.looks_valid());
            }
        }
    }
}
