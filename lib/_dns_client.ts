/**
 * A minimal stub resolver (RFC 1035) for A and AAAA queries to one named
 * server.
 *
 * It exists because `Deno.resolveDns` reports NXDOMAIN, SERVFAIL and REFUSED
 * all as the same `Deno.errors.NotFound`, and callers must tell "no such
 * name" (`ENOTFOUND`) from "the server failed" (`ESERVFAIL`). So when a
 * server is named, we speak DNS ourselves and hand back the response code.
 *
 * The messages themselves are built and parsed in `_dns_wire.ts`; this
 * file speaks them over UDP and TCP. Internal: `mod.ts` does not re-export
 * this file.
 *
 * @module
 */

import dgram from "node:dgram";
import { hostPort } from "./_describe.ts";
import { formatAddress } from "./address.ts";
import {
  buildQuery,
  type DnsQuestion,
  type ParsedResponse,
  parseResponse,
} from "./_dns_wire.ts";

/** The answer to one query. */
export interface DnsAnswer {
  /** The response code: 0 NOERROR, 2 SERVFAIL, 3 NXDOMAIN, 5 REFUSED, … */
  rcode: number;
  /** The addresses of the asked type, in answer order (CNAME chains followed within the answer). */
  addresses: string[];
}

/** Options of {@linkcode queryDns}. */
export interface QueryDnsOptions {
  /** The server to ask; only this one, so its answer is the one reported. */
  server: { ipAddr: string; port: number };
  /**
   * Ends the query; the promise then rejects with `signal.reason`. Without
   * it, a silent server is waited for forever, so callers make timeouts with
   * it (`AbortSignal.timeout(ms)`).
   */
  signal?: AbortSignal;
  /**
   * Milliseconds between UDP retransmissions, since a lost datagram is never
   * reported.
   *
   * @default {1000}
   */
  retransmit?: number;
}

/**
 * Asks `server` for the A or AAAA records of `name` over UDP, and again over
 * TCP when the answer is truncated (TC bit).
 *
 * Resolves with whatever the server answered, negative answers included, so
 * that the caller can tell NXDOMAIN (3) from SERVFAIL (2) and REFUSED (5),
 * which `Deno.resolveDns` cannot. Responses from another address, or whose id
 * or question does not match, or that are malformed, are ignored as spoofed
 * or stray, and the query keeps waiting; over TCP, where nothing can be
 * spoofed, a malformed answer with the query's id rejects at once
 * (`Deno.errors.InvalidData`). Rejects with the signal's reason
 * when `signal` aborts; retransmits the UDP query every `retransmit` ms until
 * then. Any other failure (a TCP connection refused or reset, a bad name)
 * rejects with the runtime's error as is, for the caller to map. Sockets,
 * connections and timers are all released before the promise settles.
 *
 * @example Tell "no such name" from "the server failed"
 * ```ts
 * import { queryDns } from "./_dns_client.ts";
 *
 * async function lookup(name: string): Promise<string[]> {
 *   const { rcode, addresses } = await queryDns(name, "A", {
 *     server: { ipAddr: "127.0.0.1", port: 53 },
 *     signal: AbortSignal.timeout(5000),
 *   });
 *   if (rcode === 3) throw new Error(`${name}: no such name`);
 *   if (rcode !== 0) throw new Error(`${name}: server failure ${rcode}`);
 *   return addresses;
 * }
 * ```
 *
 * @param name The name to look up; a trailing dot is allowed.
 * @param type The record type.
 * @param options The server, an abort signal and the retransmit interval.
 * @returns The response code and the addresses.
 * @throws {TypeError} when `name` cannot be encoded as a DNS name.
 * @throws {RangeError} when `retransmit` is not a positive number.
 */
export async function queryDns(
  name: string,
  type: "A" | "AAAA",
  options: QueryDnsOptions,
): Promise<DnsAnswer> {
  const { server, signal, retransmit = 1000 } = options;
  signal?.throwIfAborted();
  if (!(retransmit > 0 && Number.isFinite(retransmit))) {
    throw new RangeError(
      `retransmit must be a positive number of ms, got ${retransmit}`,
    );
  }
  const id = crypto.getRandomValues(new Uint16Array(1))[0];
  const { query, question } = buildQuery(id, name, type);
  await requireNet(server);
  let response = await exchangeUdp(query, question, server, signal, retransmit);
  if (response.truncated) {
    response = await exchangeTcp(query, question, server, signal);
  }
  return { rcode: response.rcode, addresses: response.addresses };
}

/**
 * Asks for the network permission as `Deno.connect` would: node:dgram,
 * denied it, throws from a callback where no caller can catch it.
 */
async function requireNet(server: { ipAddr: string; port: number }) {
  // A bad port is node:dgram's to report, with its own error code.
  if (
    !Number.isInteger(server.port) || server.port < 0 || server.port > 65535
  ) {
    return;
  }
  const host = formatAddress({ address: server.ipAddr, port: server.port });
  const { state } = await Deno.permissions.request({ name: "net", host });
  if (state !== "granted") {
    throw new Deno.errors.NotCapable(`Requires net access to "${host}"`);
  }
}

/**
 * Sends the query over UDP, resending every `retransmit` ms, until a
 * matching response from the server arrives or `signal` aborts; settles only
 * once the socket has closed and every send has completed.
 */
