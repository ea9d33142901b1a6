/**
 * Resolving a host to its addresses: the tutorial's `gethostbyname` and
 * `ping www.google.com` step.
 *
 * @module
 */

import { describe } from "./_describe.ts";
import {
  type Family,
  type IpAddress,
  ipFamily,
  validateHost,
  validatePort,
} from "./address.ts";
import { abortError, netPermissionHint } from "./_error_mapping.ts";
import {
  InvalidArgumentError,
  PermissionDeniedError,
  ResolveError,
  type SocketError,
  TimeoutError,
} from "./errors.ts";
import { queryDns } from "./_dns_client.ts";
import { deadlineSignal } from "./_deadline.ts";
import { checkDuration, checkOptions, checkSignal } from "./_validate.ts";

/** A DNS server to ask instead of the system's. */
export interface NameServer {
  /** Its IP address. */
  ipAddr: string;
  /**
   * Its port.
   *
   * @default {53}
   */
  port?: number;
}

/** Options of {@linkcode resolve} and {@linkcode gethostbyname}. */
export interface ResolveOptions {
  /**
   * Only addresses of this family; both when not given.
   */
  family?: Family;
  /**
   * The DNS server to ask; the system's (`/etc/resolv.conf`) when not given.
   */
  nameServer?: NameServer;
  /**
   * Milliseconds to wait for DNS before failing with `ETIMEDOUT`.
   *
   * @default {5000}
   */
  timeout?: number;
  /** Cancels the lookup with `ECANCELED`. */
  signal?: AbortSignal;
  /**
   * The hosts file to look in before DNS, or `false` to skip it. It is read
   * only when the program has read permission for it
   * (`--allow-read=/etc/hosts`); otherwise the lookup goes to DNS.
   *
   * @default {"/etc/hosts"}
   */
  hostsFile?: string | false;
}

const DEFAULT_TIMEOUT = 5000;
/**
 * Milliseconds to wait for the AAAA answer once the A answer has addresses
 * (RFC 8305's "Resolution Delay"): a server that never answers AAAA costs
 * this, not the whole timeout. An AAAA answer first still waits for A,
 * since a machine without IPv6 connectivity needs the IPv4 addresses.
 */
const RESOLUTION_DELAY = 50;
const DEFAULT_HOSTS_FILE = "/etc/hosts";
/** RFC 6761: `localhost` is the loopback, whatever any file or server says. */
const LOCALHOST: readonly IpAddress[] = [
  { address: "::1", family: 6 },
  { address: "127.0.0.1", family: 4 },
];

/**
 * Resolves a host to its IP addresses, in the order a connect should try
 * them (IPv6 first, then the families alternating, as RFC 8305 asks).
 *
 * - IP literals (`"127.0.0.1"`, `"::1"`, `"[::1]"`) pass through untouched.
 * - `localhost` and names under `.localhost` are the loopback, `::1` and
 *   `127.0.0.1` (RFC 6761), without DNS.
 * - Names in the hosts file resolve from it without DNS, as
 *   `gethostbyname` does.
 * - Other names go to DNS (A and AAAA records, asked at once).
 *
 * @example Resolving without the network
 * ```ts
 * import { resolve } from "@socket-programming/socket";
 *
 * const addresses = await resolve("localhost");
 * console.log(addresses.map((a) => a.address)); // ["::1", "127.0.0.1"]
 * ```
 *
 * @param host A name or an IP literal.
 * @param options Family, name server, timeout, signal and hosts file.
 * @returns At least one address.
 * @throws {ResolveError} when the name does not resolve (`ENOTFOUND`,
 *   `ESERVFAIL`).
 * @throws {TimeoutError} when DNS did not answer within `timeout`
 *   (`ETIMEDOUT`, `op` `"resolve"`).
 * @throws {InvalidArgumentError} for a malformed host or option.
 * @throws {PermissionDeniedError} when DNS is needed and the network
 *   permission is not granted.
 */
export async function resolve(
  host: string,
  options: ResolveOptions = {},
): Promise<IpAddress[]> {
  const name = validateHost(host);
  checkOptions(options);
  const family = checkFamily(options.family);
  const timeout = checkDuration(options.timeout, "timeout") ?? DEFAULT_TIMEOUT;
  const signal = checkSignal(options.signal);
  const nameServer = checkNameServer(options.nameServer);
  const hostsFile = checkHostsFile(options.hostsFile) ?? DEFAULT_HOSTS_FILE;
  if (signal?.aborted) throw abortError(signal, { op: "resolve", host });

  const literal = ipFamily(name);
  if (literal !== undefined) {
    return onlyFamily([{ address: name, family: literal }], family, host);
  }
  const key = name.toLowerCase().replace(/\.$/, "");
  if (key === "localhost" || key.endsWith(".localhost")) {
    return onlyFamily([...LOCALHOST], family, host);
  }
  let unread: string | undefined;
  if (hostsFile !== false) {
    const fromFile = await lookUpHostsFile(hostsFile, key);
    if (signal?.aborted) throw abortError(signal, { op: "resolve", host });
    if (fromFile === undefined) unread = hostsFile;
    else if (fromFile.length > 0) {
      return onlyFamily(interleave(fromFile), family, host);
    }
  }
  try {
    return await lookUpDns(host, key, {
      family,
      timeout,
      signal,
      nameServer,
    });
  } catch (error) {
    throw unread === undefined ? error : withHostsHint(error, host, unread);
  }
}

