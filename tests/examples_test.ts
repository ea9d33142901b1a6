/**
 * Each example run as a process, with the permissions its header names,
 * against local servers; its output checked. Every wait on the network or
 * on a process has a deadline (`within`, or the fixture's own timeouts).
 */

import assert from "node:assert/strict";
import { connect, type Connection, serve, type Server } from "../mod.ts";
import { within } from "./fixtures/deadline.ts";
import {
  DENO,
  missing,
  type Proc,
  ROOT,
  run,
  type RunResult,
  start,
  startDeno,
} from "./fixtures/process.ts";

const GREETING = "Thank you for connecting";
const decoder = new TextDecoder();

function example(name: string): string {
  return `${ROOT}examples/${name}`;
}

/** Runs `deno run FLAGS examples/NAME ARGS` to its end, with a deadline. */
function runExample(
  flags: string[],
  name: string,
  args: string[],
  ms = 20_000,
): Promise<RunResult> {
  // run() kills the process after 15 s; within() names what hung.
  return within(
    run(DENO, ["run", ...flags, example(name), ...args], { timeout: 15_000 }),
    ms,
    `${name} ${args.join(" ")} to exit`,
  );
}

/**
 * A port where nothing listens, held for as long as the test needs it: the
 * local port of an open connection's client end. Connecting to it is
 * refused, and no one can bind it meanwhile (a port released and bound
 * again could be taken in between).
 */
async function refusingPort(): Promise<
  { port: number } & AsyncDisposable
> {
  const server = serve({ hostname: "127.0.0.1" }, async (conn) => {
    await conn.recv();
  });
  const conn = await within(
    connect("127.0.0.1", server.addr.port),
    5000,
    "a connection to hold a port",
  );
  return {
    port: conn.localAddr.port,
    async [Symbol.asyncDispose]() {
      conn.close();
      await server.shutdown();
    },
  };
}

/** Asserts a failure the way the CLI fails: one line, no stack, `code`. */
function assertOneLine(
  result: RunResult,
  code: number,
  pattern: RegExp,
): void {
  assert.equal(result.code, code, result.stderr);
  assert.doesNotMatch(result.stderr, /^\s+at /m, "a stack trace");
  assert.equal(result.stderr.trimEnd().split("\n").length, 1, result.stderr);
  assert.match(result.stderr.trimEnd(), pattern);
}

/** The port a server example printed. */
async function boundPort(server: Proc): Promise<number> {
  const [, port] = await server.waitForLine(/^socket binded to (\d+)$/);
  return Number(port);
}

/** Reads from `conn` until the text received ends with `tail`. */
async function receiveUntil(conn: Connection, tail: string): Promise<string> {
  let text = "";
  while (!text.endsWith(tail)) {
    const chunk = await conn.recv();
    if (chunk === null) throw new Error(`closed before ${tail.trim()}`);
    text += decoder.decode(chunk, { stream: true });
  }
  return text;
}

/** The largest resident size of a process, sampled every 20 ms. */
function watchRss(pid: number): { max: () => number; stop: () => void } {
  let max = 0;
  const sample = () => {
    try {
      const status = Deno.readTextFileSync(`/proc/${pid}/status`);
      const kib = Number(status.match(/^VmRSS:\s+(\d+) kB$/m)?.[1] ?? 0);
      max = Math.max(max, kib * 1024);
    } catch {
      // Exited.
    }
  };
  const timer = setInterval(sample, 20);
  sample();
  return { max: () => max, stop: () => clearInterval(timer) };
}

Deno.test("examples/gethostbyname.ts: the IPv4 of a host", async (t) => {
  await t.step("localhost, with no permission", async () => {
    const result = await runExample([], "gethostbyname.ts", []);
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stdout, "127.0.0.1\n");
  });
  await t.step("an IPv4 literal passes through", async () => {
    const result = await runExample([], "gethostbyname.ts", ["127.0.0.9"]);
    assert.equal(result.stdout, "127.0.0.9\n");
  });
  await t.step("an IPv6-only host: the gaierror line, exit 1", async () => {
    const result = await runExample([], "gethostbyname.ts", ["::1"]);
    assert.equal(result.code, 1);
    assert.match(
      result.stdout,
      /^there was an error resolving the host: ::1 \(/,
    );
  });
});

