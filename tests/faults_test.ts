/**
 * Faults, floods and hostile input: clients that reset, half-close, stall
 * or never read, a flood past the backlog, churn, shutdown under load,
 * failing handlers, bad arguments and a failing DNS server. Each is shown
 * on real loopback sockets with exact counts, and the server goes on
 * serving everyone else.
 *
 * @module
 */

import assert from "node:assert/strict";
import {
  connect,
  Connection,
  ConnectionResetError,
  type ConnectOptions,
  gethostbyname,
  type Handler,
  InvalidArgumentError,
  parsePort,
  resolve,
  ResolveError,
  serve,
  type ServeOptions,
  type Server,
  SocketError,
  TimeoutError,
  validateHost,
  validatePort,
} from "../mod.ts";
import {
  counter,
  floodClients,
  GREETING,
  openDescriptors,
  type Outcome,
  percentile,
  pool,
  python3Missing,
  REFUSAL,
  resetClients,
  visit,
  work,
} from "./fixtures/fault_clients.ts";
import { startDnsServer } from "./fixtures/dns_server.ts";
import { within } from "./fixtures/deadline.ts";
import { startCli } from "./fixtures/process.ts";

const decoder = new TextDecoder();
const MiB = 1024 * 1024;

/** A server on 127.0.0.1 whose errors go to a list instead of stderr. */
function start(
  options: ServeOptions,
  handler: Handler,
): { server: Server; errors: unknown[] } {
  const errors: unknown[] = [];
  const server = serve({
    hostname: "127.0.0.1",
    onError: (error) => errors.push(error),
    ...options,
  }, handler);
  return { server, errors };
}

const descriptorSkip = Deno.build.os === "linux"
  ? undefined
  : `descriptors are counted in /proc/self/fd, Linux only (not ${Deno.build.os})`;
if (descriptorSkip) {
  console.log(`skipping descriptor checks: ${descriptorSkip}`);
}

/** A step that checks the process has as many descriptors as `before`. */
async function noDescriptorLeft(
  t: Deno.TestContext,
  before: number | undefined,
): Promise<void> {
  await t.step({
    name: "no descriptor left behind",
    ignore: descriptorSkip !== undefined,
    fn: () => assert.equal(openDescriptors(), before),
  });
}

const pythonSkip = await python3Missing();
if (pythonSkip) console.log(`skipping the SO_LINGER reset test: ${pythonSkip}`);

Deno.test({
  name: "faults: a client resetting mid-sendAll fails only its own handler",
  ignore: pythonSkip !== undefined,
  async fn() {
    const payload = new Uint8Array(8 * MiB).fill(7);
    const { server, errors } = start(
      { concurrency: 1 },
      (conn) => conn.sendAll(payload),
    );
    try {
      const resets = await resetClients(server.addr.port, 5);
      assert.equal(resets.length, 5);
      for (const { bytes } of resets) {
        assert.ok(bytes > 0 && bytes < payload.length);
      }

      // A Deno client that aborts right after connecting, unread data or not.
      for (let i = 0; i < 5; i++) {
        const conn = await connect("127.0.0.1", server.addr.port);
        conn.close();
      }

      // The next client is served in full.
      await using conn = await connect("127.0.0.1", server.addr.port);
      const all = await conn.recvAll({ maxBytes: payload.length });
      assert.equal(all.length, payload.length);
      assert.ok(all.every((b) => b === 7));
      await server.shutdown();
      assert.equal(errors.length, 10);
      for (const error of errors) {
        assert.ok(error instanceof ConnectionResetError, String(error));
        assert.ok(["ECONNRESET", "EPIPE"].includes(error.code), error.code);
        assert.match(error.message, /127\.0\.0\.1 port \d+/);
      }
      assert.deepEqual(server.stats, {
        accepted: 11,
        served: 1,
        failed: 10,
        refused: 0,
        waiting: 0,
        active: 0,
      });
    } finally {
      await server.shutdown();
    }
  },
});

Deno.test("faults: a half-closed client still gets the whole answer", async () => {
  const CLIENTS = 20;
  const { server, errors } = start({ concurrency: 4 }, async (conn) => {
    const request = await conn.recvAll();
    // The answer is sent after the end of the request has been read.
    await conn.sendAll(`${request.length}:`);
    await conn.sendAll(request);
  });
  try {
    const sizes = Array.from({ length: CLIENTS }, (_, i) => i * 37_000 + 1);
    const answers = await Promise.all(sizes.map(async (size) => {
      const request = new Uint8Array(size).map((_, i) => i % 251);
      await using conn = await connect("127.0.0.1", server.addr.port);
      await conn.sendAll(request);
      await conn.closeWrite();
      const answer = await conn.recvAll();
      const head = `${size}:`;
      assert.equal(decoder.decode(answer.subarray(0, head.length)), head);
      assert.deepEqual(answer.subarray(head.length), request);
      return answer.length;
    }));
    assert.equal(answers.length, CLIENTS);
    await server.shutdown();
    assert.deepEqual(errors, []);
    assert.equal(server.stats.served, CLIENTS);
    assert.equal(server.stats.failed, 0);
  } finally {
    await server.shutdown();
  }
});

