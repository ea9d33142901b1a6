/**
 * The tutorial's HTTP GET step over TLS: the same request with `sendAll`
 * and `recvAll`, on a connection whose server certificate and name are
 * checked before a byte is sent. ALPN offers "http/1.1" (no ALPN name
 * for 1.0 is widely served), so the request is HTTP/1.1 with
 * `Connection: close`: the server still closes when done, and the answer
 * is printed as it comes (a chunked body with its chunk sizes).
 *
 * ```sh
 * deno run -N examples/https_get.ts https://example.com/
 * deno run -N -R examples/https_get.ts --ca ca.pem https://localhost:8443/
 * ```
 *
 * Arguments: the URL (https only; default https://www.google.com/),
 * `--ca FILE` to trust a private authority (PEM), and `--timeout MS`: one
 * deadline for the whole exchange, handshake included (default 10000; 0
 * for none). A refused certificate prints one line naming why (unknown
 * authority, name mismatch, expired) and exits 1; 2 for bad arguments.
 *
 * Permissions: `-N`; `--allow-read=FILE` for `--ca`, and
 * `--allow-read=/etc/hosts` for names in the hosts file.
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
function readArgs(
  args: string[],
): { url: URL; port: number; ms: number; ca: string | undefined } {
  const { values, positionals } = parseArgs({
    args,
    options: { timeout: { type: "string" }, ca: { type: "string" } },
    allowPositionals: true,
  });
  const url = new URL(positionals[0] ?? "https://www.google.com/");
  if (url.protocol !== "https:") throw new Error(`only https:// URLs: ${url}`);
  const timeout = values.timeout ?? "10000";
  if (!/^\d+$/.test(timeout)) {
    throw new Error(`invalid --timeout ${timeout}: expected ms`);
  }
  const ca = values.ca === undefined
    ? undefined
    : Deno.readTextFileSync(values.ca);
  return {
    url,
    port: parsePort(url.port || "443"),
    ms: Number(timeout),
    ca,
  };
}

/** Sends the request and reads the answer; `signal` stops every step. */
async function get(
  url: URL,
  port: number,
  ca: string | undefined,
  signal?: AbortSignal,
): Promise<Uint8Array> {
  // The certificate must be valid for the URL's host: the default.
  await using conn = await connect(url.hostname, port, {
    signal,
    tls: {
      caCerts: ca === undefined ? undefined : [ca],
      alpnProtocols: ["http/1.1"],
    },
  });
  // A recv cannot be cancelled but by closing the connection.
  const stop = () => conn.close();
  signal?.addEventListener("abort", stop);
  try {
    // HTTP/1.1, as ALPN agreed, with one request per connection
    // (Connection: close); lines end with \r\n and an empty line ends the
    // request.
    const request = [
      `GET ${url.pathname}${url.search} HTTP/1.1`,
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

let args: ReturnType<typeof readArgs>;
try {
  args = readArgs(Deno.args);
} catch (error) {
  fail(error, 2);
}
const { url, port, ms, ca } = args;

// One deadline for all of it: a server that accepts and never answers, or
// answers for ever, must not hang us.
const deadline = ms === 0 ? undefined : AbortSignal.timeout(ms);
try {
  const response = await get(url, port, ca, deadline);
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
