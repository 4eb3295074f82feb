"""A DNS-over-TLS client on the system GnuTLS (libgnutls.so.30) that corks every query.

Test client for doh-trace's end-to-end tests; it is not part of the product.

What it is for: with gnutls_record_cork() in effect, the bytes of one query pass through
gnutls_record_send() twice. Per query this client does

    gnutls_record_cork(session)
    gnutls_record_send(session, <2-byte length>, 2)    -> 2, only appended to the cork buffer
    gnutls_record_send(session, <DNS query>, N)        -> N, only appended to the cork buffer
    gnutls_record_uncork(session, GNUTLS_RECORD_WAIT)  -> 2+N; inside, GnuTLS calls
        gnutls_record_send(session, <cork buffer>, 2+N), which writes one TLS record

(GnuTLS 3.7.9 lib/record.c: gnutls_record_send2 hands the data to append_data_to_corked
while corked; gnutls_record_uncork calls gnutls_record_send on record_presend_buffer.)
A tracer that hooks gnutls_record_send must therefore report the query's bytes once,
not three times. Answers are read with gnutls_record_recv (2-byte length, then the message).

Usage:
    python3 gnutls_cork_dot.py --ca CA.pem --server 127.0.0.1 --port 8853 --name doh.test \
        www.doh.test:A www.doh.test:AAAA txt.doh.test:TXT

One TLS connection; queries go one after another. Prints one line per answer,
`NAME TYPE rcode=NOERROR answers=192.0.2.10`, and exits 0 only if every answer arrived.
Only the Python standard library and the system libgnutls are used (ctypes).
"""

import argparse
import ctypes
import ctypes.util
import ipaddress
import os
import socket
import struct
import sys
import time

# --- GnuTLS constants (gnutls/gnutls.h, 3.7.9) ---------------------------------------------
GNUTLS_CLIENT = 1 << 1
GNUTLS_CRD_CERTIFICATE = 1
GNUTLS_X509_FMT_PEM = 1
GNUTLS_NAME_DNS = 1
GNUTLS_SHUT_RDWR = 0
GNUTLS_CRT_X509 = 1
GNUTLS_RECORD_WAIT = 1
GNUTLS_E_AGAIN = -28
GNUTLS_E_INTERRUPTED = -52
GNUTLS_E_CERTIFICATE_VERIFICATION_ERROR = -348

TIMEOUT_S = 10.0

# --- DNS wire format (just enough for the lab's answers) -----------------------------------
RRTYPES = {"A": 1, "NS": 2, "CNAME": 5, "SOA": 6, "PTR": 12, "MX": 15, "TXT": 16,
           "AAAA": 28, "SRV": 33, "SVCB": 64, "HTTPS": 65, "ANY": 255}
RRNAMES = {v: k for k, v in RRTYPES.items()}
RCODES = {0: "NOERROR", 1: "FORMERR", 2: "SERVFAIL", 3: "NXDOMAIN", 4: "NOTIMP", 5: "REFUSED"}


class Failure(Exception):
    pass