/** Reads up to a newline; `undefined` when the stream ends first. */
async function readLine(
  conn: { recv(max?: number): Promise<Uint8Array | null> },
): Promise<string | undefined> {
  let line = "";
  while (!line.includes("\n")) {
    const chunk = await conn.recv(1);
    if (chunk === null) return undefined;
    line += decoder.decode(chunk);
  }
  return line;
}

/** Answers one request line with `size` bytes. */
function answerWith(size: number): Handler {
  const body = new Uint8Array(size).fill(0x2e);
  return async (conn) => {
    if (await readLine(conn) === undefined) return;
    await conn.sendAll(body);
  };
}

/**
 * Sends a byte every `every` ms until the server closes the connection or
 * `giveUp` ms have passed; returns when, and whether the server ended it.
 */
async function trickle(
  port: number,
  every: number,
  giveUp: number,
): Promise<{ ms: number; byServer: boolean }> {
  const started = performance.now();
  await using conn = await connect("127.0.0.1", port);
  const ended = conn.recv().catch(() => null).then(() => "end" as const);
  let byServer = false;
  while (performance.now() - started < giveUp) {
    try {
      await conn.send("G");
    } catch {
      byServer = true; // The server has gone: the trickle is over.
      break;
    }
    let timer: ReturnType<typeof setTimeout> | undefined;
    const tick = new Promise<"tick">((resolve) => {
      timer = setTimeout(() => resolve("tick"), every);
    });
    const outcome = await Promise.race([ended, tick]);
    clearTimeout(timer);
    if (outcome === "end") {
      byServer = true;
      break;
    }
  }
  const ms = performance.now() - started;
  conn.close(); // Ends the pending read when the client gave up first.
  await ended;
  return { ms, byServer };
}

Deno.test("faults: silent clients and clients that never read are closed after the idle timeout", async () => {
  const IDLE = 300;
  const SIZE = 10 * MiB;
  const acceptedAt = new Map<number, number>();
  const failedAfter: number[] = [];
  const failed = counter(5);
  const { server, errors } = start({
    concurrency: 8,
    idleTimeout: IDLE,
    onAccept: (info) => acceptedAt.set(info.id, performance.now()),
    onError: (error, info) => {
      errors.push(error);
      // deno-lint-ignore no-non-null-assertion -- onAccept ran first
      failedAfter.push(performance.now() - acceptedAt.get(info.id)!);
      failed.add();
    },
  }, answerWith(SIZE));
  const port = server.addr.port;
  const readers: Awaited<ReturnType<typeof connect>>[] = [];
  try {
    // Three that never send.
    const silent = Array.from({ length: 3 }, () => visit(port));
    // Two that ask and never read the 10 MiB answer.
    for (let i = 0; i < 2; i++) {
      const conn = await connect("127.0.0.1", port);
      await conn.sendAll("GET\n");
      readers.push(conn);
    }
    // One that behaves, served in full meanwhile.
    await using good = await connect("127.0.0.1", port);
    await good.sendAll("GET\n");
    assert.equal((await good.recvAll({ maxBytes: SIZE })).length, SIZE);

    for (const outcome of await Promise.all(silent)) {
      assert.equal(outcome.text, "");
      assert.equal(outcome.code, undefined, "a clean end of stream");
      // Observed 300–320 ms: twice the timeout fails a timer armed twice or
      // late, and leaves a loaded machine 300 ms of lag.
      assert.ok(
        outcome.ms >= IDLE - 5 && outcome.ms < 2 * IDLE,
        `${outcome.ms}`,
      );
    }
    await within(failed.reached, 10_000, "5 idle timeouts");
    await server.shutdown();
    assert.equal(errors.length, 5);
    for (const error of errors) {
      assert.ok(error instanceof TimeoutError, String(error));
      assert.match(error.message, new RegExp(`no progress in ${IDLE} ms`));
    }
    for (const ms of failedAfter) assert.ok(ms >= IDLE - 5, `${ms}`);
    assert.deepEqual(server.stats, {
      accepted: 6,
      served: 1,
      failed: 5,
      refused: 0,
      waiting: 0,
      active: 0,
    });
  } finally {
    for (const conn of readers) conn.close();
    await server.shutdown();
  }
});

