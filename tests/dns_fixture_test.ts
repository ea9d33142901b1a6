/**
 * Tests of the DNS test servers in fixtures/: our own (dns_server.ts) and the
 * real dnsmasq (dnsmasq.ts), through `Deno.resolveDns` and on the wire.
 *
 * What `Deno.resolveDns` (Deno 2.9.6, hickory-resolver) throws, per outcome:
 *
 * - NXDOMAIN (rcode 3), NODATA (NOERROR, no answers), SERVFAIL (rcode 2),
 *   REFUSED (rcode 5): all `Deno.errors.NotFound`, name "NotFound", message
 *   `proto error: no records found for Query { name: Name("nx.test."),
 *   query_type: A, query_class: IN }` (on one line; the name and type asked).
 * - Silent server, `AbortController.abort()` after 500 ms: `DOMException`,
 *   name "AbortError", message "The signal has been aborted".
 * - Silent server, `abort(reason)`: the reason itself, unwrapped.
 * - Silent server, `AbortSignal.timeout(500)`: `DOMException`, name
 *   "TimeoutError", message "The operation was aborted due to timeout".
 * - Silent server, no signal: `Deno.errors.TimedOut`, message
 *   "proto error: request timed out", after ~15 s (3 UDP tries of 5 s).
 *
 * So the four negative answers cannot be told apart from the error: same
 * class, same message, no code, no cause. Truncated UDP answers (TC bit) are
 * retried over TCP by Deno, transparently.
 *
 * Note: Deno's op and resource sanitizers do not see `node:dgram` sockets (a
 * bound socket left open passes them), so the close() test checks that the
 * ports can be bound again instead.
 *
 * @module
 */

import assert from "node:assert/strict";
import dgram from "node:dgram";
import { type DnsServer, startDnsServer } from "./fixtures/dns_server.ts";
import { boundedTest } from "./fixtures/bounded.ts";
import { within } from "./fixtures/deadline.ts";
import { readExactly } from "./fixtures/net.ts";

/** One exchange on loopback: ms idle; 10 s is room for a loaded machine. */
const NET_MS = 10_000;
import { dnsmasqMissing, startDnsmasq } from "./fixtures/dnsmasq.ts";
import { FAULTS, RECORDS } from "./fixtures/dns_records.ts";

function nameServer(server: { hostname: string; port: number }) {
  return { nameServer: { ipAddr: server.hostname, port: server.port } };
}

/** The message hickory gives for every negative answer. */
function noRecordsMessage(name: string, type: string): string {
  return `proto error: no records found for Query { name: Name("${name}."), ` +
    `query_type: ${type}, query_class: IN }`;
}

/** A standard query for one name, as a resolver would send it. */
function encodeQuery(
  id: number,
  name: string,
  type: number,
  recursionDesired = true,
): Uint8Array {
  const labels = name.split(".").map((label) =>
    new TextEncoder().encode(label)
  );
  const nameLength = labels.reduce((sum, l) => sum + 1 + l.length, 1);
  const out = new Uint8Array(12 + nameLength + 4);
  const view = new DataView(out.buffer);
  view.setUint16(0, id);
  view.setUint16(2, recursionDesired ? 0x0100 : 0);
  view.setUint16(4, 1);
  let offset = 12;
  for (const label of labels) {
    out[offset] = label.length;
    out.set(label, offset + 1);
    offset += 1 + label.length;
  }
  offset += 1; // the root label
  view.setUint16(offset, type);
  view.setUint16(offset + 2, 1); // IN
  return out;
}

/** Sends raw datagrams from one socket; resolves with the first reply. */
async function udpExchange(
  port: number,
  packets: Uint8Array[],
  timeoutMs = 1000,
): Promise<Uint8Array | undefined> {
  const socket = dgram.createSocket("udp4");
  await new Promise<void>((resolve) => socket.bind(0, "127.0.0.1", resolve));
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    const reply = new Promise<Uint8Array | undefined>((resolve) => {
      socket.once("message", (msg: Uint8Array) => resolve(new Uint8Array(msg)));
      timer = setTimeout(() => resolve(undefined), timeoutMs);
    });
    for (const packet of packets) socket.send(packet, port, "127.0.0.1");
    return await reply;
  } finally {
    clearTimeout(timer);
    await new Promise<void>((resolve) => socket.close(resolve));
  }
}

