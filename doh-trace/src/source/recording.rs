//! The recording format of `doh-trace record` / `doh-trace replay` (documented in
//! docs/RECORDING.md): a header, then length-prefixed records holding raw ring-buffer events
//! exactly as the kernel wrote them, and the process facts (names, contexts, socket addresses)
//! the live run learnt. A recording read back is a source like the live ring buffer; what is
//! written, and when, is decided by [`crate::output::recording`].

use std::{
    collections::HashMap,
    io::{self, Read, Write},
    sync::Arc,
};

use crate::process::{context::ProcessContext, ProcessInfo, SocketEnds};

/// File magic.
pub const MAGIC: &[u8; 8] = b"DOHTRACE";
/// Format version written by this build.
pub const VERSION: u32 = 1;
/// Record type: a raw ring-buffer event.
pub const REC_EVENT: u8 = 1;
/// Record type: a process name (u32 pid LE + UTF-8 name).
pub const REC_PROCESS_NAME: u8 = 2;
/// Record type: a socket's addresses as /proc showed them (u32 pid LE, i32 fd LE, then UTF-8
/// "LOCAL REMOTE", each `ip:port` / `[ip]:port`).
pub const REC_SOCKET_ENDS: u8 = 3;
/// Record type: a process's context (u32 pid LE, then the `ProcessContext` as JSON).
pub const REC_PROCESS_CONTEXT: u8 = 4;
/// Longest record accepted on reading.
pub const MAX_RECORD: usize = 64 * 1024;

/// A recording that cannot be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RecordingError {
    #[error("not a doh-trace recording (bad magic)")]
    BadMagic,
    #[error("recording format version {0} is not supported (this build reads {VERSION})")]
    Version(u32),
    #[error("record of {0} bytes exceeds the {MAX_RECORD}-byte limit")]
    RecordTooLarge(usize),
    #[error("truncated recording")]
    Truncated,
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// Header fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Unix-epoch ns minus CLOCK_MONOTONIC ns when recording started.
    pub clock_offset_ns: i64,
}

/// One record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    Event(Vec<u8>),
    ProcessName { pid: u32, name: String },
    SocketEnds { pid: u32, fd: i32, ends: SocketEnds },
    ProcessContext { pid: u32, context: ProcessContext },
}

/// Writes the header.
pub fn write_header(w: &mut impl Write, h: Header) -> io::Result<()> {
    w.write_all(MAGIC)?;
    w.write_all(&VERSION.to_le_bytes())?;
    w.write_all(&0u32.to_le_bytes())?;
    w.write_all(&h.clock_offset_ns.to_le_bytes())
}

/// Writes one record.
pub fn write_record(w: &mut impl Write, r: &Record) -> io::Result<()> {
    let (kind, body): (u8, Vec<u8>) = match r {
        Record::Event(raw) => (REC_EVENT, raw.clone()),
        Record::ProcessName { pid, name } => {
            let mut b = pid.to_le_bytes().to_vec();
            b.extend_from_slice(name.as_bytes());
            (REC_PROCESS_NAME, b)
        }
        Record::SocketEnds { pid, fd, ends } => {
            let mut b = pid.to_le_bytes().to_vec();
            b.extend_from_slice(&fd.to_le_bytes());
            b.extend_from_slice(format!("{} {}", ends.local, ends.remote).as_bytes());
            (REC_SOCKET_ENDS, b)
        }
        Record::ProcessContext { pid, context } => {
            let mut b = pid.to_le_bytes().to_vec();
            b.extend_from_slice(&serde_json::to_vec(context).map_err(io::Error::other)?);
            (REC_PROCESS_CONTEXT, b)
        }
    };
    w.write_all(&((body.len() + 1) as u32).to_le_bytes())?;
    w.write_all(&[kind])?;
    w.write_all(&body)
}

/// Reads a recording's header.
pub fn read_header(r: &mut impl Read) -> Result<Header, RecordingError> {
    let mut b = [0u8; 24];
    r.read_exact(&mut b).map_err(|_| RecordingError::BadMagic)?;
    if &b[..8] != MAGIC {
        return Err(RecordingError::BadMagic);
    }
    let version = u32::from_le_bytes(b[8..12].try_into().expect("4 bytes"));
    if version != VERSION {
        return Err(RecordingError::Version(version));
    }
    Ok(Header {
        clock_offset_ns: i64::from_le_bytes(b[16..24].try_into().expect("8 bytes")),
    })
}

