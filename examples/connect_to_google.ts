/**
 * The tutorial's connect script: resolve a host, connect to it on port 80.
 *
 * ```sh
 * deno run -N --allow-read=/etc/hosts examples/connect_to_google.ts
 * deno run -N examples/connect_to_google.ts 127.0.0.1 8000   # offline
 * ```
 *
 * Arguments: the host (default www.google.com, as in the tutorial) and the
 * port (default 80, the HTTP port).
 *
 * Permissions: `-N`; add `--allow-read=/etc/hosts` for names in the hosts
 * file.
 *
 * @module
 */

import {
  connect,
  gethostbyname,
  parsePort,
  ResolveError,
  SocketError,
} from "../mod.ts";

/** Fails the way the CLI does: one line on stderr, no stack trace. */
function fail(error: unknown, code: number): never {
  console.error(error instanceof Error ? error.message : String(error));
  Deno.exit(code);
}

const host = Deno.args[0] ?? "www.google.com";
let port: number;
try {
  port = parsePort(Deno.args[1] ?? "80");
} catch (error) {
  fail(error, 2);
}

// Deno makes the socket as it connects; the line is kept for the tutorial.
console.log("Socket successfully created");

let hostIp: string;
try {
  // As the tutorial: the host's first IPv4 address.
  hostIp = await gethostbyname(host);
} catch (error) {
  // A bad host name, no permission: one line, as the CLI prints it.
  if (!(error instanceof ResolveError)) fail(error, 1);
  // This means we could not resolve the host.
  console.log("there was an error resolving the host");
  Deno.exit(1);
}

let conn;
try {
  conn = await connect(hostIp, port);
} catch (error) {
  if (!(error instanceof SocketError)) fail(error, 1);
  // Refused, unreachable, timed out: the message names the address.
  console.log(error.message);
  Deno.exit(1);
}

// The tutorial prints the IP where it says "port"; both are here.
console.log(
  `the socket has successfully connected to ${host} on port ${port} (${conn.remoteAddr.address})`,
);

conn.close();
