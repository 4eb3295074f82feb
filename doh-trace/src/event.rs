//! Decoding ring-buffer records (raw bytes from the kernel) into owned, checked events.
//!
//! Records are read field by field from the byte slice; a short or unknown record is an
//! [`EventError`], never a panic, and never a transmute of kernel bytes into an enum.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use doh_trace_common::{
    EventKind, Source, AF_INET, AF_INET6, CHUNK_SIZE, COMM_LEN, CONN_ACCEPT, CONN_TYPE_SHIFT,
    DATAGRAM_EVENT_HEADER_SIZE, DATA_EVENT_HEADER_SIZE, DIR_EGRESS, DIR_INGRESS, SOCK_DGRAM,
    SOCK_STREAM,
};

/// Why a record could not be decoded.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum EventError {
    /// Fewer bytes than the record's fixed part.
    #[error("record of {got} bytes is shorter than {need}")]
    Short { got: usize, need: usize },
    /// The `kind` word names no known record.
    #[error("unknown event kind {0}")]
    UnknownKind(u32),
    /// The `source` word names no known hook family.
    #[error("unknown data source {0}")]
    UnknownSource(u32),
    /// A field is outside its allowed range.
    #[error("invalid field {0}")]
    Invalid(&'static str),
}

/// Direction of plaintext relative to the traced process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// Written by the process.
    Egress,
    /// Read by the process.
    Ingress,
}

/// Fields every event carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Meta {
    /// Process id (thread-group id).
    pub pid: u32,
    /// Thread id.
    pub tid: u32,
    /// Real uid.
    pub uid: u32,
    /// CLOCK_MONOTONIC nanoseconds.
    pub ts_ns: u64,
}

/// One chunk of TLS plaintext.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataChunk<'a> {
    pub meta: Meta,
    pub fd: i32,
    pub source: Source,
    pub direction: Direction,
    pub flags: u32,
    pub tls_obj: u64,
    pub total_len: u32,
    pub offset: u32,
    pub comm: [u8; COMM_LEN],
    pub bytes: &'a [u8],
}

/// The type of an internet socket, when the kernel side saw it created.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SocketType {
    /// TCP.
    Stream,
    /// UDP.
    Datagram,
    /// Created before tracing started (or recorded by an older version).
    Unknown,
}

/// A connected or accepted internet socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnInfo {
    pub meta: Meta,
    pub fd: i32,
    pub accepted: bool,
    pub sock_type: SocketType,
    pub peer: SocketAddr,
    pub comm: [u8; COMM_LEN],
}

/// A DNS datagram on a socket without a tracked connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Datagram<'a> {
    pub meta: Meta,
    pub fd: i32,
    pub direction: Direction,
    /// Where it went to or came from.
    pub peer: SocketAddr,
    /// Size of the whole datagram; `bytes` may be shorter (cut at 4 KiB or at its first iovec).
    pub total_len: u32,
    pub comm: [u8; COMM_LEN],
    pub bytes: &'a [u8],
}

/// A decoded ring-buffer record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event<'a> {
    Data(DataChunk<'a>),
    Conn(ConnInfo),
    Close {
        meta: Meta,
        fd: i32,
    },
    Datagram(Datagram<'a>),
    /// Byte totals of a counted connection, just before its close.
    ConnBytes {
        meta: Meta,
        fd: i32,
        sent: u64,
        received: u64,
    },
    Exit {
        meta: Meta,
    },
    Exec {
        meta: Meta,
    },
}

struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn u32(&self, at: usize) -> u32 {
        u32::from_ne_bytes(self.buf[at..at + 4].try_into().expect("4 bytes"))
    }
    fn i32(&self, at: usize) -> i32 {
        self.u32(at) as i32
    }
    fn u16(&self, at: usize) -> u16 {
        u16::from_ne_bytes(self.buf[at..at + 2].try_into().expect("2 bytes"))
    }
    fn u64(&self, at: usize) -> u64 {
        u64::from_ne_bytes(self.buf[at..at + 8].try_into().expect("8 bytes"))
    }
    fn array<const N: usize>(&self, at: usize) -> [u8; N] {
        self.buf[at..at + N].try_into().expect("N bytes")
    }
}

const HEADER_SIZE: usize = 24;
const CONN_SIZE: usize = std::mem::size_of::<doh_trace_common::ConnEvent>();
const CLOSE_SIZE: usize = std::mem::size_of::<doh_trace_common::CloseEvent>();
const CONN_BYTES_SIZE: usize = std::mem::size_of::<doh_trace_common::ConnBytesEvent>();

