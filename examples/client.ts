/**
 * The tutorial's client: connect to 127.0.0.1 on port 12345, receive up to
 * 1024 bytes, print them and close.
 *
 * ```sh
 * deno run -N examples/client.ts          # port 12345
 * deno run -N examples/client.ts 40001    # another port
 * ```
 *
 * Arguments: the port, as `--port N` or as the first argument.
 *
 * Permissions: `-N`. Failures print one line on stderr and exit 1 (2 for
 * a bad port).
 *
 * @module
 */

import { connect, parsePort } from "../mod.ts";

/** Fails the way the CLI does: one line on stderr, no stack trace. */
function fail(error: unknown, code: number): never {
  console.error(error instanceof Error ? error.message : String(error));
  Deno.exit(code);
}

// Define the port on which you want to connect.
const portArg = Deno.args[0] === "--port" ? Deno.args[1] ?? "" : Deno.args[0];
let port: number;
try {
  port = parsePort(portArg ?? "12345");
} catch (error) {
  fail(error, 2);
}

try {
  // Connect to the server on the local computer.
  await using conn = await connect("127.0.0.1", port);
  // Receive at most 1024 bytes; null means the server closed without a word.
  const data = await conn.recv(1024);
  console.log(new TextDecoder().decode(data ?? new Uint8Array()));
  // The connection closes here, at the end of its block.
} catch (error) {
  // Refused, reset: the message names the address and the reason.
  fail(error, 1);
}
