/**
 * Micro level: the accept loop's bookkeeping per connection, and one
 * accept-greet-close round trip on loopback through serve() and through a
 * raw `Deno.listen` loop.
 *
 *   deno bench -A bench/accept_bench.ts
 *
 * @module
 */

import { serve } from "../mod.ts";

const GREETING = "Thank you for connecting";
const BYTES = new TextEncoder().encode(GREETING);

// The handler race, as serve() ran it before and as it runs it now.

Deno.bench(
  "handler race: abort listener per connection (before)",
  { group: "bookkeeping", baseline: true },
  async () => {
    const controller = new AbortController();
    let stop = () => {};
    const handled = Promise.resolve();
    const stopped = new Promise<never>((_, reject) => {
      stop = () => reject(controller.signal.reason);
      controller.signal.addEventListener("abort", stop, { once: true });
    });
    await Promise.race([handled, stopped]);
    controller.signal.removeEventListener("abort", stop);
  },
);

Deno.bench(
  "handler race: the entry's own reject (now)",
  { group: "bookkeeping" },
  async () => {
    const controller = new AbortController();
    const entry: { stop?: (reason: unknown) => void } = {};
    const handled = Promise.resolve();
    const stopped = new Promise<never>((_, reject) => {
      entry.stop = reject;
    });
    if (controller.signal.aborted) entry.stop?.(controller.signal.reason);
    await Promise.race([handled, stopped]);
    entry.stop = undefined;
  },
);

// One connection end to end on loopback. The servers are started once and
// stopped after the last round of their bench.

const server = serve(
  { hostname: "127.0.0.1", concurrency: 64, onError: () => {} },
  (conn) => conn.sendAll(GREETING),
);
const raw = Deno.listen({ hostname: "127.0.0.1", port: 0 });
const rawLoop = (async () => {
  try {
    for await (const conn of raw) {
      conn.write(BYTES).catch(() => {}).finally(() => conn.close());
    }
  } catch {
    // Closed at the end.
  }
})();

async function greeted(port: number): Promise<void> {
  using conn = await Deno.connect({ hostname: "127.0.0.1", port });
  const buffer = new Uint8Array(64);
  let got = 0;
  let n: number | null;
  while ((n = await conn.read(buffer.subarray(got))) !== null) got += n;
  if (got !== BYTES.length) throw new Error(`short greeting: ${got} bytes`);
}

Deno.bench(
  "accept, greet, close: raw Deno.listen loop",
  { group: "loopback", baseline: true },
  async () => await greeted(raw.addr.port),
);

Deno.bench(
  "accept, greet, close: serve()",
  { group: "loopback" },
  async () => await greeted(server.addr.port),
);

globalThis.addEventListener("unload", () => {
  raw.close();
  server.shutdown();
  void rawLoop;
});
