//! What to hook, and where: the probe table ([`table`]: which eBPF program goes on which
//! library function), the processes and the files they map ([`procs`]), and what an
//! executable carries inside itself ([`executable`]: a TLS library linked statically, Go's
//! crypto/tls located with [`go_binary`] and [`gopclntab`]), all from files opened once, the
//! functions' file offsets read from their own symbol tables ([`symbols`]), each file
//! hooked once by what the kernel hooks ([`identity`]: one layer file under many containers). Attaching (by
//! offset, through the same open file) is the binary's loader.

pub mod executable;
pub mod go_binary;
pub mod gopclntab;
pub mod identity;
pub mod procs;
pub mod symbols;
pub mod table;
