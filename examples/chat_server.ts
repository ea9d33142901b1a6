/**
 * A chat server: every line a client sends goes to every other client,
 * after the sender's address: `127.0.0.1:58933: hello`.
 *
 * ```sh
 * deno run -N examples/chat_server.ts 12345
 * deno run -N cli.ts telnet localhost 12345    # in two or more terminals
 * ```
 *
 * Arguments: the port (default 12345; 0 for any free one), as `--port N` or
 * as the first argument.
 *
 * Permissions: `-N`.
 *
 * @module
 */

import {
  type Connection,
  formatAddress,
  parsePort,
  pythonAddress,
  serve,
} from "../mod.ts";

const portArg = Deno.args[0] === "--port" ? Deno.args[1] : Deno.args[0];
const port = parsePort(portArg ?? "12345", { allowZero: true });

/** Each client, with the chain of its pending writes. */
const clients = new Map<Connection, Promise<void>>();
const encoder = new TextEncoder();

/** Sends a line to every client but the sender, keeping each one's order. */
function broadcast(from: Connection, line: string): void {
  const bytes = encoder.encode(`${formatAddress(from.remoteAddr)}: ${line}\n`);
  for (const [client, pending] of clients) {
    if (client === from) continue;
    // A slow client only delays its own messages; a gone one is skipped.
    clients.set(
      client,
      pending.then(() => client.sendAll(bytes)).catch(() => {}),
    );
  }
}

const server = serve({
  hostname: "127.0.0.1",
  port,
  // Clients may stay connected for long: a shutdown waits 2 s at most.
  shutdownTimeout: 2000,
  concurrency: 100,
}, async (conn, info) => {
  clients.set(conn, Promise.resolve());
  console.log(`Got connection from ${pythonAddress(info.remoteAddr)}`);
  const decoder = new TextDecoder();
  let partial = "";
  try {
    while (true) {
      const data = await conn.recv();
      if (data === null) break;
      // Bytes arrive in chunks, not lines: keep the unfinished line.
      const lines = (partial + decoder.decode(data, { stream: true }))
        .split("\n");
      partial = lines.pop() ?? "";
      for (const line of lines) broadcast(conn, line.replace(/\r$/, ""));
    }
  } finally {
    // Let this client's last messages go out before the server closes it.
    const pending = clients.get(conn);
    clients.delete(conn);
    await pending;
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
