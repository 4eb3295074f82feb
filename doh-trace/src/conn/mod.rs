//! Connection bytes, before any protocol: the table of connections the pipeline keeps state
//! for ([`table`]), whether each direction's chunks arrived without gaps ([`sequence`]), what
//! a connection carries judging by its first bytes ([`sniff`]), what the kernel should
//! copy of it ([`policy`]), and which socket a TLS object on a memory BIO is ([`binding`]).

pub mod binding;
pub mod policy;
pub mod sequence;
pub mod sniff;
pub mod table;