def load_gnutls():
    path = ctypes.util.find_library("gnutls") or "libgnutls.so.30"
    try:
        lib = ctypes.CDLL(path)
    except OSError:
        lib = ctypes.CDLL("libgnutls.so.30")
    vp, cp, ci, cu, sz, ss = (ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int, ctypes.c_uint,
                              ctypes.c_size_t, ctypes.c_ssize_t)
    sigs = {
        "gnutls_check_version": (cp, [cp]),
        "gnutls_strerror": (cp, [ci]),
        "gnutls_error_is_fatal": (ci, [ci]),
        "gnutls_certificate_allocate_credentials": (ci, [ctypes.POINTER(vp)]),
        "gnutls_certificate_free_credentials": (None, [vp]),
        "gnutls_certificate_set_x509_trust_file": (ci, [vp, cp, ci]),
        "gnutls_init": (ci, [ctypes.POINTER(vp), cu]),
        "gnutls_deinit": (None, [vp]),
        "gnutls_set_default_priority": (ci, [vp]),
        "gnutls_credentials_set": (ci, [vp, ci, vp]),
        "gnutls_server_name_set": (ci, [vp, ci, vp, sz]),
        "gnutls_session_set_verify_cert": (None, [vp, vp, cu]),
        "gnutls_session_get_verify_cert_status": (cu, [vp]),
        "gnutls_certificate_verification_status_print": (ci, [cu, ci, vp, cu]),
        "gnutls_transport_set_int2": (None, [vp, ci, ci]),
        "gnutls_handshake_set_timeout": (None, [vp, cu]),
        "gnutls_record_set_timeout": (None, [vp, cu]),
        "gnutls_handshake": (ci, [vp]),
        "gnutls_session_get_desc": (vp, [vp]),
        "gnutls_record_cork": (None, [vp]),
        "gnutls_record_uncork": (ci, [vp, cu]),
        "gnutls_record_check_corked": (sz, [vp]),
        "gnutls_record_send": (ss, [vp, vp, sz]),
        "gnutls_record_recv": (ss, [vp, vp, sz]),
        "gnutls_bye": (ci, [vp, ci]),
    }
    for name, (res, args) in sigs.items():
        fn = getattr(lib, name)
        fn.restype, fn.argtypes = res, args
    # gnutls_free is an exported variable holding a function pointer.
    free_ptr = ctypes.c_void_p.in_dll(lib, "gnutls_free").value
    lib.py_free = ctypes.CFUNCTYPE(None, ctypes.c_void_p)(free_ptr)
    return lib


