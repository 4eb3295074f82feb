"""A DoH client on CPython's ssl module (OpenSSL's SSL_write_ex/SSL_read_ex) via dnspython+httpx.

Usage: doh_client.py CA_PEM URL NAME/TYPE[/get] ...
Prints one line per lookup: NAME TYPE RCODE ANSWER,...
"""
import sys

import dns.message
import dns.query
import dns.rcode

ca, url = sys.argv[1], sys.argv[2]
for spec in sys.argv[3:]:
    parts = spec.split("/")
    name, rtype = parts[0], parts[1]
    get = len(parts) > 2 and parts[2] == "get"
    q = dns.message.make_query(name, rtype)
    r = dns.query.https(q, url, verify=ca, post=not get, timeout=10)
    answers = [str(x) for rrset in r.answer for x in rrset]
    print(name, rtype, dns.rcode.to_text(r.rcode()), ",".join(answers), flush=True)
