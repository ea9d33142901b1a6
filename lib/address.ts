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

/**
 * A Unix domain socket's address: a path in the file system, as Deno's
 * `Deno.UnixAddr` has it.
 */
export interface UnixAddress {
  /** Always `"unix"`: what tells it from a {@linkcode NetAddress}. */
  transport: "unix";
  /**
   * The socket file's path; `""` for a client's end, which has no name
   * (Python's `getsockname()` gives `''` there too).
   */
  path: string;
}

/** Either end of a connection: an IP address and port, or a socket path. */
export type SocketAddress = NetAddress | UnixAddress;

const MAX_PORT = 65535;
/** `sun_path` holds 108 bytes on Linux, its terminating NUL included. */
const MAX_PATH_BYTES = 107;
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

/**
 * Checks a Unix socket's path: a non-empty string with no NUL, short
 * enough for `sun_path` (107 bytes of UTF-8; a longer path cannot be
 * bound or dialled at all, so it is refused before any socket is made).
 *
 * @example
 * ```ts
 * import { validatePath } from "@socket-programming/socket";
 *
 * validatePath("/tmp/app.sock"); // "/tmp/app.sock"
 * ```
 *
 * @param path The value to check.
 * @returns The path.
 * @throws {InvalidArgumentError} naming the bad value.
 */
export function validatePath(path: unknown): string {
  const bytes = typeof path === "string"
    ? new TextEncoder().encode(path).length
    : 0;
  if (
    typeof path !== "string" || path === "" || path.includes("\0") ||
    bytes > MAX_PATH_BYTES
  ) {
    const why = typeof path !== "string" || path === "" || path.includes("\0")
      ? "expected a non-empty file path without NUL"
      : `${bytes} bytes, past the ${MAX_PATH_BYTES} a Unix socket path holds`;
    throw new InvalidArgumentError({
      reason: `invalid path ${describe(path)}: ${why}`,
    });
  }
  return path;
}

/**
 * Whether an address is a Unix socket's.
 *
 * @example
 * ```ts
 * import { isUnixAddress } from "@socket-programming/socket";
 *
 * isUnixAddress({ transport: "unix", path: "/tmp/app.sock" }); // true
 * isUnixAddress({ address: "::1", port: 80, family: 6 }); // false
 * ```
 *
 * @param addr The address.
 * @returns `true` for a {@linkcode UnixAddress}.
 */
export function isUnixAddress(addr: SocketAddress): addr is UnixAddress {
  return "transport" in addr && addr.transport === "unix";
}

/**
 * The error fields naming a connection's peer: its address and port, or
 * for a Unix socket the path (the server's end's: a client's has none).
 * Internal: `mod.ts` does not re-export it.
 */
export function peerFields(
  remote: SocketAddress,
  local: SocketAddress,
): { host: string; address?: string; port?: number } {
  if (isUnixAddress(remote)) {
    return { host: remote.path || (isUnixAddress(local) ? local.path : "") };
  }
  return { host: remote.address, address: remote.address, port: remote.port };
}

/** Converts Deno's address (TCP or Unix) to the module's. */
export function toSocketAddress(addr: Deno.Addr): SocketAddress {
  if (addr.transport === "unix" || addr.transport === "unixpacket") {
    return { transport: "unix", path: addr.path ?? "" };
  }
  return fromDenoAddr(addr as Deno.NetAddr);
}

/**
 * Converts Deno's address to the module's. The runtime's hostnames are
 * numeric addresses, so a colon is enough to tell IPv6: this runs for
 * every connection a server reports.
 */
export function fromDenoAddr(addr: Deno.NetAddr): NetAddress {
  const address = unbracket(addr.hostname);
  return { address, port: addr.port, family: address.includes(":") ? 6 : 4 };
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
