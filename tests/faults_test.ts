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
  ConnectionResetError,
  type Handler,
  serve,
  type ServeOptions,
  type Server,
  SocketError,
  TimeoutError,
} from "../mod.ts";
import {
  counter,
  GREETING,
  openDescriptors,
  percentile,
  pool,
  python3Missing,
  REFUSAL,
  resetClients,
  visit,
  work,
} from "./fixtures/fault_clients.ts";

const encoder = new TextEncoder();
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

function codes(errors: unknown[]): string[] {
  return errors.map((e) => e instanceof SocketError ? e.code : String(e));
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
      for (const got of resets) assert.ok(got > 0 && got < payload.length);

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

/** Sends one byte a second until the server closes; returns when it did. */
async function trickle(port: number): Promise<number> {
  const started = performance.now();
  await using conn = await connect("127.0.0.1", port);
  const ended = conn.recv().catch(() => null);
  while (true) {
    try {
      await conn.send("G");
    } catch {
      break; // The server has gone: the trickle is over.
    }
    let timer: ReturnType<typeof setTimeout> | undefined;
    const tick = new Promise<"tick">((resolve) => {
      timer = setTimeout(() => resolve("tick"), 1000);
    });
    const outcome = await Promise.race([
      ended.then(() => "end" as const),
      tick,
    ]);
    clearTimeout(timer);
    if (outcome === "end") break;
  }
  await ended;
  return performance.now() - started;
}

Deno.test("faults: slow loris clients are closed after the idle timeout", async () => {
  const IDLE = 300;
  const SIZE = 10 * MiB;
  const acceptedAt = new Map<number, number>();
  const failedAfter: number[] = [];
  const failed = counter(7);
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
    // Three that never send, two that send a byte a second.
    const silent = Array.from({ length: 3 }, () => visit(port));
    const trickles = Array.from({ length: 2 }, () => trickle(port));
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
      assert.ok(
        outcome.ms >= IDLE - 5 && outcome.ms < IDLE + 1500,
        `${outcome.ms}`,
      );
    }
    for (const ms of await Promise.all(trickles)) {
      assert.ok(ms >= IDLE - 5 && ms < IDLE + 1500, `${ms}`);
    }
    await failed.reached;
    await server.shutdown();
    assert.equal(errors.length, 7);
    for (const error of errors) {
      assert.ok(error instanceof TimeoutError, String(error));
      assert.match(error.message, new RegExp(`no progress in ${IDLE} ms`));
    }
    for (const ms of failedAfter) assert.ok(ms >= IDLE - 5, `${ms}`);
    assert.deepEqual(server.stats, {
      accepted: 8,
      served: 1,
      failed: 7,
      refused: 0,
      waiting: 0,
      active: 0,
    });
  } finally {
    for (const conn of readers) conn.close();
    await server.shutdown();
  }
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

Deno.test("faults: a flood past the backlog is served or refused at once, exactly", async () => {
  const ATTEMPTS = 2000;
  const WIDTH = 128;
  const started: number[] = [];
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
    const t0 = performance.now();
    const outcomes = await pool(ATTEMPTS, WIDTH, () => visit(server.addr.port));
    const elapsed = performance.now() - t0;
    const served = outcomes.filter((o) => o.text === GREETING);
    const refused = outcomes.filter((o) => o.text === REFUSAL);
    const other = outcomes.filter((o) =>
      o.text !== GREETING && o.text !== REFUSAL
    );
    assert.deepEqual(other, [], "every client is served or refused");
    assert.equal(served.length + refused.length, ATTEMPTS);
    await server.shutdown();
    assert.deepEqual(errors, []);
    assert.deepEqual(server.stats, {
      accepted: ATTEMPTS,
      served: served.length,
      failed: 0,
      refused: refused.length,
      waiting: 0,
      active: 0,
    });
    assert.ok(served.length > 0 && refused.length > 0);
    // Handlers start in arrival order: the waiting are served first in, first out.
    assert.equal(started.length, served.length);
    assert.ok(started.every((id, i) => i === 0 || id > started[i - 1]));
    const p99 = percentile(refused.map((o) => o.ms), 99);
    console.log(
      `flood: ${served.length} served, ${refused.length} refused in ${
        elapsed.toFixed(0)
      } ms; refusal p50 ${
        percentile(refused.map((o) => o.ms), 50).toFixed(1)
      } ms, p99 ${p99.toFixed(1)} ms`,
    );
    assert.ok(p99 < 100, `refusal p99 ${p99} ms`);
  } finally {
    await server.shutdown();
  }
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
      if (before !== undefined) assert.equal(openDescriptors(), before);
    });
  }
});
