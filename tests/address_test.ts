/**
 * Unit tests of lib/address.ts (ports, hosts, IP families and the ways an
 * address is printed) and lib/_describe.ts (values and peers in messages).
 */

import assert from "node:assert/strict";
import { describe, hostPort } from "../lib/_describe.ts";
import {
  formatAddress,
  fromDenoAddr,
  ipFamily,
  parsePort,
  pythonAddress,
  validateHost,
  validatePort,
} from "../lib/address.ts";
import { InvalidArgumentError } from "../lib/errors.ts";

/** Asserts that `fn` throws EINVAL with a message matching `message`. */
function throwsInvalid(fn: () => unknown, message: RegExp | string): void {
  assert.throws(fn, (error: unknown) => {
    assert.ok(error instanceof InvalidArgumentError, `got ${error}`);
    assert.equal(error.code, "EINVAL");
    if (typeof message === "string") assert.equal(error.message, message);
    else assert.match(error.message, message);
    return true;
  });
}

Deno.test("validatePort(): accepts 1–65535 and returns the port", () => {
  assert.equal(validatePort(1), 1);
  assert.equal(validatePort(80), 80);
  assert.equal(validatePort(65535), 65535);
});

Deno.test("validatePort(): 0 only with allowZero", () => {
  throwsInvalid(
    () => validatePort(0),
    "invalid port 0: expected an integer in 1–65535",
  );
  throwsInvalid(
    () => validatePort(0, { allowZero: false }),
    /expected an integer in 1–65535/,
  );
  assert.equal(validatePort(0, { allowZero: true }), 0);
});

Deno.test("validatePort(): rejects values out of range or not integers, naming them", () => {
  const cases: [unknown, string][] = [
    [65536, "65536"],
    [-1, "-1"],
    [1.5, "1.5"],
    [NaN, "NaN"],
    [Infinity, "Infinity"],
    ["80", '"80"'],
    [null, "null"],
    [undefined, "undefined"],
    [80n, "80n"],
    [{}, "[object Object]"],
  ];
  for (const [value, shown] of cases) {
    throwsInvalid(
      () => validatePort(value),
      `invalid port ${shown}: expected an integer in 1–65535`,
    );
  }
  throwsInvalid(
    () => validatePort(-1, { allowZero: true }),
    "invalid port -1: expected an integer in 0–65535",
  );
});

Deno.test("parsePort(): reads decimal digits only", () => {
  assert.equal(parsePort("8080"), 8080);
  assert.equal(parsePort("65535"), 65535);
  assert.equal(parsePort("00080"), 80);
  assert.equal(parsePort("0", { allowZero: true }), 0);
  for (const text of ["", " 80", "80 ", "+80", "-1", "8e3", "0x50", "1.0"]) {
    throwsInvalid(
      () => parsePort(text),
      `invalid port ${JSON.stringify(text)}: expected an integer in 1–65535`,
    );
  }
  throwsInvalid(
    () => parsePort("123456", { allowZero: true }),
    'invalid port "123456": expected an integer in 0–65535',
  );
});

Deno.test("parsePort(): digits out of range go through validatePort", () => {
  throwsInvalid(() => parsePort("65536"), /invalid port 65536:/);
  throwsInvalid(() => parsePort("0"), /invalid port 0: .* 1–65535/);
});

Deno.test("ipFamily(): tells IPv4 from IPv6 from names", () => {
  assert.equal(ipFamily("127.0.0.1"), 4);
  assert.equal(ipFamily("0.0.0.0"), 4);
  assert.equal(ipFamily("255.255.255.255"), 4);
  assert.equal(ipFamily("::1"), 6);
  assert.equal(ipFamily("[::1]"), 6);
  assert.equal(ipFamily("::"), 6);
  assert.equal(ipFamily("2001:db8::1"), 6);
  assert.equal(ipFamily("2001:DB8:0:0:0:0:0:1"), 6);
  assert.equal(ipFamily("::ffff:127.0.0.1"), 6);
  assert.equal(ipFamily("[::ffff:127.0.0.1]"), 6);
});