class Tls:
    def __init__(self, lib, verbose):
        self.lib = lib
        self.verbose = verbose
        self.cred = ctypes.c_void_p()
        self.session = ctypes.c_void_p()
        self.sock = None
        self.handshaken = False
        self.verify_name = None

    def err(self, what, ret):
        msg = self.lib.gnutls_strerror(ret).decode(errors="replace")
        return Failure(f"{what} failed: {ret} ({msg})")

    def check(self, what, ret):
        if ret < 0:
            raise self.err(what, ret)
        return ret

    def log(self, msg):
        if self.verbose:
            print(msg, file=sys.stderr, flush=True)

    def retry(self, what, call):
        """Call a GnuTLS function until it stops returning GNUTLS_E_AGAIN/INTERRUPTED."""
        deadline = time.monotonic() + TIMEOUT_S
        while True:
            ret = call()
            if ret not in (GNUTLS_E_AGAIN, GNUTLS_E_INTERRUPTED):
                return self.check(what, ret)
            if time.monotonic() > deadline:
                raise self.err(what + " (gave up retrying)", ret)

    def connect(self, ca, server, port, name):
        lib = self.lib
        self.check("gnutls_certificate_allocate_credentials",
                   lib.gnutls_certificate_allocate_credentials(ctypes.byref(self.cred)))
        n = self.check("gnutls_certificate_set_x509_trust_file",
                       lib.gnutls_certificate_set_x509_trust_file(
                           self.cred, os.fsencode(ca), GNUTLS_X509_FMT_PEM))
        if n == 0:
            raise Failure(f"gnutls_certificate_set_x509_trust_file: no certificate in {ca}")
        self.check("gnutls_init", lib.gnutls_init(ctypes.byref(self.session), GNUTLS_CLIENT))
        self.check("gnutls_set_default_priority", lib.gnutls_set_default_priority(self.session))
        self.check("gnutls_credentials_set",
                   lib.gnutls_credentials_set(self.session, GNUTLS_CRD_CERTIFICATE, self.cred))
        try:
            ipaddress.ip_address(name)
        except ValueError:  # SNI only for host names, never for address literals
            bname = name.encode()
            self.check("gnutls_server_name_set",
                       lib.gnutls_server_name_set(self.session, GNUTLS_NAME_DNS, bname, len(bname)))
        # GnuTLS keeps this pointer (lib/auto-verify.c), so the buffer must outlive the session.
        self.verify_name = ctypes.create_string_buffer(name.encode())
        lib.gnutls_session_set_verify_cert(self.session, self.verify_name, 0)

        # A blocking socket; GnuTLS itself polls with the timeouts set below.
        self.sock = socket.create_connection((server, port), timeout=TIMEOUT_S)
        self.sock.settimeout(None)
        fd = self.sock.fileno()
        lib.gnutls_transport_set_int2(self.session, fd, fd)
        lib.gnutls_handshake_set_timeout(self.session, int(TIMEOUT_S * 1000))
        lib.gnutls_record_set_timeout(self.session, int(TIMEOUT_S * 1000))

        while True:
            ret = lib.gnutls_handshake(self.session)
            if ret >= 0:
                break
            if ret == GNUTLS_E_CERTIFICATE_VERIFICATION_ERROR:
                status = lib.gnutls_session_get_verify_cert_status(self.session)
                out = (ctypes.c_void_p * 2)()  # gnutls_datum_t {data, size}
                if lib.gnutls_certificate_verification_status_print(
                        status, GNUTLS_CRT_X509, ctypes.byref(out), 0) >= 0:
                    detail = ctypes.string_at(out[0]).decode(errors="replace")
                    lib.py_free(out[0])
                    raise Failure(f"certificate verification failed: {detail}")
            if lib.gnutls_error_is_fatal(ret):
                raise self.err("gnutls_handshake", ret)
        self.handshaken = True
        desc = lib.gnutls_session_get_desc(self.session)
        if desc:
            self.log(f"# handshake done: {ctypes.string_at(desc).decode()}")
            lib.py_free(desc)

    def send_corked(self, msg):
        """Cork, send the 2-byte length and the message separately, uncork (wait)."""
        lib = self.lib
        prefix = struct.pack("!H", len(msg))
        lib.gnutls_record_cork(self.session)
        sizes = []
        for part in (prefix, msg):
            buf = ctypes.create_string_buffer(part, len(part))
            ret = self.retry("gnutls_record_send (corked)",
                             lambda: lib.gnutls_record_send(self.session, buf, len(part)))
            if ret != len(part):
                raise Failure(f"gnutls_record_send (corked) took {ret} of {len(part)} bytes")
            sizes.append(ret)
        pending = lib.gnutls_record_check_corked(self.session)
        ret = self.check("gnutls_record_uncork",
                         lib.gnutls_record_uncork(self.session, GNUTLS_RECORD_WAIT))
        if ret != len(prefix) + len(msg):
            raise Failure(f"gnutls_record_uncork flushed {ret} of {len(prefix) + len(msg)} bytes")
        self.log(f"# corked sends {sizes[0]}+{sizes[1]}, {pending} pending, uncork flushed {ret}")

    def recv_exact(self, n):
        lib = self.lib
        out = bytearray()
        buf = ctypes.create_string_buffer(max(n, 1))
        while len(out) < n:
            want = n - len(out)
            ret = self.retry("gnutls_record_recv",
                             lambda: lib.gnutls_record_recv(self.session, buf, want))
            if ret == 0:
                raise Failure(f"connection closed after {len(out)} of {n} bytes")
            out += buf.raw[:ret]
        return bytes(out)

    def close(self):
        lib = self.lib
        rc = 0
        if self.handshaken:
            try:
                self.retry("gnutls_bye", lambda: lib.gnutls_bye(self.session, GNUTLS_SHUT_RDWR))
            except Failure as e:
                print(f"error: {e}", file=sys.stderr)
                rc = 1
        if self.session:
            lib.gnutls_deinit(self.session)
            self.session = ctypes.c_void_p()
        if self.sock is not None:
            self.sock.close()
            self.sock = None
        if self.cred:
            lib.gnutls_certificate_free_credentials(self.cred)
            self.cred = ctypes.c_void_p()
        return rc


def parse_spec(spec):
    name, _, rtype = spec.partition(":")
    rtype = (rtype or "A").upper()
    if rtype in RRTYPES:
        code = RRTYPES[rtype]
    elif rtype.startswith("TYPE") and rtype[4:].isdigit():
        code = int(rtype[4:])
    else:
        raise Failure(f"unknown record type in {spec!r}")
    return name.rstrip(".") or ".", rtype, code


def encode_name(name):
    out = b""
    for label in name.strip(".").split("."):
        if label:
            raw = label.encode("idna") if not label.isascii() else label.encode()
            if len(raw) > 63:
                raise Failure(f"label too long in {name!r}")
            out += bytes([len(raw)]) + raw
    return out + b"\0"


