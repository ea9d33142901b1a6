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
 * Permissions: `-N`.
 *
 * @module
 */

import { connect, parsePort } from "../mod.ts";

// Define the port on which you want to connect.
const portArg = Deno.args[0] === "--port" ? Deno.args[1] : Deno.args[0];
const port = parsePort(portArg ?? "12345");

// Connect to the server on the local computer.
const conn = await connect("127.0.0.1", port);

// Receive at most 1024 bytes; null means the server closed without a word.
const data = await conn.recv(1024);
console.log(new TextDecoder().decode(data ?? new Uint8Array()));

// Close the connection.
conn.close();
