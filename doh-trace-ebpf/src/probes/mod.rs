//! One module per hook family.

pub mod gnutls;
pub mod go_tls;
pub mod nspr;
pub mod openssl;
pub mod process;
pub mod sockets;
pub mod tls_call;
