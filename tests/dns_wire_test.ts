/**
 * Tests of lib/_dns_wire.ts: the DNS wire codec on hand-built messages,
 * with no socket.
 *
 * @module
 */

import assert from "node:assert/strict";
import {
  buildQuery,
  formatIpv6,
  nameKey,
  parseResponse,
} from "../lib/_dns_wire.ts";
import {
  encodeName,
  encoder,
  header,
  record,
  respondTo,
  u16,
} from "./fixtures/dns_messages.ts";

const QUESTION = { id: 0x1234, name: "www.example.test", type: 1 };

/** A response to QUESTION, built from its answer records. */
function message(answers: number[][], flags = 0x8180, id = QUESTION.id) {
  return new Uint8Array([
    ...header(id, flags, { an: answers.length }),
    ...encodeName("www.example.test"), // at 12; "example.test" at 16
    ...u16(1),
    ...u16(1),
    ...answers.flat(),
  ]);
}

/** www.example.test CNAME cdn.example.test; the chain's A among others. */
const COMPRESSED = message([
  // At 34: owner -> 12; rdata "cdn" + pointer to "example.test" at 16.
  record(u16(0xc00c), 5, [3, ...encoder.encode("cdn"), 0xc0, 16]),
  // Owner: a pointer to the CNAME's rdata (34 + 12 = 46).
  record(u16(0xc000 | 46), 1, [192, 0, 2, 7]),
  record(encodeName("other.test"), 1, [192, 0, 2, 66]),
  record(u16(0xc000 | 46), 28, Array(16).fill(1)),
  record(u16(0xc00c), 1, [192, 0, 2, 8]),
]);

Deno.test("parseResponse(): follows pointers and CNAMEs", () => {
  assert.deepEqual(parseResponse(COMPRESSED, QUESTION), {
    rcode: 0,
    truncated: false,
    addresses: ["192.0.2.7", "192.0.2.8"],
  });
  // Names compare case-insensitively.
  const upper = COMPRESSED.slice();
  upper[13] = "W".charCodeAt(0);
  assert.deepEqual(parseResponse(upper, QUESTION)?.addresses, [
    "192.0.2.7",
    "192.0.2.8",
  ]);
  // A CNAME loop ends; the A of a name outside the chain does not count.
  const loop = message([
    record(u16(0xc00c), 5, encodeName("a.test")),
    record(encodeName("a.test"), 5, u16(0xc00c)),
    record(encodeName("b.test"), 1, [192, 0, 2, 1]),
    record(encodeName("a.test"), 1, [192, 0, 2, 2]),
  ]);
  assert.deepEqual(parseResponse(loop, QUESTION)?.addresses, ["192.0.2.2"]);
  // TC: the answer section is not even read.
  assert.deepEqual(parseResponse(message([], 0x8380), QUESTION), {
    rcode: 0,
    truncated: true,
    addresses: [],
  });
});

Deno.test("parseResponse(): ignores malformed messages", async (t) => {
  const cases: [string, Uint8Array, typeof QUESTION?][] = [
    ["another id", message([], 0x8180, 0x4321)],
    ["not a response", message([], 0x0100)],
    ["another opcode", message([], 0x8980)],
    ["another name", COMPRESSED, { ...QUESTION, name: "example.test" }],
    ["another type", COMPRESSED, { ...QUESTION, type: 28 }],
    ["no question", new Uint8Array(header(QUESTION.id, 0x8180, { qd: 0 }))],
    ["pointer loop", message([record(u16(0xc000 | 34), 1, [1, 2, 3, 4])])],
    ["pointer past the end", message([record(u16(0xffff), 1, [1, 2, 3, 4])])],
    ["reserved label type", message([record([0x40, 0], 1, [1, 2, 3, 4])])],
    ["A of 3 bytes", message([record(u16(0xc00c), 1, [1, 2, 3])])],
    ["AAAA of 4 bytes", message([record(u16(0xc00c), 28, [1, 2, 3, 4])]), {
      ...QUESTION,
      type: 28,
    }],
    ["CNAME overrunning rdata", message([record(u16(0xc00c), 5, [3, 97, 0])])],
    [
      "name over 255 bytes",
      message([
        record([...Array(5).fill([63, ...Array(63).fill(97)]).flat(), 0], 1, [
          1,
          2,
          3,
          4,
        ]),
      ]),
    ],
  ];
  for (const [what, bytes, question] of cases) {
    await t.step(what, () => {
      assert.equal(parseResponse(bytes, question ?? QUESTION), undefined);
    });
  }
  await t.step("every truncation of a valid message", () => {
    for (let length = 0; length < COMPRESSED.length; length++) {
      assert.equal(
        parseResponse(COMPRESSED.subarray(0, length), QUESTION),
        undefined,
        `length ${length}`,
      );
    }
  });
  await t.step("random corruption never throws", () => {
    for (let i = 0; i < 5000; i++) {
      const bytes = COMPRESSED.slice();
      for (let j = 0; j < 1 + (i % 4); j++) {
        bytes[Math.floor(Math.random() * bytes.length)] = Math.floor(
          Math.random() * 256,
        );
      }
      const result = parseResponse(bytes, QUESTION);
      assert.ok(result === undefined || Array.isArray(result.addresses));
    }
  });
});

