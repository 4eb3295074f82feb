//! The live tracer's stdout: written on a thread of its own through a bounded queue, so that a
//! reader that stops reading (a paused pager, a full pipe, a stuck log shipper) never stops the
//! event loop — signals, timeouts and the ring buffer go on being served. What does not fit in
//! the queue is dropped and counted (shown in the status lines and at exit), never waited for.
//!
//! Reading a capture or a recording writes stdout directly instead ([`super::Outputs`]): there
//! nothing is lost by waiting for the reader.

use std::{
    io::{self, Write},
    mem,
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        mpsc::{self, Receiver, Sender},
        Arc,
    },
    thread,
    time::Duration,
};

/// Bytes gathered before they are handed to the writer thread (a flush hands over less).
const CHUNK: usize = 64 * 1024;
/// Most bytes waiting for the reader.
const QUEUE_BYTES: u64 = 16 * 1024 * 1024;

/// What the writer thread tells the loop.
#[derive(Default)]
struct Shared {
    /// The reader went away (or writing failed): the run ends.
    closed: AtomicBool,
    /// Lines handed over and not written yet.
    queued_lines: AtomicU64,
    /// Their bytes.
    queued_bytes: AtomicU64,
}

/// stdout behind a bounded queue.
pub struct StdoutQueue {
    pending: Vec<u8>,
    tx: Option<Sender<Vec<u8>>>,
    shared: Arc<Shared>,
    /// Signalled by the writer thread when it has written everything it was given.
    done: Receiver<()>,
    /// Lines dropped because the queue was full.
    pub dropped_lines: u64,
}

impl StdoutQueue {
    /// Starts the writer thread on `sink` (stdout; a pipe in the tests).
    pub fn new(mut sink: impl Write + Send + 'static) -> io::Result<StdoutQueue> {
        // Unbounded in chunks, bounded in bytes (`queued_bytes`).
        let (tx, rx) = mpsc::channel::<Vec<u8>>();
        let (done_tx, done) = mpsc::channel();
        let shared = Arc::new(Shared::default());
        let theirs = shared.clone();
        thread::Builder::new()
            .name("stdout".into())
            .spawn(move || {
                for chunk in rx {
                    if sink.write_all(&chunk).and_then(|()| sink.flush()).is_err() {
                        theirs.closed.store(true, Ordering::SeqCst);
                        break;
                    }
                    theirs
                        .queued_lines
                        .fetch_sub(lines(&chunk), Ordering::SeqCst);
                    theirs
                        .queued_bytes
                        .fetch_sub(chunk.len() as u64, Ordering::SeqCst);
                }
                let _ = done_tx.send(());
            })?;
        Ok(StdoutQueue {
            pending: Vec::with_capacity(CHUNK),
            tx: Some(tx),
            shared,
            done,
            dropped_lines: 0,
        })
    }

    /// Hands what was written so far to the writer thread, or drops it if the queue is full.
    /// Called with whole lines (by `flush`, which the outputs call after whole records).
    fn hand_over(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        let chunk = mem::replace(&mut self.pending, Vec::with_capacity(CHUNK));
        let n = lines(&chunk);
        let Some(tx) = &self.tx else {
            return;
        };
        let bytes = chunk.len() as u64;
        if self.shared.queued_bytes.load(Ordering::SeqCst) + bytes > QUEUE_BYTES {
            self.dropped_lines += n;
            return;
        }
        // Counted before the send: the writer may have written it before send returns.
        self.shared.queued_lines.fetch_add(n, Ordering::SeqCst);
        self.shared.queued_bytes.fetch_add(bytes, Ordering::SeqCst);
        if tx.send(chunk).is_err() {
            self.shared.queued_lines.fetch_sub(n, Ordering::SeqCst);
            self.shared.queued_bytes.fetch_sub(bytes, Ordering::SeqCst);
            self.shared.closed.store(true, Ordering::SeqCst);
        }
    }

    /// Hands the rest over and waits up to `patience` for the reader to take it. Returns how
    /// many lines it did not take in that time.
    pub fn finish(&mut self, patience: Duration) -> u64 {
        self.hand_over();
        self.tx = None;
        match self.done.recv_timeout(patience) {
            Ok(()) | Err(mpsc::RecvTimeoutError::Disconnected) => {
                if self.shared.closed.load(Ordering::SeqCst) {
                    self.shared.queued_lines.load(Ordering::SeqCst)
                } else {
                    0
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) => self.shared.queued_lines.load(Ordering::SeqCst),
        }
    }
}

impl Write for StdoutQueue {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.shared.closed.load(Ordering::SeqCst) {
            return Err(io::ErrorKind::BrokenPipe.into());
        }
        self.pending.extend_from_slice(buf);
        if self.pending.len() >= CHUNK {
            // Whole lines only: a chunk that is dropped must not leave half a line behind.
            if let Some(end) = self.pending.iter().rposition(|&b| b == b'\n') {
                let rest = self.pending.split_off(end + 1);
                self.hand_over();
                self.pending.extend_from_slice(&rest);
            }
        }
        Ok(buf.len())
    }