def make_query(qid, name, qtype):
    header = struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 0)  # RD=1, one question
    return header + encode_name(name) + struct.pack("!HH", qtype, 1)


def read_name(msg, off):
    """Returns (name, offset after the name at `off`), following compression pointers."""
    labels, end, jumps = [], None, 0
    while True:
        if off >= len(msg):
            raise Failure("truncated name in answer")
        n = msg[off]
        if n & 0xC0 == 0xC0:
            if off + 1 >= len(msg) or jumps > 32:
                raise Failure("bad compression pointer in answer")
            if end is None:
                end = off + 2
            off = ((n & 0x3F) << 8) | msg[off + 1]
            jumps += 1
        elif n == 0:
            return (".".join(labels) or "."), (end if end is not None else off + 1)
        else:
            labels.append(msg[off + 1:off + 1 + n].decode("ascii", "replace"))
            off += 1 + n


def render_rdata(msg, rtype, off, rdlen):
    rdata = msg[off:off + rdlen]
    if rtype == 1 and rdlen == 4:
        return socket.inet_ntop(socket.AF_INET, rdata)
    if rtype == 28 and rdlen == 16:
        return socket.inet_ntop(socket.AF_INET6, rdata)
    if rtype in (2, 5, 12):
        return read_name(msg, off)[0]
    if rtype == 16:
        parts, i = [], 0
        while i < rdlen:
            n = rdata[i]
            parts.append('"' + rdata[i + 1:i + 1 + n].decode("ascii", "backslashreplace") + '"')
            i += 1 + n
        return " ".join(parts)
    return "\\# %d %s" % (rdlen, rdata.hex())


def parse_answer(msg, qid):
    if len(msg) < 12:
        raise Failure(f"answer too short ({len(msg)} bytes)")
    rid, flags, qd, an, _ns, _ar = struct.unpack("!HHHHHH", msg[:12])
    if rid != qid:
        raise Failure(f"answer id {rid} does not match query id {qid}")
    if not flags & 0x8000:
        raise Failure("message is not a response")
    off = 12
    for _ in range(qd):
        off = read_name(msg, off)[1] + 4
    answers = []
    for _ in range(an):
        off = read_name(msg, off)[1]
        if off + 10 > len(msg):
            raise Failure("truncated resource record in answer")
        rtype, _cls, _ttl, rdlen = struct.unpack("!HHIH", msg[off:off + 10])
        off += 10
        if off + rdlen > len(msg):
            raise Failure("truncated rdata in answer")
        answers.append(render_rdata(msg, rtype, off, rdlen))
        off += rdlen
    return RCODES.get(flags & 0xF, str(flags & 0xF)), answers


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ca", required=True, help="CA certificate (PEM) to verify the server")
    ap.add_argument("--server", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=853)
    ap.add_argument("--name", required=True, help="host name the server certificate must match")
    ap.add_argument("-v", "--verbose", action="store_true",
                    help="report handshake and cork/uncork sizes on stderr")
    ap.add_argument("queries", nargs="+", metavar="NAME[:TYPE]")
    args = ap.parse_args()

    try:
        specs = [parse_spec(s) for s in args.queries]
        lib = load_gnutls()
    except (Failure, OSError, AttributeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    tls = Tls(lib, args.verbose)
    tls.log(f"# libgnutls {lib.gnutls_check_version(None).decode()}")
    ok = 0
    try:
        tls.connect(args.ca, args.server, args.port, args.name)
        for name, rtype, code in specs:
            qid = int.from_bytes(os.urandom(2), "big")
            tls.send_corked(make_query(qid, name, code))
            (length,) = struct.unpack("!H", tls.recv_exact(2))
            rcode, answers = parse_answer(tls.recv_exact(length), qid)
            print(f"{name} {rtype} rcode={rcode} answers={','.join(answers)}", flush=True)
            ok += 1
    except (Failure, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
    rc = tls.close()
    if ok != len(specs):
        print(f"error: {ok} of {len(specs)} answers arrived", file=sys.stderr)
        return 1
    return rc


if __name__ == "__main__":
    sys.exit(main())