/** One length-framed DNS message; a server that never sends one fails. */
function readFramed(conn: Deno.Conn): Promise<Uint8Array> {
  return within(
    (async () => {
      const [high, low] = await readExactly(conn, 2);
      return await readExactly(conn, (high << 8) | low);
    })(),
    NET_MS,
    "a framed DNS message",
  );
}

function frame(message: Uint8Array): Uint8Array {
  const out = new Uint8Array(2 + message.length);
  new DataView(out.buffer).setUint16(0, message.length);
  out.set(message, 2);
  return out;
}

function header(reply: Uint8Array) {
  const view = new DataView(reply.buffer, reply.byteOffset);
  const flags = view.getUint16(2);
  return {
    id: view.getUint16(0),
    qr: (flags & 0x8000) !== 0,
    tc: (flags & 0x0200) !== 0,
    rd: (flags & 0x0100) !== 0,
    ra: (flags & 0x0080) !== 0,
    rcode: flags & 0xf,
    qdcount: view.getUint16(4),
    ancount: view.getUint16(6),
  };
}

async function waitForQueries(server: DnsServer, count: number) {
  await within(server.queried(count), NET_MS, `${count} queries`);
  assert.equal(server.queries.length, count);
}

boundedTest("dns fixture: answers A and AAAA from its records", async () => {
  await using dns = await startDnsServer({ records: RECORDS });
  assert.equal(dns.hostname, "127.0.0.1");
  assert.ok(dns.port > 0);

  const a = await Deno.resolveDns("example.test", "A", nameServer(dns));
  assert.deepEqual(a.sort(), ["192.0.2.1", "192.0.2.2"]);
  const aaaa = await Deno.resolveDns("Example.TEST", "AAAA", nameServer(dns));
  assert.deepEqual(aaaa.sort(), ["2001:db8::1", "::ffff:192.0.2.3"]);

  assert.deepEqual(dns.queries, [
    { name: "example.test", type: "A", transport: "udp" },
    { name: "example.test", type: "AAAA", transport: "udp" },
  ]);
});

boundedTest("dns fixture: writes well-formed responses", async (t) => {
  await using dns = await startDnsServer({
    records: RECORDS,
    faults: FAULTS,
  });

  await t.step("answer: id, flags, question, 0xC00C pointer, TTL", async () => {
    const query = encodeQuery(0xbeef, "example.test", 1);
    const reply = await udpExchange(dns.port, [query]);
    assert.ok(reply);
    assert.deepEqual(header(reply), {
      id: 0xbeef,
      qr: true,
      tc: false,
      rd: true,
      ra: true,
      rcode: 0,
      qdcount: 1,
      ancount: 2,
    });
    assert.deepEqual(reply.subarray(12, query.length), query.subarray(12));
    const answer = new DataView(reply.buffer, reply.byteOffset + query.length);
    assert.equal(answer.getUint16(0), 0xc00c);
    assert.equal(answer.getUint16(2), 1); // A
    assert.equal(answer.getUint16(4), 1); // IN
    assert.equal(answer.getUint32(6), 60);
    assert.equal(answer.getUint16(10), 4);
    assert.deepEqual(
      [...reply.subarray(query.length + 12, query.length + 16)],
      [192, 0, 2, 1],
    );
    assert.equal(reply.length, query.length + 2 * 16);
  });

  await t.step("RD is copied, RA always set", async () => {
    const reply = await udpExchange(dns.port, [
      encodeQuery(7, "example.test", 28, false),
    ]);
    assert.ok(reply);
    const h = header(reply);
    assert.equal(h.rd, false);
    assert.equal(h.ra, true);
    assert.equal(h.ancount, 2);
  });

  const rcodes: [string, number, number][] = [
    ["unknown.test", 1, 3],
    ["nx.test", 1, 3],
    ["servfail.test", 1, 2],
    ["refused.test", 1, 5],
    ["v4only.test", 28, 0], // NODATA
    ["example.test", 16, 0], // TXT: not served, NOERROR
  ];
  for (const [name, type, rcode] of rcodes) {
    await t.step(`${name} type ${type}: rcode ${rcode}`, async () => {
      const reply = await udpExchange(dns.port, [encodeQuery(1, name, type)]);
      assert.ok(reply);
      assert.equal(header(reply).rcode, rcode);
      assert.equal(header(reply).ancount, 0);
    });
  }

  await t.step("truncate: TC set and no answers over UDP", async () => {
    const reply = await udpExchange(dns.port, [encodeQuery(2, "big.test", 1)]);
    assert.ok(reply);
    assert.equal(header(reply).tc, true);
    assert.equal(header(reply).rcode, 0);
    assert.equal(header(reply).ancount, 0);
  });

  await t.step("silent: no reply, query recorded", async () => {
    const before = dns.queries.length;
    const reply = await udpExchange(
      dns.port,
      [encodeQuery(3, "silent.test", 1)],
      200,
    );
    assert.equal(reply, undefined);
    assert.deepEqual(dns.queries.at(-1), {
      name: "silent.test",
      type: "A",
      transport: "udp",
    });
    assert.equal(dns.queries.length, before + 1);
  });
});

