//! Finding what to hook in files used by processes.

pub mod go_binary;
pub mod gopclntab;
pub mod executable;
pub mod procs;
