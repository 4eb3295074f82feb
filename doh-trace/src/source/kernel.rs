//! The live tracer's source encoding: ring-buffer records (raw bytes from the eBPF programs,
//! laid out as the `#[repr(C)]` structs of `doh-trace-common`) decoded into [`Event`]s.
//!
//! Every field is read at the offset `core::mem::offset_of!` gives for the shared struct, so
//! the layout is written down once. A short or unknown record is a [`KernelRecordError`],
//! never a panic, and never a transmute of kernel bytes into an enum.

use std::{
    mem::{offset_of, size_of},
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr},
};

use doh_trace_common::{
    CloseEvent, ConnBytesEvent, ConnEvent, DataEvent, DatagramEvent, EventHeader, EventKind,
    Source, TlsBindEvent, AF_INET, AF_INET6, CHUNK_SIZE, CONN_ACCEPT, CONN_TYPE_SHIFT,
    DATAGRAM_EVENT_HEADER_SIZE, DATA_EVENT_HEADER_SIZE, DIR_EGRESS, DIR_INGRESS, SOCK_DGRAM,
    SOCK_STREAM,
};

use super::{ConnId, ConnInfo, DataChunk, Datagram, Direction, Event, Layer, Meta, SocketType};

/// Why a record could not be decoded.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum KernelRecordError {
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

/// Reads fields of a record, at offsets of the shared struct, from a slice already checked to
/// be long enough for them.
struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn array<const N: usize>(&self, at: usize) -> [u8; N] {
        self.buf[at..at + N].try_into().expect("N bytes")
    }
    fn u32(&self, at: usize) -> u32 {
        u32::from_ne_bytes(self.array(at))
    }
    fn i32(&self, at: usize) -> i32 {
        i32::from_ne_bytes(self.array(at))
    }
    fn u16(&self, at: usize) -> u16 {
        u16::from_ne_bytes(self.array(at))
    }
    fn u64(&self, at: usize) -> u64 {
        u64::from_ne_bytes(self.array(at))
    }
}

/// Offsets of the header, which every record starts with.
const H_KIND: usize = offset_of!(EventHeader, kind);
const H_TGID: usize = offset_of!(EventHeader, tgid);
const H_TID: usize = offset_of!(EventHeader, tid);
const H_UID: usize = offset_of!(EventHeader, uid);
const H_TS: usize = offset_of!(EventHeader, ts_ns);

fn ip_of(family: u16, addr: [u8; 16]) -> Result<IpAddr, KernelRecordError> {
    match family {
        AF_INET => Ok(IpAddr::V4(Ipv4Addr::new(
            addr[0], addr[1], addr[2], addr[3],
        ))),
        AF_INET6 => Ok(IpAddr::V6(Ipv6Addr::from(addr))),
        _ => Err(KernelRecordError::Invalid("family")),
    }
}

fn direction_of(v: u32) -> Result<Direction, KernelRecordError> {
    match v {
        DIR_EGRESS => Ok(Direction::Egress),
        DIR_INGRESS => Ok(Direction::Ingress),
        _ => Err(KernelRecordError::Invalid("direction")),
    }
}

fn need(buf: &[u8], n: usize) -> Result<(), KernelRecordError> {
    if buf.len() < n {
        Err(KernelRecordError::Short {
            got: buf.len(),
            need: n,
        })
    } else {
        Ok(())
    }
}

/// The process of an exec record, without decoding anything else.
pub fn exec_pid(buf: &[u8]) -> Option<u32> {
    if buf.len() < size_of::<EventHeader>() {
        return None;
    }
    let r = Reader { buf };
    (r.u32(H_KIND) == EventKind::Exec as u32).then(|| r.u32(H_TGID))
}

