//! Plaintext of TLS objects whose calls made no socket syscall, bound to the socket whose
//! ClientHello holds the same client random (the method: [`crate::conn::binding`]).

use crate::{
    conn::binding::{find_socket, BindChange, OBJECT_BYTES_SEARCHED},
    source::{ConnId, Layer, Meta},
};

use super::Pipeline;

impl Pipeline {
    /// The connection TLS plaintext keyed `id` belongs to: an object bound to a socket is that
    /// socket's; an object not bound yet is searched for the client random of one of its
    /// process's ClientHellos on sockets whose plaintext is unknown, and bound on a match.
    pub(super) fn tls_socket(&mut self, meta: &Meta, id: ConnId, layer: Layer) -> ConnId {
        let pid = meta.pid;
        let ConnId::TlsObject(obj) = id else {
            return id;
        };
        if layer != Layer::Tls {
            return id;
        }
        let known = self.binder.socket_of(pid, id);
        if known != id {
            return known;
        }
        let hellos: Vec<(i32, [u8; 32])> = self
            .conns
            .keys_of(pid, |k, c| {
                k.layer == Layer::Socket
                    && matches!(k.id, ConnId::Fd(_))
                    && !c.tls.plaintext_seen
                    && c.tls.hello.is_some()
            })
            .into_iter()
            .filter_map(|k| {
                let ConnId::Fd(fd) = k.id else { return None };
                let random = self.conns.get_mut(&k)?.tls.hello.as_ref()?.random;
                Some((fd, random))
            })
            .collect();
        if hellos.is_empty() || !self.binder.may_search(pid, obj) {
            return id;
        }
        let mut object = [0u8; OBJECT_BYTES_SEARCHED];
        let read = self.procs.read_memory(pid, obj, &mut object);
        let found = find_socket(&object[..read], &hellos);
        if let Some(fd) = found {
            self.binder.bind(meta, obj, fd, true);
            self.on_tls_bind(pid, ConnId::Fd(fd), obj);
        }
        self.count_bindings();
        found.map_or(id, ConnId::Fd)
    }

    /// The binder's counts, into the pipeline's counters.
    pub(super) fn count_bindings(&mut self) {
        self.counters.tls_bound = self.binder.bound_total;
        self.counters.tls_unbound = self.binder.given_up;
        self.counters.tls_bindings_evicted = self.binder.evicted;
    }

    /// Bindings made and undone since the last call (to tell the eBPF side, and recordings).
    pub fn drain_bind_changes(&mut self) -> std::vec::Drain<'_, BindChange> {
        self.binder.drain_changes()
    }
}
