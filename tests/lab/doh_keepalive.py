"""A DoH client that keeps one HTTP/2 connection open across a pause (dnspython + httpx).

Usage: doh_keepalive.py CA_PEM URL GO_FILE NAME/TYPE[/get] ...
Makes the first lookup, prints "first done", waits until GO_FILE exists, then makes the rest on
the same connection: a tracer started during the pause joins the connection mid-stream.
"""
import os
import sys
import time

import dns.message
import dns.query
import dns.rcode
import httpx

ca, url, go = sys.argv[1], sys.argv[2], sys.argv[3]
specs = sys.argv[4:]
with httpx.Client(http2=True, verify=ca, limits=httpx.Limits(keepalive_expiry=300)) as client:
    for i, spec in enumerate(specs):
        parts = spec.split("/")
        q = dns.message.make_query(parts[0], parts[1])
        r = dns.query.https(q, url, session=client, post=not (len(parts) > 2 and parts[2] == "get"), timeout=10)
        answers = [str(x) for rrset in r.answer for x in rrset]
        print(parts[0], parts[1], dns.rcode.to_text(r.rcode()), ",".join(answers), flush=True)
        if i == 0:
            print("first done", flush=True)
            deadline = time.time() + 300
            while not os.path.exists(go) and time.time() < deadline:
                time.sleep(0.05)