/// The socket a record says is gone or new on its descriptor (a close, a connect or accept),
/// as (process, connection).
pub fn socket_replaced(buf: &[u8]) -> Option<(u32, ConnId)> {
    if buf.len() < size_of::<EventHeader>() {
        return None;
    }
    let kind = (Reader { buf }).u32(H_KIND);
    if kind != EventKind::Close as u32 && kind != EventKind::Conn as u32 {
        return None;
    }
    match decode(buf).ok()? {
        Event::Close { meta, id } => Some((meta.pid, id)),
        Event::Conn(c) => Some((c.meta.pid, c.id)),
        _ => None,
    }
}

/// Decodes one ring-buffer record.
pub fn decode(buf: &[u8]) -> Result<Event<'_>, KernelRecordError> {
    need(buf, size_of::<EventHeader>())?;
    let r = Reader { buf };
    let kind = r.u32(H_KIND);
    let meta = Meta {
        pid: r.u32(H_TGID),
        tid: r.u32(H_TID),
        uid: r.u32(H_UID),
        ts_ns: r.u64(H_TS),
    };
    match EventKind::try_from(kind).map_err(KernelRecordError::UnknownKind)? {
        EventKind::Data => {
            need(buf, DATA_EVENT_HEADER_SIZE)?;
            let source = Source::try_from(r.u32(offset_of!(DataEvent, source)))
                .map_err(KernelRecordError::UnknownSource)?;
            let direction = direction_of(r.u32(offset_of!(DataEvent, direction)))?;
            let total_len = r.u32(offset_of!(DataEvent, total_len));
            let offset = r.u32(offset_of!(DataEvent, offset));
            let len = r.u32(offset_of!(DataEvent, len)) as usize;
            if len > CHUNK_SIZE {
                return Err(KernelRecordError::Invalid("len"));
            }
            if u64::from(offset) + len as u64 > u64::from(total_len) {
                return Err(KernelRecordError::Invalid("offset"));
            }
            need(buf, DATA_EVENT_HEADER_SIZE + len)?;
            let fd = r.i32(offset_of!(DataEvent, fd));
            Ok(Event::Data(DataChunk {
                meta,
                // A TLS object whose socket was never seen is its own connection.
                id: if fd >= 0 {
                    ConnId::Fd(fd)
                } else {
                    ConnId::TlsObject(r.u64(offset_of!(DataEvent, tls_obj)))
                },
                layer: if source.is_tls() {
                    Layer::Tls
                } else {
                    Layer::Socket
                },
                library: source.library(),
                direction,
                total_len,
                offset,
                comm: r.array(offset_of!(DataEvent, comm)),
                bytes: &buf[DATA_EVENT_HEADER_SIZE..DATA_EVENT_HEADER_SIZE + len],
            }))
        }
        EventKind::Conn => {
            need(buf, size_of::<ConnEvent>())?;
            let ip = ip_of(
                r.u16(offset_of!(ConnEvent, family)),
                r.array(offset_of!(ConnEvent, addr)),
            )?;
            let how = r.u32(offset_of!(ConnEvent, how));
            Ok(Event::Conn(ConnInfo {
                meta,
                id: ConnId::Fd(r.i32(offset_of!(ConnEvent, fd))),
                accepted: how & 0xff == CONN_ACCEPT,
                sock_type: match (how >> CONN_TYPE_SHIFT) & 0xff {
                    SOCK_STREAM => SocketType::Stream,
                    SOCK_DGRAM => SocketType::Datagram,
                    _ => SocketType::Unknown,
                },
                peer: SocketAddr::new(ip, r.u16(offset_of!(ConnEvent, port))),
                comm: r.array(offset_of!(ConnEvent, comm)),
            }))
        }
        EventKind::Close => {
            need(buf, size_of::<CloseEvent>())?;
            Ok(Event::Close {
                meta,
                id: ConnId::Fd(r.i32(offset_of!(CloseEvent, fd))),
            })
        }
        EventKind::Datagram => {
            need(buf, DATAGRAM_EVENT_HEADER_SIZE)?;
            let ip = ip_of(
                r.u16(offset_of!(DatagramEvent, family)),
                r.array(offset_of!(DatagramEvent, addr)),
            )?;
            let total_len = r.u32(offset_of!(DatagramEvent, total_len));
            let len = r.u32(offset_of!(DatagramEvent, len)) as usize;
            if len > CHUNK_SIZE || len as u64 > u64::from(total_len) {
                return Err(KernelRecordError::Invalid("len"));
            }
            need(buf, DATAGRAM_EVENT_HEADER_SIZE + len)?;
            Ok(Event::Datagram(Datagram {
                meta,
                id: ConnId::Fd(r.i32(offset_of!(DatagramEvent, fd))),
                direction: direction_of(r.u32(offset_of!(DatagramEvent, direction)))?,
                peer: SocketAddr::new(ip, r.u16(offset_of!(DatagramEvent, port))),
                total_len,
                comm: r.array(offset_of!(DatagramEvent, comm)),
                bytes: &buf[DATAGRAM_EVENT_HEADER_SIZE..DATAGRAM_EVENT_HEADER_SIZE + len],
            }))
        }
        EventKind::ConnBytes => {
            need(buf, size_of::<ConnBytesEvent>())?;
            Ok(Event::ConnBytes {
                meta,
                id: ConnId::Fd(r.i32(offset_of!(ConnBytesEvent, fd))),
                sent: r.u64(offset_of!(ConnBytesEvent, sent)),
                received: r.u64(offset_of!(ConnBytesEvent, received)),
            })
        }
        EventKind::TlsBind => {
            need(buf, size_of::<TlsBindEvent>())?;
            Ok(Event::TlsBind {
                meta,
                id: ConnId::Fd(r.i32(offset_of!(TlsBindEvent, fd))),
                tls_obj: r.u64(offset_of!(TlsBindEvent, tls_obj)),
            })
        }
        EventKind::Exit => Ok(Event::Exit { meta }),
        EventKind::Exec => Ok(Event::Exec { meta }),
    }
}