fn ip_of(family: u16, addr: [u8; 16]) -> Result<IpAddr, EventError> {
    match family {
        AF_INET => Ok(IpAddr::V4(Ipv4Addr::new(
            addr[0], addr[1], addr[2], addr[3],
        ))),
        AF_INET6 => Ok(IpAddr::V6(Ipv6Addr::from(addr))),
        _ => Err(EventError::Invalid("family")),
    }
}

fn direction_of(v: u32) -> Result<Direction, EventError> {
    match v {
        DIR_EGRESS => Ok(Direction::Egress),
        DIR_INGRESS => Ok(Direction::Ingress),
        _ => Err(EventError::Invalid("direction")),
    }
}

fn need(buf: &[u8], n: usize) -> Result<(), EventError> {
    if buf.len() < n {
        Err(EventError::Short {
            got: buf.len(),
            need: n,
        })
    } else {
        Ok(())
    }
}

/// The process of an exec record, without decoding anything else.
pub fn exec_pid(buf: &[u8]) -> Option<u32> {
    if buf.len() < HEADER_SIZE {
        return None;
    }
    let r = Reader { buf };
    (r.u32(0) == EventKind::Exec as u32).then(|| r.u32(4))
}

/// Decodes one ring-buffer record.
pub fn decode(buf: &[u8]) -> Result<Event<'_>, EventError> {
    need(buf, HEADER_SIZE)?;
    let r = Reader { buf };
    let kind = r.u32(0);
    let meta = Meta {
        pid: r.u32(4),
        tid: r.u32(8),
        uid: r.u32(12),
        ts_ns: r.u64(16),
    };
    match EventKind::try_from(kind).map_err(EventError::UnknownKind)? {
        EventKind::Data => {
            need(buf, DATA_EVENT_HEADER_SIZE)?;
            let source = Source::try_from(r.u32(28)).map_err(EventError::UnknownSource)?;
            let direction = direction_of(r.u32(32))?;
            let total_len = r.u32(48);
            let offset = r.u32(52);
            let len = r.u32(56) as usize;
            if len > CHUNK_SIZE {
                return Err(EventError::Invalid("len"));
            }
            if u64::from(offset) + len as u64 > u64::from(total_len) {
                return Err(EventError::Invalid("offset"));
            }
            need(buf, DATA_EVENT_HEADER_SIZE + len)?;
            Ok(Event::Data(DataChunk {
                meta,
                fd: r.i32(24),
                source,
                direction,
                flags: r.u32(36),
                tls_obj: r.u64(40),
                total_len,
                offset,
                comm: r.array(64),
                bytes: &buf[DATA_EVENT_HEADER_SIZE..DATA_EVENT_HEADER_SIZE + len],
            }))
        }
        EventKind::Conn => {
            need(buf, CONN_SIZE)?;
            let family = r.u16(36);
            let port = r.u16(38);
            let ip = ip_of(family, r.array(40))?;
            let how = r.u32(28);
            Ok(Event::Conn(ConnInfo {
                meta,
                fd: r.i32(24),
                accepted: how & 0xff == CONN_ACCEPT,
                sock_type: match (how >> CONN_TYPE_SHIFT) & 0xff {
                    SOCK_STREAM => SocketType::Stream,
                    SOCK_DGRAM => SocketType::Datagram,
                    _ => SocketType::Unknown,
                },
                peer: SocketAddr::new(ip, port),
                comm: r.array(56),
            }))
        }
        EventKind::Close => {
            need(buf, CLOSE_SIZE)?;
            Ok(Event::Close {
                meta,
                fd: r.i32(24),
            })
        }
        EventKind::Datagram => {
            need(buf, DATAGRAM_EVENT_HEADER_SIZE)?;
            let ip = ip_of(r.u16(32), r.array(36))?;
            let total_len = r.u32(52);
            let len = r.u32(56) as usize;
            if len > CHUNK_SIZE || len as u64 > u64::from(total_len) {
                return Err(EventError::Invalid("len"));
            }
            need(buf, DATAGRAM_EVENT_HEADER_SIZE + len)?;
            Ok(Event::Datagram(Datagram {
                meta,
                fd: r.i32(24),
                direction: direction_of(r.u32(28))?,
                peer: SocketAddr::new(ip, r.u16(34)),
                total_len,
                comm: r.array(64),
                bytes: &buf[DATAGRAM_EVENT_HEADER_SIZE..DATAGRAM_EVENT_HEADER_SIZE + len],
            }))
        }
        EventKind::ConnBytes => {
            need(buf, CONN_BYTES_SIZE)?;
            Ok(Event::ConnBytes {
                meta,
                fd: r.i32(24),
                sent: r.u64(32),
                received: r.u64(40),
            })
        }
        EventKind::Exit => Ok(Event::Exit { meta }),
        EventKind::Exec => Ok(Event::Exec { meta }),
    }
}

