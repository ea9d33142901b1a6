/**
 * An HTTP/1.0 GET by hand: the tutorial's "now we need to send data" step,
 * made concrete. Sends the request with `sendAll`, reads the whole answer
 * with `recvAll` (an HTTP/1.0 server closes the connection when done), and
 * prints it.
 *
 * ```sh
 * deno run -N examples/http_get.ts http://127.0.0.1:8000/
 * deno run -N --allow-read=/etc/hosts examples/http_get.ts http://example.com/
 * deno run -N examples/http_get.ts --timeout 2000 http://127.0.0.1:8000/
 * ```
 *
 * Arguments: the URL (http only; default http://www.google.com/), and
 * `--timeout MS`: one deadline for the whole exchange, connect, request and
 * answer (default 10000; 0 for none). An answer over 16 MiB is an error.
 * Failures print one line on stderr and exit 1 (2 for bad arguments).
 *
 * Permissions: `-N`; add `--allow-read=/etc/hosts` for names in the hosts
 * file.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { connect, parsePort, TimeoutError } from "../mod.ts";

const MAX_ANSWER = 16 * 1024 * 1024;

/** Fails the way the CLI does: one line on stderr, no stack trace. */
function fail(error: unknown, code: number): never {
  // parseArgs's messages run to several lines: the first says it.
  const message = error instanceof Error ? error.message : String(error);
  console.error(message.split("\n")[0]);
  Deno.exit(code);
}

/** The URL, its port and the deadline, from the command line. */
function readArgs(args: string[]): { url: URL; port: number; ms: number } {
  const { values, positionals } = parseArgs({
    args,
    options: { timeout: { type: "string" } },
    allowPositionals: true,
  });
  const url = new URL(positionals[0] ?? "http://www.google.com/");
  if (url.protocol !== "http:") throw new Error(`only http:// URLs: ${url}`);
  const timeout = values.timeout ?? "10000";
  if (!/^\d+$/.test(timeout)) {
    throw new Error(`invalid --timeout ${timeout}: expected ms`);
  }
  return { url, port: parsePort(url.port || "80"), ms: Number(timeout) };
}

/** Sends the request and reads the answer; `signal` stops every step. */
async function get(
  url: URL,
  port: number,
  signal?: AbortSignal,
): Promise<Uint8Array> {
  await using conn = await connect(url.hostname, port, { signal });
  // A recv cannot be cancelled but by closing the connection.
  const stop = () => conn.close();
  signal?.addEventListener("abort", stop);
  try {
    // HTTP/1.0: one request per connection; lines end with \r\n and an
    // empty line ends the request.
    const request = [
      `GET ${url.pathname}${url.search} HTTP/1.0`,
      `Host: ${url.host}`,
      "Connection: close",
      "",
      "",
    ].join("\r\n");
    await conn.sendAll(request);
    // The server sends its answer and closes: read until then.
    return await conn.recvAll({ maxBytes: MAX_ANSWER });
  } finally {
    signal?.removeEventListener("abort", stop);
  }
}

let args: { url: URL; port: number; ms: number };
try {
  args = readArgs(Deno.args);
} catch (error) {
  fail(error, 2);
}
const { url, port, ms } = args;

// One deadline for all of it: a server that accepts and never answers, or
// answers for ever, must not hang us.
const deadline = ms === 0 ? undefined : AbortSignal.timeout(ms);
try {
  const response = await get(url, port, deadline);
  // One write may take only part of a large answer: pipe it all.
  await ReadableStream.from([response]).pipeTo(Deno.stdout.writable);
} catch (error) {
  if (!deadline?.aborted) fail(error, 1);
  fail(
    new TimeoutError({
      op: "recv",
      host: url.hostname,
      port,
      reason: `no complete answer in ${ms} ms`,
    }),
    1,
  );
}
