/**
 * Bulk transfer client: moves BYTES to a sink, or reads a source to its end,
 * through the module's `sendAll`/`recv` or raw `Deno.TcpConn` write/read
 * loops, with 1 MiB chunks. Prints "bytes N seconds S".
 *
 *   send module|raw PORT BYTES
 *   recv module|into|raw PORT   (into: recvInto with one buffer)
 *
 * @module
 */

import { connect } from "../../mod.ts";

const CHUNK = 1 << 20;
const [direction, mode, portText, bytesText] = Deno.args;
const port = Number(portText);
const bytes = Number(bytesText ?? 0);

async function sendModule(): Promise<number> {
  await using conn = await connect("127.0.0.1", port);
  const chunk = new Uint8Array(CHUNK);
  const start = performance.now();
  for (let left = bytes; left > 0; left -= CHUNK) {
    await conn.sendAll(left >= CHUNK ? chunk : chunk.subarray(0, left));
  }
  await conn.closeWrite();
  await conn.recv();
  return performance.now() - start;
}

async function sendRaw(): Promise<number> {
  using conn = await Deno.connect({ hostname: "127.0.0.1", port });
  const chunk = new Uint8Array(CHUNK);
  const start = performance.now();
  for (let left = bytes; left > 0; left -= CHUNK) {
    const part = left >= CHUNK ? chunk : chunk.subarray(0, left);
    let sent = 0;
    while (sent < part.length) sent += await conn.write(part.subarray(sent));
  }
  await conn.closeWrite();
  await conn.read(new Uint8Array(1));
  return performance.now() - start;
}

async function recvModule(): Promise<[number, number]> {
  await using conn = await connect("127.0.0.1", port);
  const start = performance.now();
  let total = 0;
  while (true) {
    const chunk = await conn.recv(CHUNK);
    if (chunk === null) break;
    total += chunk.length;
  }
  return [performance.now() - start, total];
}

async function recvInto(): Promise<[number, number]> {
  await using conn = await connect("127.0.0.1", port);
  const buffer = new Uint8Array(CHUNK);
  const start = performance.now();
  let total = 0;
  let n: number | null;
  while ((n = await conn.recvInto(buffer)) !== null) total += n;
  return [performance.now() - start, total];
}

async function recvRaw(): Promise<[number, number]> {
  using conn = await Deno.connect({ hostname: "127.0.0.1", port });
  const buffer = new Uint8Array(CHUNK);
  const start = performance.now();
  let total = 0;
  while (true) {
    const n = await conn.read(buffer);
    if (n === null) break;
    total += n;
  }
  return [performance.now() - start, total];
}

let ms: number;
let moved = bytes;
if (direction === "send" && mode === "module") ms = await sendModule();
else if (direction === "send" && mode === "raw") ms = await sendRaw();
else if (direction === "recv" && mode === "module") {
  [ms, moved] = await recvModule();
} else if (direction === "recv" && mode === "into") {
  [ms, moved] = await recvInto();
} else if (direction === "recv" && mode === "raw") {
  [ms, moved] = await recvRaw();
} else {
  console.error("usage: deno_bulk.ts send|recv module|into|raw PORT [BYTES]");
  Deno.exit(2);
}
console.log(`bytes ${moved} seconds ${(ms / 1000).toFixed(6)}`);