/// The record of a TLS object bound to socket `fd` (found by userspace,
/// `conn/binding.rs`), in the kernel records' encoding, so that recordings carry it.
pub fn encode_tls_bind(meta: &Meta, fd: i32, tls_obj: u64) -> Vec<u8> {
    let mut buf = vec![0u8; size_of::<TlsBindEvent>()];
    let mut put = |at: usize, bytes: &[u8]| buf[at..at + bytes.len()].copy_from_slice(bytes);
    put(H_KIND, &(EventKind::TlsBind as u32).to_ne_bytes());
    put(H_TGID, &meta.pid.to_ne_bytes());
    put(H_TID, &meta.tid.to_ne_bytes());
    put(H_UID, &meta.uid.to_ne_bytes());
    put(H_TS, &meta.ts_ns.to_ne_bytes());
    put(offset_of!(TlsBindEvent, fd), &fd.to_ne_bytes());
    put(offset_of!(TlsBindEvent, tls_obj), &tls_obj.to_ne_bytes());
    buf
}

/// A data record like `raw` (same process, connection, source, direction and time) that
/// carries `bytes` instead, as one whole call: what a recording writes in place of plaintext
/// it may not keep. None when `raw` is no data record or `bytes` exceed one chunk.
pub fn with_bytes(raw: &[u8], bytes: &[u8]) -> Option<Vec<u8>> {
    if raw.len() < DATA_EVENT_HEADER_SIZE
        || (Reader { buf: raw }).u32(H_KIND) != EventKind::Data as u32
        || bytes.len() > CHUNK_SIZE
    {
        return None;
    }
    let mut buf = Vec::with_capacity(DATA_EVENT_HEADER_SIZE + bytes.len());
    buf.extend_from_slice(&raw[..DATA_EVENT_HEADER_SIZE]);
    let len = (bytes.len() as u32).to_ne_bytes();
    for at in [offset_of!(DataEvent, total_len), offset_of!(DataEvent, len)] {
        buf[at..at + 4].copy_from_slice(&len);
    }
    let at = offset_of!(DataEvent, offset);
    buf[at..at + 4].copy_from_slice(&0u32.to_ne_bytes());
    buf.extend_from_slice(bytes);
    Some(buf)
}

