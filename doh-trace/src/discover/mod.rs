//! Finding what to hook in files used by processes.

pub mod executable;
pub mod go_binary;
pub mod gopclntab;
pub mod procs;