/// Reads the next record; `Ok(None)` at a clean end of file. Unknown record types are skipped.
pub fn read_record(r: &mut impl Read) -> Result<Option<Record>, RecordingError> {
    loop {
        let mut len = [0u8; 4];
        match r.read_exact(&mut len) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
            Err(e) => return Err(e.into()),
        }
        let len = u32::from_le_bytes(len) as usize;
        if len > MAX_RECORD {
            return Err(RecordingError::RecordTooLarge(len));
        }
        if len == 0 {
            return Err(RecordingError::Truncated);
        }
        let mut body = vec![0u8; len];
        r.read_exact(&mut body)
            .map_err(|_| RecordingError::Truncated)?;
        match body[0] {
            REC_EVENT => return Ok(Some(Record::Event(body[1..].to_vec()))),
            REC_PROCESS_NAME if body.len() >= 5 => {
                let pid = u32::from_le_bytes(body[1..5].try_into().expect("4 bytes"));
                let name = String::from_utf8_lossy(&body[5..]).into_owned();
                return Ok(Some(Record::ProcessName { pid, name }));
            }
            REC_SOCKET_ENDS if body.len() >= 9 => {
                let pid = u32::from_le_bytes(body[1..5].try_into().expect("4 bytes"));
                let fd = i32::from_le_bytes(body[5..9].try_into().expect("4 bytes"));
                let text = String::from_utf8_lossy(&body[9..]);
                let mut parts = text.split(' ').map(str::parse);
                if let (Some(Ok(local)), Some(Ok(remote))) = (parts.next(), parts.next()) {
                    return Ok(Some(Record::SocketEnds {
                        pid,
                        fd,
                        ends: SocketEnds { local, remote },
                    }));
                }
                continue;
            }
            REC_PROCESS_CONTEXT if body.len() >= 5 => {
                let pid = u32::from_le_bytes(body[1..5].try_into().expect("4 bytes"));
                if let Ok(context) = serde_json::from_slice(&body[5..]) {
                    return Ok(Some(Record::ProcessContext { pid, context }));
                }
                continue;
            }
            _ => continue,
        }
    }
}

/// Process names from a recording, for replays.
#[derive(Debug, Default)]
pub struct RecordedProcessInfo {
    names: HashMap<u32, Arc<str>>,
    sockets: HashMap<(u32, i32), SocketEnds>,
    contexts: HashMap<u32, Arc<ProcessContext>>,
}

impl ProcessInfo for RecordedProcessInfo {
    fn leader_comm(&mut self, pid: u32) -> Option<Arc<str>> {
        self.names.get(&pid).cloned()
    }
    fn socket_ends(&mut self, pid: u32, fd: i32) -> Option<SocketEnds> {
        self.sockets.get(&(pid, fd)).copied()
    }
    fn forget(&mut self, _pid: u32) -> bool {
        false
    }
    fn remember_name(&mut self, pid: u32, name: String) {
        self.names.insert(pid, name.into());
    }
    fn remember_socket(&mut self, pid: u32, fd: i32, ends: SocketEnds) {
        self.sockets.insert((pid, fd), ends);
    }
    fn forget_socket(&mut self, pid: u32, fd: i32) {
        self.sockets.remove(&(pid, fd));
    }
    fn context(&mut self, pid: u32, _uid: u32) -> Arc<ProcessContext> {
        self.contexts.get(&pid).cloned().unwrap_or_default()
    }
    fn remember_context(&mut self, pid: u32, context: ProcessContext) {
        self.contexts.insert(pid, Arc::new(context));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_unknown_types_are_skipped() {
        let mut f = Vec::new();
        write_header(
            &mut f,
            Header {
                clock_offset_ns: -42,
            },
        )
        .unwrap();
        write_record(
            &mut f,
            &Record::ProcessName {
                pid: 7,
                name: "curl".into(),
            },
        )
        .unwrap();
        f.extend_from_slice(&[2, 0, 0, 0, 99, 0]); // a future record type
        write_record(&mut f, &Record::Event(vec![1, 2, 3])).unwrap();
        let ends = SocketEnds {
            local: "[::1]:5000".parse().unwrap(),
            remote: "[::1]:8443".parse().unwrap(),
        };
        write_record(
            &mut f,
            &Record::SocketEnds {
                pid: 7,
                fd: 9,
                ends,
            },
        )
        .unwrap();
        let mut r = &f[..];
        assert_eq!(
            read_header(&mut r).unwrap(),
            Header {
                clock_offset_ns: -42
            }
        );
        assert_eq!(
            read_record(&mut r).unwrap(),
            Some(Record::ProcessName {
                pid: 7,
                name: "curl".into()
            })
        );
        assert_eq!(
            read_record(&mut r).unwrap(),
            Some(Record::Event(vec![1, 2, 3]))
        );
        assert_eq!(
            read_record(&mut r).unwrap(),
            Some(Record::SocketEnds {
                pid: 7,
                fd: 9,
                ends
            })
        );
        assert_eq!(read_record(&mut r).unwrap(), None);
    }

    #[test]
    fn rejects_other_files_and_hostile_lengths() {
        assert!(matches!(
            read_header(&mut &b"GIF89a.................."[..]),
            Err(RecordingError::BadMagic)
        ));
        let mut f = Vec::new();
        write_header(&mut f, Header { clock_offset_ns: 0 }).unwrap();
        f.extend_from_slice(&u32::MAX.to_le_bytes());
        let mut r = &f[..];
        read_header(&mut r).unwrap();
        assert!(matches!(
            read_record(&mut r),
            Err(RecordingError::RecordTooLarge(_))
        ));
    }
}