Deno.test("examples/connect_to_google.ts: offline, against a local server", async (t) => {
  await using server = serve({ hostname: "127.0.0.1" }, () => {});
  const port = String(server.addr.port);
  await t.step("by name and port", async () => {
    const result = await runExample(["-N"], "connect_to_google.ts", [
      "localhost",
      port,
    ]);
    assert.equal(result.code, 0, result.stderr);
    // gethostbyname gives the IPv4 address, as in the tutorial.
    assert.match(
      result.stdout,
      new RegExp(
        `^Socket successfully created\nthe socket has successfully connected to localhost on port ${port} \\(127\\.0\\.0\\.1\\)\n$`,
      ),
    );
  });
  await t.step("by IP", async () => {
    const result = await runExample(["-N"], "connect_to_google.ts", [
      "127.0.0.1",
      port,
    ]);
    assert.equal(
      result.stdout,
      `Socket successfully created\nthe socket has successfully connected to 127.0.0.1 on port ${port} (127.0.0.1)\n`,
    );
  });
  await t.step("refused: the reason, exit 1", async () => {
    await using refusing = await refusingPort();
    const result = await runExample(["-N"], "connect_to_google.ts", [
      "127.0.0.1",
      String(refusing.port),
    ]);
    assert.equal(result.code, 1);
    assert.match(result.stdout, /Connection refused\n$/);
  });
});

Deno.test("examples/server.ts and client.ts: the tutorial's last step", async (t) => {
  await using server = startDeno(["-N"], example("server.ts"), ["0"]);
  const port = String(await boundPort(server));
  await server.waitForLine(/^socket is listening$/);

  await t.step("client.ts prints the greeting", async () => {
    const result = await runExample(["-N"], "client.ts", [port]);
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stdout, `${GREETING}\n`);
    await server.waitForLines(
      /^Got connection from \('127\.0\.0\.1', \d+\)$/,
      1,
    );
  });
  await t.step("bound to '': reached at 127.0.0.2 too", async () => {
    await using conn = await within(
      connect("127.0.0.2", Number(port)),
      5000,
      "a connect to 127.0.0.2",
    );
    const reply = await within(conn.recvAll(), 5000, "the greeting");
    assert.equal(decoder.decode(reply), GREETING);
    // The kernel picks 127.0.0.1 as the source address.
    await server.waitForLines(/^Got connection from/, 2);
  });
  await t.step("--port N works as well as the bare port", async () => {
    const result = await runExample(["-N"], "client.ts", ["--port", port]);
    assert.equal(result.stdout, `${GREETING}\n`);
  });
  await t.step("SIGINT stops it, exit 0, the four kinds of line", async () => {
    await server.waitForLines(/^Got connection from/, 3);
    server.kill("SIGINT");
    const exit = await server.exit();
    assert.equal(exit.code, 0, server.report());
    const lines = server.stdout.trim().split("\n");
    assert.deepEqual(lines.slice(0, 3), [
      "Socket successfully created",
      `socket binded to ${port}`,
      "socket is listening",
    ]);
    assert.equal(lines.length, 6);
    for (const line of lines.slice(3)) {
      assert.match(line, /^Got connection from \('127\.0\.0\.[12]', \d+\)$/);
    }
  });
});

Deno.test("examples: each fails with one line on stderr, no stack trace", async (t) => {
  await using refusing = await refusingPort();
  await using taken = serve({ hostname: "127.0.0.1" }, () => {});
  const cases: [string, string[], number, RegExp][] = [
    ["client.ts", [String(refusing.port)], 1, /Connection refused$/],
    ["client.ts", ["x"], 2, /invalid port "x"/],
    ["client.ts", ["--port"], 2, /invalid port ""/],
    ["server.ts", ["70000"], 2, /invalid port 70000/],
    ["server.ts", [String(taken.addr.port)], 1, /in use/],
    ["echo_server.ts", ["--idle-timeout", "x"], 2, /--idle-timeout x/],
    ["echo_server.ts", ["--bogus"], 2, /Unknown option '--bogus'/],
    ["chat_server.ts", ["x"], 2, /invalid port "x"/],
    ["chat_server.ts", [String(taken.addr.port)], 1, /in use/],
    ["http_get.ts", ["ftp://x/"], 2, /only http:\/\/ URLs/],
    ["http_get.ts", ["--timeout", "x", "http://x/"], 2, /--timeout x/],
    [
      "http_get.ts",
      [`http://127.0.0.1:${refusing.port}/`],
      1,
      /Connection refused$/,
    ],
    ["connect_to_google.ts", ["127.0.0.1", "x"], 2, /invalid port "x"/],
  ];
  for (const [name, args, code, pattern] of cases) {
    await t.step(`${name} ${args.join(" ")}`, async () => {
      const result = await runExample(["-N"], name, args);
      assertOneLine(result, code, pattern);
      // Nothing on stdout before a usage error (the socket line included).
      if (code === 2) assert.equal(result.stdout, "");
    });
  }
});

