/**
 * A minimal stub resolver (RFC 1035) for A and AAAA queries to one named
 * server.
 *
 * It exists because `Deno.resolveDns` reports NXDOMAIN, SERVFAIL and REFUSED
 * all as the same `Deno.errors.NotFound`, and callers must tell "no such
 * name" (`ENOTFOUND`) from "the server failed" (`ESERVFAIL`). So when a
 * server is named, we speak DNS ourselves and hand back the response code.
 *
 * Internal: `mod.ts` does not re-export this file.
 *
 * @module
 */

import dgram from "node:dgram";
import { formatAddress } from "./address.ts";

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

/** What {@linkcode parseResponse} checks a response against. */
export interface DnsQuestion {
  /** The query id. */
  id: number;
  /** Lower-case, without the trailing dot, as {@linkcode nameKey} makes it. */
  name: string;
  /** 1 (A) or 28 (AAAA). */
  type: number;
}

/** A response that matched its question. */
export interface ParsedResponse {
  /** The response code. */
  rcode: number;
  /** The TC bit: the answer did not fit, ask again over TCP. */
  truncated: boolean;
  /** The addresses of the asked type; empty when truncated. */
  addresses: string[];
}

const TYPE_A = 1;
const TYPE_CNAME = 5;
const TYPE_AAAA = 28;
const CLASS_IN = 1;
const HEADER_LENGTH = 12;
const MAX_NAME_LENGTH = 255;
const MAX_LABEL_LENGTH = 63;
/** More pointers than any honest name needs; stops pointer loops. */
const MAX_POINTERS = 128;
const FLAG_QR = 0x8000;
const FLAG_TC = 0x0200;
const FLAG_RD = 0x0100;

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
 * import { queryDns } from "./dns.ts";
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
  const labels = encodeName(name);
  const question: DnsQuestion = {
    id: crypto.getRandomValues(new Uint16Array(1))[0],
    name: nameKey(labels),
    type: type === "A" ? TYPE_A : TYPE_AAAA,
  };
  const query = encodeQuery(question.id, labels, question.type);
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
 * Parses a response to `question`; `undefined` when it does not answer it
 * (another id, another question, not a response) or is malformed, because
 * either way the right thing is to ignore it and keep waiting.
 *
 * Internal, exported for tests.
 *
 * @example
 * ```ts
 * import { parseResponse } from "./dns.ts";
 *
 * const junk = new Uint8Array([0, 1, 2]);
 * console.log(parseResponse(junk, { id: 1, name: "a.test", type: 1 }));
 * // undefined
 * ```
 *
 * @param bytes One DNS message, without TCP's length prefix.
 * @param question The id, name and type asked.
 * @returns The response code, the TC bit and the addresses, or `undefined`.
 */
export function parseResponse(
  bytes: Uint8Array,
  question: DnsQuestion,
): ParsedResponse | undefined {
  if (bytes.length < HEADER_LENGTH) return undefined;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const flags = view.getUint16(2);
  const opcode = (flags >> 11) & 0xf;
  if (
    view.getUint16(0) !== question.id || (flags & FLAG_QR) === 0 ||
    opcode !== 0 || view.getUint16(4) !== 1
  ) {
    return undefined;
  }
  const qname = readName(bytes, HEADER_LENGTH);
  if (qname === undefined || qname.end + 4 > bytes.length) return undefined;
  if (
    qname.name !== question.name ||
    view.getUint16(qname.end) !== question.type ||
    view.getUint16(qname.end + 2) !== CLASS_IN
  ) {
    return undefined;
  }
  const rcode = flags & 0xf;
  // A truncated answer section may end mid-record: only the header counts.
  if ((flags & FLAG_TC) !== 0) return { rcode, truncated: true, addresses: [] };
  const records = readAnswers(bytes, qname.end + 4, view.getUint16(6));
  if (records === undefined) return undefined;
  const addresses = addressesOf(records, question);
  if (addresses === undefined) return undefined;
  return { rcode, truncated: false, addresses };
}

