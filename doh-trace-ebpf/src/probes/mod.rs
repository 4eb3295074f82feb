//! One module per hook family.

pub mod openssl;
pub mod process;
pub mod sockets;
