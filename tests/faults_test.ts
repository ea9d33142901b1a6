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
