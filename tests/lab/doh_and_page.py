"""DoH and a web page on one HTTP/2 connection (httpx with h2, CPython's ssl: OpenSSL).

Usage: PAGE_SECRET=SECRET doh_and_page.py CA_PEM URL NAME
(the secret in the environment: a command line is part of every lookup's record)
POSTs a DoH query for NAME (type A), POSTs a form holding SECRET to the page /SECRET with a
cookie and an authorization header holding it too, then GETs the AAAA query with ?dns=, all on the same connection.
Prints one line per lookup (NAME TYPE RCODE) and the page's status.
"""
import base64
import os
import sys

import dns.message
import dns.rcode
import httpx

ca, url, name = sys.argv[1:4]
secret = os.environ["PAGE_SECRET"]
origin = url.split("/dns-query")[0]
with httpx.Client(http2=True, verify=ca, timeout=10) as client:
    q = dns.message.make_query(name, "A")
    r = client.post(url, content=q.to_wire(),
                    headers={"content-type": "application/dns-message",
                             "accept": "application/dns-message"})
    print(name, "A", dns.rcode.to_text(dns.message.from_wire(r.content).rcode()), flush=True)
    page = client.post(origin + "/" + secret, content=("form=" + secret).encode(),
                       headers={"cookie": "session=" + secret,
                                "authorization": "Bearer " + secret})
    print("page", page.status_code, r.http_version, page.http_version, flush=True)
    q = dns.message.make_query(name, "AAAA")
    b64 = base64.urlsafe_b64encode(q.to_wire()).decode().rstrip("=")
    r = client.get(url + "?dns=" + b64, headers={"accept": "application/dns-message"})
    print(name, "AAAA", dns.rcode.to_text(dns.message.from_wire(r.content).rcode()), flush=True)
