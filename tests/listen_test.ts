/**
 * `listen` (issue 12 §1): the CIDR rules as pure functions, `listen()` in
 * process with stand-in stdin and stdout, and the command as a real
 * subprocess against real `nc` and `ncat` clients: a 64 MiB file both
 * ways, exit when the peer closes, half-close at end of stdin, a broker
 * session, keep-open, --max-conns, --allow/--deny, --send-only and
 * --recv-only.
 */

import assert from "node:assert/strict";
import { within } from "./fixtures/deadline.ts";
import { readBytes, readText } from "./fixtures/net.ts";
import {
  CLI,
  DENO,
  missing,
  type Proc,
  start,
  startCli,
} from "./fixtures/process.ts";
import { isAllowed, parseCidr, parseIp } from "../lib/_cidr.ts";
import { InvalidArgumentError, type TimeoutError } from "../lib/errors.ts";
import { connect } from "../lib/connect.ts";
import { type Certs, makeCerts } from "./fixtures/certs.ts";
import {
  listen,
  type ListenEvent,
  type ListenInput,
  type ListenOutput,
} from "../lib/listen.ts";

const encoder = new TextEncoder();
const MIB = 1024 * 1024;
const decoder = new TextDecoder();
/**
 * A line crosses loopback and a process in milliseconds; 10 s leaves a
 * loaded 2-core machine far inside while a hang still fails.
 */
const PROMPT_MS = 10_000;
/**
 * 64 MiB through listen takes about 0.5 s here (nc alone 0.4 s); 60 s
 * passes a loaded machine with 6 test runs and still fails a stall.
 */
const BIG_MS = 60_000;
/**
 * A refusal is a close right after accept: milliseconds. 3 s fails a
 * client left waiting (a dropped SYN is resent only after 1 s, a hang
 * never ends) and passes a loaded machine.
 */
const REFUSAL_MS = 3_000;

// The ranges: pure functions -------------------------------------------------

Deno.test("parseIp(): IPv4 and IPv6 forms, and what is not an address", () => {
  assert.deepEqual(parseIp("10.1.2.3"), new Uint8Array([10, 1, 2, 3]));
  assert.deepEqual(
    parseIp("::1"),
    new Uint8Array([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]),
  );
  assert.deepEqual(
    parseIp("::ffff:127.0.0.1")?.subarray(10),
    new Uint8Array([0xff, 0xff, 127, 0, 0, 1]),
  );
  assert.deepEqual(
    parseIp("2001:db8::")?.subarray(0, 4),
    new Uint8Array([
      0x20,
      0x01,
      0x0d,
      0xb8,
    ]),
  );
  assert.equal(parseIp("1:2:3:4:5:6:7:8")?.[15], 8);
  for (
    const bad of [
      "",
      "1.2.3",
      "1.2.3.256",
      "01.2.3.4",
      "1:2:3:4:5:6:7:8:9",
      "1::2::3",
      "1:2:3:4:5:6:7:8::",
      "12345::",
      "localhost",
      "[::1]",
      "::1%eth0",
    ]
  ) {
    assert.equal(parseIp(bad), undefined, bad);
  }
});

Deno.test("parseCidr(): prefixes, host bits cleared, bad ranges refused", () => {
  assert.equal(parseCidr("10.0.0.0/8").prefix, 8);
  assert.deepEqual(
    parseCidr("10.9.8.7/8").bytes,
    new Uint8Array([10, 0, 0, 0]),
  );
  assert.deepEqual(
    parseCidr("192.168.1.255/23").bytes,
    new Uint8Array([192, 168, 0, 0]),
  );
  assert.equal(parseCidr("127.0.0.1").prefix, 32);
  assert.equal(parseCidr("::1").prefix, 128);
  assert.equal(parseCidr("fe80::/10").prefix, 10);
  assert.equal(parseCidr("0.0.0.0/0").prefix, 0);
  for (
    const bad of [
      "10.0.0.0/33",
      "::/129",
      "10.0.0.0/",
      "10/8",
      "x",
      "1.2.3.4/-1",
    ]
  ) {
    assert.throws(
      () => parseCidr(bad),
      (e: unknown) => e instanceof InvalidArgumentError && e.code === "EINVAL",
      bad,
    );
  }
  assert.throws(() => parseCidr(8), InvalidArgumentError);
});