#[cfg(test)]
mod tests {
    use super::*;
    use doh_trace_common::{ConnEvent, DataEvent, EventHeader, COMM_LEN};

    fn as_bytes<T>(v: &T) -> &[u8] {
        unsafe { std::slice::from_raw_parts(v as *const T as *const u8, std::mem::size_of::<T>()) }
    }

    /// Closes and opens name their socket; other records (data) do not.
    #[test]
    fn closes_and_opens_name_the_socket_they_replace() {
        let header = |kind: EventKind| EventHeader {
            kind: kind as u32,
            tgid: 42,
            tid: 43,
            uid: 1000,
            ts_ns: 7,
        };
        let close = doh_trace_common::CloseEvent {
            header: header(EventKind::Close),
            fd: 9,
            _pad: 0,
        };
        assert_eq!(socket_replaced(as_bytes(&close)), Some((42, ConnId::Fd(9))));
        let conn = ConnEvent {
            header: header(EventKind::Conn),
            fd: 11,
            how: doh_trace_common::CONN_CONNECT,
            ret: 0,
            family: 2,
            port: 53,
            addr: [0; 16],
            comm: [0; COMM_LEN],
        };
        assert_eq!(socket_replaced(as_bytes(&conn)), Some((42, ConnId::Fd(11))));
        assert_eq!(socket_replaced(&data_event(b"x", 0, 1)), None);
        assert_eq!(socket_replaced(&[1, 2, 3]), None);
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
            (d.id, d.direction, d.layer, d.library),
            (
                ConnId::Fd(5),
                Direction::Ingress,
                Layer::Tls,
                Some("openssl")
            )
        );
        assert_eq!((d.offset, d.total_len, d.bytes), (3, 8, &b"hello"[..]));
        assert_eq!(super::super::comm_str(&d.comm), "curl");
        // Without a socket fd, the TLS object is the connection.
        let mut no_fd = raw.clone();
        no_fd[offset_of!(DataEvent, fd)..][..4].copy_from_slice(&(-1i32).to_ne_bytes());
        let Event::Data(d) = decode(&no_fd).unwrap() else {
            panic!("not data")
        };
        assert_eq!(d.id, ConnId::TlsObject(0xdead));
    }

    #[test]
    fn rejects_truncated_and_inconsistent_records() {
        let raw = data_event(b"hello", 0, 5);
        assert!(matches!(
            decode(&raw[..raw.len() - 1]),
            Err(KernelRecordError::Short { .. })
        ));
        assert_eq!(
            decode(&data_event(b"hello", 4, 5)),
            Err(KernelRecordError::Invalid("offset"))
        );
        assert!(matches!(
            decode(&[1, 2, 3]),
            Err(KernelRecordError::Short { .. })
        ));
        let mut bad = raw.clone();
        bad[0] = 99;
        assert_eq!(decode(&bad), Err(KernelRecordError::UnknownKind(99)));
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

    #[test]
    fn a_binding_is_encoded_as_the_shared_struct_and_decodes_back() {
        let meta = Meta {
            pid: 42,
            tid: 44,
            uid: 1000,
            ts_ns: 99,
        };
        let raw = encode_tls_bind(&meta, 7, 0x5566_7788);
        let want = doh_trace_common::TlsBindEvent {
            header: EventHeader {
                kind: EventKind::TlsBind as u32,
                tgid: 42,
                tid: 44,
                uid: 1000,
                ts_ns: 99,
            },
            fd: 7,
            _pad: 0,
            tls_obj: 0x5566_7788,
        };
        assert_eq!(raw, as_bytes(&want));
        assert_eq!(
            decode(&raw).unwrap(),
            Event::TlsBind {
                meta,
                id: ConnId::Fd(7),
                tls_obj: 0x5566_7788
            }
        );
    }
}