/**
 * The error of a lookup that skipped the hosts file for want of the read
 * permission: the name may well be there, so the message says how to let
 * it be read.
 */
function withHostsHint(error: unknown, host: string, path: string): unknown {
  const hint = `${path} was not read: run with --allow-read=${path} ` +
    `if the name is there`;
  if (error instanceof ResolveError && error.code === "ENOTFOUND") {
    return new ResolveError({
      code: "ENOTFOUND",
      op: "resolve",
      host,
      reason: `${error.reason}; ${hint}`,
      cause: error,
    });
  }
  if (error instanceof PermissionDeniedError) {
    return new PermissionDeniedError({
      op: "resolve",
      host,
      reason: `${error.reason}; ${hint}`,
      cause: error.cause,
    });
  }
  return error;
}

/**
 * The first IPv4 address of a host, as Python's `socket.gethostbyname`.
 *
 * @example
 * ```ts
 * import { gethostbyname } from "@socket-programming/socket";
 *
 * console.log(await gethostbyname("localhost")); // "127.0.0.1"
 * ```
 *
 * @param host A name or an IPv4 literal.
 * @param options As {@linkcode resolve}'s; `family` is always 4.
 * @returns A dotted quad.
 * @throws {ResolveError} when the host has no IPv4 address.
 * @throws {InvalidArgumentError} for a malformed host or option.
 * @throws {PermissionDeniedError} when DNS is needed and the network
 *   permission is not granted.
 */
export async function gethostbyname(
  host: string,
  options: Omit<ResolveOptions, "family"> = {},
): Promise<string> {
  const [first] = await resolve(host, { ...options, family: 4 });
  return first.address;
}

function checkFamily(value: unknown): Family | undefined {
  if (value === undefined || value === 4 || value === 6) return value;
  throw new InvalidArgumentError({
    reason: `invalid family ${String(value)}: expected 4 or 6`,
  });
}

function checkHostsFile(value: unknown): string | false | undefined {
  if (value === undefined || value === false) return value;
  if (typeof value === "string" && value !== "") return value;
  throw new InvalidArgumentError({
    reason: `invalid hostsFile ${describe(value)}: expected a path or false`,
  });
}

function checkNameServer(value: unknown): Required<NameServer> | undefined {
  if (value === undefined) return undefined;
  const server = value as NameServer;
  if (
    typeof value !== "object" || value === null ||
    typeof server.ipAddr !== "string" || ipFamily(server.ipAddr) === undefined
  ) {
    const shown = typeof value === "object" && value !== null
      ? `ipAddr ${describe(server.ipAddr)}`
      : describe(value);
    throw new InvalidArgumentError({
      reason:
        `invalid nameServer ${shown}: expected { ipAddr: an IP address, port?: number }`,
    });
  }
  const port = server.port === undefined
    ? 53
    : validatePort(server.port, { what: "nameServer port" });
  return { ipAddr: server.ipAddr.replace(/^\[(.*)\]$/, "$1"), port };
}

function onlyFamily(
  addresses: IpAddress[],
  family: Family | undefined,
  host: string,
): IpAddress[] {
  const kept = family === undefined
    ? addresses
    : addresses.filter((a) => a.family === family);
  if (kept.length === 0) {
    throw notFound(host, `no IPv${family} address`);
  }
  return kept;
}

/** IPv6 first, then alternating families, each in its given order. */
function interleave(addresses: IpAddress[]): IpAddress[] {
  const v6 = addresses.filter((a) => a.family === 6);
  const v4 = addresses.filter((a) => a.family === 4);
  const out: IpAddress[] = [];
  for (let i = 0; i < Math.max(v6.length, v4.length); i++) {
    if (i < v6.length) out.push(v6[i]);
    if (i < v4.length) out.push(v4[i]);
  }
  return out;
}