Deno.test("isAllowed(): allow, deny winning, IPv6, IPv4-mapped clients", () => {
  const rules = (allow: string[], deny: string[] = []) => ({
    allow: allow.map(parseCidr),
    deny: deny.map(parseCidr),
  });
  assert.equal(isAllowed(rules([]), "203.0.113.9"), true);
  assert.equal(isAllowed(rules(["127.0.0.0/8"]), "127.4.5.6"), true);
  assert.equal(isAllowed(rules(["127.0.0.0/8"]), "128.0.0.1"), false);
  assert.equal(isAllowed(rules(["10.0.0.0/8"]), "127.0.0.1"), false);
  assert.equal(isAllowed(rules([], ["127.0.0.1"]), "127.0.0.1"), false);
  assert.equal(isAllowed(rules([], ["127.0.0.1"]), "127.0.0.2"), true);
  assert.equal(
    isAllowed(rules(["127.0.0.0/8"], ["127.0.0.0/24"]), "127.0.0.9"),
    false,
  );
  assert.equal(isAllowed(rules(["::1"]), "::1"), true);
  assert.equal(isAllowed(rules(["::1"]), "127.0.0.1"), false);
  assert.equal(isAllowed(rules(["fe80::/10"]), "fe80::1%2"), true);
  assert.equal(isAllowed(rules(["fe80::/10"]), "fec0::1"), false);
  // 192.168.1.0/25: the boundary inside a byte.
  assert.equal(isAllowed(rules(["192.168.1.0/25"]), "192.168.1.127"), true);
  assert.equal(isAllowed(rules(["192.168.1.0/25"]), "192.168.1.128"), false);
  // A dual-stack listener sees IPv4 clients as ::ffff:a.b.c.d.
  assert.equal(isAllowed(rules(["127.0.0.0/8"]), "::ffff:127.0.0.1"), true);
  assert.equal(isAllowed(rules([], ["127.0.0.1"]), "::ffff:127.0.0.1"), false);
  assert.equal(isAllowed(rules(["127.0.0.0/8"]), "not an address"), false);
});

// listen(): in process, with stand-ins --------------------------------------

/** A stdin stand-in fed by the test; `end()` is end of input. */
class TestInput implements ListenInput {
  #chunks: Uint8Array[] = [];
  #ended = false;
  #wake: (() => void) | undefined;

  push(text: string): void {
    this.#chunks.push(encoder.encode(text));
    this.#wake?.();
  }

  end(): void {
    this.#ended = true;
    this.#wake?.();
  }