boundedTest("dns fixture: ignores malformed packets", async () => {
  await using dns = await startDnsServer({ records: RECORDS });
  const valid = encodeQuery(9, "example.test", 1);
  const response = valid.slice();
  response[2] |= 0x80; // QR: a response, not a query
  const pointer = valid.slice();
  pointer[12] = 0xc0; // a compression pointer in the question
  const longLabel = valid.slice();
  longLabel[12] = 60; // a label running past the end
  const noQuestion = valid.slice(0, 12);
  noQuestion[5] = 0; // qdcount 0
  const reply = await udpExchange(dns.port, [
    new Uint8Array(0),
    new Uint8Array([1, 2, 3]),
    valid.subarray(0, 12),
    valid.subarray(0, valid.length - 1),
    response,
    pointer,
    longLabel,
    noQuestion,
    valid,
  ]);
  assert.ok(reply, "the valid query after the junk was answered");
  assert.equal(header(reply).id, 9);
  assert.equal(dns.queries.length, 1);
});

boundedTest("dns fixture: errors seen by Deno.resolveDns", async (t) => {
  await using dns = await startDnsServer({
    records: RECORDS,
    faults: FAULTS,
  });
  const negative: [string, string, "A" | "AAAA"][] = [
    ["NXDOMAIN (unknown name)", "unknown.test", "A"],
    ["NXDOMAIN (fault)", "nx.test", "A"],
    ["NODATA", "v4only.test", "AAAA"],
    ["SERVFAIL", "servfail.test", "A"],
    ["REFUSED", "refused.test", "A"],
  ];
  for (const [outcome, name, type] of negative) {
    await t.step(`${outcome}: Deno.errors.NotFound`, async () => {
      await assert.rejects(
        Deno.resolveDns(name, type, nameServer(dns)),
        (error: Error) => {
          assert.ok(error instanceof Deno.errors.NotFound);
          assert.equal(error.message, noRecordsMessage(name, type));
          return true;
        },
      );
    });
  }

  await t.step("silent, aborted after 500 ms: AbortError", async () => {
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), 500);
    const start = performance.now();
    try {
      await assert.rejects(
        Deno.resolveDns("silent.test", "A", {
          ...nameServer(dns),
          signal: controller.signal,
        }),
        (error: Error) => {
          assert.ok(error instanceof DOMException);
          assert.equal(error.name, "AbortError");
          assert.equal(error.message, "The signal has been aborted");
          return true;
        },
      );
    } finally {
      clearTimeout(timer);
    }
    assert.ok(performance.now() - start >= 450);
  });

  await t.step("silent, AbortSignal.timeout(500): TimeoutError", async () => {
    await assert.rejects(
      Deno.resolveDns("silent.test", "A", {
        ...nameServer(dns),
        signal: AbortSignal.timeout(500),
      }),
      (error: Error) => {
        assert.ok(error instanceof DOMException);
        assert.equal(error.name, "TimeoutError");
        assert.equal(error.message, "The operation was aborted due to timeout");
        return true;
      },
    );
  });
});

boundedTest(
  "dns fixture: truncated UDP answer is retried over TCP",
  async () => {
    await using dns = await startDnsServer({
      records: RECORDS,
      faults: FAULTS,
    });
    const a = await Deno.resolveDns("big.test", "A", nameServer(dns));
    assert.deepEqual(a, ["192.0.2.5"]);
    assert.deepEqual(dns.queries, [
      { name: "big.test", type: "A", transport: "udp" },
      { name: "big.test", type: "A", transport: "tcp" },
    ]);
  },
);

