//! Executables and libraries that are not Go, on arbitrary bytes: the ELF symbol reader
//! (section headers, `.dynsym`/`.symtab`, the size bound) and the inspection of what an
//! executable carries (static TLS libraries by their symbols, rustls, version strings in a
//! stripped file). Offsets that come out lie inside the file.
#![no_main]
use doh_trace::hooks::{
    executable::{inspect_data, Carried},
    symbols,
    table::Stack,
};
use libfuzzer_sys::fuzz_target;

const STACKS: &[Stack] = &[Stack::Openssl, Stack::Gnutls, Stack::Nss, Stack::Go];

fuzz_target!(|data: &[u8]| {
    let _ = symbols::symbol_table_bytes(data);
    if let Ok(elf) = symbols::parse(data) {
        let offsets =
            symbols::function_offsets(&elf, &["SSL_write", "SSL_read", "main"], data.len() as u64);
        assert!(offsets.values().all(|&o| o < data.len() as u64));
    }
    if let Carried::Static(stacks) = inspect_data(data, STACKS) {
        for s in stacks {
            assert!(s.offsets.values().all(|&o| o < data.len() as u64));
        }
    }
});
