/**
 * An echo server: sends back every byte it receives, until the client
 * closes. Several clients are served at once.
 *
 * ```sh
 * deno run -N examples/echo_server.ts 12345
 * deno run -N cli.ts telnet localhost 12345    # type; each line comes back
 * ```
 *
 * Arguments: the port (default 12345; 0 for any free one), as `--port N` or
 * as the first argument.
 *
 * Permissions: `-N`.
 *
 * @module
 */

import { parsePort, pythonAddress, serve } from "../mod.ts";

const portArg = Deno.args[0] === "--port" ? Deno.args[1] : Deno.args[0];
const port = parsePort(portArg ?? "12345", { allowZero: true });

const server = serve({
  hostname: "127.0.0.1",
  port,
  // Clients may stay connected for long: a shutdown waits 2 s at most.
  shutdownTimeout: 2000,
  // Unlike the tutorial's server, serve many clients at a time: each one
  // may stay connected for as long as it likes.
  concurrency: 100,
  onConnection: (info) =>
    console.log(`Got connection from ${pythonAddress(info.remoteAddr)}`),
}, async (conn) => {
  while (true) {
    // recv() waits for whatever has arrived; null when the client closed.
    const data = await conn.recv();
    if (data === null) break;
    // send() may write only part; sendAll() writes every byte.
    await conn.sendAll(data);
  }
});

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