Deno.test("examples/echo_server.ts: every byte comes back", async () => {
  await using server = startDeno(["-N"], example("echo_server.ts"), ["0"]);
  const port = await boundPort(server);
  const payload = new Uint8Array(1 << 20).map((_, i) => (i * 31) & 0xff);
  const clients = [0, 1, 2].map(async () => {
    await using conn = await connect("127.0.0.1", port);
    const received = conn.recvAll();
    await conn.sendAll(payload);
    await conn.closeWrite();
    assert.deepEqual(await received, payload);
  });
  await within(Promise.all(clients), 10_000, "three echoes of 1 MiB");
  await server.waitForLines(/^Got connection from/, 3);
  server.kill("SIGINT");
  assert.equal((await server.exit()).code, 0, server.report());
});

Deno.test("examples/echo_server.ts: silent clients are closed, their slots free", async () => {
  // 100 silent clients fill every slot (concurrency 100): the next client
  // is served only once they are closed for idling.
  await using server = startDeno(["-N"], example("echo_server.ts"), [
    "0",
    "--idle-timeout",
    "500",
  ]);
  const port = await boundPort(server);
  const silent: Connection[] = [];
  try {
    for (let i = 0; i < 100; i++) {
      silent.push(
        await within(connect("127.0.0.1", port), 5000, `silent client ${i}`),
      );
    }
    await server.waitForLines(/^Got connection from/, 100);
    await using late = await within(
      connect("127.0.0.1", port),
      5000,
      "the 101st client",
    );
    await late.sendAll("ping\n");
    // Served after 0.5 s of silence plus the accept: 10 s is 20 times that.
    const echo = await within(receiveUntil(late, "ping\n"), 10_000, "echo");
    assert.equal(echo, "ping\n");
    for (const conn of silent) {
      assert.equal(await within(conn.recv(), 5000, "the close"), null);
    }
    const closed = await server.waitForLines(/^Closed .*: idle 500 ms$/, 100);
    assert.equal(closed.length, 100);
  } finally {
    for (const conn of silent) conn.close();
  }
  server.kill("SIGINT");
  assert.equal((await server.exit()).code, 0, server.report());
});

Deno.test("examples/chat_server.ts: each line goes to the others", async () => {
  await using server = startDeno(["-N"], example("chat_server.ts"), ["0"]);
  const port = await boundPort(server);
  const join = () => within(connect("127.0.0.1", port), 5000, "a connect");
  await using alice = await join();
  await using bob = await join();
  await using carol = await join();
  // Each client is in the room once the server has printed its line.
  await server.waitForLines(/^Got connection from/, 3);
  // A line split across two sends is still one line.
  await alice.sendAll("hello ");
  await alice.sendAll("everyone\r\n");
  const from = `127.0.0.1:${alice.localAddr.port}`;
  const expected = `${from}: hello everyone\n`;
  for (const peer of [bob, carol]) {
    const text = await within(receiveUntil(peer, "\n"), 5000, "the line");
    assert.equal(text, expected);
  }
  // Nothing came back to the sender: its next read sees the server close.
  await alice.closeWrite();
  await bob.closeWrite();
  await carol.closeWrite();
  assert.equal(await within(alice.recv(), 5000, "the close"), null);
  server.kill("SIGINT");
  assert.equal((await server.exit()).code, 0, server.report());
});

Deno.test("examples/chat_server.ts: 512 KiB of bare newlines from one client", async () => {
  await using server = startDeno(["-N"], example("chat_server.ts"), ["0"]);
  const port = await boundPort(server);
  const rss = watchRss(server.pid);
  try {
    const join = () => within(connect("127.0.0.1", port), 5000, "a connect");
    await using alice = await join();
    await using flooder = await join();
    await server.waitForLines(/^Got connection from/, 2);
    // The server may drop the flooder mid-send: a reset is expected.
    await within(
      flooder.sendAll(new Uint8Array(512 * 1024).fill(10)).catch(() => {}),
      10_000,
      "the flood to be sent",
    );
    // A new client can chat at once: 2 s, as the issue asks (it takes
    // tens of ms here); the original took minutes.
    const newcomer = async () => {
      await using carol = await join();
      await server.waitForLines(/^Got connection from/, 3);
      await carol.sendAll("hello after the flood\n");
      const line = `127.0.0.1:${carol.localAddr.port}: hello after the flood\n`;
      await receiveUntil(alice, line);
    };
    await within(newcomer(), 2000, "a new client's line to reach alice");
    await server.waitForLine(
      new RegExp(
        `^Dropped 127\\.0\\.0\\.1:${flooder.localAddr.port}: Excess Flood$`,
      ),
    );
    // One Ctrl-C stops it: it tells the clients to go and exits.
    server.kill("SIGINT");
    assert.equal((await server.exit(5000)).code, 0, server.report());
  } finally {
    rss.stop();
  }
  const mib = rss.max() / 2 ** 20;
  assert.ok(mib < 300, `the server's RSS reached ${mib.toFixed(0)} MiB`);
});

