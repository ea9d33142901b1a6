/**
 * The command line's pure parsers, without a process: ports, durations,
 * escapes, name servers, hosts, negative values, and the terminal escaper.
 * `cli_test.ts` runs the same rules through real `deno run` processes.
 */

import assert from "node:assert/strict";
import {
  ControlEscaper,
  hostArg,
  integerArg,
  msArg,
  nameServerArg,
  parseCommandArgs,
  portArg,
  timeoutArg,
  unescapeArg,
  UsageError,
} from "../cli/_common.ts";

function usageError(fn: () => unknown, pattern: RegExp): void {
  assert.throws(fn, (error: unknown) => {
    assert.ok(error instanceof UsageError, `expected a UsageError: ${error}`);
    assert.match(error.message, pattern);
    return true;
  });
}

Deno.test("portArg(): 1–65535, and 0 only where binding", () => {
  assert.equal(portArg("80"), 80);
  assert.equal(portArg("65535"), 65535);
  assert.equal(portArg("0", true), 0);
  for (const bad of ["0", "65536", "-1", "abc", "", "8o", "1.5"]) {
    usageError(() => portArg(bad), /invalid port/);
  }
});

Deno.test("integerArg() and msArg(): whole numbers in range, naming the flag", () => {
  assert.equal(integerArg("5", "backlog", 0), 5);
  usageError(() => integerArg("-1", "backlog", 0), /--backlog "-1".*≥ 0/);
  usageError(() => integerArg("0", "concurrency", 1), /--concurrency/);
  usageError(() => integerArg("1e3", "backlog", 0), /expected an integer/);
  assert.equal(msArg("0", "busy"), 0);
  assert.equal(msArg("2147483647", "busy"), 2 ** 31 - 1);
  // A timer past 2^31-1 ms fires at once in the runtime: refused here.
  usageError(() => msArg("2147483648", "busy"), /from 0 to 2147483647/);
});

Deno.test("timeoutArg(): 0 means never", () => {
  assert.equal(timeoutArg("0"), undefined);
  assert.equal(timeoutArg("250"), 250);
  usageError(() => timeoutArg("soon"), /--timeout "soon"/);
});

Deno.test("unescapeArg(): \\r \\n \\t \\\\, and nothing else", () => {
  assert.equal(unescapeArg("GET /\\r\\n\\r\\n", "--send"), "GET /\r\n\r\n");
  assert.equal(unescapeArg("a\\tb\\\\c", "--send"), "a\tb\\c");
  assert.equal(unescapeArg("plain", "--send"), "plain");
  usageError(() => unescapeArg("\\x41", "--send"), /invalid escape "\\x"/);
  usageError(() => unescapeArg("end\\", "--send"), /invalid escape/);
});

Deno.test("nameServerArg(): IP, IP:PORT, [IPv6]:PORT, bare IPv6", () => {
  assert.deepEqual(nameServerArg("127.0.0.1"), {
    ipAddr: "127.0.0.1",
    port: 53,
  });
  assert.deepEqual(nameServerArg("127.0.0.1:5353"), {
    ipAddr: "127.0.0.1",
    port: 5353,
  });
  assert.deepEqual(nameServerArg("[::1]:5353"), { ipAddr: "::1", port: 5353 });
  assert.deepEqual(nameServerArg("::1"), { ipAddr: "::1", port: 53 });
  for (const bad of ["dns.example", "127.0.0.1:", "[::1]:0", "1.2.3.4:x"]) {
    assert.throws(() => nameServerArg(bad), UsageError, bad);
  }
});

Deno.test("hostArg(): HOST:PORT gets a hint to write HOST PORT", () => {
  assert.equal(hostArg("localhost"), "localhost");
  assert.equal(hostArg("::1"), "::1");
  usageError(
    () => hostArg("127.0.0.1:8080"),
    /give the port as its own argument, HOST PORT \(127\.0\.0\.1 8080\)/,
  );
  usageError(() => hostArg("[::1]:80"), /HOST PORT \(\[::1\] 80\)/);
  usageError(() => hostArg("a b"), /invalid host/);
});

Deno.test("parseCommandArgs(): a negative value is the option's value, not an option", () => {
  const options = { port: { type: "string" as const } };
  const parsed = parseCommandArgs(["--port", "-1"], options, 0);
  assert.equal(parsed.values.port, "-1");
  usageError(
    () => parseCommandArgs(["--nope"], options, 0),
    /Unknown option '--nope'/,
  );
  usageError(
    () => parseCommandArgs(["a", "b"], options, 1),
    /unexpected argument "b"/,
  );
  // --help is every command's, and extra arguments do not stop it.
  assert.equal(parseCommandArgs(["--help", "x"], options, 0).values.help, true);
});

Deno.test("ControlEscaper: cat -v for controls, UTF-8 untouched, C1 across chunks", () => {
  const decoder = new TextDecoder();
  const escaper = new ControlEscaper();
  const show = (bytes: number[]) =>
    decoder.decode(escaper.push(new Uint8Array(bytes)));
  assert.equal(show([0x1b, 0x5d, 0x30, 0x07]), "^[]0^G");
  assert.equal(show([0x61, 0x0a, 0x0d, 0x09, 0x7f]), "a\n\r\t^?");
  assert.equal(show([0xc3, 0xa9]), "é");
  // A C1 control (U+009B, CSI) cut between two chunks is still caught.
  assert.equal(show([0x41, 0xc2]), "A");
  assert.equal(show([0x9b]), "M-^[");
  assert.deepEqual(escaper.flush(), new Uint8Array());
});
