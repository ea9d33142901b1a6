/**
 * An HTTP/1.0 GET by hand: the tutorial's "now we need to send data" step,
 * made concrete. Sends the request with `sendAll`, reads the whole answer
 * with `recvAll` (an HTTP/1.0 server closes the connection when done), and
 * prints it.
 *
 * ```sh
 * deno run -N examples/http_get.ts http://127.0.0.1:8000/
 * deno run -N --allow-read=/etc/hosts examples/http_get.ts http://example.com/
 * ```
 *
 * Arguments: the URL (http only; default http://www.google.com/).
 *
 * Permissions: `-N`; add `--allow-read=/etc/hosts` for names in the hosts
 * file.
 *
 * @module
 */

import { connect } from "../mod.ts";

const url = new URL(Deno.args[0] ?? "http://www.google.com/");
if (url.protocol !== "http:") {
  console.error(`only http:// URLs: ${url.href}`);
  Deno.exit(2);
}
const port = url.port === "" ? 80 : Number(url.port);

await using conn = await connect(url.hostname, port, { timeout: 10_000 });

// HTTP/1.0: one request per connection; lines end with \r\n and an empty
// line ends the request.
const request = [
  `GET ${url.pathname}${url.search} HTTP/1.0`,
  `Host: ${url.host}`,
  "Connection: close",
  "",
  "",
].join("\r\n");
await conn.sendAll(request);

// The server sends its answer and closes: read until then.
const response = await conn.recvAll();
// One write may take only part of a large answer: pipe it all.
await ReadableStream.from([response]).pipeTo(Deno.stdout.writable);
