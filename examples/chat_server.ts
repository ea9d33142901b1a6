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
 * Limits, as an IRC server has them, so that one client cannot take the
 * server down; a client past one is dropped, with a last line
 * `ERROR :Closing link: REASON` (if it still reads) and a line on stdout:
 *
 * - a line is at most 4096 characters; a longer one, or 4096 characters
 *   without a newline, is not cut but drops its sender ("Line too long");
 * - a client sends at most 1000 lines at once and 100 a second after that
 *   ("Excess Flood");
 * - at most 256 KiB may wait to be sent to a client ("SendQ exceeded"):
 *   past half of that, the server stops reading the senders until the
 *   client catches up, and drops it if that takes over 3 s. A slow client
 *   slows the room a little; one that does not read is dropped, never
 *   buffered for.
 *
 * So memory stays under about 100 clients × 256 KiB, whatever they send.
 *
 * @module
 */

import {
  type Connection,
  formatAddress,
  parsePort,
  pythonAddress,
  serve,
  type Server,
} from "../mod.ts";

const MAX_LINE = 4096;
const FLOOD_BURST = 1000;
const FLOOD_RATE = 100;
const MAX_QUEUE = 256 * 1024;
const MAX_LAG_MS = 3000;

const encoder = new TextEncoder();

/** A client in the room: its queue of bytes to send and its flood count. */
class Client {
  readonly name: string;
  /** Why it was dropped, once it was. */
  dropped: string | undefined;
  #queue: Uint8Array[] = [];
  #queued = 0;
  #flushing = false;
  #waiting: (() => void)[] = [];
  #allowance = FLOOD_BURST;
  #counted = performance.now();

  constructor(readonly conn: Connection) {
    this.name = formatAddress(conn.remoteAddr);
  }

  /** Queues bytes for this client; false when its queue would overflow. */
  send(bytes: Uint8Array): boolean {
    if (this.#queued + bytes.length > MAX_QUEUE) return false;
    this.#queue.push(bytes);
    this.#queued += bytes.length;
    if (!this.#flushing) this.#flush();
    return true;
  }

  /** Waits while over half its queue waits; drops it past `MAX_LAG_MS`. */
  async catchUp(): Promise<void> {
    if (this.#queued <= MAX_QUEUE / 2 || this.dropped) return;
    const timer = setTimeout(() => this.drop("SendQ exceeded"), MAX_LAG_MS);
    await new Promise<void>((resolve) => this.#waiting.push(resolve));
    clearTimeout(timer);
  }

  /** Counts one line against the flood limit; false once it floods. */
  takeLine(): boolean {
    const now = performance.now();
    const earned = (now - this.#counted) / 1000 * FLOOD_RATE;
    this.#allowance = Math.min(FLOOD_BURST, this.#allowance + earned) - 1;
    this.#counted = now;
    return this.#allowance >= 0;
  }

  /** Leaves the room, telling the client why, and closes its connection. */
  drop(reason: string): void {
    if (this.dropped) return;
    this.dropped = reason;
    room.delete(this);
    this.#wake();
    console.log(`Dropped ${this.name}: ${reason}`);
    // One try: a client that does not read will not hear it.
    this.conn.send(`ERROR :Closing link: ${reason}\n`).catch(() => {});
    this.conn.close();
  }

  /** Writes the queue out, all that has piled up in one write at a time. */
  async #flush(): Promise<void> {
    this.#flushing = true;
    try {
      while (this.#queue.length > 0) {
        const bytes = concat(this.#queue);
        this.#queue = [];
        await this.conn.sendAll(bytes);
        this.#queued -= bytes.length;
        if (this.#queued <= MAX_QUEUE / 2) this.#wake();
      }
    } catch {
      // Gone: its own handler sees the connection end and leaves the room.
      this.#queue = [];
      this.#queued = 0;
      this.#wake();
    } finally {
      this.#flushing = false;
    }
  }

  #wake(): void {
    for (const resolve of this.#waiting.splice(0)) resolve();
  }
}

function concat(chunks: Uint8Array[]): Uint8Array {
  if (chunks.length === 1) return chunks[0];
  const out = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
  let offset = 0;
  for (const chunk of chunks) {
    out.set(chunk, offset);
    offset += chunk.length;
  }
  return out;
}

const room = new Set<Client>();

/** Queues a line for every client but the sender; drops those too slow. */
function broadcast(from: Client, line: string): void {
  const bytes = encoder.encode(`${from.name}: ${line}\n`);
  for (const client of room) {
    if (client !== from && !client.send(bytes)) client.drop("SendQ exceeded");
  }
}

/** Reads a client's lines until it leaves or breaks a limit. */
async function chat(client: Client): Promise<void> {
  const decoder = new TextDecoder();
  let partial = "";
  while (true) {
    const data = await client.conn.recv();
    if (data === null) return;
    // Bytes arrive in chunks, not lines: keep the unfinished line.
    const lines = (partial + decoder.decode(data, { stream: true }))
      .split("\n");
    partial = lines.pop() ?? "";
    for (const line of lines) {
      if (line.length > MAX_LINE) return client.drop("Line too long");
      if (!client.takeLine()) return client.drop("Excess Flood");
      broadcast(client, line.replace(/\r$/, ""));
    }
    if (partial.length > MAX_LINE) return client.drop("Line too long");
    // Read no more from this client while another falls behind.
    await Promise.all([...room].map((peer) => peer.catchUp()));
  }
}

function listen(port: number): Server {
  return serve({
    hostname: "127.0.0.1",
    port,
    // Clients are told to go at shutdown; 2 s for what is left.
    shutdownTimeout: 2000,
    concurrency: 100,
  }, async (conn, info) => {
    console.log(`Got connection from ${pythonAddress(info.remoteAddr)}`);
    const client = new Client(conn);
    room.add(client);
    try {
      await chat(client);
    } catch (error) {
      // Dropped by another client's broadcast: its connection was closed.
      if (!client.dropped) throw error;
    } finally {
      room.delete(client);
    }
  });
}

/** Fails the way the CLI does: one line on stderr, no stack trace. */
function fail(error: unknown, code: number): never {
  console.error(error instanceof Error ? error.message : String(error));
  Deno.exit(code);
}

let port: number;
try {
  const portArg = Deno.args[0] === "--port" ? Deno.args[1] ?? "" : Deno.args[0];
  port = parsePort(portArg ?? "12345", { allowZero: true });
} catch (error) {
  fail(error, 2);
}

let server: Server;
try {
  server = listen(port);
} catch (error) {
  fail(error, 1); // the port is taken, or no -N
}

console.log(`socket binded to ${server.addr.port}`);
console.log("socket is listening");
// Ctrl-C: stop accepting and tell every client to go; a second Ctrl-C
// quits at once.
let interrupted = false;
Deno.addSignalListener("SIGINT", () => {
  if (interrupted) Deno.exit(130);
  interrupted = true;
  server.shutdown();
  for (const client of room) client.drop("Server shutting down");
});
await server.finished;
