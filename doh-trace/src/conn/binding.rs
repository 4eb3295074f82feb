//! TLS objects whose ciphertext travels through a memory BIO, a BIO pair or an application BIO
//! (Python asyncio's `SSLObject`, Node.js, BIND's dig), bound to the socket that carries it.
//!
//! Their TLS calls make no socket syscall, so the kernel cannot tell their socket: their
//! plaintext arrives keyed by the library's object ([`ConnId::TlsObject`]). The socket's own
//! bytes arrive too, and begin with a ClientHello whose client random — 32 random bytes —
//! the library also keeps inside its connection object. So the first bytes of the object
//! (read from the process's memory, [`OBJECT_BYTES_SEARCHED`]) are searched for the random of
//! each ClientHello the process sent on a socket whose plaintext is still unknown: exactly one
//! match binds the object to that socket. Exact with any number of connections open at once in
//! one thread, and needing no struct offsets of any library version. The memory read is only
//! compared, never kept.
//!
//! Once bound, the object's plaintext is the socket's TLS layer (its lookups get the socket's
//! client and server), the kernel is told the object's fd (so its later calls carry it and are
//! minimised like any socket), and recordings get the binding as a record of its own.

use std::collections::HashMap;

use crate::source::{ConnId, Meta};

/// Bytes of a TLS object searched for a client random (OpenSSL 3 keeps it at 352 bytes into
/// `SSL`, GnuTLS in the first hundred of its session).
pub const OBJECT_BYTES_SEARCHED: usize = 4096;
/// Searches per object before it is given up on (counted): one per plaintext chunk that
/// arrives while a ClientHello of its process is waiting.
pub const MAX_ATTEMPTS: u8 = 4;
/// Bound objects kept (per host); beyond it the oldest process's are dropped, counted.
pub const MAX_BOUND: usize = 65536;

/// A change the kernel must be told of: an object's later calls carry `fd`, or no fd any more.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BindChange {
    /// `meta`: the event that led to it (who, when).
    Bound {
        meta: Meta,
        tls_obj: u64,
        fd: i32,
    },
    Unbound {
        pid: u32,
        tls_obj: u64,
    },
}

/// The bindings found, and the searches made.
#[derive(Debug, Default)]
pub struct TlsBinder {
    /// (pid, object) → fd.
    bound: HashMap<(u32, u64), i32>,
    /// Searches made per object not bound yet.
    attempts: HashMap<(u32, u64), u8>,
    /// For the kernel (live only), in order.
    changes: Vec<BindChange>,
    /// Objects bound, and objects given up on.
    pub bound_total: u64,
    pub given_up: u64,
    /// Bindings dropped because [`MAX_BOUND`] were kept.
    pub evicted: u64,
}

impl TlsBinder {
    /// The socket `id` is known by: the fd of a bound object, else `id` itself.
    pub fn socket_of(&self, pid: u32, id: ConnId) -> ConnId {
        match id {
            ConnId::TlsObject(obj) => self.bound.get(&(pid, obj)).map_or(id, |&fd| ConnId::Fd(fd)),
            ConnId::Fd(_) | ConnId::Flow(_) => id,
        }
    }

    /// Whether `obj` may be searched once more; counts the search.
    pub fn may_search(&mut self, pid: u32, obj: u64) -> bool {
        if self.attempts.len() >= MAX_BOUND && !self.attempts.contains_key(&(pid, obj)) {
            return false;
        }
        let n = self.attempts.entry((pid, obj)).or_insert(0);
        if *n >= MAX_ATTEMPTS {
            return false;
        }
        *n += 1;
        if *n == MAX_ATTEMPTS {
            // The last search: if it fails too, the object stays unbound.
            self.given_up += 1;
        }
        true
    }

    /// `obj` of `meta.pid` is socket `fd`'s (found by a search when `found`, else read from a
    /// recording).
    pub fn bind(&mut self, meta: &Meta, tls_obj: u64, fd: i32, found: bool) {
        let pid = meta.pid;
        if let Some(n) = self.attempts.remove(&(pid, tls_obj)) {
            if n == MAX_ATTEMPTS {
                self.given_up -= 1;
            }
        }
        if self.bound.len() >= MAX_BOUND {
            if let Some(&victim) = self.bound.keys().next() {
                self.bound.remove(&victim);
                self.evicted += 1;
            }
        }
        self.bound.insert((pid, tls_obj), fd);
        self.bound_total += 1;
        if found {
            self.changes.push(BindChange::Bound {
                meta: *meta,
                tls_obj,
                fd,
            });
        }
    }