function exchangeUdp(
  query: Uint8Array,
  question: DnsQuestion,
  server: { ipAddr: string; port: number },
  signal: AbortSignal | undefined,
  retransmit: number,
): Promise<ParsedResponse> {
  return new Promise((resolve, reject) => {
    const socket = dgram.createSocket(
      server.ipAddr.includes(":") ? "udp6" : "udp4",
    );
    const serverAddress = canonicalAddress(server.ipAddr);
    let timer: ReturnType<typeof setInterval> | undefined;
    let settled = false;

    const settle = (outcome: () => void) => {
      if (settled) return;
      settled = true;
      clearInterval(timer);
      signal?.removeEventListener("abort", onAbort);
      socket.removeListener("message", onMessage);
      // Closing cancels a send not yet made, whose callback then never
      // runs: wait for the close alone.
      socket.close(() => outcome());
    };
    const onAbort = () => settle(() => reject(signal?.reason));
    const onMessage = (msg: Uint8Array, rinfo: dgram.RemoteInfo) => {
      if (
        rinfo.port !== server.port ||
        canonicalAddress(rinfo.address) !== serverAddress
      ) {
        return;
      }
      const bytes = new Uint8Array(msg.buffer, msg.byteOffset, msg.byteLength);
      const response = parseResponse(bytes, question);
      if (response !== undefined) settle(() => resolve(response));
    };
    const send = () => {
      try {
        socket.send(query, server.port, server.ipAddr, (error) => {
          if (error) settle(() => reject(error));
        });
      } catch (error) {
        // A bad port or address throws here rather than in the callback.
        settle(() => reject(error));
      }
    };

    socket.on("message", onMessage);
    socket.on("error", (error) => settle(() => reject(error)));
    signal?.addEventListener("abort", onAbort, { once: true });
    // The signal may have fired while the permission was asked.
    if (signal?.aborted) return onAbort();
    send();
    if (!settled) timer = setInterval(send, retransmit);
  });
}

/**
 * Sends the query over TCP with the 2-byte length prefix and reads responses
 * until one matches; closes the connection before settling, and on abort
 * closes it at once so that pending reads end.
 */
async function exchangeTcp(
  query: Uint8Array,
  question: DnsQuestion,
  server: { ipAddr: string; port: number },
  signal: AbortSignal | undefined,
): Promise<ParsedResponse> {
  signal?.throwIfAborted();
  let conn: Deno.TcpConn;
  try {
    conn = await Deno.connect({
      hostname: server.ipAddr,
      port: server.port,
      signal,
    });
  } catch (error) {
    throw signal?.aborted ? signal.reason : error;
  }
  let closed = false;
  const close = () => {
    if (closed) return;
    closed = true;
    try {
      conn.close();
    } catch {
      // Deno.connect's own signal handling may have closed it first.
    }
  };
  signal?.addEventListener("abort", close, { once: true });
  try {
    signal?.throwIfAborted();
    const framed = new Uint8Array(2 + query.length);
    new DataView(framed.buffer).setUint16(0, query.length);
    framed.set(query, 2);
    await writeAll(conn, framed);
    while (true) {
      const prefix = await readExactly(conn, 2, server);
      const message = await readExactly(
        conn,
        (prefix[0] << 8) | prefix[1],
        server,
      );
      const response = parseResponse(message, question);
      // TC means nothing over TCP: this is all there is.
      if (response !== undefined) return { ...response, truncated: false };
      // Nobody can inject into our own connection: an answer with our id
      // that does not parse is the server's fault, and waiting for a
      // better one would only run out the caller's timeout. Another id
      // may be a stray pipelined answer (RFC 7766), so it is skipped.
      if (
        message.length < 2 || ((message[0] << 8) | message[1]) === question.id
      ) {
        throw new Deno.errors.InvalidData(
          `DNS server ${
            hostPort(server.ipAddr, server.port)
          } sent a malformed ` +
            `answer over TCP`,
        );
      }
    }
  } catch (error) {
    throw signal?.aborted ? signal.reason : error;
  } finally {
    signal?.removeEventListener("abort", close);
    close();
  }
}

async function writeAll(conn: Deno.Conn, bytes: Uint8Array): Promise<void> {
  let written = 0;
  while (written < bytes.length) {
    written += await conn.write(bytes.subarray(written));
  }
}

async function readExactly(
  conn: Deno.Conn,
  length: number,
  server: { ipAddr: string; port: number },
): Promise<Uint8Array> {
  const out = new Uint8Array(length);
  let filled = 0;
  while (filled < length) {
    const n = await conn.read(out.subarray(filled));
    if (n === null) {
      throw new Deno.errors.UnexpectedEof(
        `DNS server ${hostPort(server.ipAddr, server.port)} closed the TCP ` +
          `connection before answering`,
      );
    }
    filled += n;
  }
  return out;
}

/** The form `node:dgram` reports a sender's address in, for comparison. */
function canonicalAddress(address: string): string {
  const bare = address.replace(/%.*$/, "").toLowerCase();
  if (!bare.includes(":")) return bare;
  try {
    return new URL(`http://[${bare}]/`).hostname.slice(1, -1);
  } catch {
    return bare;
  }
}