    /// Hands the output over; never waits for the reader. A reader gone is a broken pipe.
    fn flush(&mut self) -> io::Result<()> {
        self.hand_over();
        if self.shared.closed.load(Ordering::SeqCst) {
            return Err(io::ErrorKind::BrokenPipe.into());
        }
        Ok(())
    }
}

fn lines(chunk: &[u8]) -> u64 {
    chunk.iter().filter(|&&b| b == b'\n').count() as u64
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::{
        fs::File,
        io::{BufRead, BufReader},
        os::fd::{FromRawFd, OwnedFd},
    };

    fn pipe() -> (File, File) {
        let mut fds = [0; 2];
        // SAFETY: fds has room for the two descriptors pipe2 writes.
        assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
        // SAFETY: both descriptors were just opened and are owned by nobody else.
        unsafe {
            (
                File::from(OwnedFd::from_raw_fd(fds[0])),
                File::from(OwnedFd::from_raw_fd(fds[1])),
            )
        }
    }

    fn line(i: usize) -> String {
        format!("{{\"lookup\":{i},\"qname\":\"www.doh.test\"}}\n")
    }

    #[test]
    fn a_reader_that_keeps_up_gets_every_line_in_order() {
        let (r, w) = pipe();
        let reader = thread::spawn(move || BufReader::new(r).lines().count());
        let mut q = StdoutQueue::new(w).unwrap();
        for i in 0..100_000 {
            q.write_all(line(i).as_bytes()).unwrap();
            if i % 100 == 0 {
                q.flush().unwrap();
            }
        }
        q.flush().unwrap();
        assert_eq!(q.finish(Duration::from_secs(60)), 0);
        drop(q);
        assert_eq!(reader.join().unwrap() as u64, 100_000);
    }

    #[test]
    fn a_reader_that_stops_reading_never_blocks_the_writer_and_every_line_is_counted() {
        let (r, w) = pipe();
        let mut q = StdoutQueue::new(w).unwrap();
        let total = 1_000_000u64;
        for i in 0..total as usize {
            // Returns at once whatever the reader does: the pipe holds 64 KiB, the queue 16 MiB,
            // the rest (about 40 MiB) is dropped.
            q.write_all(line(i).as_bytes()).unwrap();
            if i % 1000 == 0 {
                q.flush().unwrap();
            }
        }
        q.flush().unwrap();
        assert!(q.dropped_lines > 0);
        let not_written = q.finish(Duration::from_millis(200));
        assert!(
            not_written > 0,
            "the queue was full, the reader read nothing"
        );
        // Reading now lets the writer thread write what was queued, then end: every line was
        // either written or counted as dropped.
        let dropped = q.dropped_lines;
        drop(q);
        let read = BufReader::new(r).lines().count() as u64;
        assert!(read >= not_written);
        assert_eq!(read + dropped, total);
    }

    #[test]
    fn lines_written_in_pieces_are_dropped_whole_or_not_at_all() {
        let (r, w) = pipe();
        let mut q = StdoutQueue::new(w).unwrap();
        for i in 0..300_000 {
            // As `writeln!` writes a formatted line: in several pieces.
            let l = line(i);
            let (a, b) = l.split_at(7);
            q.write_all(a.as_bytes()).unwrap();
            q.write_all(b.as_bytes()).unwrap();
        }
        q.flush().unwrap();
        q.finish(Duration::from_millis(100));
        drop(q);
        for l in BufReader::new(r).lines() {
            let l = l.unwrap();
            assert!(
                l.starts_with("{\"lookup\":") && l.ends_with("\"www.doh.test\"}"),
                "{l}"
            );
        }
    }

    #[test]
    fn a_reader_gone_is_a_broken_pipe() {
        let (r, w) = pipe();
        drop(r);
        let mut q = StdoutQueue::new(w).unwrap();
        q.write_all(line(0).as_bytes()).unwrap();
        let mut err = q.flush().err();
        for _ in 0..1000 {
            if err.is_some() {
                break;
            }
            thread::sleep(Duration::from_millis(5));
            q.write_all(line(1).as_bytes()).ok();
            err = q.flush().err();
        }
        assert_eq!(err.map(|e| e.kind()), Some(io::ErrorKind::BrokenPipe));
    }
}
