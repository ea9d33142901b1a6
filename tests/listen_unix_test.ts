/**
 * `listen` on a Unix socket (issue 12 §1 and §3): `listen({ path })` in
 * process and `cli.ts listen --unix PATH` as a subprocess, against real
 * `socat UNIX-CONNECT` clients and the module's own `connect({ path })`:
 * bytes both ways, keep-open, a broker, max-conns, idle timeout,
 * send-only/recv-only, the stale socket file, an existing file never
 * removed, the usage errors, and the file gone once listen ends.
 *
 * @module
 */

import assert from "node:assert/strict";
import {
  AddressInUseError,
  connect,
  type Connection,
  InvalidArgumentError,
  listen,
  type ListenEvent,
  type ListenInput,
  type ListenOutput,
  type UnixAddress,
} from "../mod.ts";
import { concat } from "../lib/_bytes.ts";
import { within } from "./fixtures/deadline.ts";
import { sameBytes } from "./fixtures/net.ts";
import {
  CLI,
  DENO,
  missing,
  type Proc,
  run,
  start,
} from "./fixtures/process.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const MIB = 1024 * 1024;
/** Past the pipe's 1 MiB handoff, so the CLI's fast path (workers) runs. */
const BIG = 8 * MIB;
/**
 * A line crosses a socket and a process in milliseconds; 10 s leaves a
 * loaded 2-core machine far inside while a hang still fails.
 */
const PROMPT_MS = 10_000;
/**
 * 8 MiB through listen and socat takes about 0.1 s here (a process start
 * included, 0.5 s); 30 s passes a machine with six test runs at once and
 * still fails a stall.
 */
const BIG_MS = 30_000;
/** Deno's permissions for a Unix socket (its help says so). */
const FLAGS = ["run", "-R", "-W", "-N", CLI];

/** A fresh directory for one test's sockets, removed at the end. */
async function scratch(): Promise<AsyncDisposable & { path: string }> {
  const path = await Deno.makeTempDir({ prefix: "listen_unix_test" });
  const remove = () => Deno.remove(path, { recursive: true });
  return { path, [Symbol.asyncDispose]: remove };
}

/** Whether nothing is at `path` (listen removed its socket file). */
async function gone(path: string): Promise<boolean> {
  try {
    await Deno.lstat(path);
    return false;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return true;
    throw error;
  }
}

/** `n` random bytes (getRandomValues takes 64 KiB at a time). */
function randomBytes(n: number): Uint8Array {
  const data = new Uint8Array(n);
  for (let i = 0; i < n; i += 65536) {
    crypto.getRandomValues(data.subarray(i, Math.min(n, i + 65536)));
  }
  return data;
}

/** A stdin stand-in: `data` in 64 KiB reads, then end of input. */
function inputOf(data: Uint8Array): ListenInput {
  let at = 0;
  return {
    read(p: Uint8Array): Promise<number | null> {
      if (at === data.length) return Promise.resolve(null);
      const n = Math.min(p.length, 65536, data.length - at);
      p.set(data.subarray(at, at + n));
      at += n;
      return Promise.resolve(n);
    },
    isTerminal: () => false,
  };
}

