//! The capture file: pcap (either byte order, micro- or nanosecond timestamps) and pcapng
//! (sections, interfaces with their link types and timestamp resolutions, Enhanced and Simple
//! Packet Blocks, Decryption Secrets Blocks), optionally gzip-compressed, read as a stream of
//! [`Item`]s. The container parsing is `pcap-parser`'s; this module keeps the per-interface
//! facts it needs and turns timestamps into Unix nanoseconds.

use std::{
    io::{self, BufRead, BufReader, Read},
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
};

use pcap_parser::{pcapng::Block, traits::PcapReaderIterator, Linktype, PcapBlockOwned, PcapError};

/// A block the reader holds whole: the largest packet or key log it can take.
pub const MAX_BLOCK: usize = 4 << 20;
/// pcapng secrets type of a TLS key log (`TLSK`).
pub const SECRETS_TLS_KEY_LOG: u32 = 0x544c_534b;
/// Interfaces kept per pcapng section.
const MAX_INTERFACES: usize = 1024;

/// What went wrong with the file as a whole.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CaptureError {
    #[error("reading the capture: {0}")]
    Io(#[from] io::Error),
    #[error("not a pcap or pcapng file")]
    NotACapture,
    #[error("a block larger than {MAX_BLOCK} bytes")]
    BlockTooLarge,
    #[error("malformed capture file after {0} bytes")]
    Malformed(u64),
}

/// One packet as the file holds it.
#[derive(Debug, Clone, Copy)]
pub struct Packet<'a> {
    /// Unix time, nanoseconds.
    pub ts_ns: u64,
    /// The link type of its interface (`LINKTYPE_*`).
    pub linktype: i32,
    /// The bytes captured (perhaps fewer than the packet had).
    pub data: &'a [u8],
    /// The packet's length on the wire.
    pub orig_len: u32,
}

