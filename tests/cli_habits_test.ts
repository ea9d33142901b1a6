/**
 * The small things nc and telnet users reach for: -4/-6, telnet's
 * --timeout, -p, -q/-v, port 23 by default, and telnet's Ctrl-] command
 * mode on a real pseudo-terminal.
 *
 * @module
 */

import assert from "node:assert/strict";
import { serve } from "../mod.ts";
import {
  CLI,
  DENO,
  missing,
  ROOT,
  run,
  runCli,
  startCli,
} from "./fixtures/process.ts";
import { within } from "./fixtures/deadline.ts";

Deno.test("connect and telnet -4 / -6: only that family is tried", async () => {
  await using server = serve({ hostname: "127.0.0.1" }, (c) => c.sendAll("hi"));
  const port = String(server.addr.port);
  const v4 = await runCli(["telnet", "-4", "localhost", port]);
  assert.equal(v4.code, 0, v4.stderr);
  assert.match(v4.stderr, /^Trying 127\.0\.0\.1\.\.\.\n/);
  assert.doesNotMatch(v4.stderr, /::1/);
  const v6 = await runCli(["connect", "-6", "localhost", port]);
  // Only ::1 is tried, and nothing listens there.
  assert.equal(v6.code, 1);
  assert.match(v6.stderr, /::1/);
  const both = await runCli(["telnet", "-4", "-6", "localhost", port]);
  assert.equal(both.code, 2);
  assert.match(both.stderr, /-4 and -6 exclude each other/);
});

/**
 * A listener whose accept queue is full: a further connect's SYN is
 * dropped and the connect hangs, which is what a timeout is for. Connects
 * fill the queue until one does not complete in 500 ms.
 */
async function fullListener(): Promise<
  AsyncDisposable & { port: number }
> {
  const listener = Deno.listen({
    hostname: "127.0.0.1",
    port: 0,
    tcpBacklog: 1,
  });
  const port = listener.addr.port;
  const conns: Deno.Conn[] = [];
  for (let i = 0; i < 16; i++) {
    const controller = new AbortController();
    const attempt = Deno.connect({
      hostname: "127.0.0.1",
      port,
      signal: controller.signal,
    });
    const timer = setTimeout(() => controller.abort(), 500);
    try {
      conns.push(await attempt);
    } catch {
      break;
    } finally {
      clearTimeout(timer);
    }
  }
  return {
    port,
    [Symbol.asyncDispose]: () => {
      for (const conn of conns) conn.close();
      listener.close();
      return Promise.resolve();
    },
  };
}

Deno.test("telnet --timeout MS bounds the connect, as nc -w", async () => {
  await using full = await fullListener();
  const started = performance.now();
  const r = await runCli([
    "telnet",
    "--timeout",
    "300",
    "127.0.0.1",
    String(full.port),
  ], { timeout: 20_000 });
  assert.equal(r.code, 1, r.stderr);
  assert.match(r.stderr, /timed out after 300 ms/);
  // 300 ms plus Deno's start (~0.5 s); a loaded 2-core machine stays well
  // under 10 s, while a connect that ignored the timeout would hang for
  // the kernel's SYN retries (over a minute).
  assert.ok(performance.now() - started < 10_000);
});

Deno.test("telnet: port 23 when not given; -q silences the trace, -v keeps it", async () => {
  const r = await runCli(["telnet", "127.0.0.1"]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /127\.0\.0\.1 port 23/);
  await using server = serve({ hostname: "127.0.0.1" }, (c) => c.sendAll("hi"));
  const port = String(server.addr.port);
  const quiet = await runCli(["telnet", "-q", "127.0.0.1", port]);
  assert.equal(quiet.code, 0);
  assert.equal(quiet.stdout, "hi");
  assert.equal(quiet.stderr, "");
  const loud = await runCli(["telnet", "-v", "127.0.0.1", port]);
  assert.match(
    loud.stderr,
    /^Trying 127\.0\.0\.1\.\.\.\nConnected to 127\.0\.0\.1\./,
  );
  assert.match(loud.stderr, /Connection closed by foreign host\.\n$/);
  const both = await runCli(["telnet", "-q", "-v", "127.0.0.1", port]);
  assert.equal(both.code, 2);
});