Deno.test("faults: a slow loris trickling faster than the idle timeout is ended by handlerTimeout", async (t) => {
  const IDLE = 300;
  const EVERY = 200; // A byte every 200 ms: never idle for 300 ms.
  await t.step("idleTimeout alone does not end it", async () => {
    const running = counter(1);
    const { server, errors } = start({
      idleTimeout: IDLE,
      onConnection: running.add,
    }, answerWith(GREETING.length));
    try {
      const loris = await trickle(server.addr.port, EVERY, 5 * IDLE);
      // Five idle timeouts long, and still open: the client gave up.
      assert.equal(loris.byServer, false, `ended after ${loris.ms} ms`);
      await within(server.shutdown(), 5000, "the shutdown");
      assert.deepEqual(errors, []);
      assert.equal(server.stats.served, 1);
    } finally {
      await server.shutdown();
    }
  });
  await t.step("handlerTimeout bounds the whole connection", async () => {
    const LIMIT = 1000;
    const { server, errors } = start({
      idleTimeout: IDLE,
      handlerTimeout: LIMIT,
    }, answerWith(GREETING.length));
    try {
      const loris = await trickle(server.addr.port, EVERY, 10 * LIMIT);
      assert.equal(loris.byServer, true);
      // Observed ~1,010 ms: twice the limit fails a deadline that is not
      // kept, and leaves a loaded machine a second of lag.
      assert.ok(
        loris.ms >= LIMIT - 5 && loris.ms < 2 * LIMIT,
        `ended after ${loris.ms} ms`,
      );
      await within(server.shutdown(), 5000, "the shutdown");
      assert.equal(errors.length, 1);
      assert.ok(errors[0] instanceof TimeoutError, String(errors[0]));
      assert.match(errors[0].message, /timed out after 1000 ms/);
      assert.equal(server.stats.failed, 1);
    } finally {
      await server.shutdown();
    }
  });
});

Deno.test("faults: without an idle timeout a loris holds only its own slot", async () => {
  const { server, errors } = start(
    { concurrency: 3, backlog: 0 },
    answerWith(GREETING.length),
  );
  const port = server.addr.port;
  const lorises = [];
  try {
    for (let i = 0; i < 2; i++) {
      const conn = await connect("127.0.0.1", port);
      await conn.send("G"); // and never the rest of the line
      lorises.push(conn);
    }
    for (let i = 0; i < 10; i++) {
      await using conn = await connect("127.0.0.1", port);
      await conn.sendAll("GET\n");
      const answer = await conn.recvAll();
      assert.equal(answer.length, GREETING.length);
    }
    assert.equal(server.stats.served, 10);
    assert.equal(server.stats.active, 2);
    assert.equal(server.stats.refused, 0);
    for (const conn of lorises) await conn.closeWrite();
    for (const conn of lorises) assert.equal(await conn.recv(), null);
    await server.shutdown();
    assert.deepEqual(errors, []);
    assert.deepEqual(server.stats, {
      accepted: 12,
      served: 12,
      failed: 0,
      refused: 0,
      waiting: 0,
      active: 0,
    });
  } finally {
    for (const conn of lorises) conn.close();
    await server.shutdown();
  }
});

const FLOOD = 2000;
/**
 * Sorts a flood's outcomes and checks the issue's conditions: everyone
 * served or refused, none left hanging, every client done within 1 s (a
 * dropped SYN is sent again only after a second, so a slower one was
 * dropped by a full kernel queue). Returns the counts.
 */
function judgeFlood(
  outcomes: Outcome[],
  greeting: string,
  refusal: string,
  what: string,
): { served: number; refused: number; latencies: number[] } {
  const served = outcomes.filter((o) => o.text === greeting);
  const refused = outcomes.filter((o) => o.text === refusal && !o.code);
  const other = outcomes.filter((o) =>
    o.text !== greeting && !(o.text === refusal && !o.code)
  );
  const slow = outcomes.filter((o) => o.ms >= 1000);
  const latencies = refused.map((o) => o.ms);
  console.log(
    `flood (${what}): ${served.length} served, ${refused.length} refused, ${
      outcomes.filter((o) => o.code === "HUNG").length
    } hung, ${other.length} other, ${slow.length} took ≥ 1 s; refusal p50 ${
      percentile(latencies, 50).toFixed(1)
    } ms, p99 ${percentile(latencies, 99).toFixed(1)} ms`,
  );
  assert.equal(outcomes.length, FLOOD);
  assert.deepEqual(other.slice(0, 5), [], "every client served or refused");
  assert.equal(served.length + refused.length, FLOOD);
  assert.deepEqual(slow.slice(0, 5), [], "every client done within 1 s");
  assert.ok(served.length > 0 && refused.length > 0);
  return { served: served.length, refused: refused.length, latencies };
}