/// What the file holds, in order.
#[derive(Debug)]
pub enum Item<'a> {
    Packet(Packet<'a>),
    /// A TLS key log (NSS `SSLKEYLOGFILE` text) embedded in a Decryption Secrets Block.
    KeyLog(&'a [u8]),
    /// A block that was not a packet or key log (headers, statistics, names, other secrets).
    Other,
}

/// One pcapng interface.
#[derive(Debug, Clone, Copy)]
struct Interface {
    linktype: i32,
    /// Timestamp units per second.
    units_per_sec: u64,
    /// Seconds added to every timestamp.
    offset_secs: i64,
}

/// Counts the bytes read from the underlying file (for the progress line).
struct Counting<R> {
    inner: R,
    read: Arc<AtomicU64>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

/// A capture file being read.
pub struct CaptureFile {
    reader: Box<dyn PcapReaderIterator + Send>,
    /// Legacy pcap: the header's link type and whether fractions are nanoseconds.
    legacy: Option<(i32, bool)>,
    interfaces: Vec<Interface>,
    /// The last packet's time (a Simple Packet Block has none of its own).
    last_ts_ns: u64,
    read: Arc<AtomicU64>,
    /// The file ended inside a block (a truncated capture).
    pub truncated: bool,
    /// Blocks skipped because they did not parse (with what followed them readable).
    pub bad_blocks: u64,
    /// Packets of an interface the section never described.
    pub unknown_interface: u64,
    /// Packets whose time lay past [`MAX_TS_NS`] (taken as that time).
    pub clamped_times: u64,
}

/// The latest packet time accepted (2262-04-11, `i64::MAX` ns): later times in a hostile or
/// damaged file are clamped, which leaves the pipeline's deadlines (a time plus a timeout)
/// centuries of room.
pub const MAX_TS_NS: u64 = i64::MAX as u64;

/// `ts_ns` within [`MAX_TS_NS`], counting a clamp.
fn sane(ts_ns: u64, clamped: &mut u64) -> u64 {
    if ts_ns > MAX_TS_NS {
        *clamped += 1;
        MAX_TS_NS
    } else {
        ts_ns
    }
}

impl CaptureFile {
    /// Reads the file's header. gzip-compressed input (`.pcap.gz`) is recognised by its magic.
    pub fn open(r: impl Read + Send + 'static) -> Result<Self, CaptureError> {
        let read = Arc::new(AtomicU64::new(0));
        let mut buffered = BufReader::with_capacity(
            64 << 10,
            Counting {
                inner: r,
                read: read.clone(),
            },
        );
        let gzip = buffered.fill_buf()?.starts_with(&[0x1f, 0x8b]);
        let input: Box<dyn Read + Send> = if gzip {
            Box::new(flate2::read::MultiGzDecoder::new(buffered))
        } else {
            Box::new(buffered)
        };
        let reader = match pcap_parser::create_reader(MAX_BLOCK, input) {
            Ok(r) => r,
            Err(PcapError::ReadError) => {
                return Err(io::Error::other("the capture could not be read").into())
            }
            Err(_) => return Err(CaptureError::NotACapture),
        };
        Ok(CaptureFile {
            reader,
            legacy: None,
            interfaces: Vec::new(),
            last_ts_ns: 0,
            read,
            truncated: false,
            bad_blocks: 0,
            unknown_interface: 0,
            clamped_times: 0,
        })
    }

    /// Bytes read from the file so far (compressed bytes for gzip input).
    pub fn bytes_read(&self) -> u64 {
        self.read.load(Ordering::Relaxed)
    }

    /// Hands the next item to `on`; false at the end of the file.
    pub fn next(&mut self, on: &mut dyn FnMut(Item<'_>)) -> Result<bool, CaptureError> {
        let mut refills = 0;
        loop {
            match self.reader.next() {
                Ok((used, block)) => {
                    let item = on_block(
                        block,
                        &mut self.legacy,
                        &mut self.interfaces,
                        &mut self.last_ts_ns,
                        &mut self.unknown_interface,
                        &mut self.clamped_times,
                    );
                    on(item);
                    self.reader.consume(used);
                    return Ok(true);
                }
                Err(PcapError::Eof) => return Ok(false),
                Err(PcapError::UnexpectedEof) => {
                    self.truncated = true;
                    return Ok(false);
                }
                Err(PcapError::Incomplete(_)) => {
                    // Every refill reads at least a byte or finds the end (then the next call
                    // says so), unless the buffer is full: a bound on refills that find no
                    // block ends that case.
                    refills += 1;
                    if refills > MAX_BLOCK {
                        return Err(CaptureError::BlockTooLarge);
                    }
                    if self.reader.refill().is_err() {
                        return Err(io::Error::other("reading the capture failed").into());
                    }
                }
                Err(PcapError::BufferTooSmall) => return Err(CaptureError::BlockTooLarge),
                Err(PcapError::ReadError) => {
                    return Err(io::Error::other("reading the capture failed").into())
                }
                Err(_) => {
                    self.bad_blocks += 1;
                    return Err(CaptureError::Malformed(self.reader.consumed() as u64));
                }
            }
        }
    }
}

/// What one block is.
fn on_block<'a>(
    block: PcapBlockOwned<'a>,
    legacy: &mut Option<(i32, bool)>,
    interfaces: &mut Vec<Interface>,
    last_ts_ns: &mut u64,
    unknown_interface: &mut u64,
    clamped: &mut u64,
) -> Item<'a> {
    match block {
        PcapBlockOwned::LegacyHeader(h) => {
            *legacy = Some((h.network.0, h.is_nanosecond_precision()));
            Item::Other
        }
        PcapBlockOwned::Legacy(b) => {
            let (linktype, nanos) = legacy.unwrap_or((Linktype::ETHERNET.0, false));
            let frac = if nanos {
                u64::from(b.ts_usec)
            } else {
                u64::from(b.ts_usec).saturating_mul(1000)
            };
            let ts_ns = sane(
                u64::from(b.ts_sec)
                    .saturating_mul(1_000_000_000)
                    .saturating_add(frac),
                clamped,
            );
            *last_ts_ns = ts_ns;
            let data = cut(b.data, b.caplen);
            Item::Packet(Packet {
                ts_ns,
                linktype,
                data,
                orig_len: b.origlen,
            })
        }
        PcapBlockOwned::NG(block) => match block {
            Block::SectionHeader(_) => {
                interfaces.clear();
                Item::Other
            }
            Block::InterfaceDescription(idb) => {
                if interfaces.len() < MAX_INTERFACES {
                    interfaces.push(Interface {
                        linktype: idb.linktype.0,
                        units_per_sec: units_per_sec(idb.if_tsresol),
                        offset_secs: idb.if_tsoffset,
                    });
                }
                Item::Other
            }
            Block::EnhancedPacket(epb) => {
                let Some(iface) = interfaces.get(epb.if_id as usize) else {
                    *unknown_interface += 1;
                    return Item::Other;
                };
                let raw = (u64::from(epb.ts_high) << 32) | u64::from(epb.ts_low);
                let ts_ns = sane(
                    to_unix_ns(raw, iface.units_per_sec, iface.offset_secs),
                    clamped,
                );
                *last_ts_ns = ts_ns;
                Item::Packet(Packet {
                    ts_ns,
                    linktype: iface.linktype,
                    data: cut(epb.data, epb.caplen),
                    orig_len: epb.origlen,
                })
            }
            Block::SimplePacket(spb) => {
                let Some(iface) = interfaces.first() else {
                    *unknown_interface += 1;
                    return Item::Other;
                };
                Item::Packet(Packet {
                    ts_ns: *last_ts_ns,
                    linktype: iface.linktype,
                    data: cut(spb.data, spb.origlen),
                    orig_len: spb.origlen,
                })
            }
            Block::DecryptionSecrets(dsb) if dsb.secrets_type.0 == SECRETS_TLS_KEY_LOG => {
                Item::KeyLog(cut(dsb.data, dsb.secrets_len))
            }
            _ => Item::Other,
        },
    }
}

/// The first `len` bytes of `data` (a block's data is padded to 32 bits).
fn cut(data: &[u8], len: u32) -> &[u8] {
    &data[..data.len().min(len as usize)]
}

/// `if_tsresol`: the high bit says a power of two, else of ten; 6 (microseconds) by default.
fn units_per_sec(tsresol: u8) -> u64 {
    let exp = u32::from(tsresol & 0x7f);
    let units = if tsresol & 0x80 != 0 {
        1u64.checked_shl(exp)
    } else {
        10u64.checked_pow(exp)
    };
    units.unwrap_or(1_000_000).max(1)
}

/// A raw pcapng timestamp in Unix nanoseconds.
fn to_unix_ns(raw: u64, units_per_sec: u64, offset_secs: i64) -> u64 {
    let secs = raw / units_per_sec;
    let frac = u128::from(raw % units_per_sec) * 1_000_000_000 / u128::from(units_per_sec);
    let secs = secs.saturating_add_signed(offset_secs);
    secs.saturating_mul(1_000_000_000)
        .saturating_add(frac as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamp_resolutions() {
        assert_eq!(units_per_sec(6), 1_000_000);
        assert_eq!(units_per_sec(9), 1_000_000_000);
        assert_eq!(units_per_sec(0x80 | 10), 1024);
        assert_eq!(
            units_per_sec(0x7f),
            1_000_000,
            "10^127 does not fit: the default"
        );
        assert_eq!(to_unix_ns(1_500_000, 1_000_000, 0), 1_500_000_000);
        assert_eq!(to_unix_ns(512, 1024, 10), 10_500_000_000);
        assert_eq!(to_unix_ns(u64::MAX, 1, i64::MAX), u64::MAX);
    }
}