boundedTest("dns fixture: TCP framing across reads", async () => {
  await using dns = await startDnsServer({ records: RECORDS });
  const conn = await Deno.connect({ hostname: dns.hostname, port: dns.port });
  try {
    const first = frame(encodeQuery(1, "example.test", 1));
    const both = new Uint8Array([
      ...first,
      ...frame(encodeQuery(2, "example.test", 28)),
    ]);
    // The first frame and one byte of the second; the rest once the first
    // was seen: the server must keep the partial frame.
    await conn.write(both.subarray(0, first.length + 1));
    await waitForQueries(dns, 1);
    await conn.write(both.subarray(first.length + 1));
    const reply1 = await readFramed(conn);
    const reply2 = await readFramed(conn);
    assert.equal(header(reply1).id, 1);
    assert.equal(header(reply1).ancount, 2);
    assert.equal(header(reply2).id, 2);
    assert.equal(header(reply2).ancount, 2);
    assert.deepEqual(dns.queries.map((q) => q.transport), ["tcp", "tcp"]);
  } finally {
    conn.close();
  }
});

boundedTest("dns fixture: close() releases ports and connections", async () => {
  const dns = await startDnsServer({ faults: { "silent.test": "silent" } });
  const { port } = dns;
  const conn = await Deno.connect({ hostname: dns.hostname, port });
  try {
    await conn.write(frame(encodeQuery(1, "silent.test", 1)));
    await waitForQueries(dns, 1);
    await dns.close();
    await dns.close(); // idempotent
    // The server closed its end of the connection it was holding.
    const n = await conn.read(new Uint8Array(16)).catch(() => null);
    assert.equal(n, null);
  } finally {
    conn.close();
  }

  // Both ports can be bound again at once: nothing of the server is left.
  const udp = dgram.createSocket("udp4");
  await new Promise<void>((resolve, reject) => {
    udp.once("error", reject);
    udp.bind(port, "127.0.0.1", resolve);
  });
  await new Promise<void>((resolve) => udp.close(resolve));
  Deno.listen({ hostname: "127.0.0.1", port }).close();
});

boundedTest(
  "dns fixture: special-use names never reach the server",
  async () => {
    // Worth knowing before choosing names for tests: Deno (hickory) answers
    // these itself, so an NXDOMAIN test under .invalid proves nothing.
    await using dns = await startDnsServer({
      records: {
        "localhost": { A: ["192.0.2.1"] },
        "a.localhost": { A: ["192.0.2.1"] },
        "a.invalid": { A: ["192.0.2.1"] },
      },
    });
    for (const name of ["localhost", "a.localhost"]) {
      const a = await Deno.resolveDns(name, "A", nameServer(dns));
      assert.deepEqual(a, ["127.0.0.1"]);
    }
    await assert.rejects(
      Deno.resolveDns("a.invalid", "A", nameServer(dns)),
      Deno.errors.NotFound,
    );
    assert.deepEqual(dns.queries, []);
  },
);

boundedTest({
  name: "dns fixture: dnsmasq answers A and AAAA",
  ignore: dnsmasqMissing("dns fixture: dnsmasq answers A and AAAA"),
}, async () => {
  const dnsmasq = await startDnsmasq({
    "example.test": ["192.0.2.1", "192.0.2.2", "2001:db8::1"],
  });
  if ("skipped" in dnsmasq) assert.fail(dnsmasq.skipped);
  await using _ = dnsmasq;
  assert.equal(dnsmasq.hostname, "127.0.0.1");

  const a = await Deno.resolveDns("example.test", "A", nameServer(dnsmasq));
  assert.deepEqual(a.sort(), ["192.0.2.1", "192.0.2.2"]);
  const aaaa = await Deno.resolveDns(
    "example.test",
    "AAAA",
    nameServer(dnsmasq),
  );
  assert.deepEqual(aaaa, ["2001:db8::1"]);
  // With no upstream, dnsmasq REFUSES other names: NotFound again.
  await assert.rejects(
    Deno.resolveDns("unknown.test", "A", nameServer(dnsmasq)),
    Deno.errors.NotFound,
  );
});