Deno.test({
  name:
    "faults: 2,000 clients at once against serve() with backlog 5 are served or refused within 1 s, exactly",
  ignore: pythonSkip !== undefined,
  fn: async () => {
    const started: number[] = [];
    // No kernelBacklog: the default must absorb the burst.
    const { server, errors } = start({
      backlog: 5,
      concurrency: 1,
      refusalMessage: REFUSAL,
      onConnection: (info) => started.push(info.id),
    }, async (conn) => {
      await work(5);
      await conn.sendAll(GREETING);
    });
    try {
      const outcomes = await floodClients(server.addr.port, FLOOD);
      const { served, refused } = judgeFlood(
        outcomes,
        GREETING,
        REFUSAL,
        "serve()",
      );
      await within(server.shutdown(), 10_000, "the shutdown");
      assert.deepEqual(errors, []);
      assert.deepEqual(server.stats, {
        accepted: FLOOD,
        served,
        failed: 0,
        refused,
        waiting: 0,
        active: 0,
      });
      // Handlers start in arrival order: the waiting are served first in,
      // first out.
      assert.equal(started.length, served);
      assert.ok(started.every((id, i) => i === 0 || id > started[i - 1]));
    } finally {
      await server.shutdown();
    }
  },
});

Deno.test({
  name:
    "faults: 2,000 clients at once against cli.ts serve --backlog 5 --concurrency 1 --busy 5, exactly",
  ignore: pythonSkip !== undefined,
  fn: async () => {
    await using proc = startCli([
      "serve",
      "--hostname",
      "127.0.0.1",
      "--port",
      "0",
      "--backlog",
      "5",
      "--concurrency",
      "1",
      "--busy",
      "5",
    ]);
    const [, port] = await proc.waitForLine(/^socket binded to (\d+)$/);
    const outcomes = await floodClients(Number(port), FLOOD);
    const { served, refused } = judgeFlood(
      outcomes,
      "Thank you for connecting",
      "server busy, try again later\n",
      "cli.ts serve",
    );
    proc.kill("SIGINT");
    const exit = await proc.exit(20_000);
    assert.equal(exit.code, 0, proc.report());
    assert.match(
      proc.stdout,
      new RegExp(
        `\nserver stopped: accepted ${FLOOD}, served ${served}, failed 0, refused ${refused}\n$`,
      ),
    );
    assert.equal(proc.stdout.match(/^Refused connection/gm)?.length, refused);
  },
});

/** Serves `cycles` greetings, `width` at a time; returns how long it took. */
async function churn(cycles: number, width: number): Promise<number> {
  const { server, errors } = start(
    { concurrency: 64, backlog: 1024 },
    (conn) => conn.sendAll(GREETING),
  );
  try {
    const t0 = performance.now();
    const outcomes = await pool(cycles, width, () => visit(server.addr.port));
    const elapsed = performance.now() - t0;
    const greeted = outcomes.filter((o) => o.text === GREETING).length;
    assert.equal(greeted, cycles);
    await server.shutdown();
    assert.deepEqual(errors, []);
    assert.deepEqual(server.stats, {
      accepted: cycles,
      served: cycles,
      failed: 0,
      refused: 0,
      waiting: 0,
      active: 0,
    });
    return elapsed;
  } finally {
    await server.shutdown();
  }
}

Deno.test("faults: churn leaves no descriptor and no resource behind", async (t) => {
  await churn(10, 1); // The runtime opens what it keeps for good on first use.
  const before = openDescriptors();
  for (const width of [1, 64]) {
    await t.step(`20000 cycles, ${width} at a time`, async () => {
      const ms = await churn(20_000, width);
      console.log(
        `churn: 20000 cycles ${width} at a time in ${ms.toFixed(0)} ms`,
      );
    });
    await noDescriptorLeft(t, before);
  }
});

/** A greeting in two writes, so that a cut one would show. */
async function slowGreeting(conn: { sendAll(text: string): Promise<void> }) {
  await work(10);
  await conn.sendAll(GREETING.slice(0, 10));
  await work(5);
  await conn.sendAll(GREETING.slice(10));
}

