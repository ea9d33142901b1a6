/**
 * Deno servers for the side-by-side benchmarks, each bound to 127.0.0.1 on a
 * port from the system. Prints "listening PORT" once ready.
 *
 *   greet serve|raw            the tutorial's greet-and-close server
 *   hold serve|serve-async|raw COUNT
 *                              holds connections idle, each with one
 *                              pending 1 KiB read; prints "held COUNT" once
 *                              COUNT are open. serve's handler returns
 *                              recv's promise, as raw keeps read's;
 *                              serve-async awaits it in an async function
 *   admit BACKLOG BUSY_MS      serve() with `backlog` and one busy handler;
 *                              prints "stats JSON" when stdin closes
 *   refuse raw MESSAGE         a raw loop refusing every client: accept,
 *                              write MESSAGE, close
 *
 * @module
 */

import { serve } from "../../mod.ts";

const GREETING = "Thank you for connecting";
const [kind, mode, arg] = Deno.args;

function listening(port: number): void {
  console.log(`listening ${port}`);
}

/** A raw listener on 127.0.0.1, port from the system, announced. */
function rawListener(tcpBacklog: number): Deno.TcpListener {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0, tcpBacklog });
  listening(listener.addr.port);
  return listener;
}

async function untilStdinCloses(): Promise<void> {
  for await (const _ of Deno.stdin.readable) {
    // Read to the end: the harness closes stdin to stop the server.
  }
}

async function greetRaw(): Promise<void> {
  const bytes = new TextEncoder().encode(GREETING);
  const listener = rawListener(511);
  const reply = async (conn: Deno.TcpConn) => {
    try {
      let sent = 0;
      while (sent < bytes.length) {
        sent += await conn.write(bytes.subarray(sent));
      }
    } catch {
      // The client went away; nothing to do.
    } finally {
      conn.close();
    }
  };
  for await (const conn of listener) reply(conn);
}

async function greetServe(): Promise<void> {
  // Encoded once, as the raw loop does.
  const bytes = new TextEncoder().encode(GREETING);
  const server = serve(
    { hostname: "127.0.0.1", port: 0, concurrency: 64, onError: () => {} },
    (conn) => conn.sendAll(bytes),
  );
  listening(server.addr.port);
  await server.finished;
}

async function holdRaw(count: number): Promise<void> {
  const listener = rawListener(4096);
  const conns: Deno.TcpConn[] = [];
  for await (const conn of listener) {
    conns.push(conn);
    conn.read(new Uint8Array(1024)).catch(() => {});
    if (conns.length === count) console.log(`held ${count}`);
  }
}

async function holdServe(count: number, async: boolean): Promise<void> {
  let held = 0;
  const server = serve(
    {
      hostname: "127.0.0.1",
      port: 0,
      concurrency: count + 1,
      kernelBacklog: 4096,
      onError: () => {},
      onConnection: () => {
        if (++held === count) console.log(`held ${count}`);
      },
    },
    async
      ? async (conn) => {
        await conn.recv(1024);
      }
      : (conn) => conn.recv(1024).then(() => {}),
  );
  listening(server.addr.port);
  await server.finished;
}

/**
 * A raw loop that only refuses, for row 5c (in 5b's bursts): accept, write
 * the message, close. As `cli.ts serve` does, it asks for a kernel queue of
 * 4096 (what serve() asks for when it may not read somaxconn) and lets the
 * event loop turn every 8 accepts (without the turn, every write waits for
 * the end of the burst).
 */
async function refuseRaw(message: string): Promise<void> {
  const bytes = new TextEncoder().encode(message);
  const listener = rawListener(4096);
  const channel = new MessageChannel();
  let wake = () => {};
  channel.port2.onmessage = () => wake();
  for (let accepted = 0;; accepted++) {
    if (accepted > 0 && accepted % 8 === 0) {
      await new Promise<void>((resolve) => {
        wake = resolve;
        channel.port1.postMessage(null);
      });
    }
    const conn = await listener.accept();
    const close = () => conn.close();
    // One write to a fresh socket takes the whole (short) message.
    conn.write(bytes).then(close, close);
  }
}

async function admit(backlog: number, busyMs: number): Promise<void> {
  const server = serve(
    { hostname: "127.0.0.1", port: 0, backlog, onError: () => {} },
    async (conn, info) => {
      // Busy: the handler holds the connection before it greets.
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, busyMs);
        info.signal.addEventListener("abort", () => {
          clearTimeout(timer);
          resolve();
        });
      });
      await conn.sendAll(GREETING);
    },
  );
  listening(server.addr.port);
  await untilStdinCloses();
  await server.shutdown();
  console.log(`stats ${JSON.stringify(server.stats)}`);
}

if (kind === "greet" && mode === "raw") await greetRaw();
else if (kind === "greet" && mode === "serve") await greetServe();
else if (kind === "hold" && mode === "raw") await holdRaw(Number(arg));
else if (kind === "hold" && (mode === "serve" || mode === "serve-async")) {
  await holdServe(Number(arg), mode === "serve-async");
} else if (kind === "admit") await admit(Number(mode), Number(arg));
else if (kind === "refuse" && mode === "raw" && arg !== undefined) {
  await refuseRaw(arg);
} else {
  console.error("usage: deno_server.ts greet|hold|admit|refuse MODE [ARG]");
  Deno.exit(2);
}
