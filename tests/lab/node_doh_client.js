// A DoH client on Node.js: http2.connect() + POST application/dns-message. Node's TLS is the
// OpenSSL linked into the `node` executable, on Node's own BIO: the ciphertext goes to the
// socket from libuv, outside any SSL call.
//
// Usage: node node_doh_client.js CA_PEM URL NAME/TYPE ...
// Sends each NAME/TYPE on one HTTP/2 connection, one after the other, and prints one line per
// lookup: NAME TYPE RCODE ANCOUNT.
"use strict";
const fs = require("fs");
const http2 = require("http2");

const TYPES = { A: 1, AAAA: 28, HTTPS: 65, TXT: 16 };

function query(name, type) {
  const labels = name.split(".").filter((l) => l.length > 0);
  const parts = [Buffer.from([0, 0, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0])];
  for (const l of labels) {
    parts.push(Buffer.from([l.length]), Buffer.from(l, "ascii"));
  }
  parts.push(Buffer.from([0, TYPES[type] >> 8, TYPES[type] & 255, 0, 1]));
  return Buffer.concat(parts);
}

function post(session, path, body) {
  return new Promise((resolve, reject) => {
    const req = session.request({
      ":method": "POST",
      ":path": path,
      "content-type": "application/dns-message",
      accept: "application/dns-message",
    });
    const chunks = [];
    req.on("data", (c) => chunks.push(c));
    req.on("end", () => resolve(Buffer.concat(chunks)));
    req.on("error", reject);
    req.end(body);
  });
}

async function main() {
  const [ca, url, ...specs] = process.argv.slice(2);
  const u = new URL(url);
  const session = http2.connect(u.origin, { ca: fs.readFileSync(ca), servername: "doh.test" });
  try {
    for (const spec of specs) {
      const [name, type] = spec.split("/");
      const answer = await post(session, u.pathname, query(name, type));
      const rcode = answer[3] & 15;
      const ancount = answer.readUInt16BE(6);
      console.log(`${name} ${type} ${rcode} ${ancount}`);
    }
  } finally {
    session.close();
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
