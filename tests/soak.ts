/**
 * The long variants of the fault suite, run by `deno task soak` (not in
 * CI): a 100,000-cycle churn, and a minute of mixed traffic (good clients,
 * big downloads, resets, aborts, slow loris and flood bursts) against one
 * server. Each prints its figures. `SOAK_SECONDS` shortens the minute.
 *
 * @module
 */

import assert from "node:assert/strict";
import { connect, serve, SocketError } from "../mod.ts";
import {
  GREETING,
  openDescriptors,
  type Outcome,
  percentile,
  pool,
  python3Missing,
  REFUSAL,
  resetClients,
  visit,
} from "./fixtures/fault_clients.ts";

const decoder = new TextDecoder();
const MiB = 1024 * 1024;

Deno.test("soak: 100,000 connect/greet/close cycles, 64 at a time, leak nothing", async () => {
  const CYCLES = 100_000;
  const errors: unknown[] = [];
  const warm = serve({ hostname: "127.0.0.1" }, (c) => c.sendAll(GREETING));
  await visit(warm.addr.port); // The runtime opens what it keeps on first use.
  await warm.shutdown();
  const before = openDescriptors();
  const rssBefore = Deno.memoryUsage().rss;
  const server = serve({
    hostname: "127.0.0.1",
    concurrency: 64,
    backlog: 1024,
    onError: (error) => errors.push(error),
  }, (conn) => conn.sendAll(GREETING));
  try {
    const t0 = performance.now();
    const outcomes = await pool(CYCLES, 64, async () => {
      const { text, ms } = await visit(server.addr.port);
      return text === GREETING ? ms : -1;
    });
    const elapsed = performance.now() - t0;
    await server.shutdown();
    assert.equal(outcomes.filter((ms) => ms < 0).length, 0);
    assert.deepEqual(errors, []);
    assert.deepEqual(server.stats, {
      accepted: CYCLES,
      served: CYCLES,
      failed: 0,
      refused: 0,
      waiting: 0,
      active: 0,
    });
    const after = openDescriptors();
    console.log(
      `churn: ${CYCLES} cycles in ${(elapsed / 1000).toFixed(1)} s (${
        Math.round(CYCLES / (elapsed / 1000))
      }/s); latency p50 ${percentile(outcomes, 50).toFixed(2)} ms, p99 ${
        percentile(outcomes, 99).toFixed(2)
      } ms; descriptors ${before} before, ${after} after; rss ${
        (rssBefore / MiB).toFixed(0)
      } -> ${(Deno.memoryUsage().rss / MiB).toFixed(0)} MiB`,
    );
    assert.equal(after, before);
  } finally {
    await server.shutdown();
  }
});

/** Reads to the end; the text, or `undefined` if the connection failed. */
async function ask(port: number, request: string): Promise<Outcome> {
  const start = performance.now();
  try {
    await using conn = await connect("127.0.0.1", port);
    await conn.sendAll(request);
    await conn.closeWrite();
    const text = decoder.decode(await conn.recvAll());
    return { text, ms: performance.now() - start };
  } catch (error) {
    if (!(error instanceof SocketError)) throw error;
    return { text: "", code: error.code, ms: performance.now() - start };
  }
}

/** A flood from a process of its own; the outcome of each client. */
async function flood(
  port: number,
  attempts: number,
  width: number,
): Promise<Outcome[]> {
  const script = new URL("./fixtures/flood_client.ts", import.meta.url);
  const { success, stdout } = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-N=127.0.0.1",
      "--allow-read",
      script.pathname,
      String(port),
      String(attempts),
      String(width),
    ],
    stdout: "piped",
    stderr: "inherit",
  }).output();
  assert.ok(success, "the flood client failed");
  return decoder.decode(stdout).trim().split("\n").map((line) =>
    JSON.parse(line)
  );
}

const pythonSkip = await python3Missing();
if (pythonSkip) console.log(`the soak runs without resets: ${pythonSkip}`);