    /// Socket `fd` of `pid` closed: objects bound to it are bound no more (the fd, and the
    /// object's address, may be reused).
    pub fn socket_closed(&mut self, pid: u32, fd: i32) {
        let gone: Vec<(u32, u64)> = self
            .bound
            .iter()
            .filter(|(&(p, _), &f)| p == pid && f == fd)
            .map(|(&k, _)| k)
            .collect();
        for (pid, tls_obj) in gone {
            self.bound.remove(&(pid, tls_obj));
            self.changes.push(BindChange::Unbound { pid, tls_obj });
        }
    }

    /// Process `pid` is gone.
    pub fn process_gone(&mut self, pid: u32) {
        self.bound.retain(|&(p, _), _| p != pid);
        self.attempts.retain(|&(p, _), _| p != pid);
    }

    /// What the kernel must be told, since last asked.
    pub fn drain_changes(&mut self) -> std::vec::Drain<'_, BindChange> {
        self.changes.drain(..)
    }
}

/// Which of the `hellos` (socket fd, client random) the object's first bytes hold: the fd of
/// the one and only match. None when none matches, or several do (never guessed).
pub fn find_socket(object: &[u8], hellos: &[(i32, [u8; 32])]) -> Option<i32> {
    let mut found = None;
    for (fd, random) in hellos {
        if *random == [0; 32] {
            continue;
        }
        if object.windows(random.len()).any(|w| w == random) {
            if found.is_some() {
                return None;
            }
            found = Some(*fd);
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn random(seed: u8) -> [u8; 32] {
        core::array::from_fn(|i| seed.wrapping_mul(31).wrapping_add(i as u8))
    }

    #[test]
    fn finds_the_one_socket_whose_random_the_object_holds() {
        let mut object = vec![0u8; OBJECT_BYTES_SEARCHED];
        object[352..384].copy_from_slice(&random(2));
        let hellos = [(7, random(1)), (9, random(2)), (11, random(3))];
        assert_eq!(find_socket(&object, &hellos), Some(9));
        assert_eq!(find_socket(&object, &hellos[..1]), None);
        // Two hellos matching (the same random twice) is never guessed.
        assert_eq!(
            find_socket(&object, &[(9, random(2)), (12, random(2))]),
            None
        );
        // An all-zero random (none parsed) matches nothing, not zeroed memory.
        assert_eq!(find_socket(&object, &[(5, [0; 32])]), None);
    }

    fn meta(pid: u32) -> Meta {
        Meta {
            pid,
            tid: pid + 1,
            uid: 0,
            ts_ns: 5,
        }
    }

    #[test]
    fn bound_objects_are_known_by_their_socket_until_it_closes() {
        let mut b = TlsBinder::default();
        let obj = ConnId::TlsObject(0x5555_0000);
        assert_eq!(b.socket_of(10, obj), obj);
        b.bind(&meta(10), 0x5555_0000, 4, true);
        assert_eq!(b.socket_of(10, obj), ConnId::Fd(4));
        assert_eq!(b.socket_of(11, obj), obj, "another process's object");
        b.socket_closed(10, 4);
        assert_eq!(b.socket_of(10, obj), obj);
        let changes: Vec<_> = b.drain_changes().collect();
        assert_eq!(
            changes,
            [
                BindChange::Bound {
                    meta: meta(10),
                    tls_obj: 0x5555_0000,
                    fd: 4
                },
                BindChange::Unbound {
                    pid: 10,
                    tls_obj: 0x5555_0000
                }
            ]
        );
    }

    #[test]
    fn searches_are_bounded_and_giving_up_is_counted() {
        let mut b = TlsBinder::default();
        for _ in 0..MAX_ATTEMPTS {
            assert!(b.may_search(1, 2));
        }
        assert!(!b.may_search(1, 2));
        assert_eq!(b.given_up, 1);
        // Bound at last (from a recording, say): no longer given up.
        b.bind(&meta(1), 2, 3, false);
        assert_eq!(b.given_up, 0);
        assert_eq!(
            b.drain_changes().count(),
            0,
            "a recorded binding tells no kernel"
        );
    }
}
