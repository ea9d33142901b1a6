/**
 * Address ranges for `listen`'s `allow` and `deny`: IPv4 and IPv6 CIDR
 * blocks (`10.0.0.0/8`, `fe80::/10`) and plain addresses, parsed once and
 * matched against each client's address without allocating a string.
 *
 * @module
 */

import { describe } from "./_describe.ts";
import { InvalidArgumentError } from "./errors.ts";

/** A parsed range: the network's bytes (4 or 16) and its prefix length. */
export interface Cidr {
  /** The text it was parsed from, for messages. */
  text: string;
  /** 4 bytes for IPv4, 16 for IPv6, with the host bits cleared. */
  bytes: Uint8Array;
  /** How many leading bits must match: 0–32 or 0–128. */
  prefix: number;
}

/**
 * Parses an IPv4 or IPv6 address into its bytes, or returns `undefined`.
 * IPv6 may use `::` once and end in a dotted quad; a zone (`%eth0`) and
 * brackets are not accepted: a range names no interface.
 */
export function parseIp(text: string): Uint8Array | undefined {
  return text.includes(":") ? parseIPv6(text) : parseIPv4(text);
}

function parseIPv4(text: string): Uint8Array | undefined {
  const parts = text.split(".");
  if (parts.length !== 4) return undefined;
  const bytes = new Uint8Array(4);
  for (let i = 0; i < 4; i++) {
    // No leading zeros: "010" is octal to inet_aton, decimal to others.
    if (!/^(0|[1-9]\d{0,2})$/.test(parts[i])) return undefined;
    const n = Number(parts[i]);
    if (n > 255) return undefined;
    bytes[i] = n;
  }
  return bytes;
}

function parseIPv6(text: string): Uint8Array | undefined {
  const halves = text.split("::");
  if (halves.length > 2) return undefined;
  const head = groups(halves[0]);
  const tail = halves.length === 2 ? groups(halves[1]) : [];
  if (head === undefined || tail === undefined) return undefined;
  const words = head.length + tail.length;
  // "::" stands for at least one group of zeros.
  if (halves.length === 2 ? words > 7 : words !== 8) return undefined;
  const bytes = new Uint8Array(16);
  const put = (list: number[], at: number) =>
    list.forEach((word, i) => {
      bytes[at + 2 * i] = word >> 8;
      bytes[at + 2 * i + 1] = word & 0xff;
    });
  put(head, 0);
  put(tail, 16 - 2 * tail.length);
  return bytes;
}

/** The 16-bit groups of one side of `::`; a dotted quad counts as two. */
function groups(text: string): number[] | undefined {
  if (text === "") return [];
  const parts = text.split(":");
  const words: number[] = [];
  for (let i = 0; i < parts.length; i++) {
    const part = parts[i];
    if (i === parts.length - 1 && part.includes(".")) {
      const v4 = parseIPv4(part);
      if (v4 === undefined) return undefined;
      words.push((v4[0] << 8) | v4[1], (v4[2] << 8) | v4[3]);
    } else if (/^[0-9a-f]{1,4}$/i.test(part)) {
      words.push(parseInt(part, 16));
    } else {
      return undefined;
    }
  }
  return words;
}

/**
 * Parses `ADDRESS/PREFIX` or a plain address (a block of one).
 *
 * @throws {InvalidArgumentError} naming the bad value.
 */
export function parseCidr(text: unknown): Cidr {
  if (typeof text !== "string") {
    throw new InvalidArgumentError({
      reason: `invalid address range ${describe(text)}: expected a string`,
    });
  }
  const slash = text.indexOf("/");
  const addressText = slash === -1 ? text : text.slice(0, slash);
  const bytes = parseIp(addressText);
  if (bytes === undefined) {
    throw new InvalidArgumentError({
      reason: `invalid address range ${
        describe(text)
      }: expected an IPv4 or IPv6 address, optionally /PREFIX`,
    });
  }
  const bits = bytes.length * 8;
  let prefix = bits;
  if (slash !== -1) {
    const prefixText = text.slice(slash + 1);
    prefix = /^\d{1,3}$/.test(prefixText) ? Number(prefixText) : NaN;
    if (!(prefix <= bits)) {
      throw new InvalidArgumentError({
        reason: `invalid address range ${
          describe(text)
        }: the prefix must be an integer from 0 to ${bits}`,
      });
    }
  }
  // Host bits are cleared, as ncat and iptables do: 10.1.2.3/8 is 10/8.
  return { text, bytes: masked(bytes, prefix), prefix };
}

function masked(bytes: Uint8Array, prefix: number): Uint8Array {
  const out = new Uint8Array(bytes);
  for (let i = 0; i < out.length; i++) {
    const keep = Math.max(0, Math.min(8, prefix - 8 * i));
    out[i] &= (0xff << (8 - keep)) & 0xff;
  }
  return out;
}

/** Whether `address`'s bytes fall in `cidr`; families must agree. */
function contains(cidr: Cidr, address: Uint8Array): boolean {
  if (address.length !== cidr.bytes.length) return false;
  const full = cidr.prefix >> 3;
  for (let i = 0; i < full; i++) {
    if (address[i] !== cidr.bytes[i]) return false;
  }
  const rest = cidr.prefix & 7;
  if (rest === 0) return true;
  const mask = (0xff << (8 - rest)) & 0xff;
  return (address[full] & mask) === cidr.bytes[full];
}

/**
 * An IPv4 client on a dual-stack socket shows as `::ffff:a.b.c.d`: its
 * IPv4 bytes, so that IPv4 rules apply to it.
 */
function unmapped(bytes: Uint8Array): Uint8Array {
  if (bytes.length !== 16) return bytes;
  for (let i = 0; i < 10; i++) if (bytes[i] !== 0) return bytes;
  if (bytes[10] !== 0xff || bytes[11] !== 0xff) return bytes;
  return bytes.subarray(12);
}

/** Which clients may connect: `allow` (all when empty) minus `deny`. */
export interface AccessRules {
  allow: Cidr[];
  deny: Cidr[];
}

/**
 * Whether a client's address passes the rules: in some `allow` range (or
 * `allow` is empty) and in no `deny` range, deny winning, as ncat's
 * `--allow` and `--deny` do. An address that does not parse (a zone it
 * carries is dropped first) is refused when any rule exists.
 */
export function isAllowed(rules: AccessRules, address: string): boolean {
  if (rules.allow.length === 0 && rules.deny.length === 0) return true;
  const zone = address.indexOf("%");
  const parsed = parseIp(zone === -1 ? address : address.slice(0, zone));
  if (parsed === undefined) return false;
  const candidates = [parsed, unmapped(parsed)];
  const inAny = (list: Cidr[]) =>
    list.some((cidr) => candidates.some((bytes) => contains(cidr, bytes)));
  if (rules.allow.length > 0 && !inAny(rules.allow)) return false;
  return !inAny(rules.deny);
}