// nora never reads: a python3 client with a 4 KiB receive buffer, so that
// what the kernel holds for her is small and a modest burst is past it.
const NEVER_READS = `
import socket, sys, time
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
s.connect(("127.0.0.1", int(sys.argv[1])))
print(s.getsockname()[1], flush=True)
time.sleep(60)
`;

Deno.test({
  name:
    "examples/chat_server.ts: a client that never reads is dropped, the others go on",
  ignore: missing("python3", "chat_server: a client that never reads"),
  fn: async () => {
    await using server = startDeno(["-N"], example("chat_server.ts"), ["0"]);
    const port = await boundPort(server);
    const join = () => within(connect("127.0.0.1", port), 5000, "a connect");
    await using alice = await join();
    await using nora = start("python3", ["-c", NEVER_READS, String(port)]);
    const [noraPort] = await nora.waitForLine(/^\d+$/);
    await using sam = await join();
    await using sue = await join();
    await server.waitForLines(/^Got connection from/, 4);
    // 2 × 600 lines of 4000 characters: 4.8 MB, under the flood limit, past
    // what the kernel holds for nora (her send buffer grows to a few MB)
    // plus half her 256 KiB queue: she is dropped 3 s later, and the others
    // go on.
    const burst = `${"x".repeat(4000)}\n`.repeat(600);
    const prefix = (c: Connection) => `127.0.0.1:${c.localAddr.port}: `.length;
    // Every line of both bursts, and sam's last one. The server reads sam and
    // sue in turns, so "the end" may come before sue's last lines: alice
    // reads the whole count, not up to a marker.
    const expected = 600 * (prefix(sam) + 4001) + 600 * (prefix(sue) + 4001) +
      prefix(sam) + "the end\n".length;
    let received = 0;
    const aliceReads = (async () => {
      const buffer = new Uint8Array(65536);
      while (received < expected) {
        const n = await alice.recvInto(buffer);
        if (n === null) {
          throw new Error(
            `alice was closed after ${received} of ${expected} bytes\n${server.report()}`,
          );
        }
        // Counted, not decoded: a reader that falls 128 KiB behind for 3 s
        // is dropped, and the count says whether every line came.
        received += n;
      }
    })();
    // Awaited below; a failure before then must not go unhandled meanwhile.
    aliceReads.catch(() => {});
    // The senders read what the other sends, as chat clients do: only nora
    // falls behind.
    const drain = async (conn: Connection) => {
      const buffer = new Uint8Array(65536);
      while (await conn.recvInto(buffer).catch(() => null) !== null) {
        // Discard.
      }
    };
    const drains = [drain(sam), drain(sue)];
    await within(
      Promise.all([sam.sendAll(burst), sue.sendAll(burst)]),
      60_000,
      "the two bursts to be sent",
    );
    await server.waitForLine(
      new RegExp(`^Dropped 127\\.0\\.0\\.1:${noraPort}: SendQ exceeded$`),
    );
    await sam.sendAll("the end\n");
    // 9.6 MB through one process's reads and writes: about 2 s idle, and
    // past 20 s on 2 cores with two busy loops beside it; a hang still
    // fails within a minute.
    await within(aliceReads, 60_000, "alice to read every line").catch(
      (error) => {
        throw new Error(
          `${error.message} after ${received} of ${expected} bytes\n${server.report()}`,
        );
      },
    );
    assert.equal(received, expected, server.report());
    // Only nora was dropped.
    assert.equal(
      server.stdout.match(/^Dropped /gm)?.length,
      1,
      server.report(),
    );
    server.kill("SIGINT");
    assert.equal((await server.exit(5000)).code, 0, server.report());
    await within(Promise.all(drains), 5000, "the senders to be closed");
  },
});

