//! Go binary inspection of arbitrary bytes: as they come, as a pclntab, and wrapped in a valid
//! x86-64 ELF executable whose `.text`, `.gopclntab` and `.go.buildinfo` sections hold parts of
//! the input, so the pclntab reader and the disassembly are reached. Probes that come out must
//! lie inside their function, in the file.
#![no_main]
use doh_trace::hooks::go_binary::{inspect, GoInspect, READ_SYMBOL, WRITE_SYMBOL};
use doh_trace::hooks::gopclntab::{search, Pclntab};
use libfuzzer_sys::fuzz_target;

const BASE: u64 = 0x40_0000;

fn check(file: &[u8]) {
    if let GoInspect::Tls(probes) = inspect(file) {
        for f in [&probes.write, &probes.read] {
            assert!(!f.returns.is_empty());
            let function = f.entry..f.entry + f.size;
            assert!(function.end as usize <= file.len());
            assert!(f.returns.iter().all(|r| function.contains(r)));
            assert!(f.returns.windows(2).all(|w| w[0] < w[1]));
        }
    }
}

/// An ELF executable: one R+X segment over the whole file at `BASE`, one R+W segment over the
/// build info, and sections `.text`, `.gopclntab`, `.go.buildinfo`.
fn elf(code: &[u8], pcln: &[u8], buildinfo: &[u8]) -> Vec<u8> {
    const EHDR: usize = 64;
    const PHDR: usize = 56;
    const SHDR: usize = 64;
    let shstrtab = b"\0.text\0.gopclntab\0.go.buildinfo\0.shstrtab\0";
    let code_at = EHDR + 2 * PHDR;
    let pcln_at = code_at + code.len();
    let bi_at = pcln_at + pcln.len();
    let str_at = bi_at + buildinfo.len();
    let sh_at = (str_at + shstrtab.len() + 7) & !7;
    let total = sh_at + 5 * SHDR;
    let mut out = Vec::with_capacity(total);
    let u16s = |out: &mut Vec<u8>, v: &[u16]| {
        v.iter()
            .for_each(|x| out.extend_from_slice(&x.to_le_bytes()))
    };
    let u32s = |out: &mut Vec<u8>, v: &[u32]| {
        v.iter()
            .for_each(|x| out.extend_from_slice(&x.to_le_bytes()))
    };
    let u64s = |out: &mut Vec<u8>, v: &[u64]| {
        v.iter()
            .for_each(|x| out.extend_from_slice(&x.to_le_bytes()))
    };
    out.extend_from_slice(b"\x7fELF\x02\x01\x01\0\0\0\0\0\0\0\0\0");
    u16s(&mut out, &[2, 62]); // ET_EXEC, EM_X86_64
    u32s(&mut out, &[1]);
    u64s(
        &mut out,
        &[BASE + code_at as u64, EHDR as u64, sh_at as u64],
    );
    u32s(&mut out, &[0]);
    u16s(&mut out, &[EHDR as u16, PHDR as u16, 2, SHDR as u16, 5, 4]);
    // PT_LOAD R+X over everything; PT_LOAD R+W over the build info.
    let (all, bi) = (total as u64, buildinfo.len() as u64);
    u32s(&mut out, &[1, 5]);
    u64s(&mut out, &[0, BASE, BASE, all, all, 0x1000]);
    u32s(&mut out, &[1, 6]);
    let bi_addr = BASE + 0x100_0000 + bi_at as u64;
    u64s(&mut out, &[bi_at as u64, bi_addr, bi_addr, bi, bi, 0x1000]);
    out.extend_from_slice(code);
    out.extend_from_slice(pcln);
    out.extend_from_slice(buildinfo);
    out.extend_from_slice(shstrtab);
    out.resize(sh_at, 0);
    // name, type, flags, addr, offset, size (link, info, align, entsize zero or one)
    let sections: [(u32, u32, u64, u64, usize, usize); 5] = [
        (0, 0, 0, 0, 0, 0),
        (1, 1, 6, BASE + code_at as u64, code_at, code.len()),
        (7, 1, 2, BASE + pcln_at as u64, pcln_at, pcln.len()),
        (18, 1, 3, bi_addr, bi_at, buildinfo.len()),
        (32, 3, 0, 0, str_at, shstrtab.len()),
    ];
    for (name, kind, flags, addr, offset, size) in sections {
        u32s(&mut out, &[name, kind]);
        u64s(&mut out, &[flags, addr, offset as u64, size as u64]);
        u32s(&mut out, &[0, 0]);
        u64s(&mut out, &[1, 0]);
    }
    out
}

fuzz_target!(|data: &[u8]| {
    check(data);
    if let Ok(table) = Pclntab::parse(data) {
        let _ = (
            table.find(WRITE_SYMBOL),
            table.find(READ_SYMBOL),
            table.looks_valid(),
        );
    }
    let _ = search(data);
    // Two length bytes split the rest into code, pclntab and build info.
    if let [a, b, rest @ ..] = data {
        let code_len = (usize::from(*a) * 16).min(rest.len());
        let (code, rest) = rest.split_at(code_len);
        let pcln_len = (usize::from(*b) * 16).min(rest.len());
        let (pcln, buildinfo) = rest.split_at(pcln_len);
        check(&elf(code, pcln, buildinfo));
    }
});