Deno.test("serve -p and client -p", async () => {
  await using server = startCli([
    "serve",
    "-p",
    "0",
    "--hostname",
    "127.0.0.1",
  ]);
  const [, port] = await server.waitForLine(/^socket binded to (\d+)$/);
  await server.waitForLine(/^socket is listening$/);
  const r = await runCli(["client", "-p", port]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, "Thank you for connecting\n");
  server.kill("SIGINT");
  assert.equal((await server.exit()).code, 0);
});

Deno.test({
  name: "telnet on a terminal: Ctrl-] shows telnet>, status, resume, quit",
  ignore: missing("python3", "telnet escape on a pty"),
  fn: async () => {
    // An echo server: what we type comes back, so each step can wait on it.
    // Its handler must end when telnet quits (recv() is null at the end of
    // the stream); one that does not is cut at shutdownTimeout and counted
    // as failed below, so the test fails instead of hanging in teardown.
    await using server = serve(
      { hostname: "127.0.0.1", shutdownTimeout: 2000 },
      async (conn) => {
        let chunk;
        while ((chunk = await conn.recv()) !== null) await conn.sendAll(chunk);
      },
    );
    const port = String(server.addr.port);
    const steps = [
      { expect: "Escape character is '^]'." },
      { send: "hello\r" },
      { expect: "hello\r\nhello" },
      { send: "\x1d\r" },
      { expect: "telnet> " },
      { send: "status\r" },
      { expect: "bytes, for" },
      { send: "again\r" },
      { expect: "again\r\nagain" },
      { send: "\x1dnope\r" },
      { expect: "?Invalid command" },
      { send: "\x1dquit\r" },
      { expect: "Connection closed." },
    ];
    const r = await run("python3", [
      `${ROOT}tests/fixtures/pty_drive.py`,
      JSON.stringify(steps),
      "--",
      DENO,
      "run",
      "-N",
      CLI,
      "telnet",
      "127.0.0.1",
      port,
    ], { timeout: 60_000 });
    assert.equal(r.code, 0, r.stdout);
    assert.match(
      r.stdout,
      new RegExp(
        `Connected to 127\\.0\\.0\\.1 port ${port}: sent 6 bytes, ` +
          `received 6 bytes, for \\d+\\.\\d s\\.`,
      ),
    );
    assert.match(r.stdout, /EXIT 0\n$/);
    // 2 s of shutdownTimeout, 5 s for it: a loaded machine ends a handler
    // whose peer has gone in milliseconds.
    await within(server.shutdown(), 5000, "the echo server's shutdown");
    const { served, failed } = server.stats;
    assert.deepEqual({ served, failed }, { served: 1, failed: 0 });
  },
});

Deno.test({
  name: "telnet on a terminal: Ctrl-] then an empty line half-closes",
  ignore: missing("python3", "telnet escape on a pty"),
  fn: async () => {
    // Replies once our side has ended: proof the half-close arrived.
    await using server = serve({ hostname: "127.0.0.1" }, async (conn) => {
      const got = await conn.recvAll();
      await conn.sendAll(`got ${got.length} bytes, bye`);
    });
    const steps = [
      { expect: "Escape character is '^]'." },
      { send: "abc\r" },
      { send: "\x1d\r" },
      { expect: "telnet> " },
      { send: "\r" },
      { expect: "got 4 bytes, bye" },
      { expect: "Connection closed by foreign host." },
    ];
    const r = await run("python3", [
      `${ROOT}tests/fixtures/pty_drive.py`,
      JSON.stringify(steps),
      "--",
      DENO,
      "run",
      "-N",
      CLI,
      "telnet",
      "127.0.0.1",
      String(server.addr.port),
    ], { timeout: 60_000 });
    assert.equal(r.code, 0, r.stdout);
    assert.match(r.stdout, /EXIT 0\n$/);
  },
});
