/**
 * A TLS sink for the bulk TLS rows: accepts one client on 127.0.0.1 (port
 * 0), reads to its end, prints "bytes N seconds S" (from the end of the
 * handshake to the end of the stream) and closes. The same sink for every
 * client measured, so its own decryption weighs on each alike.
 *
 *   deno run -A tls_sink.ts CERT_FILE KEY_FILE
 *
 * @module
 */

const [certFile, keyFile] = Deno.args;
const listener = Deno.listenTls({
  hostname: "127.0.0.1",
  port: 0,
  cert: await Deno.readTextFile(certFile),
  key: await Deno.readTextFile(keyFile),
});
console.log(`listening ${listener.addr.port}`);
const conn = await listener.accept();
listener.close();
await conn.handshake();
const buffer = new Uint8Array(1 << 20);
let bytes = 0;
const start = performance.now();
try {
  while (true) {
    const n = await conn.read(buffer);
    if (n === null) break;
    bytes += n;
  }
} catch (error) {
  // ncat ends without close_notify: the end all the same.
  if (!(error instanceof Deno.errors.UnexpectedEof)) throw error;
}
const seconds = (performance.now() - start) / 1000;
conn.close();
console.log(`bytes ${bytes} seconds ${seconds.toFixed(6)}`);