Deno.test("examples/chat_server.ts: a line without end is bounded", async () => {
  await using server = startDeno(["-N"], example("chat_server.ts"), ["0"]);
  const port = await boundPort(server);
  const join = () => within(connect("127.0.0.1", port), 5000, "a connect");
  await using alice = await join();
  await using endless = await join();
  await server.waitForLines(/^Got connection from/, 2);
  // 1 MiB with no newline: dropped at 4096 characters, not buffered.
  await within(
    endless.sendAll("x".repeat(1 << 20)).catch(() => {}),
    10_000,
    "the long line to be sent",
  );
  await server.waitForLine(
    new RegExp(
      `^Dropped 127\\.0\\.0\\.1:${endless.localAddr.port}: Line too long$`,
    ),
  );
  // The room goes on.
  await using bob = await join();
  await server.waitForLines(/^Got connection from/, 3);
  await bob.sendAll("still here\n");
  const line = `127.0.0.1:${bob.localAddr.port}: still here\n`;
  assert.equal(await within(receiveUntil(alice, line), 5000, "a line"), line);
  server.kill("SIGINT");
  assert.equal((await server.exit(5000)).code, 0, server.report());
});

/** A local HTTP server for http_get.ts; `respond` serves each connection. */
function httpServer(respond: (conn: Connection) => Promise<void>): Server {
  return serve({ hostname: "127.0.0.1", concurrency: 4 }, async (conn) => {
    await respond(conn).catch(() => {});
  });
}

Deno.test("examples/http_get.ts: GET over sendAll, recvAll", async () => {
  const requests: string[] = [];
  const controller = new AbortController();
  const listening = Promise.withResolvers<number>();
  const http = Deno.serve({
    hostname: "127.0.0.1",
    port: 0,
    signal: controller.signal,
    onListen: ({ port }) => listening.resolve(port),
  }, (request) => {
    requests.push(`${request.method} ${new URL(request.url).pathname}`);
    return new Response("hello from Deno.serve\n", {
      headers: { "content-type": "text/plain" },
    });
  });
  try {
    const port = await within(listening.promise, 5000, "Deno.serve");
    const result = await runExample(["-N"], "http_get.ts", [
      `http://127.0.0.1:${port}/greeting?x=1`,
    ]);
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, /^HTTP\/1\.[01] 200 OK\r\n/);
    assert.match(result.stdout, /\r\n\r\nhello from Deno\.serve\n$/);
    assert.deepEqual(requests, ["GET /greeting"]);
  } finally {
    controller.abort();
    await http.finished;
  }
});

Deno.test("examples/http_get.ts: one deadline for the whole exchange", async (t) => {
  await t.step("a server that never answers: one line, exit 1", async () => {
    // It reads the request, then waits for the client to go.
    await using server = httpServer(async (conn) => {
      while (await conn.recv() !== null) { /* wait */ }
    });
    const started = performance.now();
    const result = await runExample(["-N"], "http_get.ts", [
      "--timeout",
      "500",
      `http://127.0.0.1:${server.addr.port}/`,
    ]);
    assertOneLine(result, 1, /: no complete answer in 500 ms$/);
    // 0.5 s plus deno's start: 10 s fails only a hang.
    assert.ok(performance.now() - started < 10_000);
  });
  await t.step("an endless body: one line, exit 1", async () => {
    await using server = httpServer(async (conn) => {
      await conn.sendAll("HTTP/1.0 200 OK\r\n\r\n");
      const chunk = new Uint8Array(65536).fill(120);
      while (true) await conn.sendAll(chunk);
    });
    const result = await runExample(["-N"], "http_get.ts", [
      `http://127.0.0.1:${server.addr.port}/`,
    ]);
    assertOneLine(result, 1, /more than 16777216 bytes$/);
    assert.equal(result.stdout, "");
  });
});

Deno.test("examples/demo.ts: server and client as two processes", async () => {
  const result = await within(
    run(DENO, ["run", "-A", example("demo.ts")], { timeout: 30_000 }),
    40_000,
    "the demo to finish",
  );
  assert.equal(result.code, 0, result.stderr);
  const lines = result.stdout.trim().split("\n");
  const server = lines.filter((l) => l.startsWith("[server] "));
  const client = lines.filter((l) => l.startsWith("[client] "));
  assert.equal(server[0], "[server] Socket successfully created");
  assert.match(server[1], /^\[server\] socket binded to \d+$/);
  assert.equal(server[2], "[server] socket is listening");
  assert.match(
    server[3],
    /^\[server\] Got connection from \('127\.0\.0\.1', \d+\)$/,
  );
  assert.deepEqual(client, [`[client] ${GREETING}`]);
  assert.match(result.stdout, /\[demo\] the server exited with code 0\n$/);
});