/** A stdout stand-in that keeps the bytes, and can wait for text. */
class Collect implements ListenOutput {
  readonly chunks: Uint8Array[] = [];
  readonly #waiters = new Set<() => void>();
  write(p: Uint8Array): Promise<number> {
    this.chunks.push(p.slice());
    for (const wake of this.#waiters) wake();
    return Promise.resolve(p.length);
  }
  get bytes(): Uint8Array {
    return concat(this.chunks);
  }
  get text(): string {
    return decoder.decode(this.bytes);
  }
  waitFor(text: string): Promise<void> {
    const seen = new Promise<void>((resolve) => {
      const check = () => {
        if (!this.text.includes(text)) return;
        this.#waiters.delete(check);
        resolve();
      };
      this.#waiters.add(check);
      check();
    });
    return within(seen, PROMPT_MS, `${JSON.stringify(text)} on stdout`);
  }
}

/** The events of a listener, and a way to wait for them. */
function recorder(): {
  events: ListenEvent<UnixAddress>[];
  onEvent: (event: ListenEvent<UnixAddress>) => void;
  next: (name: ListenEvent["event"], count?: number) => Promise<void>;
} {
  const events: ListenEvent<UnixAddress>[] = [];
  const waiters = new Set<() => void>();
  const next = (name: ListenEvent["event"], count = 1) => {
    const seen = new Promise<void>((resolve) => {
      const check = () => {
        if (events.filter((e) => e.event === name).length < count) return;
        waiters.delete(check);
        resolve();
      };
      waiters.add(check);
      check();
    });
    return within(seen, PROMPT_MS, `${count} "${name}" events`);
  };
  const onEvent = (event: ListenEvent<UnixAddress>) => {
    events.push(event);
    for (const wake of waiters) wake();
  };
  return { events, onEvent, next };
}

/** Reads a connection until `text` has come; returns all read. */
function readUntil(
  conn: Connection<UnixAddress>,
  text: string,
): Promise<string> {
  const reading = (async () => {
    let got = "";
    while (!got.includes(text)) {
      const chunk = await conn.recv();
      if (chunk === null) throw new Error(`end of stream, got ${got}`);
      got += decoder.decode(chunk);
    }
    return got;
  })();
  return within(reading, PROMPT_MS, JSON.stringify(text));
}

/** `listen --unix PATH`, its stdin held open by the test. */
async function startListen(path: string, args: string[] = []): Promise<Proc> {
  const proc = start(DENO, [...FLAGS, "listen", "--unix", path, ...args], {
    stdin: true,
  });
  await listening(proc, path);
  return proc;
}

async function listening(proc: Proc, path: string): Promise<void> {
  await proc.waitForStderr(
    new RegExp(`^Listening on ${escape(path)}$`, "m"),
    PROMPT_MS,
  );
}

function escape(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

/** A raw Deno client of the socket. */
function dial(path: string): Promise<Deno.UnixConn> {
  return within(
    Deno.connect({ transport: "unix", path }),
    PROMPT_MS,
    "connect",
  );
}

/** A socat client of the socket, its stdin held open by the test. */
function socat(path: string): Proc {
  return start("socat", ["-", `UNIX-CONNECT:${path}`], { stdin: true });
}

// listen({ path }): the module ----------------------------------------------

Deno.test("listen({ path }): hostname, port, allow, deny, tls and bad paths are EINVAL; no file is made", async () => {
  await using dir = await scratch();
  const path = `${dir.path}/x.sock`;
  const bad: [Record<string, unknown>, RegExp][] = [
    [{ path, hostname: "127.0.0.1" }, /invalid hostname .*replaces/],
    [{ path, port: 0 }, /invalid port 0: .*replaces/],
    [{ path, allow: ["127.0.0.1"] }, /invalid allow .*no address/],
    [{ path, deny: ["::1"] }, /invalid deny .*no address/],
    [{ path, tls: { cert: "", key: "" } }, /invalid tls .*TCP only/],
    [{ path: "" }, /invalid path/],
    [{ path: "a\0b" }, /invalid path/],
    [{ path: `${dir.path}/${"x".repeat(120)}` }, /past the 107/],
    [{ path, keepOpen: "yes" }, /invalid keepOpen/],
    [{ path, maxConns: 2 }, /needs keepOpen/],
  ];
  for (const [options, reason] of bad) {
    assert.throws(
      () => listen(options as never),
      (e: unknown) =>
        e instanceof InvalidArgumentError && e.code === "EINVAL" &&
        reason.test(e.message),
      JSON.stringify(options),
    );
  }
  assert.deepEqual(await Array.fromAsync(Deno.readDir(dir.path)), []);
});

Deno.test("listen({ path }): an existing file is EADDRINUSE and stays", async () => {
  await using dir = await scratch();
  const path = `${dir.path}/taken`;
  await Deno.writeTextFile(path, "keep me");
  assert.throws(
    () => listen({ path }),
    (e: unknown) => e instanceof AddressInUseError && e.code === "EADDRINUSE",
  );
  assert.equal(await Deno.readTextFile(path), "keep me");
});

const MODULE_SOCAT = "listen({ path }): socat both ways, byte-exact";
Deno.test({
  name: MODULE_SOCAT,
  ignore: missing("socat", MODULE_SOCAT),
  async fn(t) {
    await using dir = await scratch();
    const data = randomBytes(BIG);
    const file = `${dir.path}/random`;
    await Deno.writeFile(file, data);

    await t.step(
      "socat's stdin → listen's stdout; the file is gone after",
      async () => {
        const path = `${dir.path}/in.sock`;
        const stdout = new Collect();
        const { events, onEvent } = recorder();
        const listener = listen({
          path,
          stdin: inputOf(new Uint8Array()),
          stdout,
          onEvent,
        });
        assert.deepEqual(listener.addr, { transport: "unix", path });
        assert.ok((await Deno.lstat(path)).isSocket);
        await using client = start("sh", [
          "-c",
          'exec socat -u - UNIX-CONNECT:"$0" < "$1"',
          path,
          file,
        ]);
        assert.equal((await client.exit(BIG_MS)).code, 0, client.report());
        const result = await within(listener.finished, BIG_MS, "the end");
        sameBytes(stdout.bytes, data);
        assert.equal(result.received, BIG);
        assert.equal(result.connectionError, undefined);
        assert.deepEqual(events.map((e) => e.event), ["connected", "closed"]);
        // A client's end of a Unix socket has no name: path "", as serve's.
        assert.deepEqual(events[0].client, {
          id: 1,
          remoteAddr: { transport: "unix", path: "" },
        });
        assert.ok(await gone(path), "the socket file is removed at the end");
      },
    );

    await t.step("listen's stdin → socat's stdout", async () => {
      const path = `${dir.path}/out.sock`;
      const listener = listen({
        path,
        stdin: inputOf(data),
        stdout: new Collect(),
      });
      await using client = start("socat", ["-u", `UNIX-CONNECT:${path}`, "-"], {
        binary: true,
      });
      assert.equal((await client.exit(BIG_MS)).code, 0, client.report());
      const result = await within(listener.finished, BIG_MS, "the end");
      sameBytes(client.stdoutBytes, data);
      assert.equal(result.sent, BIG);
      assert.ok(await gone(path));
    });
  },
});

Deno.test("listen({ path }): broker and maxConns with connect({ path }) clients", async () => {
  await using dir = await scratch();
  const path = `${dir.path}/room.sock`;
  const go = Promise.withResolvers<void>();
  let said = false;
  // The console says one line once told to, then its input ends.
  const stdin: ListenInput = {
    async read(p) {
      if (said) return null;
      await go.promise;
      said = true;
      return encoder.encodeInto("from the console\n", p).written;
    },
    isTerminal: () => false,
  };
  const stdout = new Collect();
  const { events, onEvent, next } = recorder();
  const listener = listen({
    path,
    broker: true,
    maxConns: 2,
    stdin,
    stdout,
    onEvent,
  });
  try {
    await using a = await within(connect({ path }), PROMPT_MS, "connect a");
    await using b = await within(connect({ path }), PROMPT_MS, "connect b");
    await next("connected", 2);
    // The third is past maxConns: closed at once, no bytes.
    await using c = await within(connect({ path }), PROMPT_MS, "connect c");
    assert.equal(await within(c.recv(), PROMPT_MS, "the refusal"), null);
    await next("refused");
    const refused = events.find((e) => e.event === "refused");
    assert.deepEqual(refused?.client, {
      id: 3,
      remoteAddr: { transport: "unix", path: "" },
    });
    await a.sendAll("hello from a\n");
    assert.equal(await readUntil(b, "\n"), "hello from a\n");
    await stdout.waitFor("hello from a\n");
    go.resolve();
    assert.equal(await readUntil(a, "console\n"), "from the console\n");
    assert.equal(await readUntil(b, "console\n"), "from the console\n");
    // a leaves; the room goes on.
    a.close();
    await next("closed");
    await b.sendAll("b still here\n");
    await stdout.waitFor("b still here\n");
  } finally {
    const result = await within(listener.shutdown(), PROMPT_MS, "shutdown");
    assert.equal(result.stats.refused, 1);
    assert.equal(result.stats.served, 2);
    assert.ok(await gone(path));
  }
});

Deno.test("listen({ path }): idleTimeout, sendOnly and recvOnly", async (t) => {
  await using dir = await scratch();
  const path = `${dir.path}/modes.sock`;

  await t.step(
    "idleTimeout: a silent client is closed with ETIMEDOUT",
    async () => {
      const { events, onEvent } = recorder();
      const listener = listen({
        path,
        // 200 ms: far past a loaded machine's scheduling delays, and the
        // test waits seconds at most.
        idleTimeout: 200,
        stdin: inputOf(new Uint8Array()),
        stdout: new Collect(),
        onEvent,
      });
      await using conn = await within(connect({ path }), PROMPT_MS, "connect");
      const result = await within(listener.finished, PROMPT_MS, "the timeout");
      assert.equal(result.connectionError?.code, "ETIMEDOUT");
      const closed = events.find((e) => e.event === "closed");
      assert.equal(
        closed?.event === "closed" && closed.error?.code,
        "ETIMEDOUT",
      );
      conn.close();
      assert.ok(await gone(path));
    },
  );

  await t.step("sendOnly: what the client sends is discarded", async () => {
    const stdout = new Collect();
    const listener = listen({
      path,
      sendOnly: true,
      stdin: inputOf(encoder.encode("to the client\n")),
      stdout,
    });
    await using conn = await within(connect({ path }), PROMPT_MS, "connect");
    await conn.sendAll("ignored\n");
    const got = await within(conn.recvAll(), PROMPT_MS, "end of stream");
    assert.equal(decoder.decode(got), "to the client\n");
    conn.close();
    await within(listener.finished, PROMPT_MS, "the end");
    assert.equal(stdout.text, "");
  });

  await t.step(
    "recvOnly: stdin is not sent, the client not half-closed",
    async () => {
      const stdout = new Collect();
      const listener = listen({
        path,
        recvOnly: true,
        stdin: inputOf(encoder.encode("not sent\n")),
        stdout,
      });
      await using conn = await within(connect({ path }), PROMPT_MS, "connect");
      await conn.sendAll("printed\n");
      await stdout.waitFor("printed\n");
      await conn.closeWrite();
      // Nothing came, and the end came only after ours.
      const got = await within(conn.recvAll(), PROMPT_MS, "end of stream");
      assert.equal(got.length, 0);
      const result = await within(listener.finished, PROMPT_MS, "the end");
      assert.equal(result.sent, 0);
      assert.equal(stdout.text, "printed\n");
    },
  );
});

// listen --unix PATH: the command -------------------------------------------

/** `listen --unix PATH` with its stdin and stdout on files, through a shell. */
async function listenWithFiles(
  path: string,
  input: string,
  output: string,
): Promise<Proc> {
  const proc = start("sh", [
    "-c",
    'exec "$0" run -R -W -N "$1" listen --unix "$2" < "$3" > "$4"',
    DENO,
    CLI,
    path,
    input,
    output,
  ]);
  await listening(proc, path);
  return proc;
}

const CLI_SOCAT =
  "listen --unix: 8 MiB both ways with socat, byte-exact; the file is gone after";
Deno.test({
  name: CLI_SOCAT,
  ignore: missing("socat", CLI_SOCAT),
  async fn(t) {
    await using dir = await scratch();
    const data = randomBytes(BIG);
    const file = `${dir.path}/random`;
    await Deno.writeFile(file, data);
    const path = `${dir.path}/cli.sock`;

    await t.step(
      "socat -u - UNIX-CONNECT < file → listen --unix > file",
      async () => {
        await using proc = await listenWithFiles(
          path,
          "/dev/null",
          `${dir.path}/received`,
        );
        await using client = start("sh", [
          "-c",
          'exec socat -u - UNIX-CONNECT:"$0" < "$1"',
          path,
          file,
        ]);
        assert.equal((await client.exit(BIG_MS)).code, 0, client.report());
        assert.equal((await proc.exit(BIG_MS)).code, 0, proc.report());
        sameBytes(await Deno.readFile(`${dir.path}/received`), data);
        assert.match(
          proc.stderr,
          new RegExp(`^Connection on ${escape(path)} \\(client #1\\)\\.$`, "m"),
        );
        assert.ok(await gone(path), "the socket file is removed at the end");
      },
    );

    await t.step("listen --unix < file → socat -u UNIX-CONNECT -", async () => {
      await using proc = await listenWithFiles(path, file, "/dev/null");
      await using client = start("socat", ["-u", `UNIX-CONNECT:${path}`, "-"], {
        binary: true,
      });
      assert.equal((await client.exit(BIG_MS)).code, 0, client.report());
      assert.equal((await proc.exit(BIG_MS)).code, 0, proc.report());
      sameBytes(client.stdoutBytes, data);
      assert.ok(await gone(path));
    });
  },
});

const KEEP_OPEN = "listen --unix -k: two socat clients one after the other";
Deno.test({
  name: KEEP_OPEN,
  ignore: missing("socat", KEEP_OPEN),
  async fn() {
    await using dir = await scratch();
    const path = `${dir.path}/k.sock`;
    await using proc = await startListen(path, ["-k"]);
    for (const n of [1, 2]) {
      const r = await run("socat", ["-u", "-", `UNIX-CONNECT:${path}`], {
        input: `client ${n}\n`,
        timeout: PROMPT_MS,
      });
      assert.equal(r.code, 0, r.stderr);
      await proc.waitForLine(new RegExp(`^client ${n}$`), PROMPT_MS);
      await proc.waitForStderr(
        new RegExp(
          `^Connection on ${escape(path)} \\(client #${n}\\) closed\\.$`,
          "m",
        ),
        PROMPT_MS,
      );
    }
    proc.kill("SIGTERM");
    assert.equal((await proc.exit(PROMPT_MS)).code, 0, proc.report());
    assert.equal(proc.stdout, "client 1\nclient 2\n");
    assert.match(
      proc.stderr,
      /listen stopped: accepted 2, served 2, failed 0, refused 0, denied 0, dropped 0/,
    );
    assert.ok(await gone(path));
  },
});

const BROKER =
  "listen --unix --broker: three socat clients hear each other; --max-conns refuses a fourth";
Deno.test({
  name: BROKER,
  ignore: missing("socat", BROKER),
  async fn() {
    await using dir = await scratch();
    const path = `${dir.path}/room.sock`;
    await using proc = await startListen(path, [
      "--broker",
      "--max-conns",
      "3",
    ]);
    const joined = (n: number) =>
      proc.waitForStderr(
        new RegExp(`Connection on ${escape(path)} \\(client #${n}\\)\\.`),
        PROMPT_MS,
      );
    await using a = socat(path);
    await joined(1);
    await using b = socat(path);
    await joined(2);
    await using c = socat(path);
    await joined(3);
    // The fourth is past --max-conns: closed at once, no bytes.
    const d = await dial(path);
    const buffer = new Uint8Array(16);
    assert.equal(await within(d.read(buffer), PROMPT_MS, "the refusal"), null);
    d.close();
    await proc.waitForStderr(
      new RegExp(
        `Refused connection on ${
          escape(path)
        } \\(client #4\\): too many connections \\(max 3\\)`,
      ),
      PROMPT_MS,
    );
    await a.write("hello from a\n");
    await b.waitForLine(/^hello from a$/, PROMPT_MS);
    await c.waitForLine(/^hello from a$/, PROMPT_MS);
    await proc.write("from the console\n");
    for (const client of [a, b, c]) {
      await client.waitForLine(/^from the console$/, PROMPT_MS);
    }
    // a leaves abruptly; the room goes on.
    a.kill("SIGKILL");
    await a.exit(PROMPT_MS);
    await proc.waitForStderr(/\(client #1\) closed\./, PROMPT_MS);
    await c.write("still here\n");
    await b.waitForLine(/^still here$/, PROMPT_MS);
    await proc.waitForLine(/^still here$/, PROMPT_MS);
    assert.equal(c.stdout, "hello from a\nfrom the console\n");
    assert.match(proc.stdout, /hello from a\nstill here\n/);
    proc.kill("SIGTERM");
    assert.equal((await proc.exit(PROMPT_MS)).code, 0, proc.report());
    assert.match(
      proc.stderr,
      /listen stopped: accepted 4, served 3, failed 0, refused 1, denied 0, dropped 0/,
    );
    assert.ok(await gone(path));
  },
});

Deno.test("listen --unix --json: the events name the path", async () => {
  await using dir = await scratch();
  const path = `${dir.path}/json.sock`;
  await using proc = start(DENO, [
    ...FLAGS,
    "listen",
    "--unix",
    path,
    "--json",
  ]);
  await proc.waitForLine(/"event":"listening"/, PROMPT_MS);
  const conn = await dial(path);
  await conn.write(new Uint8Array([0x68, 0x69, 0x00, 0xff]));
  conn.close();
  assert.equal((await proc.exit(PROMPT_MS)).code, 0, proc.report());
  const events = proc.stdout.trim().split("\n").map((l) => JSON.parse(l));
  assert.deepEqual(events[0], { event: "listening", path });
  assert.deepEqual(events[1], { event: "connected", id: 1, path });
  assert.equal(events[2].event, "data");
  assert.equal(events[2].base64, btoa("hi\x00\xff"));
  assert.deepEqual(events[3], {
    event: "closed",
    id: 1,
    path,
    sent: 0,
    received: 4,
  });
  assert.equal(events.length, 4);
  assert.ok(await gone(path));
});

Deno.test("listen --unix: a killed listen's stale file is removed; a regular file or a live socket is never touched", async (t) => {
  await using dir = await scratch();
  const path = `${dir.path}/app.sock`;

  await t.step(
    "SIGKILL leaves the file; the next listen removes it",
    async () => {
      {
        await using killed = await startListen(path);
        killed.kill("SIGKILL");
        await killed.exit(PROMPT_MS);
      }
      assert.ok((await Deno.lstat(path)).isSocket, "a killed listen's file");
      await using proc = await startListen(path);
      assert.match(
        proc.stderr,
        new RegExp(
          `^removed ${escape(path)}: a stale socket nobody listened on\\n` +
            `Listening on ${escape(path)}\\n`,
        ),
      );
      const conn = await dial(path);
      await conn.write(encoder.encode("after the crash\n"));
      conn.close();
      assert.equal((await proc.exit(PROMPT_MS)).code, 0, proc.report());
      assert.equal(proc.stdout, "after the crash\n");
      assert.ok(await gone(path));
    },
  );

  await t.step("a regular file: exit 1, one line, the file stays", async () => {
    const file = `${dir.path}/notes.txt`;
    await Deno.writeTextFile(file, "keep me");
    const r = await run(DENO, [...FLAGS, "listen", "--unix", file], {
      timeout: PROMPT_MS,
    });
    assert.equal(r.code, 1, r.stderr);
    assert.equal(r.stderr.trim().split("\n").length, 1, r.stderr);
    assert.match(
      r.stderr,
      /Address already in use \(the file there is not a socket\)/,
    );
    assert.equal(await Deno.readTextFile(file), "keep me");
  });

  await t.step("a live listen -k: exit 1, it goes on", async () => {
    await using live = await startListen(path, ["-k"]);
    const r = await run(DENO, [...FLAGS, "listen", "--unix", path], {
      timeout: PROMPT_MS,
    });
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /Address already in use \(a server answers there\)/);
    // The probe was one client that came and went; the first goes on.
    await live.waitForStderr(/\(client #1\) closed\./, PROMPT_MS);
    const conn = await dial(path);
    await conn.write(encoder.encode("still listening\n"));
    await live.waitForLine(/^still listening$/, PROMPT_MS);
    conn.close();
    live.kill("SIGTERM");
    assert.equal((await live.exit(PROMPT_MS)).code, 0, live.report());
    assert.ok(await gone(path));
  });

  await t.step(
    "with -A, a live listen without -k is found in /proc/net/unix and left alone",
    async () => {
      await using live = await startListen(path);
      const r = await run(DENO, ["run", "-A", CLI, "listen", "--unix", path], {
        timeout: PROMPT_MS,
      });
      assert.equal(r.code, 1, r.stderr);
      assert.match(
        r.stderr,
        /Address already in use \(a server listens there\)/,
      );
      // Nobody connected: its one client is still to come.
      assert.doesNotMatch(live.stderr, /client #1/);
      const conn = await dial(path);
      await conn.write(encoder.encode("its own client\n"));
      conn.close();
      assert.equal((await live.exit(PROMPT_MS)).code, 0, live.report());
      assert.equal(live.stdout, "its own client\n");
      assert.ok(await gone(path));
    },
  );
});

Deno.test("listen --unix without -k: a signal ends it, the file removed, 128 + N", async (t) => {
  await using dir = await scratch();
  const path = `${dir.path}/sig.sock`;
  await t.step("SIGINT while waiting: 130", async () => {
    await using proc = await startListen(path);
    proc.kill("SIGINT");
    assert.equal((await proc.exit(PROMPT_MS)).code, 130, proc.report());
    assert.ok(await gone(path), proc.report());
  });
  await t.step("SIGTERM with a client: 143, no error line", async () => {
    await using proc = await startListen(path);
    const conn = await dial(path);
    await proc.waitForStderr(/\(client #1\)\./, PROMPT_MS);
    proc.kill("SIGTERM");
    assert.equal((await proc.exit(PROMPT_MS)).code, 143, proc.report());
    conn.close();
    assert.equal(
      proc.stderr,
      `Listening on ${path}\nConnection on ${path} (client #1).\n`,
    );
    assert.ok(await gone(path));
  });
});

Deno.test("listen --unix: usage errors exit 2 with one line, no file made", async () => {
  await using dir = await scratch();
  const path = `${dir.path}/u.sock`;
  for (
    const [args, message] of [
      [["--hostname", "127.0.0.1"], /--unix replaces --hostname/],
      [["-p", "9000"], /--unix replaces --port/],
      [["9000"], /--unix replaces PORT/],
      [["--allow", "127.0.0.1"], /--allow matches IP addresses/],
      [["--deny", "::1"], /--deny matches IP addresses/],
      [["--tls"], /--tls runs over TCP only/],
    ] as const
  ) {
    const r = await run(DENO, [...FLAGS, "listen", "--unix", path, ...args], {
      timeout: PROMPT_MS,
    });
    assert.equal(r.code, 2, `${args.join(" ")}\n${r.stderr}`);
    assert.equal(r.stderr.trim().split("\n").length, 1, r.stderr);
    assert.match(r.stderr, message);
  }
  const empty = await run(DENO, [...FLAGS, "listen", "--unix", ""], {
    timeout: PROMPT_MS,
  });
  assert.equal(empty.code, 2, empty.stderr);
  assert.deepEqual(await Array.fromAsync(Deno.readDir(dir.path)), []);
});
