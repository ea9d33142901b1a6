/**
 * STARTTLS: a plain-text exchange, then TLS on the same connection, as
 * SMTP, IMAP and XMPP do. A tiny SMTP-like server and its client in one
 * script, on loopback:
 *
 * ```
 * S: 220 ready
 * C: STARTTLS
 * S: 220 go ahead
 * (TLS handshake: the client checks the certificate for "localhost")
 * C: HELLO over TLS
 * S: 250 secret HELLO over TLS (then closes)
 * ```
 *
 * ```sh
 * deno run -N -R examples/starttls.ts server.pem server.key ca.pem
 * ```
 *
 * Arguments: the server's certificate and key and the authority that
 * signed it (PEM files; the certificate must be valid for "localhost").
 *
 * The client side is the module's {@linkcode startTls}. Deno's own API
 * cannot upgrade a connection on the server side (`Deno.startTls` is a
 * client's), so the server here is `node:net` with `node:tls`'s
 * `TLSSocket`, which Deno provides.
 *
 * Permissions: `-N` and `-R` for the PEM files.
 *
 * @module
 */

import * as net from "node:net";
import * as tls from "node:tls";
import { connect, startTls } from "../mod.ts";

const [certFile, keyFile, caFile] = Deno.args;
if (caFile === undefined) {
  console.error("usage: starttls.ts CERT KEY CA");
  Deno.exit(2);
}
const cert = Deno.readTextFileSync(certFile);
const key = Deno.readTextFileSync(keyFile);
const ca = Deno.readTextFileSync(caFile);
const decoder = new TextDecoder();

/** The server: a greeting, STARTTLS, then one line answered over TLS. */
function upgradeOnRequest(socket: net.Socket): void {
  socket.on("error", () => socket.destroy());
  socket.write("220 ready\r\n");
  socket.once("data", (line) => {
    if (line.toString().trim() !== "STARTTLS") return socket.end("500 ?\r\n");
    socket.write("220 go ahead\r\n", () => {
      const secure = new tls.TLSSocket(socket, { isServer: true, cert, key });
      secure.on("error", () => secure.destroy());
      secure.once("data", (data) => secure.end(`250 secret ${data}`));
    });
  });
}

const server = net.createServer(upgradeOnRequest);
await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
const { port } = server.address() as net.AddressInfo;

try {
  const plain = await connect("127.0.0.1", port, { timeout: 5000 });
  console.log(`S: ${decoder.decode((await plain.recv()) ?? undefined).trim()}`);
  await plain.sendAll("STARTTLS\r\n");
  console.log("C: STARTTLS");
  console.log(`S: ${decoder.decode((await plain.recv()) ?? undefined).trim()}`);
  // `plain` is spent now: the TLS connection carries the rest.
  await using conn = await startTls(plain, {
    serverName: "localhost",
    caCerts: [ca],
    timeout: 5000,
  });
  console.log(`(TLS with ${conn.tls?.serverName}: certificate verified)`);
  await conn.sendAll("HELLO over TLS\r\n");
  console.log("C: HELLO over TLS");
  console.log(`S: ${decoder.decode(await conn.recvAll()).trim()}`);
} catch (error) {
  console.error(error instanceof Error ? error.message : String(error));
  Deno.exitCode = 1;
} finally {
  server.close();
}
