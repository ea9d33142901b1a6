/**
 * Hosts, IP literals and ports: checked before any socket is made, and
 * printed the way people read them.
 *
 * @module
 */

import { describe } from "./_describe.ts";
import { InvalidArgumentError } from "./errors.ts";

/** An IP address family: 4 or 6. */
export type Family = 4 | 6;

/** An IP address with its family, as a resolver returns it. */
export interface IpAddress {
  /** The address, without brackets: `"127.0.0.1"`, `"::1"`. */
  address: string;
  /** 4 or 6. */
  family: Family;
}

/** An address and port, as a listener or a connection reports it. */
export interface NetAddress extends IpAddress {
  /** The port, 0–65535. */
  port: number;
}

const MAX_PORT = 65535;
const MAX_NAME_LENGTH = 253;
const LABEL = /^[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?$/;
const DOTTED_QUAD = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/;

/**
 * Checks a port: an integer in 1–65535, or 0 as well where `allowZero`
 * (binding, where 0 asks the system for a free port).
 *
 * @example
 * ```ts
 * import { validatePort } from "@socket-programming/socket";
 *
 * validatePort(12345); // 12345
 * validatePort(0, { allowZero: true }); // 0
 * ```
 *
 * @param port The value to check.
 * @param options `allowZero` (default `false`); `what` names the value in
 *   the message (default "port").
 * @returns The port.
 * @throws {InvalidArgumentError} when the value is not such a port.
 */
export function validatePort(
  port: unknown,
  options: { allowZero?: boolean; what?: string } = {},
): number {
  const low = options.allowZero ? 0 : 1;
  if (
    typeof port !== "number" || !Number.isInteger(port) || port < low ||
    port > MAX_PORT
  ) {
    const what = options.what ?? "port";
    throw new InvalidArgumentError({
      reason: `invalid ${what} ${
        describe(port)
      }: expected an integer in ${low}–${MAX_PORT}`,
    });
  }
  return port;
}

/**
 * Reads a port from text, as typed on a command line: decimal digits only.
 *
 * @example
 * ```ts
 * import { parsePort } from "@socket-programming/socket";
 *
 * parsePort("8080"); // 8080
 * ```
 *
 * @param text The text.
 * @param options `allowZero` (default `false`).
 * @returns The port.
 * @throws {InvalidArgumentError} for anything but a port in range.
 */
export function parsePort(
  text: string,
  options: { allowZero?: boolean } = {},
): number {
  if (!/^\d{1,5}$/.test(text)) {
    throw new InvalidArgumentError({
      reason: `invalid port ${describe(text)}: expected an integer in ${
        options.allowZero ? 0 : 1
      }–${MAX_PORT}`,
    });
  }
  return validatePort(Number(text), options);
}

/**
 * The family of an IP literal (IPv6 with or without brackets), or
 * `undefined` for anything else, such as a host name.
 *
 * @example
 * ```ts
 * import { ipFamily } from "@socket-programming/socket";
 *
 * ipFamily("127.0.0.1"); // 4
 * ipFamily("[::1]"); // 6
 * ipFamily("localhost"); // undefined
 * ```
 *
 * @param host The text to look at.
 * @returns 4, 6 or `undefined`.
 */
export function ipFamily(host: string): Family | undefined {
  if (isIPv4(host)) return 4;
  if (isIPv6(unbracket(host))) return 6;
  return undefined;
}

/**
 * Checks a host: an IPv4 dotted quad, an IPv6 literal (bracketed or not), or
 * a name of dot-separated labels of letters, digits, `-` and `_` (each at
 * most 63 characters, 253 in all). Returns the host without IPv6 brackets.
 *
 * @example
 * ```ts
 * import { validateHost } from "@socket-programming/socket";
 *
 * validateHost("[::1]"); // "::1"
 * validateHost("www.google.com"); // "www.google.com"
 * ```
 *
 * @param host The value to check.
 * @returns The host, unbracketed.
 * @throws {InvalidArgumentError} naming the bad value.
 */
export function validateHost(host: unknown): string {
  if (typeof host !== "string") {
    throw new InvalidArgumentError({
      reason: `invalid host ${describe(host)}: expected a string`,
    });
  }
  if (isIPv4(host)) return host;
  const bare = unbracket(host);
  if (bare.includes(":")) {
    if (isIPv6(bare) && (bare === host || host === `[${bare}]`)) return bare;
    throw new InvalidArgumentError({
      reason: `invalid host ${describe(host)}: not an IPv6 address`,
    });
  }
  if (DOTTED_QUAD.test(host)) {
    throw new InvalidArgumentError({
      reason: `invalid host ${describe(host)}: IPv4 parts must be 0–255`,
    });
  }
  const name = host.endsWith(".") ? host.slice(0, -1) : host;
  if (
    name.length === 0 || name.length > MAX_NAME_LENGTH ||
    !name.split(".").every((label) => LABEL.test(label))
  ) {
    throw new InvalidArgumentError({
      reason: `invalid host ${describe(host)}: not an IP address or host name`,
    });
  }
  return host;
}

/**
 * Formats an address for people: `127.0.0.1:80`, `[::1]:80`.
 *
 * @example
 * ```ts
 * import { formatAddress } from "@socket-programming/socket";
 *
 * formatAddress({ address: "::1", port: 80 }); // "[::1]:80"
 * ```
 *
 * @param addr The address and port.
 * @returns The text.
 */
export function formatAddress(
  addr: { address: string; port: number },
): string {
  return addr.address.includes(":")
    ? `[${addr.address}]:${addr.port}`
    : `${addr.address}:${addr.port}`;
}

/**
 * Formats an address the way Python prints a socket address:
 * `('127.0.0.1', 58933)`, or `('::1', 58933, 0, 0)` for IPv6.
 *
 * @example
 * ```ts
 * import { pythonAddress } from "@socket-programming/socket";
 *
 * pythonAddress({ address: "127.0.0.1", port: 58933, family: 4 }); // "('127.0.0.1', 58933)"
 * ```
 *
 * @param addr The address.
 * @returns The text.
 */
export function pythonAddress(addr: NetAddress): string {
  return addr.family === 6
    ? `('${addr.address}', ${addr.port}, 0, 0)`
    : `('${addr.address}', ${addr.port})`;
}

/** Converts Deno's address to the module's. */
export function fromDenoAddr(addr: Deno.NetAddr): NetAddress {
  const address = unbracket(addr.hostname);
  return { address, port: addr.port, family: isIPv4(address) ? 4 : 6 };
}

function isIPv4(text: string): boolean {
  const parts = DOTTED_QUAD.exec(text);
  return parts !== null &&
    parts.slice(1).every((part) =>
      Number(part) <= 255 && (part === "0" || !part.startsWith("0"))
    );
}

function isIPv6(text: string): boolean {
  if (!/^[0-9A-Fa-f:.]+$/.test(text) || !text.includes(":")) return false;
  try {
    // The URL parser is a complete IPv6 parser that ships with the runtime.
    new URL(`http://[${text}]/`);
    return true;
  } catch {
    return false;
  }
}

function unbracket(host: string): string {
  return host.startsWith("[") && host.endsWith("]") ? host.slice(1, -1) : host;
}
