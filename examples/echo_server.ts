/**
 * An echo server: sends back every byte it receives, until the client
 * closes. Several clients are served at once; one that stays silent is
 * closed after an idle timeout, so silent clients cannot hold every slot.
 *
 * ```sh
 * deno run -N examples/echo_server.ts 12345
 * deno run -N cli.ts telnet localhost 12345    # type; each line comes back
 * ```
 *
 * Arguments: the port (default 12345; 0 for any free one), as `--port N` or
 * as the first argument; `--idle-timeout MS`, how long a client may stay
 * silent (default 30000; 0 for ever).
 *
 * Permissions: `-N`.
 *
 * @module
 */

import { parseArgs } from "node:util";
import {
  parsePort,
  pythonAddress,
  serve,
  type Server,
  TimeoutError,
} from "../mod.ts";

/** Fails the way the CLI does: one line on stderr, no stack trace. */
function fail(error: unknown, code: number): never {
  // parseArgs's messages run to several lines: the first says it.
  const message = error instanceof Error ? error.message : String(error);
  console.error(message.split("\n")[0]);
  Deno.exit(code);
}

/** The port and the idle timeout, from the command line. */
function readArgs(args: string[]): { port: number; idle: number } {
  const { values, positionals } = parseArgs({
    args,
    options: { port: { type: "string" }, "idle-timeout": { type: "string" } },
    allowPositionals: true,
  });
  const port = parsePort(values.port ?? positionals[0] ?? "12345", {
    allowZero: true,
  });
  const idleText = values["idle-timeout"] ?? "30000";
  if (!/^\d+$/.test(idleText)) {
    throw new Error(`invalid --idle-timeout ${idleText}: expected ms`);
  }
  return { port, idle: Number(idleText) };
}

let args: { port: number; idle: number };
try {
  args = readArgs(Deno.args);
} catch (error) {
  fail(error, 2);
}
const { port, idle } = args;

let server: Server;
try {
  server = serve({
    hostname: "127.0.0.1",
    port,
    // A recv (or a send) that waits longer than this closes the connection.
    idleTimeout: idle === 0 ? undefined : idle,
    // Clients may stay connected for long: a shutdown waits 2 s at most.
    shutdownTimeout: 2000,
    // Unlike the tutorial's server, serve many clients at a time.
    concurrency: 100,
    onConnection: (info) =>
      console.log(`Got connection from ${pythonAddress(info.remoteAddr)}`),
  }, async (conn, info) => {
    try {
      while (true) {
        // recv() waits for whatever has arrived; null when the client closed.
        const data = await conn.recv();
        if (data === null) break;
        // send() may write only part; sendAll() writes every byte.
        await conn.sendAll(data);
      }
    } catch (error) {
      if (!(error instanceof TimeoutError)) throw error;
      console.log(`Closed ${pythonAddress(info.remoteAddr)}: idle ${idle} ms`);
    }
  });
} catch (error) {
  fail(error, 1); // the port is taken, or no -N
}

console.log(`socket binded to ${server.addr.port}`);
console.log("socket is listening");
// Ctrl-C: stop accepting and give connected clients a moment to finish
// (shutdownTimeout above); a second Ctrl-C quits at once.
let interrupted = false;
Deno.addSignalListener("SIGINT", () => {
  if (interrupted) Deno.exit(130);
  interrupted = true;
  server.shutdown();
});
await server.finished;