Deno.test("ipFamily(): undefined for names and malformed literals", () => {
  for (
    const text of [
      "localhost",
      "example.com",
      "",
      "256.1.1.1",
      "1.2.3",
      "1.2.3.4.5",
      "01.2.3.4",
      "[127.0.0.1]",
      "[::1",
      "::1]",
      "1::2::3",
      "12345::",
      "1:2:3:4:5:6:7:8:9",
      "::1.2.3",
      "fe80::1%eth0",
      ":",
      "g::1",
    ]
  ) {
    assert.equal(ipFamily(text), undefined, text);
  }
});

Deno.test("validateHost(): IPv4 literals pass unchanged", () => {
  assert.equal(validateHost("127.0.0.1"), "127.0.0.1");
  assert.equal(validateHost("0.0.0.0"), "0.0.0.0");
});

Deno.test("validateHost(): IPv6 literals, bracketed or not, come back bare", () => {
  assert.equal(validateHost("::1"), "::1");
  assert.equal(validateHost("[::1]"), "::1");
  assert.equal(validateHost("::"), "::");
  assert.equal(validateHost("[::]"), "::");
  assert.equal(validateHost("2001:db8::42"), "2001:db8::42");
  assert.equal(validateHost("[::ffff:10.0.0.1]"), "::ffff:10.0.0.1");
});

Deno.test("validateHost(): malformed IPv6 is EINVAL naming the value", () => {
  for (
    const host of [
      "[::1",
      "::1]",
      "[[::1]]",
      "1::2::3",
      "::g",
      "[::1]:80",
      "a:b:c",
    ]
  ) {
    throwsInvalid(
      () => validateHost(host),
      `invalid host ${JSON.stringify(host)}: not an IPv6 address`,
    );
  }
});

Deno.test("validateHost(): a dotted quad out of range is EINVAL", () => {
  for (const host of ["256.1.1.1", "1.2.3.999", "01.2.3.4"]) {
    throwsInvalid(
      () => validateHost(host),
      `invalid host ${JSON.stringify(host)}: IPv4 parts must be 0–255`,
    );
  }
});

Deno.test("validateHost(): names of letters, digits, - and _ pass unchanged", () => {
  assert.equal(validateHost("localhost"), "localhost");
  assert.equal(validateHost("www.google.com"), "www.google.com");
  assert.equal(validateHost("_srv._tcp.example"), "_srv._tcp.example");
  assert.equal(validateHost("a-b.c-d"), "a-b.c-d");
  assert.equal(validateHost("1.2.3"), "1.2.3");
  // A trailing dot (a fully qualified name) is allowed and kept.
  assert.equal(validateHost("example.com."), "example.com.");
});

Deno.test("validateHost(): label and name lengths at and past their limits", () => {
  const label63 = "a".repeat(63);
  assert.equal(validateHost(label63), label63);
  throwsInvalid(() => validateHost("a".repeat(64)), /not an IP address/);
  const label300 = "b".repeat(300);
  throwsInvalid(
    () => validateHost(`${label300}.com`),
    `invalid host "${"b".repeat(77)}...": not an IP address or host name`,
  );
  // 63 + 1 + 63 + 1 + 63 + 1 + 61 = 253 characters: the longest name.
  const name253 = [label63, label63, label63, "c".repeat(61)].join(".");
  assert.equal(name253.length, 253);
  assert.equal(validateHost(name253), name253);
  assert.equal(validateHost(`${name253}.`), `${name253}.`);
  throwsInvalid(() => validateHost(`${name253}c`), /not an IP address/);
});

Deno.test("validateHost(): malformed names are EINVAL", () => {
  for (
    const host of [
      "",
      ".",
      "..",
      "a..b",
      ".a",
      "-a",
      "a-",
      "a b",
      "exa mple.com",
      "ex!ample",
      "[]",
      "[127.0.0.1]",
      "héllo.com",
      "a.b..",
    ]
  ) {
    throwsInvalid(
      () => validateHost(host),
      `invalid host ${JSON.stringify(host)}: not an IP address or host name`,
    );
  }
});