Deno.test("formatIpv6(): IPv6 addresses in RFC 5952 form", () => {
  const bytesOf = (groups: number[]) =>
    new Uint8Array(groups.flatMap((g) => u16(g)));
  const cases: [number[], string][] = [
    [[0, 0, 0, 0, 0, 0, 0, 1], "::1"],
    [[0, 0, 0, 0, 0, 0, 0, 0], "::"],
    [[0x2001, 0xdb8, 0, 0, 0, 0, 0, 5], "2001:db8::5"],
    [[1, 0, 0, 0, 0, 0, 0, 0], "1::"],
    [[0x2001, 0xdb8, 0, 1, 1, 1, 1, 1], "2001:db8:0:1:1:1:1:1"],
    [[1, 0, 0, 2, 0, 0, 0, 3], "1:0:0:2::3"],
    [[1, 0, 0, 2, 3, 0, 0, 4], "1::2:3:0:0:4"],
    [[0xABCD, 0xEF, 0, 0, 0, 0, 0, 0], "abcd:ef::"],
    [[0, 0, 0, 0, 0, 0xffff, 0xc000, 0x0203], "::ffff:192.0.2.3"],
  ];
  for (const [groups, text] of cases) {
    assert.equal(formatIpv6(bytesOf(groups)), text);
  }
  // Agrees with the URL parser's compression on random zero-heavy addresses.
  for (let i = 0; i < 2000; i++) {
    const groups = Array.from(
      { length: 8 },
      () => Math.random() < 0.5 ? 0 : Math.floor(Math.random() * 0x10000),
    );
    if (groups.slice(0, 6).join() === "0,0,0,0,0,65535") continue;
    const full = groups.map((g) => g.toString(16)).join(":");
    const expected = new URL(`http://[${full}]/`).hostname.slice(1, -1);
    assert.equal(formatIpv6(bytesOf(groups)), expected, full);
  }
});

Deno.test("nameKey(): escapes dots inside labels", () => {
  assert.equal(
    nameKey([encoder.encode("A.b"), encoder.encode("C")]),
    "a\\.b.c",
  );
  assert.equal(
    nameKey([encoder.encode("a"), encoder.encode("b.c")]),
    "a.b\\.c",
  );
  assert.equal(nameKey([]), "");
});

Deno.test("buildQuery(): one question, RD set, the name as its key", () => {
  const { query, question } = buildQuery(0xbeef, "Shape.Test.", "AAAA");
  assert.deepEqual(question, { id: 0xbeef, name: "shape.test", type: 28 });
  assert.deepEqual(
    Array.from(query),
    [
      ...header(0xbeef, 0x0100, { qd: 1, an: 0 }),
      ...encodeName("Shape.Test"),
      ...u16(28),
      ...u16(1),
    ],
  );
  // The query's own response parses as the answer to its question.
  const answer = respondTo(query, {
    answers: [record(u16(0xc00c), 28, Array(15).fill(0).concat(1))],
  });
  assert.deepEqual(parseResponse(answer, question), {
    rcode: 0,
    truncated: false,
    addresses: ["::1"],
  });
});

Deno.test("buildQuery(): names DNS cannot carry are a TypeError", () => {
  for (const name of ["a..b", "x".repeat(64) + ".test", "a.".repeat(128)]) {
    assert.throws(() => buildQuery(1, name, "A"), TypeError, name);
  }
  // The root alone is a name.
  assert.equal(buildQuery(1, ".", "A").question.name, "");
});