Deno.test("faults: shutdown under load cuts no message and leaves nothing", async (t) => {
  for (const waitingOnShutdown of ["serve", "refuse"] as const) {
    await t.step(`waitingOnShutdown: "${waitingOnShutdown}"`, async () => {
      const CONNECTED = 200;
      const DEADLINE = 5000;
      const controller = new AbortController();
      const accepted = counter(CONNECTED);
      const { server, errors } = start({
        concurrency: 16,
        backlog: 400,
        refusalMessage: REFUSAL,
        waitingOnShutdown,
        shutdownTimeout: DEADLINE,
        signal: controller.signal,
        onAccept: accepted.add,
      }, slowGreeting);
      const port = server.addr.port;
      const first = Array.from({ length: CONNECTED }, () => visit(port));
      await accepted.reached;
      // More keep arriving, before and after the abort.
      let arriving = true;
      const later = pool(16, 16, async () => {
        const outcomes = [];
        while (arriving) outcomes.push(await visit(port));
        return outcomes;
      });
      await work(20);
      const t0 = performance.now();
      controller.abort();
      await server.finished;
      const stopMs = performance.now() - t0;
      arriving = false;
      const outcomes = [...await Promise.all(first), ...(await later).flat()];

      const greeted = outcomes.filter((o) => o.text === GREETING);
      const refused = outcomes.filter((o) => o.text === REFUSAL);
      const unaccepted = outcomes.filter((o) => o.text === "");
      const cut = outcomes.filter((o) =>
        o.text !== GREETING && o.text !== REFUSAL && o.text !== ""
      );
      console.log(
        `shutdown (${waitingOnShutdown}): ${outcomes.length} clients, ${greeted.length} greeted, ${refused.length} refused, ${unaccepted.length} not accepted (${
          [...new Set(unaccepted.map((o) => o.code ?? "EOF"))].join(", ")
        }); finished in ${stopMs.toFixed(0)} ms`,
      );
      assert.deepEqual(cut, [], "no cut message");
      assert.deepEqual(errors, []);
      const stats = server.stats;
      assert.equal(greeted.length, stats.served);
      assert.equal(refused.length, stats.refused);
      assert.equal(unaccepted.length, outcomes.length - stats.accepted);
      assert.equal(stats.accepted, stats.served + stats.refused);
      assert.equal(stats.failed + stats.waiting + stats.active, 0);
      assert.ok(stats.accepted >= CONNECTED);
      if (waitingOnShutdown === "refuse") assert.ok(stats.refused > 0);
      // Observed ~250 ms to serve the waiting (≥ 190 ms of the greetings'
      // timers alone) and ~80 ms to refuse them: twice that fails, and a
      // loaded machine keeps within it (the deadline, 5 s, is not hit).
      const bound = waitingOnShutdown === "serve" ? 500 : 250;
      assert.ok(stopMs < bound, `finished after ${stopMs} ms`);
      // The listener is closed: a new client is refused by the kernel.
      assert.equal((await visit(port)).code, "ECONNREFUSED");
    });
  }
});

Deno.test("faults: failing handlers are counted and the server goes on", async (t) => {
  await t.step(
    "throws, never returns (handlerTimeout), closes its own connection",
    async () => {
      const failed = counter(2);
      const { server, errors } = start({
        concurrency: 1,
        handlerTimeout: 200,
        onError: (error) => {
          errors.push(error);
          failed.add();
        },
      }, async (conn) => {
        const line = await readLine(conn);
        if (line === "throw\n") throw new Error("the handler broke");
        if (line === "hang\n") await new Promise(() => {});
        if (line === "close\n") return conn.close();
        await conn.sendAll(GREETING);
      });
      const port = server.addr.port;
      try {
        const ask = async (line: string) => {
          await using conn = await connect("127.0.0.1", port);
          await conn.sendAll(line);
          return decoder.decode(await conn.recvAll());
        };
        for (const line of ["throw\n", "hang\n", "close\n", "hello\n"]) {
          const t0 = performance.now();
          const answer = await ask(line);
          const ms = performance.now() - t0;
          assert.equal(answer, line === "hello\n" ? GREETING : "");
          if (line === "hang\n") assert.ok(ms >= 195 && ms < 2000, `${ms}`);
        }
        await failed.reached;
        await server.shutdown();
        assert.equal(errors.length, 2);
        assert.equal((errors[0] as Error).message, "the handler broke");
        assert.ok(errors[1] instanceof TimeoutError);
        assert.match(errors[1].message, /timed out after 200 ms/);
        assert.deepEqual(server.stats, {
          accepted: 4,
          served: 2,
          failed: 2,
          refused: 0,
          waiting: 0,
          active: 0,
        });
      } finally {
        await server.shutdown();
      }
    },
  );

  await t.step(
    "a handler that ignores its signal does not hold shutdown past its deadline",
    async () => {
      const running = counter(1);
      const { server, errors } = start({
        shutdownTimeout: 100,
        onConnection: running.add,
      }, () => new Promise<void>(() => {}));
      await using conn = await connect("127.0.0.1", server.addr.port);
      await running.reached;
      const t0 = performance.now();
      await server.shutdown();
      const ms = performance.now() - t0;
      assert.ok(ms >= 95 && ms < 2000, `${ms}`);
      assert.equal(await conn.recv(), null);
      assert.equal(errors.length, 1);
      assert.equal(server.stats.failed, 1);
      assert.equal(server.stats.active, 0);
    },
  );

  await t.step("a throwing onError hook does not stop the server", async () => {
    const server = serve({
      hostname: "127.0.0.1",
      onError: () => {
        throw new Error("the hook broke");
      },
    }, async (conn) => {
      if (await readLine(conn) === "throw\n") throw new Error("boom");
      await conn.sendAll(GREETING);
    });
    try {
      for (const line of ["throw\n", "hello\n"]) {
        await using conn = await connect("127.0.0.1", server.addr.port);
        await conn.sendAll(line);
        const answer = decoder.decode(await conn.recvAll());
        assert.equal(answer, line === "throw\n" ? "" : GREETING);
      }
      await server.shutdown();
      assert.equal(server.stats.failed, 1);
      assert.equal(server.stats.served, 1);
    } finally {
      await server.shutdown();
    }
  });
});

