"""A DoH client on asyncio: httpx.AsyncClient over HTTP/2, whose TLS is CPython's
ssl.SSLObject — OpenSSL on memory BIOs, the ciphertext written to the socket by the event
loop, outside any SSL call. One HTTP/2 connection per URL, all open at once in one thread.

Usage: asyncio_doh_client.py CA_PEM URL[,URL...] NAME/TYPE ...
Sends every NAME/TYPE to every URL concurrently (POST, application/dns-message) and prints one
line per lookup: URL NAME TYPE RCODE ANSWER,...
"""
import asyncio
import sys

import dns.message
import dns.rcode
import httpx


async def lookup(client, url, name, rtype):
    q = dns.message.make_query(name, rtype)
    q.id = 0
    r = await client.post(
        url,
        content=q.to_wire(),
        headers={"content-type": "application/dns-message", "accept": "application/dns-message"},
    )
    r.raise_for_status()
    a = dns.message.from_wire(r.content)
    answers = [str(x) for rrset in a.answer for x in rrset]
    return f"{url} {name} {rtype} {dns.rcode.to_text(a.rcode())} {','.join(answers)}"


async def main():
    ca, urls, specs = sys.argv[1], sys.argv[2].split(","), sys.argv[3:]
    # One client per URL: each holds one HTTP/2 connection; all are open at once.
    clients = [httpx.AsyncClient(http2=True, verify=ca, timeout=10) for _ in urls]
    try:
        jobs = [
            lookup(c, url, *spec.split("/"))
            for spec in specs
            for c, url in zip(clients, urls)
        ]
        for line in await asyncio.gather(*jobs):
            print(line, flush=True)
    finally:
        for c in clients:
            await c.aclose()


asyncio.run(main())