/** The addresses of `name` in the file; `undefined` when not allowed to read it. */
async function lookUpHostsFile(
  path: string,
  name: string,
): Promise<IpAddress[] | undefined> {
  const permission = await Deno.permissions.query({ name: "read", path });
  if (permission.state !== "granted") return undefined;
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch {
    return []; // No hosts file: as the C library, go on to DNS.
  }
  const found: IpAddress[] = [];
  for (const line of text.split("\n")) {
    const [address, ...names] = line.replace(/#.*/, "").trim().split(/\s+/);
    const family = address ? ipFamily(address) : undefined;
    if (
      family !== undefined &&
      names.some((n) => n.toLowerCase() === name) &&
      !found.some((a) => a.address === address)
    ) {
      found.push({ address, family });
    }
  }
  return found;
}

interface DnsQuery {
  family: Family | undefined;
  timeout: number;
  signal: AbortSignal | undefined;
  nameServer: Required<NameServer> | undefined;
}

async function lookUpDns(
  host: string,
  name: string,
  query: DnsQuery,
): Promise<IpAddress[]> {
  const deadline = deadlineSignal(
    query.signal,
    query.timeout,
    () =>
      new TimeoutError({
        op: "resolve",
        host,
        reason: `no answer from DNS in ${query.timeout} ms`,
      }),
  );
  const types = query.family === 4
    ? ["A" as const]
    : query.family === 6
    ? ["AAAA" as const]
    : ["AAAA" as const, "A" as const];
  // Ends the AAAA query once the A answer's grace has passed.
  const grace = new AbortController();
  const signal = deadline.signal
    ? AbortSignal.any([deadline.signal, grace.signal])
    : grace.signal;
  const ask = query.nameServer
    ? askNameServer(query.nameServer, signal)
    : askSystem(signal);
  let graceTimer: ReturnType<typeof setTimeout> | undefined;
  const startGrace = (type: "A" | "AAAA", found: string[]) => {
    if (type === "A" && found.length > 0 && types.length > 1) {
      graceTimer ??= setTimeout(() => grace.abort(), RESOLUTION_DELAY);
    }
    return found;
  };
  try {
    const results = await Promise.allSettled(
      types.map((type) => ask(name, type).then((f) => startGrace(type, f))),
    );
    const addresses: IpAddress[] = [];
    results.forEach((result, i) => {
      if (result.status !== "fulfilled") return;
      const family: Family = types[i] === "A" ? 4 : 6;
      for (const address of result.value) addresses.push({ address, family });
    });
    if (addresses.length > 0) return interleave(addresses);
    if (deadline.signal?.aborted) {
      throw abortError(deadline.signal, { op: "resolve", host });
    }
    throw dnsError(host, results, query.nameServer);
  } finally {
    clearTimeout(graceTimer);
    deadline.clear();
  }
}

type Ask = (name: string, type: "A" | "AAAA") => Promise<string[]>;

/** What a name server said, when it did not give addresses. */
class DnsRcode extends Error {
  constructor(readonly rcode: number) {
    super(`DNS response code ${rcode}`);
  }
}

/**
 * Asks the given server directly, keeping its response code: Deno's
 * resolver reports "no such name" and "server failure" alike.
 */
function askNameServer(
  server: Required<NameServer>,
  signal: AbortSignal | undefined,
): Ask {
  return async (name, type) => {
    const answer = await queryDns(name, type, {
      server,
      signal,
    });
    if (answer.rcode !== 0) throw new DnsRcode(answer.rcode);
    return answer.addresses;
  };
}

/** Asks the system's resolver (`/etc/resolv.conf`) through Deno. */
function askSystem(signal: AbortSignal | undefined): Ask {
  return (name, type) => Deno.resolveDns(name, type, { signal });
}

const NXDOMAIN = 3;
const RCODE_REASONS: Record<number, string> = {
  1: "the name server could not read the query",
  2: "the name server failed",
  4: "the name server does not support the query",
  5: "the name server refused the query",
};

/** The error for a name that got no address, from each query's outcome. */
function dnsError(
  host: string,
  results: PromiseSettledResult<string[]>[],
  nameServer: Required<NameServer> | undefined,
): SocketError {
  const errors = results.flatMap((r) =>
    r.status === "rejected" ? [r.reason] : []
  );
  const denied = errors.find((e) => e instanceof Deno.errors.NotCapable);
  if (denied) {
    // The system's resolver asks the servers of /etc/resolv.conf: -N.
    const hint = nameServer
      ? netPermissionHint(nameServer.ipAddr, nameServer.port)
      : "Deno needs the network permission (run with -N)";
    return new PermissionDeniedError({
      op: "resolve",
      host,
      reason: hint,
      cause: denied,
    });
  }
  const failed = errors.find((e) =>
    !(e instanceof Deno.errors.NotFound) &&
    !(e instanceof DnsRcode && e.rcode === NXDOMAIN)
  );
  if (failed instanceof DnsRcode) {
    const reason = RCODE_REASONS[failed.rcode] ??
      `DNS response code ${failed.rcode}`;
    return serverFailed(host, reason, failed);
  }
  if (failed) {
    if (failed instanceof Deno.errors.TimedOut) {
      return new TimeoutError({
        op: "resolve",
        host,
        reason: "no answer from DNS",
        cause: failed,
      });
    }
    const text = failed instanceof Error ? failed.message : String(failed);
    return serverFailed(host, `DNS failure: ${text}`, failed);
  }
  // NXDOMAIN, or no record of either type (NODATA).
  return notFound(host, "no such name", errors[0]);
}

function notFound(host: string, reason: string, cause?: unknown): ResolveError {
  return new ResolveError({
    code: "ENOTFOUND",
    op: "resolve",
    host,
    reason,
    cause,
  });
}

function serverFailed(
  host: string,
  reason: string,
  cause: unknown,
): ResolveError {
  return new ResolveError({
    code: "ESERVFAIL",
    op: "resolve",
    host,
    reason,
    cause,
  });
}