/// A kernel task name as text (up to the first NUL, lossily decoded).
pub fn comm_str(comm: &[u8; COMM_LEN]) -> String {
    let end = comm.iter().position(|&b| b == 0).unwrap_or(COMM_LEN);
    String::from_utf8_lossy(&comm[..end]).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use doh_trace_common::{ConnEvent, DataEvent, EventHeader};

    fn as_bytes<T>(v: &T) -> &[u8] {
        unsafe { std::slice::from_raw_parts(v as *const T as *const u8, std::mem::size_of::<T>()) }
    }

    fn data_event(payload: &[u8], offset: u32, total: u32) -> Vec<u8> {
        let mut ev = DataEvent {
            header: EventHeader {
                kind: 1,
                tgid: 42,
                tid: 43,
                uid: 1000,
                ts_ns: 7,
            },
            fd: 5,
            source: 1,
            direction: DIR_INGRESS,
            flags: 0,
            tls_obj: 0xdead,
            total_len: total,
            offset,
            len: payload.len() as u32,
            _pad: 0,
            comm: *b"curl\0\0\0\0\0\0\0\0\0\0\0\0",
            data: [0; CHUNK_SIZE],
        };
        ev.data[..payload.len()].copy_from_slice(payload);
        as_bytes(&ev)[..DATA_EVENT_HEADER_SIZE + payload.len()].to_vec()
    }

    #[test]
    fn decodes_data_records_as_the_kernel_lays_them_out() {
        let raw = data_event(b"hello", 3, 8);
        let Event::Data(d) = decode(&raw).unwrap() else {
            panic!("not data")
        };
        assert_eq!(
            d.meta,
            Meta {
                pid: 42,
                tid: 43,
                uid: 1000,
                ts_ns: 7
            }
        );
        assert_eq!(
            (d.fd, d.direction, d.tls_obj),
            (5, Direction::Ingress, 0xdead)
        );
        assert_eq!((d.offset, d.total_len, d.bytes), (3, 8, &b"hello"[..]));
        assert_eq!(comm_str(&d.comm), "curl");
    }

    #[test]
    fn rejects_truncated_and_inconsistent_records() {
        let raw = data_event(b"hello", 0, 5);
        assert!(matches!(
            decode(&raw[..raw.len() - 1]),
            Err(EventError::Short { .. })
        ));
        assert_eq!(
            decode(&data_event(b"hello", 4, 5)),
            Err(EventError::Invalid("offset"))
        );
        assert!(matches!(decode(&[1, 2, 3]), Err(EventError::Short { .. })));
        let mut bad = raw.clone();
        bad[0] = 99;
        assert_eq!(decode(&bad), Err(EventError::UnknownKind(99)));
    }

    #[test]
    fn decodes_ipv4_and_ipv6_connections() {
        let mut ev = ConnEvent {
            header: EventHeader {
                kind: 2,
                tgid: 1,
                tid: 1,
                uid: 0,
                ts_ns: 0,
            },
            fd: 7,
            how: 1,
            ret: -115,
            family: AF_INET,
            port: 8443,
            addr: [0; 16],
            comm: [0; COMM_LEN],
        };
        ev.addr[..4].copy_from_slice(&[127, 0, 0, 1]);
        let Event::Conn(c) = decode(as_bytes(&ev)).unwrap() else {
            panic!()
        };
        assert_eq!(c.peer, "127.0.0.1:8443".parse().unwrap());
        assert!(!c.accepted);
        ev.family = AF_INET6;
        ev.addr = Ipv6Addr::LOCALHOST.octets();
        let Event::Conn(c) = decode(as_bytes(&ev)).unwrap() else {
            panic!()
        };
        assert_eq!(c.peer, "[::1]:8443".parse().unwrap());
    }
}
