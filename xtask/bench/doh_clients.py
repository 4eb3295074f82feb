"""DoH clients for `cargo xtask bench --only capture`: real HTTP/2 DoH lookups (httpx on
CPython's ssl, i.e. OpenSSL) with their TLS keys logged, for a capture of them.

Usage: doh_clients.py CA_PEM URL KEYLOG CONNECTIONS LOOKUPS_PER_CONNECTION
Each connection is its own httpx.Client on its own thread; lookups alternate POST and GET
(RFC 8484) over a few names and types of the lab's zone. Prints `responses=N` (HTTP 200 with
a DNS message) at the end and exits 1 if any lookup failed.
"""
import base64
import ssl
import sys
import threading

import dns.message
import httpx

ca, url, keylog = sys.argv[1], sys.argv[2], sys.argv[3]
connections, lookups = int(sys.argv[4]), int(sys.argv[5])
NAMES = [
    ("www.doh.test", "A"),
    ("www.doh.test", "AAAA"),
    ("loop.doh.test", "A"),
    ("loop.doh.test", "AAAA"),
    ("txt.doh.test", "TXT"),
    ("nx.doh.test", "A"),
]

ctx = ssl.create_default_context(cafile=ca)
ctx.keylog_filename = keylog
lock = threading.Lock()
done = [0, 0]  # responses, failures


def connection(c):
    ok = bad = 0
    with httpx.Client(http2=True, verify=ctx, timeout=30) as client:
        for i in range(lookups):
            name, rtype = NAMES[(c + i) % len(NAMES)]
            q = dns.message.make_query(name, rtype)
            q.id = (c * 7919 + i) & 0xFFFF
            wire = q.to_wire()
            headers = {"accept": "application/dns-message"}
            if i % 2 == 0:
                headers["content-type"] = "application/dns-message"
                r = client.post(url, content=wire, headers=headers)
            else:
                b64 = base64.urlsafe_b64encode(wire).rstrip(b"=").decode()
                r = client.get(url, params={"dns": b64}, headers=headers)
            if r.status_code == 200 and r.http_version == "HTTP/2":
                dns.message.from_wire(r.content)
                ok += 1
            else:
                bad += 1
    with lock:
        done[0] += ok
        done[1] += bad


threads = [threading.Thread(target=connection, args=(c,)) for c in range(connections)]
for t in threads:
    t.start()
for t in threads:
    t.join()
print(f"responses={done[0]} failed={done[1]}", flush=True)
sys.exit(1 if done[1] else 0)