const BAD_PORTS: unknown[] = [
  -1,
  65536,
  1.5,
  NaN,
  "80",
  Infinity,
  null,
  2 ** 53,
];
const BAD_HOSTS: unknown[] = [
  "",
  " ",
  "a b",
  `${"a".repeat(300)}.test`,
  "256.1.1.1",
  "[::1",
  "::1]",
  "a..b",
  "-a.test",
  `${"abcdefghi.".repeat(26)}test`,
  "ü.test",
  "1.2.3.4:80",
  42,
  null,
];

/** Awaits `run` and checks it failed with `EINVAL` naming `value`. */
async function rejectsNaming(
  run: () => unknown,
  value: unknown,
): Promise<void> {
  let error: unknown;
  try {
    await run();
  } catch (caught) {
    error = caught;
  }
  assert.ok(error instanceof InvalidArgumentError, `${String(error)}`);
  assert.equal(error.code, "EINVAL");
  // Long text is cut in messages; a string is quoted, so look for its
  // start only.
  const shown = typeof value === "string" ? value.slice(0, 60) : String(value);
  assert.ok(error.message.includes(shown), `${error.message} names ${shown}`);
}

Deno.test("faults: bad input to every public function is EINVAL, before any socket", async (t) => {
  // A port that is taken, where a server listens: a bad argument must fail
  // as EINVAL, not as EADDRINUSE nor by connecting, proving it was caught
  // before a socket was made. (Held for the whole test: a port released
  // and reused could be anyone's by then.)
  await using taken = serve({ hostname: "127.0.0.1" }, () => {});
  const closed = taken.addr.port;
  const noop = () => {};
  const before = openDescriptors();

  await t.step("ports", async () => {
    for (const port of [...BAD_PORTS, 0]) {
      await rejectsNaming(() => validatePort(port), port);
      await rejectsNaming(() => connect("127.0.0.1", port as number), port);
    }
    for (const port of BAD_PORTS) {
      await rejectsNaming(() => validatePort(port, { allowZero: true }), port);
      await rejectsNaming(() => serve({ port: port as number }, noop), port);
    }
    for (
      const text of ["-1", "0", "65536", "1.5", "NaN", "", " 80", "0x50", "80a"]
    ) {
      await rejectsNaming(() => parsePort(text), text);
    }
  });

  await t.step("hosts", async () => {
    const options = { hostsFile: false as const, timeout: 100 };
    for (const host of BAD_HOSTS) {
      await rejectsNaming(() => validateHost(host), host);
      await rejectsNaming(() => resolve(host as string, options), host);
      await rejectsNaming(() => gethostbyname(host as string, options), host);
      await rejectsNaming(() => connect(host as string, closed), host);
      if (host !== "") {
        await rejectsNaming(
          () =>
            serve({ hostname: host as string, port: taken.addr.port }, noop),
          host,
        );
      }
    }
  });

  await t.step("options", async () => {
    const port = taken.addr.port;
    const serveCases: [Partial<ServeOptions>, unknown][] = [
      [{ backlog: -1 }, -1],
      [{ backlog: 1.5 }, 1.5],
      [{ concurrency: 0 }, 0],
      [{ kernelBacklog: 0 }, 0],
      [{ handlerTimeout: -1 }, -1],
      [{ shutdownTimeout: NaN }, NaN],
      [{ idleTimeout: -1 }, -1],
      [{ waitingOnShutdown: "drop" as "serve" }, "drop"],
      [{ signal: "stop" as unknown as AbortSignal }, "stop"],
      [{ onError: 5 as unknown as () => void }, 5],
      [{ refusalMessage: 5 as unknown as string }, 5],
    ];
    for (const [bad, value] of serveCases) {
      await rejectsNaming(
        () => serve({ hostname: "127.0.0.1", port, ...bad }, noop),
        value,
      );
    }
    await rejectsNaming(
      () => serve({}, "handler" as unknown as Handler),
      "handler",
    );
    const connectCases: [ConnectOptions, unknown][] = [
      [{ timeout: -1 }, -1],
      [{ timeout: NaN }, NaN],
      [{ timeout: 2 ** 31 }, 2 ** 31], // a runtime timer would fire at once
      [{ attemptDelay: -5 }, -5],
      [{ idleTimeout: -1 }, -1],
      [{ family: 5 as 4 }, 5],
      [{ signal: {} as AbortSignal }, "[object Object]"],
      [{ onAttempt: "log" as unknown as () => void }, "log"],
      [{ hostsFile: 5 as unknown as string }, 5],
    ];
    for (const [bad, value] of connectCases) {
      await rejectsNaming(() => connect("127.0.0.1", closed, bad), value);
      await rejectsNaming(() => connect("name.test", closed, bad), value);
    }
    for (
      const bad of [{ timeout: -1 }, { family: 7 as 4 }, {
        hostsFile: 0 as unknown as string,
      }]
    ) {
      await rejectsNaming(
        () => resolve("name.test", bad),
        Object.values(bad)[0],
      );
    }
    await rejectsNaming(
      () => resolve("name.test", { nameServer: { ipAddr: "dns.test" } }),
      "dns.test",
    );
  });

  await t.step("a connection's methods", async () => {
    await using server = serve({ hostname: "127.0.0.1" }, () => {});
    await using conn = await connect("127.0.0.1", server.addr.port);
    for (const size of [0, -1, 1.5, NaN, "10"]) {
      await rejectsNaming(() => conn.recv(size as number), size);
      if (size === 0) continue; // recvAll() may be told to take nothing.
      await rejectsNaming(
        () => conn.recvAll({ maxBytes: size as number }),
        size,
      );
    }
    // A size past any buffer is not an error: recv() reads what there is.
    assert.equal(await conn.recv(2 ** 40), null);
    for (const data of [5, null, [1, 2]]) {
      await rejectsNaming(() => conn.send(data as unknown as string), data);
      await rejectsNaming(() => conn.sendAll(data as unknown as string), data);
    }
  });
  await noDescriptorLeft(t, before);
});