Deno.test("validateHost(): non-strings are EINVAL", () => {
  const cases: [unknown, string][] = [
    [undefined, "undefined"],
    [null, "null"],
    [127001, "127001"],
    [["127.0.0.1"], "127.0.0.1"],
    [() => "x", "a function"],
  ];
  for (const [value, shown] of cases) {
    throwsInvalid(
      () => validateHost(value),
      `invalid host ${shown}: expected a string`,
    );
  }
});

Deno.test("formatAddress(): brackets IPv6 only", () => {
  assert.equal(
    formatAddress({ address: "127.0.0.1", port: 80 }),
    "127.0.0.1:80",
  );
  assert.equal(formatAddress({ address: "::1", port: 80 }), "[::1]:80");
  assert.equal(
    formatAddress({ address: "2001:db8::1", port: 65535 }),
    "[2001:db8::1]:65535",
  );
  assert.equal(formatAddress({ address: "localhost", port: 0 }), "localhost:0");
});

Deno.test("pythonAddress(): Python's 2-tuple for IPv4, 4-tuple for IPv6", () => {
  assert.equal(
    pythonAddress({ address: "127.0.0.1", port: 58933, family: 4 }),
    "('127.0.0.1', 58933)",
  );
  assert.equal(
    pythonAddress({ address: "::1", port: 58933, family: 6 }),
    "('::1', 58933, 0, 0)",
  );
});

Deno.test("fromDenoAddr(): unbrackets and finds the family", () => {
  assert.deepEqual(
    fromDenoAddr({ transport: "tcp", hostname: "127.0.0.1", port: 5 }),
    { address: "127.0.0.1", port: 5, family: 4 },
  );
  assert.deepEqual(
    fromDenoAddr({ transport: "tcp", hostname: "::1", port: 6 }),
    { address: "::1", port: 6, family: 6 },
  );
  assert.deepEqual(
    fromDenoAddr({ transport: "tcp", hostname: "[::1]", port: 7 }),
    { address: "::1", port: 7, family: 6 },
  );
  assert.deepEqual(
    fromDenoAddr({ transport: "tcp", hostname: "::ffff:127.0.0.1", port: 8 }),
    { address: "::ffff:127.0.0.1", port: 8, family: 6 },
  );
});

Deno.test("fromDenoAddr(): a real listener's address", () => {
  using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const addr = fromDenoAddr(listener.addr);
  assert.equal(addr.address, "127.0.0.1");
  assert.equal(addr.family, 4);
  assert.equal(addr.port, listener.addr.port);
  assert.ok(addr.port > 0);
});

Deno.test("describe(): strings quoted and cut at 80 characters", () => {
  assert.equal(describe("abc"), '"abc"');
  assert.equal(describe(""), '""');
  assert.equal(describe('say "hi"\n'), '"say \\"hi\\"\\n"');
  const eighty = "x".repeat(80);
  assert.equal(describe(eighty), JSON.stringify(eighty));
  assert.equal(describe("y".repeat(81)), `"${"y".repeat(77)}..."`);
});

Deno.test("describe(): other values", () => {
  assert.equal(describe(12n), "12n");
  assert.equal(describe(() => {}), "a function");
  assert.equal(describe(class Foo {}), "a function");
  assert.equal(describe(undefined), "undefined");
  assert.equal(describe(null), "null");
  assert.equal(describe(-0.5), "-0.5");
  assert.equal(describe(true), "true");
  assert.equal(describe(Symbol("s")), "Symbol(s)");
  assert.equal(describe({}), "[object Object]");
  assert.equal(describe([1, 2]), "1,2");
});

Deno.test("describe(): a value that cannot be made a string gives its type", () => {
  assert.equal(describe(Object.create(null)), "object");
  const hostile = {
    toString() {
      throw new Error("no");
    },
  };
  assert.equal(describe(hostile), "object");
});

Deno.test("hostPort(): a peer as every message names it", () => {
  assert.equal(hostPort("127.0.0.1", 80), "127.0.0.1 port 80");
  assert.equal(hostPort("::1", 0), "::1 port 0");
  assert.equal(hostPort("name.test"), "name.test");
});