  async read(p: Uint8Array): Promise<number | null> {
    while (this.#chunks.length === 0) {
      if (this.#ended) return null;
      await new Promise<void>((resolve) => this.#wake = resolve);
    }
    // deno-lint-ignore no-non-null-assertion -- the length was just checked
    const chunk = this.#chunks.shift()!;
    p.set(chunk);
    return chunk.length;
  }

  isTerminal(): boolean {
    return false;
  }
}

/** A stdout stand-in that keeps the text. */
class TestOutput implements ListenOutput {
  text = "";
  write(p: Uint8Array): Promise<number> {
    this.text += decoder.decode(p);
    return Promise.resolve(p.length);
  }
}

/**
 * A raw client that keeps what it receives (the last MiB of it: a flood
 * must not make each check quadratic) and can wait for text.
 */
class Client implements AsyncDisposable {
  text = "";
  bytes = 0;
  readonly ended: Promise<void>;
  #waiters = new Set<() => void>();
  constructor(readonly conn: Deno.TcpConn) {
    this.ended = (async () => {
      const buffer = new Uint8Array(65536);
      const textDecoder = new TextDecoder();
      try {
        while (true) {
          const n = await conn.read(buffer);
          if (n === null) break;
          this.bytes += n;
          this.text += textDecoder.decode(buffer.subarray(0, n), {
            stream: true,
          });
          if (this.text.length > 2 * MIB) this.text = this.text.slice(-MIB);
          for (const wake of this.#waiters) wake();
        }
      } catch {
        // Reset or closed by the test: ended all the same.
      }
      for (const wake of this.#waiters) wake();
    })();
  }

  static async open(port: number): Promise<Client> {
    return new Client(
      await within(
        Deno.connect({ hostname: "127.0.0.1", port }),
        PROMPT_MS,
        "connect",
      ),
    );
  }

  async send(text: string): Promise<void> {
    await this.conn.write(encoder.encode(text));
  }

  waitFor(text: string): Promise<void> {
    return within(
      new Promise<void>((resolve) => {
        const check = () => {
          if (this.text.includes(text)) {
            this.#waiters.delete(check);
            resolve();
          }
        };
        this.#waiters.add(check);
        check();
      }),
      PROMPT_MS,
      `${JSON.stringify(text)} (got ${this.bytes} bytes, ending ${
        JSON.stringify(this.text.slice(-40))
      })`,
    );
  }

  async [Symbol.asyncDispose](): Promise<void> {
    try {
      this.conn.close();
    } catch {
      // Closed already.
    }
    await this.ended;
  }
}

/** The events, and a way to wait for one. */
function recorder(): {
  events: ListenEvent[];
  onEvent: (event: ListenEvent) => void;
  next: (name: ListenEvent["event"], count?: number) => Promise<void>;
} {
  const events: ListenEvent[] = [];
  const waiters = new Set<() => void>();
  return {
    events,
    onEvent: (event) => {
      events.push(event);
      for (const wake of waiters) wake();
    },
    next: (name, count = 1) =>
      within(
        new Promise<void>((resolve) => {
          const check = () => {
            if (events.filter((e) => e.event === name).length >= count) {
              waiters.delete(check);
              resolve();
            }
          };
          waiters.add(check);
          check();
        }),
        PROMPT_MS,
        `${count} "${name}" events`,
      ),
  };
}

Deno.test("listen(): checks its options with EINVAL before binding", () => {
  const bad: unknown[] = [
    { keepOpen: "yes" },
    { maxConns: 2 },
    { keepOpen: true, maxConns: 0 },
    { sendOnly: true, recvOnly: true },
    { allow: "127.0.0.1" },
    { allow: ["127.0.0.1/40"] },
    { deny: ["localhost"] },
    { stdin: {} },
    { stdout: 1 },
    { idleTimeout: -1 },
    { queueBytes: 0 },
    { onEvent: 1 },
    { hostname: "example.com" },
    5,
  ];
  for (const options of bad) {
    assert.throws(
      () => listen(options as never),
      (e: unknown) => e instanceof InvalidArgumentError && e.code === "EINVAL",
      JSON.stringify(options),
    );
  }
});

Deno.test("listen(): one client, both ways; ends when it closes", async () => {
  const stdin = new TestInput();
  const stdout = new TestOutput();
  const { onEvent, events } = recorder();
  const listener = listen({ hostname: "127.0.0.1", stdin, stdout, onEvent });
  await using client = await Client.open(listener.addr.port);
  stdin.push("to the client\n");
  await client.waitFor("to the client\n");
  await client.send("to stdout\n");
  // End of stdin half-closes: the client reads end of stream, and can
  // still send.
  stdin.end();
  await within(client.ended, PROMPT_MS, "end of stream at the client");
  await client.send("after the half-close\n");
  await client.conn.closeWrite();
  const result = await within(listener.finished, PROMPT_MS, "the end");
  assert.equal(stdout.text, "to stdout\nafter the half-close\n");
  assert.equal(result.sent, 14);
  assert.equal(result.received, stdout.text.length);
  assert.equal(result.stats.served, 1);
  assert.deepEqual(events.map((e) => e.event), ["connected", "closed"]);
});

Deno.test("listen(): a second client is refused at once while one is served", async () => {
  const stdin = new TestInput();
  const { onEvent, next } = recorder();
  const listener = listen({
    hostname: "127.0.0.1",
    stdin,
    stdout: new TestOutput(),
    onEvent,
  });
  try {
    await using first = await Client.open(listener.addr.port);
    await next("connected");
    await using second = await Client.open(listener.addr.port);
    await within(second.ended, REFUSAL_MS, "the refusal");
    await next("refused");
    assert.equal(listener.stats.refused, 1);
    stdin.push("still served\n");
    await first.waitFor("still served");
  } finally {
    stdin.end();
    await within(listener.shutdown(), PROMPT_MS, "the shutdown");
  }
});

Deno.test("listen(): keepOpen: stdin to all; one leaving ends nothing", async () => {
  const stdin = new TestInput();
  const stdout = new TestOutput();
  const { onEvent, next } = recorder();
  const listener = listen({
    hostname: "127.0.0.1",
    keepOpen: true,
    stdin,
    stdout,
    onEvent,
  });
  try {
    await using a = await Client.open(listener.addr.port);
    await using b = await Client.open(listener.addr.port);
    await next("connected", 2);
    stdin.push("one\n");
    await Promise.all([a.waitFor("one\n"), b.waitFor("one\n")]);
    a.conn.close();
    await next("closed");
    stdin.push("two\n");
    await b.waitFor("two\n");
    await b.send("from b\n");
    await using c = await Client.open(listener.addr.port);
    await next("connected", 3);
    stdin.push("three\n");
    await c.waitFor("three\n");
    assert.equal(b.text, "one\ntwo\nthree\n");
    assert.equal(c.text, "three\n");
    // Without broker, clients do not hear each other.
    assert.equal(c.text.includes("from b"), false);
  } finally {
    stdin.end();
    const result = await within(listener.shutdown(), PROMPT_MS, "shutdown");
    assert.equal(stdout.text, "from b\n");
    assert.equal(result.stats.accepted, 3);
  }
});

Deno.test("listen(): broker: a client that does not read is dropped, the others go on", async () => {
  const stdin = new TestInput();
  const { onEvent, next, events } = recorder();
  const listener = listen({
    hostname: "127.0.0.1",
    broker: true,
    queueBytes: 256 * 1024,
    // A reader in this busy process may lag a moment on a loaded machine;
    // the stalled client is dropped all the same, 3 s later.
    stallTimeout: 3000,
    stdin,
    stdout: { write: (p) => Promise.resolve(p.length) },
    onEvent,
  });
  try {
    // It never reads: its kernel buffers fill, then its queue.
    const stalled = await within(
      Deno.connect({ hostname: "127.0.0.1", port: listener.addr.port }),
      PROMPT_MS,
      "connect",
    );
    await using talker = await Client.open(listener.addr.port);
    await using listener2 = await Client.open(listener.addr.port);
    await next("connected", 3);
    const line = "x".repeat(1023) + "\n";
    // 64 MiB: far past the stalled client's kernel buffers and queue.
    const sending = (async () => {
      for (let i = 0; i < 64 * 1024; i += 64) {
        await talker.send(line.repeat(64));
        if (events.some((e) => e.event === "dropped")) break;
      }
      await talker.send("end of flood\n");
    })();
    await next("dropped");
    await within(sending, BIG_MS, "the flood");
    assert.deepEqual(
      events.filter((e) => e.event === "dropped").map((e) => e.client.id),
      [1],
      "only the client that does not read is dropped",
    );
    await listener2.waitFor("end of flood\n");
    const dropped = events.filter((e) => e.event === "dropped");
    assert.deepEqual(dropped.map((e) => e.client.id), [1]);
    assert.equal(listener.stats.dropped, 1);
    stalled.close();
  } finally {
    stdin.end();
    await within(listener.shutdown(), PROMPT_MS, "shutdown");
  }
});

Deno.test("listen(): a denied client is refused before it takes a slot, counted apart", async () => {
  const { onEvent, next, events } = recorder();
  const stdin = new TestInput();
  // "::" takes IPv6 and IPv4 clients: ::1 is allowed, 127.0.0.1 denied.
  const listener = listen({
    hostname: "::",
    keepOpen: true,
    maxConns: 1,
    deny: ["127.0.0.0/8"],
    stdin,
    stdout: new TestOutput(),
    onEvent,
  });
  try {
    const allowed = new Client(
      await within(
        Deno.connect({ hostname: "::1", port: listener.addr.port }),
        PROMPT_MS,
        "connect on ::1",
      ),
    );
    await using _allowed = allowed;
    await next("connected");
    // The only slot is taken: a denied client is still "denied" (the rule
    // is consulted first), never "refused" past maxConns.
    await using denied = await Client.open(listener.addr.port);
    await within(denied.ended, REFUSAL_MS, "the refusal");
    await next("denied");
    assert.deepEqual(events.map((e) => e.event), ["connected", "denied"]);
    const { accepted, served, failed, refused, denied: n, active } =
      listener.stats;
    assert.deepEqual(
      { accepted, served, failed, refused, denied: n, active },
      { accepted: 2, served: 0, failed: 0, refused: 0, denied: 1, active: 1 },
    );
  } finally {
    stdin.end();
    await within(listener.shutdown(), PROMPT_MS, "shutdown");
  }
});

// The command, against nc and ncat -------------------------------------------

/** Starts `listen` on 127.0.0.1, port 0, and reads its port from stderr. */
async function startListen(
  args: string[],
  options: { stdin?: boolean } = {},
): Promise<{ proc: Proc; port: number }> {
  const proc = startCli(["listen", "--hostname", "127.0.0.1", ...args], {
    stdin: options.stdin ?? true,
  });
  return { proc, port: await portOf(proc) };
}

async function portOf(proc: Proc): Promise<number> {
  await proc.waitForStderr(/Listening on 127\.0\.0\.1:\d+/, PROMPT_MS);
  return Number(/Listening on 127\.0\.0\.1:(\d+)/.exec(proc.stderr)?.[1]);
}

async function sha256(path: string): Promise<string> {
  return await sha256Of(await Deno.readFile(path));
}

async function sha256Of(bytes: Uint8Array): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", new Uint8Array(bytes));
  return Array.from(new Uint8Array(digest), (b) => b.toString(16)).join(":");
}

/** `listen` with its stdin and stdout on files, through a shell, as a user types it. */
function listenWithFiles(input: string, output: string): Proc {
  return start("sh", [
    "-c",
    'exec "$0" run -N "$1" listen --hostname 127.0.0.1 < "$2" > "$3"',
    DENO,
    CLI,
    input,
    output,
  ]);
}

/**
 * `nc` with its stdin and stdout on files, killed on dispose if it still
 * runs (a deadline that fired must not leave it behind).
 */
function ncWithFiles(
  flags: string,
  port: number,
  input: string,
  output: string,
): { status: Promise<Deno.CommandStatus> } & AsyncDisposable {
  const child = new Deno.Command("sh", {
    args: [
      "-c",
      `exec nc ${flags} 127.0.0.1 "$0" < "$1" > "$2"`,
      String(port),
      input,
      output,
    ],
    stdout: "null",
    stderr: "inherit",
  }).spawn();
  return {
    status: child.status,
    async [Symbol.asyncDispose]() {
      try {
        child.kill("SIGKILL");
      } catch {
        // It has exited already.
      }
      await child.status;
    },
  };
}

const NC = "listen: 64 MiB both ways with nc, byte-exact";
Deno.test({
  name: NC,
  ignore: missing("nc", NC),
  async fn(t) {
    const dir = await Deno.makeTempDir({ prefix: "listen_test" });
    const file = `${dir}/random`;
    try {
      const data = new Uint8Array(64 * 1024 * 1024);
      for (let i = 0; i < data.length; i += 65536) {
        crypto.getRandomValues(data.subarray(i, i + 65536));
      }
      await Deno.writeFile(file, data);
      const expected = await sha256(file);

      await t.step("nc -N → listen > file", async () => {
        await using proc = listenWithFiles("/dev/null", `${dir}/received`);
        const port = await portOf(proc);
        await using spawned = ncWithFiles("-N", port, file, "/dev/null");
        const nc = await within(spawned.status, BIG_MS, "nc to send");
        assert.equal(nc.code, 0);
        const exit = await proc.exit(BIG_MS);
        assert.equal(exit.code, 0, proc.report());
        assert.equal(await sha256(`${dir}/received`), expected);
      });

      await t.step("listen < file → nc -d", async () => {
        await using proc = listenWithFiles(file, "/dev/null");
        const port = await portOf(proc);
        await using spawned = ncWithFiles(
          "-d",
          port,
          "/dev/null",
          `${dir}/sent`,
        );
        const nc = await within(spawned.status, BIG_MS, "nc to receive");
        assert.equal(nc.code, 0);
        const exit = await proc.exit(BIG_MS);
        assert.equal(exit.code, 0, proc.report());
        assert.equal(await sha256(`${dir}/sent`), expected);
      });
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

const EXITS =
  "listen: exits 0 when the peer closes, stdin still open (ncat's complaint)";
Deno.test({
  name: EXITS,
  ignore: missing("ncat", EXITS),
  async fn() {
    // Stdin is a pipe the test never closes: only the peer's close ends it.
    const { proc, port } = await startListen([]);
    await using _ = proc;
    await using ncat = start("ncat", ["127.0.0.1", String(port)], {
      stdin: true,
    });
    await ncat.write("hello\n");
    // ncat half-closes at the end of its stdin, then waits for our close.
    await ncat.closeStdin();
    const exit = await proc.exit(PROMPT_MS);
    assert.equal(exit.code, 0, proc.report());
    assert.equal(proc.stdout, "hello\n");
    assert.equal((await ncat.exit(PROMPT_MS)).code, 0, ncat.report());
  },
});

Deno.test("listen: the peer's bytes reach stdout and the exit waits for them", async () => {
  const { proc, port } = await startListen([]);
  await using _ = proc;
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  const payload = "a line\n".repeat(10_000);
  await conn.write(encoder.encode(payload));
  conn.close();
  const exit = await proc.exit(PROMPT_MS);
  assert.equal(exit.code, 0, proc.report());
  assert.equal(proc.stdout, payload);
});

Deno.test("listen: end of stdin half-closes; the peer can still send", async () => {
  const { proc, port } = await startListen([]);
  await using _ = proc;
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  await proc.write("from stdin\n");
  await proc.closeStdin();
  // The client reads to end of stream while its own side is open.
  assert.equal(
    await within(readText(conn), PROMPT_MS, "end of stream"),
    "from stdin\n",
  );
  await conn.write(encoder.encode("reply after the half-close\n"));
  conn.close();
  const exit = await proc.exit(PROMPT_MS);
  assert.equal(exit.code, 0, proc.report());
  assert.equal(proc.stdout, "reply after the half-close\n");
});

const BROKER =
  "listen --broker: three ncat clients hear each other; one leaving ends nothing";
Deno.test({
  name: BROKER,
  ignore: missing("ncat", BROKER),
  async fn() {
    const { proc, port } = await startListen(["--broker"]);
    await using _ = proc;
    const joined = (n: number) =>
      proc.waitForStderr(
        new RegExp(`(Connection from 127\\.0\\.0\\.1:\\d+\\.\\n[^]*){${n}}`),
        PROMPT_MS,
      );
    await using a = start("ncat", ["127.0.0.1", String(port)], { stdin: true });
    await joined(1);
    await using b = start("ncat", ["127.0.0.1", String(port)], { stdin: true });
    await joined(2);
    await using c = start("ncat", ["127.0.0.1", String(port)], { stdin: true });
    await joined(3);
    await a.write("hello from a\n");
    await b.waitForLine(/^hello from a$/, PROMPT_MS);
    await c.waitForLine(/^hello from a$/, PROMPT_MS);
    await b.write("hello from b\n");
    await a.waitForLine(/^hello from b$/, PROMPT_MS);
    await c.waitForLine(/^hello from b$/, PROMPT_MS);
    await proc.write("from the console\n");
    for (const client of [a, b, c]) {
      await client.waitForLine(/^from the console$/, PROMPT_MS);
    }
    // a leaves abruptly; the room goes on.
    a.kill("SIGKILL");
    await a.exit(PROMPT_MS);
    await proc.waitForStderr(/closed\./, PROMPT_MS);
    await c.write("still here\n");
    await b.waitForLine(/^still here$/, PROMPT_MS);
    // b leaves cleanly (end of its stdin); c still hears the console.
    await b.closeStdin();
    await proc.waitForStderr(/closed\.[^]*closed\./, PROMPT_MS);
    await proc.write("last words\n");
    await c.waitForLine(/^last words$/, PROMPT_MS);
    // A broker relays to the others, never back to the sender: c heard
    // every line but its own, in order (one queue per client).
    assert.equal(
      c.stdout,
      "hello from a\nhello from b\nfrom the console\nlast words\n",
    );
    // The console saw every client's line.
    assert.match(proc.stdout, /hello from a\nhello from b\nstill here\n/);
    proc.kill("SIGTERM");
    const exit = await proc.exit(PROMPT_MS);
    assert.equal(exit.code, 0, proc.report());
    assert.match(
      proc.stderr,
      /listen stopped: accepted 3, served 3, failed 0, refused 0, denied 0, dropped 0/,
    );
  },
});

Deno.test("listen -k: a second client after the first leaves", async () => {
  const { proc, port } = await startListen(["-k"]);
  await using _ = proc;
  for (const n of [1, 2]) {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port });
    await conn.write(encoder.encode(`client ${n}\n`));
    await proc.waitForLine(new RegExp(`^client ${n}$`), PROMPT_MS);
    conn.close();
  }
  proc.kill("SIGTERM");
  assert.equal((await proc.exit(PROMPT_MS)).code, 0, proc.report());
  assert.equal(proc.stdout, "client 1\nclient 2\n");
});

Deno.test("listen --max-conns: the client past N is refused at once", async () => {
  const { proc, port } = await startListen(["-k", "--max-conns", "1"]);
  await using _ = proc;
  const first = await Deno.connect({ hostname: "127.0.0.1", port });
  await proc.waitForStderr(/Connection from/, PROMPT_MS);
  const second = await Deno.connect({ hostname: "127.0.0.1", port });
  // Closed at once: end of stream, no bytes.
  const got = await within(readBytes(second), REFUSAL_MS, "the refusal");
  second.close();
  assert.equal(got.length, 0);
  await proc.waitForStderr(
    /Refused connection from 127\.0\.0\.1:\d+: too many connections \(max 1\)/,
    PROMPT_MS,
  );
  first.close();
  proc.kill("SIGTERM");
  assert.equal((await proc.exit(PROMPT_MS)).code, 0);
  assert.match(proc.stderr, /refused 1/);
});

Deno.test("listen --allow/--deny: clients outside refused at once, counted", async (t) => {
  for (
    const [args, verdict] of [
      [["--allow", "10.0.0.0/8", "--allow", "::1"], "denied"],
      [["--deny", "127.0.0.0/8"], "denied"],
      [["--allow", "127.0.0.0/8,::1"], "served"],
    ] as const
  ) {
    await t.step(args.join(" "), async () => {
      const { proc, port } = await startListen(["-k", ...args]);
      await using _ = proc;
      const conn = await Deno.connect({ hostname: "127.0.0.1", port });
      if (verdict === "denied") {
        const got = await within(readBytes(conn), REFUSAL_MS, "the refusal");
        assert.equal(got.length, 0);
        await proc.waitForStderr(/Denied connection from 127\.0\.0\.1/);
      } else {
        await conn.write(encoder.encode("allowed\n"));
        await proc.waitForLine(/^allowed$/, PROMPT_MS);
      }
      conn.close();
      proc.kill("SIGTERM");
      assert.equal((await proc.exit(PROMPT_MS)).code, 0);
      assert.match(
        proc.stderr,
        verdict === "denied"
          ? /accepted 1, served 0, failed 0, refused 0, denied 1/
          : /served 1, failed 0, refused 0, denied 0/,
      );
    });
  }
});

Deno.test("listen --send-only / --recv-only", async (t) => {
  await t.step("--send-only: the client's bytes are not printed", async () => {
    const { proc, port } = await startListen(["--send-only"]);
    await using _ = proc;
    const conn = await Deno.connect({ hostname: "127.0.0.1", port });
    await proc.write("to the client\n");
    await proc.closeStdin();
    await conn.write(encoder.encode("ignored\n"));
    assert.equal(
      await within(readText(conn), PROMPT_MS, "the bytes"),
      "to the client\n",
    );
    conn.close();
    assert.equal((await proc.exit(PROMPT_MS)).code, 0, proc.report());
    assert.equal(proc.stdout, "");
  });
  await t.step("--recv-only: stdin is not sent", async () => {
    const { proc, port } = await startListen(["--recv-only"]);
    await using _ = proc;
    const conn = await Deno.connect({ hostname: "127.0.0.1", port });
    await proc.write("not sent\n");
    await proc.closeStdin();
    await conn.write(encoder.encode("printed\n"));
    await proc.waitForLine(/^printed$/, PROMPT_MS);
    await conn.closeWrite();
    // Nothing came, and the close came only after ours.
    assert.equal((await within(readBytes(conn), PROMPT_MS, "eof")).length, 0);
    conn.close();
    assert.equal((await proc.exit(PROMPT_MS)).code, 0, proc.report());
  });
});

Deno.test("listen --json: data events with the exact bytes", async () => {
  await using proc = startCli([
    "listen",
    "--hostname",
    "127.0.0.1",
    "--json",
  ]);
  const [line] = await proc.waitForLine(/^.*"event":"listening".*$/, PROMPT_MS);
  const { port } = JSON.parse(line);
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  await conn.write(new Uint8Array([0x68, 0x69, 0x00, 0xff]));
  conn.close();
  assert.equal((await proc.exit(PROMPT_MS)).code, 0, proc.report());
  const events = proc.stdout.trim().split("\n").map((l) => JSON.parse(l));
  assert.deepEqual(events.map((e) => e.event), [
    "listening",
    "connected",
    "data",
    "closed",
  ]);
  assert.equal(events[2].base64, btoa("hi\x00\xff"));
  assert.equal(events[3].received, 4);
});

Deno.test("listen: usage errors exit 2 with one line", async () => {
  for (
    const args of [
      ["--max-conns", "2"],
      ["--send-only", "--recv-only"],
      ["-v", "-q"],
      ["--allow", "10.0.0.0/33"],
      ["--port", "70000"],
      ["9000", "--port", "9001"],
      ["--allow"],
    ]
  ) {
    const proc = startCli(["listen", ...args]);
    const exit = await proc.exit(PROMPT_MS);
    assert.equal(exit.code, 2, `${args.join(" ")}\n${proc.report()}`);
    assert.equal(proc.stderr.trim().split("\n").length, 1, proc.stderr);
  }
});

// TLS: listen({ tls }) and listen --tls, against ncat --ssl ------------------

/** `listen --tls` with the test's certificate, stdin held open by the test. */
async function startTlsListen(
  certs: Certs,
  args: string[],
): Promise<{ proc: Proc; port: number }> {
  const proc = start(DENO, [
    "run",
    "-N",
    "-R",
    CLI,
    "listen",
    "--hostname",
    "127.0.0.1",
    "--tls",
    "--cert",
    `${certs.dir}/srv.pem`,
    "--key",
    `${certs.dir}/srv.key`,
    ...args,
  ], { stdin: true, binary: true });
  return { proc, port: await portOf(proc) };
}

/** `ncat --ssl --ssl-verify` trusting `ca`, its stdin on a file. */
function ncatSsl(
  ca: string,
  port: number,
  input: string,
): Promise<Deno.CommandStatus> {
  // Not --send-only: that ncat never reads, so the session tickets a TLS
  // 1.3 server sends stay unread and its close is a reset, which can
  // discard the end of the upload still in our receive buffer.
  return new Deno.Command("sh", {
    args: [
      "-c",
      'exec ncat --ssl --ssl-verify --ssl-trustfile "$0" localhost "$1" < "$2"',
      ca,
      String(port),
      input,
    ],
    stdout: "null",
    stderr: "null",
  }).output();
}

const TLS_NCAT =
  "listen --tls: ncat --ssl --ssl-verify sends 8 MiB byte-exact; a wrong CA is counted and -k goes on";
Deno.test({
  name: TLS_NCAT,
  ignore: missing("openssl", TLS_NCAT) || missing("ncat", TLS_NCAT),
  async fn(t) {
    const certs = await makeCerts();
    const file = `${certs.dir}/random`;
    try {
      const data = new Uint8Array(8 * MIB);
      for (let i = 0; i < data.length; i += 65536) {
        crypto.getRandomValues(data.subarray(i, i + 65536));
      }
      await Deno.writeFile(file, data);
      const expected = await sha256(file);

      await t.step("ncat --ssl < file → listen --tls > stdout", async () => {
        // Stdin stays open: only the client's end ends listen, which
        // takes ncat's close without close_notify as that end.
        const { proc, port } = await startTlsListen(certs, []);
        await using _ = proc;
        const ncat = await within(
          ncatSsl(`${certs.dir}/ca.pem`, port, file),
          BIG_MS,
          "ncat to send",
        );
        assert.equal(ncat.code, 0);
        const exit = await proc.exit(BIG_MS);
        assert.equal(exit.code, 0, proc.report());
        assert.equal(proc.stdoutBytes.length, data.length);
        assert.equal(await sha256Of(proc.stdoutBytes), expected);
      });

      await t.step(
        "-k: a client with another CA fails, the next is served",
        async () => {
          const { proc, port } = await startTlsListen(certs, ["-k"]);
          await using _ = proc;
          const refused = await within(
            ncatSsl(`${certs.dir}/ca2.pem`, port, file),
            PROMPT_MS,
            "ncat with the wrong CA",
          );
          assert.notEqual(refused.code, 0);
          await proc.waitForStderr(
            /Failed connection from 127\.0\.0\.1:\d+: TLS handshake/,
            PROMPT_MS,
          );
          const ok = await within(
            ncatSsl(`${certs.dir}/ca.pem`, port, file),
            BIG_MS,
            "ncat to send",
          );
          assert.equal(ok.code, 0);
          await proc.waitForStderr(/Connection from 127\.0\.0\.1:\d+ closed/);
          proc.kill("SIGTERM");
          assert.equal((await proc.exit(PROMPT_MS)).code, 0, proc.report());
          assert.equal(await sha256Of(proc.stdoutBytes), expected);
          assert.match(
            proc.stderr,
            /accepted 2, served 1, failed 1, refused 0, denied 0/,
          );
        },
      );
    } finally {
      await Deno.remove(certs.dir, { recursive: true });
    }
  },
});

const TLS_MODULE = "listen({ tls }): a TLS client piped; a stalled one failed";
Deno.test({
  name: TLS_MODULE,
  ignore: missing("openssl", TLS_MODULE),
  async fn() {
    const certs = await makeCerts();
    const { onEvent, next, events } = recorder();
    const stdin = new TestInput();
    const stdout = new TestOutput();
    const listener = listen({
      hostname: "127.0.0.1",
      keepOpen: true,
      tls: { cert: certs.cert, key: certs.key, handshakeTimeout: 200 },
      stdin,
      stdout,
      onEvent,
    });
    try {
      // A plain client never starts its handshake: failed at the deadline.
      await using _stalled = await Client.open(listener.addr.port);
      // Its socket is not closed then: Deno 2.9's TLS stream keeps the
      // TCP socket while the handshake waits for the ClientHello, even
      // after close() (the handshake rejects as Interrupted); it goes when
      // the client closes. Only the count and the freed slot are checked.
      await next("failed");
      const failed = events.find((e) => e.event === "failed");
      assert.equal(
        failed?.event === "failed" && (failed.error as TimeoutError).code,
        "ETIMEDOUT",
      );
      const conn = await within(
        connect("localhost", listener.addr.port, {
          tls: { caCerts: [certs.ca] },
        }),
        PROMPT_MS,
        "the TLS client",
      );
      await conn.sendAll("over TLS\n");
      conn.close();
      await next("closed");
      assert.equal(stdout.text, "over TLS\n");
      const { accepted, served, failed: failures } = listener.stats;
      assert.deepEqual({ accepted, served, failures }, {
        accepted: 2,
        served: 1,
        failures: 1,
      });
    } finally {
      stdin.end();
      await within(listener.shutdown(), PROMPT_MS, "shutdown");
      await Deno.remove(certs.dir, { recursive: true });
    }
  },
});