/** A small seeded generator (mulberry32), so that a failure can be replayed. */
function random(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const SPECIAL_VALUES: unknown[] = [
  NaN,
  Infinity,
  -Infinity,
  -0,
  0,
  1,
  65535,
  65536,
  2 ** 31,
  2 ** 32,
  2 ** 53,
  Number.MAX_VALUE,
  null,
  undefined,
  true,
  false,
  {},
  [],
  [80],
  () => 80,
  Symbol("port"),
  80n,
  new Uint8Array(3),
  new Date(0),
  "",
  " ",
  "80",
  "::",
  "[::1]",
  "127.0.0.1",
  "localhost",
];
const ALPHABET = "ab-_.:[] 0123456789üZ\t\n%/";

function randomString(next: () => number): string {
  const length = next() < 0.1
    ? 200 + Math.floor(next() * 200)
    : Math.floor(next() * 20);
  let text = "";
  for (let i = 0; i < length; i++) {
    text += ALPHABET[Math.floor(next() * ALPHABET.length)];
  }
  return text;
}

function randomValue(next: () => number): unknown {
  const kind = next();
  if (kind < 0.3) {
    return SPECIAL_VALUES[Math.floor(next() * SPECIAL_VALUES.length)];
  }
  if (kind < 0.5) return Math.floor(next() * 210_000) - 70_000;
  if (kind < 0.6) return (next() - 0.5) * 1e6;
  return randomString(next);
}

function isValid(check: () => unknown): boolean {
  try {
    check();
    return true;
  } catch {
    return false;
  }
}

Deno.test("faults: thousands of random arguments raise nothing but the module's errors", async (t) => {
  const ROUNDS = 3000;
  const SEED = 20260501;
  const next = random(SEED);
  await using dns = await startDnsServer({});
  const nameServer = { ipAddr: dns.hostname, port: dns.port };
  // Valid connects reach a server held for the whole test (never a port
  // released and maybe reused), and are closed at once.
  await using quiet = serve({ hostname: "127.0.0.1" }, () => {});
  const closed = quiet.addr.port;
  await using conn = await connect("127.0.0.1", quiet.addr.port);
  const before = openDescriptors();
  const outcomes = new Map<string, number>();
  const note = (what: string) =>
    outcomes.set(what, (outcomes.get(what) ?? 0) + 1);

  const targets: [string, (v: unknown) => unknown][] = [
    ["validatePort", (v) => validatePort(v)],
    ["validatePort allowZero", (v) => validatePort(v, { allowZero: true })],
    ["parsePort", (v) => parsePort(typeof v === "string" ? v : String(v))],
    ["validateHost", (v) => validateHost(v)],
    [
      "resolve host",
      (v) =>
        resolve(v as string, { nameServer, hostsFile: false, timeout: 500 }),
    ],
    ["resolve option", (v) => {
      const key = pick(["timeout", "family", "signal", "hostsFile"]);
      return resolve("name.test", {
        nameServer,
        hostsFile: false,
        timeout: 500,
        [key]: v,
      });
    }],
    ["connect", (v) => {
      // Only hosts that fail validation, or loopback: no other address.
      const host = isValid(() => validateHost(v)) ? "127.0.0.1" : v;
      return connect(host as string, closed);
    }],
    [
      "connect port",
      (v) =>
        connect(
          "127.0.0.1",
          isValid(() => validatePort(v)) ? closed : v as number,
        ),
    ],
    ["connect option", (v) => {
      const key = pick([
        "timeout",
        "attemptDelay",
        "idleTimeout",
        "family",
        "signal",
        "onAttempt",
        "hostsFile",
      ]);
      return connect("127.0.0.1", closed, { [key]: v });
    }],
    ["serve option", async (v) => {
      const key = pick([
        "backlog",
        "concurrency",
        "kernelBacklog",
        "handlerTimeout",
        "shutdownTimeout",
        "idleTimeout",
        "waitingOnShutdown",
        "signal",
        "onListen",
        "onError",
        "refusalMessage",
        "port",
        "hostname",
      ]);
      let value = v;
      // Never a fixed port, never an address but loopback.
      if (key === "port" && isValid(() => validatePort(v))) value = 0;
      if (
        key === "hostname" && (v === undefined || v === "" ||
          isValid(() => validateHost(v)))
      ) value = "127.0.0.1";
      const server = serve(
        { hostname: "127.0.0.1", port: 0, [key]: value },
        () => {},
      );
      await server.shutdown();
    }],
    ["recv", (v) => conn.recv(v as number)],
    ["recvAll", (v) => conn.recvAll({ maxBytes: v as number })],
    ["send", (v) => conn.send(v as string)],
    ["sendAll", (v) => conn.sendAll(v as string)],
  ];
  function pick<T>(items: T[]): T {
    return items[Math.floor(next() * items.length)];
  }

  for (let round = 0; round < ROUNDS; round++) {
    const [name, run] = pick(targets);
    const value = randomValue(next);
    try {
      const result = await run(value);
      if (result instanceof Connection) result.close();
      note("returned");
    } catch (error) {
      if (!(error instanceof SocketError)) {
        assert.fail(
          `round ${round} (seed ${SEED}): ${name}(${
            typeof value === "symbol" ? value.toString() : String(value)
          }) threw ${String(error)}`,
        );
      }
      note(error.code);
    }
  }
  console.log(
    `random input: ${ROUNDS} calls, ${
      [...outcomes].map(([what, n]) => `${what} ${n}`).join(", ")
    }`,
  );
  assert.equal([...outcomes.values()].reduce((a, b) => a + b), ROUNDS);
  await noDescriptorLeft(t, before);
});

Deno.test("faults: a failing DNS server gives typed resolve errors within the timeout", async (t) => {
  const TIMEOUT = 300;
  await using dns = await startDnsServer({
    records: { "cut.test": { A: ["127.0.0.1"] } },
    faults: {
      "servfail.test": "servfail",
      "refused.test": "refused",
      "nxdomain.test": "nxdomain",
      "cut.test": "truncate",
      "cut-missing.test": "truncate",
      "silent.test": "silent",
    },
  });
  const options = {
    nameServer: { ipAddr: dns.hostname, port: dns.port },
    hostsFile: false as const,
    timeout: TIMEOUT,
  };
  const cases: [string, string][] = [
    ["servfail.test", "ESERVFAIL"],
    ["refused.test", "ESERVFAIL"],
    ["nxdomain.test", "ENOTFOUND"],
    ["cut-missing.test", "ENOTFOUND"],
    ["silent.test", "ETIMEDOUT"],
  ];
  for (const [name, code] of cases) {
    await t.step(`${name}: ${code}`, async () => {
      const lookUps: (() => Promise<unknown>)[] = [
        () => resolve(name, options),
        () => gethostbyname(name, options),
        () => connect(name, 9, options),
      ];
      for (const lookUp of lookUps) {
        const t0 = performance.now();
        const error = await lookUp().then(
          () => assert.fail(`${name} resolved`),
          (error: unknown) => error,
        );
        const ms = performance.now() - t0;
        // Every ETIMEDOUT is a TimeoutError: the lookup's own (op
        // "resolve") as much as connect()'s, whose timeout covers it.
        const type = code === "ETIMEDOUT" ? TimeoutError : ResolveError;
        assert.ok(error instanceof type, String(error));
        assert.equal(error.code, code, error.message);
        assert.equal(error.host, name);
        assert.match(error.message, new RegExp(name.replace(".", "\\.")));
        // Within the timeout, and a silent server takes all of it.
        assert.ok(ms < TIMEOUT + 1000, `${ms} ms`);
        if (code === "ETIMEDOUT") assert.ok(ms >= TIMEOUT - 5, `${ms} ms`);
      }
    });
  }
  await t.step("a truncated UDP answer is asked again over TCP", async () => {
    assert.deepEqual(await resolve("cut.test", { ...options, family: 4 }), [
      { address: "127.0.0.1", family: 4 },
    ]);
    assert.ok(
      dns.queries.some((q) => q.name === "cut.test" && q.transport === "tcp"),
    );
  });
});