Deno.test("soak: a minute of mixed good and hostile traffic", async () => {
  const SECONDS = Number(Deno.env.get("SOAK_SECONDS") ?? 60);
  const BIG = new Uint8Array(1 * MiB).fill(0x2e);
  const errors: SocketError[] = [];
  const other: unknown[] = [];
  const before = openDescriptors();
  const rssBefore = Deno.memoryUsage().rss;
  const server = serve({
    hostname: "127.0.0.1",
    concurrency: 16,
    backlog: 64,
    idleTimeout: 500,
    handlerTimeout: 5000,
    refusalMessage: REFUSAL,
    onError: (error) => {
      if (error instanceof SocketError) errors.push(error);
      else other.push(error);
    },
  }, async (conn) => {
    await conn.sendAll(GREETING);
    let line = "";
    while (!line.includes("\n")) {
      const chunk = await conn.recv(64);
      if (chunk === null) return;
      line += decoder.decode(chunk);
    }
    if (line === "big\n") await conn.sendAll(BIG);
  });
  const port = server.addr.port;
  const counts = {
    good: 0,
    big: 0,
    refused: 0,
    loris: 0,
    resets: 0,
    aborts: 0,
    flooded: 0,
    bad: 0,
  };
  const floodRefusals: number[] = [];
  const bad: Outcome[] = [];
  const deadline = performance.now() + SECONDS * 1000;
  const running = () => performance.now() < deadline;
  const record = (o: Outcome, expected: string, kind: "good" | "big") => {
    if (o.text === expected) counts[kind]++;
    else if (o.text === REFUSAL) counts.refused++;
    else {
      counts.bad++;
      bad.push(o);
    }
  };

  const workers: Promise<void>[] = [];
  for (let i = 0; i < 8; i++) {
    workers.push((async () => {
      while (running()) record(await ask(port, "bye\n"), GREETING, "good");
    })());
  }
  for (let i = 0; i < 2; i++) {
    workers.push((async () => {
      const expected = GREETING + decoder.decode(BIG);
      while (running()) record(await ask(port, "big\n"), expected, "big");
    })());
  }
  // Slow loris: connects, reads the greeting, never sends a line; the idle
  // timeout ends it.
  workers.push((async () => {
    while (running()) {
      const o = await visit(port);
      if (o.text === GREETING || o.text === REFUSAL) counts.loris++;
      else {
        counts.bad++;
        bad.push(o);
      }
    }
  })());
  // Aborts: connect and close at once.
  workers.push((async () => {
    while (running()) {
      const conn = await connect("127.0.0.1", port);
      conn.close();
      counts.aborts++;
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
  })());
  if (!pythonSkip) {
    workers.push((async () => {
      while (running()) {
        counts.resets += (await resetClients(port, 10, "big\n")).length;
      }
    })());
  }
  // A flood burst from another process every ten seconds.
  workers.push((async () => {
    while (running()) {
      const outcomes = await flood(port, 1000, 128);
      for (const o of outcomes) {
        if (o.text === REFUSAL) floodRefusals.push(o.ms);
        if (o.text === GREETING || o.text === REFUSAL) counts.flooded++;
        else {
          counts.bad++;
          bad.push(o);
        }
      }
      const pause = Math.min(10_000, deadline - performance.now());
      if (pause > 0) await new Promise((r) => setTimeout(r, pause));
    }
  })());

  try {
    await Promise.all(workers);
    await server.shutdown();
    const stats = server.stats;
    const clients = counts.good + counts.big + counts.refused + counts.loris +
      counts.resets + counts.aborts + counts.flooded;
    const byCode = new Map<string, number>();
    for (const e of errors) byCode.set(e.code, (byCode.get(e.code) ?? 0) + 1);
    const after = openDescriptors();
    console.log(
      `soak: ${SECONDS} s, ${clients} clients: ${
        JSON.stringify(counts)
      }\nserver: ${JSON.stringify(stats)}; failures by code ${
        JSON.stringify(Object.fromEntries(byCode))
      }\nflood refusals: ${floodRefusals.length}, p50 ${
        percentile(floodRefusals, 50).toFixed(1)
      } ms, p99 ${
        percentile(floodRefusals, 99).toFixed(1)
      } ms; descriptors ${before} before, ${after} after; rss ${
        (rssBefore / MiB).toFixed(0)
      } -> ${(Deno.memoryUsage().rss / MiB).toFixed(0)} MiB`,
    );
    assert.deepEqual(bad, [], "every client served in full or refused");
    assert.deepEqual(other, [], "every failure is a SocketError");
    for (const code of byCode.keys()) {
      assert.ok(["ETIMEDOUT", "ECONNRESET", "EPIPE"].includes(code), code);
    }
    assert.equal(stats.accepted, clients);
    assert.equal(stats.accepted, stats.served + stats.failed + stats.refused);
    assert.equal(stats.waiting + stats.active, 0);
    assert.equal(after, before);
  } finally {
    await server.shutdown();
  }
});