/**
 * The comparable form of a name: labels lower-cased (ASCII only, as DNS
 * compares) and joined with dots, a dot or backslash inside a label escaped
 * so that no two names share a key.
 *
 * Internal, exported for tests.
 *
 * @example
 * ```ts
 * import { nameKey } from "./dns.ts";
 *
 * const label = (s: string) => new TextEncoder().encode(s);
 * console.log(nameKey([label("Example"), label("TEST")])); // "example.test"
 * ```
 *
 * @param labels The labels, as bytes.
 * @returns The key.
 */
export function nameKey(labels: Uint8Array[]): string {
  return labels.map((label) => {
    let text = "";
    for (const byte of label) {
      const folded = byte >= 0x41 && byte <= 0x5a ? byte + 0x20 : byte;
      const char = String.fromCharCode(folded);
      text += char === "." || char === "\\" ? "\\" + char : char;
    }
    return text;
  }).join(".");
}

/**
 * Formats 16 bytes as RFC 5952 says: lower case, the longest run of two or
 * more zero groups (the first, on a tie) as `::`, and an IPv4-mapped address
 * with its dotted quad, as `Deno.resolveDns` and `getaddrinfo` print it.
 *
 * Internal, exported for tests.
 *
 * @example
 * ```ts
 * import { formatIpv6 } from "./dns.ts";
 *
 * const bytes = new Uint8Array(16);
 * bytes[15] = 1;
 * console.log(formatIpv6(bytes)); // "::1"
 * ```
 *
 * @param bytes The address, 16 bytes.
 * @returns The text form.
 */
export function formatIpv6(bytes: Uint8Array): string {
  const groups: number[] = [];
  for (let i = 0; i < 16; i += 2) groups.push((bytes[i] << 8) | bytes[i + 1]);
  if (groups.slice(0, 5).every((g) => g === 0) && groups[5] === 0xffff) {
    return "::ffff:" + formatIpv4(bytes.subarray(12, 16));
  }
  let bestStart = -1;
  let bestLength = 1; // a single zero group is not compressed
  for (let start = 0; start < 8;) {
    let end = start;
    while (end < 8 && groups[end] === 0) end++;
    if (end - start > bestLength) {
      bestStart = start;
      bestLength = end - start;
    }
    start = end === start ? start + 1 : end;
  }
  const hex = groups.map((g) => g.toString(16));
  if (bestStart < 0) return hex.join(":");
  const head = hex.slice(0, bestStart).join(":");
  const tail = hex.slice(bestStart + bestLength).join(":");
  return `${head}::${tail}`;
}

function formatIpv4(bytes: Uint8Array): string {
  return Array.from(bytes).join(".");
}

/** Splits a name into wire labels; throws what the caller maps to EINVAL. */
function encodeName(name: string): Uint8Array[] {
  const trimmed = name.endsWith(".") ? name.slice(0, -1) : name;
  if (trimmed === "") return []; // the root
  const encoder = new TextEncoder();
  const labels = trimmed.split(".").map((label) => encoder.encode(label));
  const wireLength = labels.reduce((sum, l) => sum + 1 + l.length, 1);
  if (
    labels.some((l) => l.length === 0 || l.length > MAX_LABEL_LENGTH) ||
    wireLength > MAX_NAME_LENGTH
  ) {
    throw new TypeError(`not a valid DNS name: "${name}"`);
  }
  return labels;
}

function encodeQuery(id: number, labels: Uint8Array[], type: number) {
  const nameLength = labels.reduce((sum, l) => sum + 1 + l.length, 1);
  const out = new Uint8Array(HEADER_LENGTH + nameLength + 4);
  const view = new DataView(out.buffer);
  view.setUint16(0, id);
  view.setUint16(2, FLAG_RD);
  view.setUint16(4, 1); // qdcount
  let offset = HEADER_LENGTH;
  for (const label of labels) {
    out[offset] = label.length;
    out.set(label, offset + 1);
    offset += 1 + label.length;
  }
  offset += 1; // the root label, already 0
  view.setUint16(offset, type);
  view.setUint16(offset + 2, CLASS_IN);
  return out;
}

