/**
 * The tutorial's server: bind to port 12345 on every IPv4 interface, listen
 * with a backlog of 5, greet each client and close the connection, forever
 * (until Ctrl-C).
 *
 * ```sh
 * deno run -N examples/server.ts          # port 12345
 * deno run -N examples/server.ts 0        # any free port; it is printed
 * ```
 *
 * Arguments: the port, as `--port N` or as the first argument.
 *
 * Permissions: `-N`. Failures print one line on stderr and exit 1 (2 for
 * a bad port).
 *
 * @module
 */

import { parsePort, pythonAddress, serve, type Server } from "../mod.ts";

/** Fails the way the CLI does: one line on stderr, no stack trace. */
function fail(error: unknown, code: number): never {
  console.error(error instanceof Error ? error.message : String(error));
  Deno.exit(code);
}

// Reserve a port on your computer: 12345 here, but it can be anything.
const portArg = Deno.args[0] === "--port" ? Deno.args[1] ?? "" : Deno.args[0];
let port: number;
try {
  port = parsePort(portArg ?? "12345", { allowZero: true });
} catch (error) {
  fail(error, 2);
}

let server: Server;
try {
  // "" is the tutorial's '': every IPv4 interface, so other computers on the
  // network can connect; "127.0.0.1" would hear this computer only.
  server = serve({
    hostname: "",
    port,
    backlog: 5,
    onConnection: (info) =>
      console.log(`Got connection from ${pythonAddress(info.remoteAddr)}`),
  }, async (conn) => {
    // Text goes out as UTF-8: Python 3 needs c.send(b"...") here.
    await conn.sendAll("Thank you for connecting");
    // The server closes the connection when this function returns.
  });
} catch (error) {
  fail(error, 1); // the port is taken, or no -N
}

// Deno creates the socket as it binds; the line is the tutorial's.
console.log("Socket successfully created");
console.log(`socket binded to ${server.addr.port}`);
console.log("socket is listening");

// Ctrl-C: stop accepting, finish the connection in hand, and exit.
Deno.addSignalListener("SIGINT", () => server.shutdown());
await server.finished;
