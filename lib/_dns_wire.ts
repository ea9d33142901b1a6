/**
 * The DNS wire format (RFC 1035) for A and AAAA queries: building a query
 * and parsing its response. Pure functions on bytes, with no sockets, so
 * that every path through them is tested without a network
 * (tests/dns_wire_test.ts). Internal: `mod.ts` does not re-export this file.
 *
 * @module
 */

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
 * A query for the A or AAAA records of `name`, with the question its
 * response must match.
 *
 * @example
 * ```ts
 * import { buildQuery } from "./_dns_wire.ts";
 *
 * const { query, question } = buildQuery(0x1234, "Example.TEST.", "A");
 * console.log(query.length, question.name); // 30 "example.test"
 * ```
 *
 * @param id The query id.
 * @param name The name; a trailing dot is allowed.
 * @param type The record type.
 * @returns The message and its question.
 * @throws {TypeError} when `name` cannot be encoded as a DNS name.
 */
export function buildQuery(
  id: number,
  name: string,
  type: "A" | "AAAA",
): { query: Uint8Array; question: DnsQuestion } {
  const labels = encodeName(name);
  const question: DnsQuestion = {
    id,
    name: nameKey(labels),
    type: type === "A" ? TYPE_A : TYPE_AAAA,
  };
  return { query: encodeQuery(id, labels, question.type), question };
}

/**
 * Parses a response to `question`; `undefined` when it does not answer it
 * (another id, another question, not a response) or is malformed, because
 * either way the right thing is to ignore it and keep waiting.
 *
 * @example
 * ```ts
 * import { parseResponse } from "./_dns_wire.ts";
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
 * @example
 * ```ts
 * import { nameKey } from "./_dns_wire.ts";
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
 * @example
 * ```ts
 * import { formatIpv6 } from "./_dns_wire.ts";
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