/**
 * Reads a possibly compressed name at `start`; `end` is where the name ends
 * in place (after the first pointer, if any). `undefined` when it runs out
 * of bounds, uses a reserved label type, loops or grows past 255 bytes.
 */
function readName(
  msg: Uint8Array,
  start: number,
): { name: string; end: number } | undefined {
  const labels: Uint8Array[] = [];
  let offset = start;
  let end: number | undefined;
  let wireLength = 1;
  let pointers = 0;
  while (true) {
    if (offset >= msg.length) return undefined;
    const length = msg[offset];
    if (length === 0) {
      end ??= offset + 1;
      break;
    }
    const kind = length & 0xc0;
    if (kind === 0xc0) {
      if (offset + 1 >= msg.length || ++pointers > MAX_POINTERS) {
        return undefined;
      }
      end ??= offset + 2;
      offset = ((length & 0x3f) << 8) | msg[offset + 1];
      continue;
    }
    if (kind !== 0) return undefined; // 0x40 and 0x80 are reserved
    wireLength += 1 + length;
    if (offset + 1 + length > msg.length || wireLength > MAX_NAME_LENGTH) {
      return undefined;
    }
    labels.push(msg.subarray(offset + 1, offset + 1 + length));
    offset += 1 + length;
  }
  return { name: nameKey(labels), end };
}

interface AnswerRecord {
  owner: string;
  type: number;
  klass: number;
  rdata: Uint8Array;
  /** The CNAME's target, when type is CNAME. */
  target?: string;
}

/** Reads `count` records from `offset`; `undefined` when any is malformed. */
function readAnswers(
  msg: Uint8Array,
  offset: number,
  count: number,
): AnswerRecord[] | undefined {
  const view = new DataView(msg.buffer, msg.byteOffset, msg.byteLength);
  const records: AnswerRecord[] = [];
  for (let i = 0; i < count; i++) {
    const owner = readName(msg, offset);
    if (owner === undefined || owner.end + 10 > msg.length) return undefined;
    const type = view.getUint16(owner.end);
    const klass = view.getUint16(owner.end + 2);
    const rdlength = view.getUint16(owner.end + 8);
    const rdataStart = owner.end + 10;
    const rdataEnd = rdataStart + rdlength;
    if (rdataEnd > msg.length) return undefined;
    const record: AnswerRecord = {
      owner: owner.name,
      type,
      klass,
      rdata: msg.subarray(rdataStart, rdataEnd),
    };
    if (type === TYPE_CNAME && klass === CLASS_IN) {
      // The target may point anywhere in the message, but must fill rdata.
      const target = readName(msg, rdataStart);
      if (target === undefined || target.end !== rdataEnd) return undefined;
      record.target = target.name;
    }
    records.push(record);
    offset = rdataEnd;
  }
  return records;
}

/**
 * The addresses of the asked type owned by the asked name or an alias that
 * the answer's CNAME chain leads to; `undefined` when one has a bad length.
 */
function addressesOf(
  records: AnswerRecord[],
  question: DnsQuestion,
): string[] | undefined {
  const aliases = new Set([question.name]);
  let current = question.name;
  // Each step adds a name, and there are at most records.length of them.
  for (let i = 0; i < records.length; i++) {
    const cname = records.find((r) => r.owner === current && r.target);
    if (cname?.target === undefined || aliases.has(cname.target)) break;
    current = cname.target;
    aliases.add(current);
  }
  const addresses: string[] = [];
  const size = question.type === TYPE_A ? 4 : 16;
  for (const record of records) {
    if (
      record.type !== question.type || record.klass !== CLASS_IN ||
      !aliases.has(record.owner)
    ) {
      continue;
    }
    if (record.rdata.length !== size) return undefined;
    addresses.push(
      size === 4 ? formatIpv4(record.rdata) : formatIpv6(record.rdata),
    );
  }
  return addresses;
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
          `DNS server ${server.ipAddr} port ${server.port} sent a malformed ` +
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
        `DNS server ${server.ipAddr} port ${server.port} closed the TCP ` +
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
