/**
 * Port scanning: the tutorial's "is anything listening?" over a list of
 * ports, as `nc -z` and `nmap -sT` ask it: one TCP connect per port, no
 * data sent, the connection closed at once.
 *
 * @module
 */

import { describe } from "./_describe.ts";
import { type IpAddress, validateHost } from "./address.ts";
import { abortError, fromRuntimeError } from "./_error_mapping.ts";
import {
  InvalidArgumentError,
  SocketError,
  type SocketErrorCode,
} from "./errors.ts";
import { resolve, type ResolveOptions } from "./resolve.ts";
import {
  checkCount,
  checkDuration,
  checkFunction,
  checkOptions,
  checkSignal,
  MAX_DURATION,
} from "./_validate.ts";

/**
 * What a port said: `open` (a connect succeeded), `closed` (refused),
 * `timeout` (no answer in time: nmap's "filtered"), `error` (any other
 * failure, such as an unreachable network; see `code`).
 */
export type PortState = "open" | "closed" | "timeout" | "error";

/** The outcome for one port of a {@linkcode scan}. */
export interface PortResult {
  /** The port. */
  port: number;
  /** The address that answered, or the last one tried. */
  address: string;
  /** What the port said. */
  state: PortState;
  /**
   * Why it is not open: `ECONNREFUSED` for `closed`, `ETIMEDOUT` for
   * `timeout`, the error's code for `error`. Absent when open.
   */
  code?: SocketErrorCode;
  /** The reason in words ("Connection refused"). Absent when open. */
  reason?: string;
  /** Milliseconds from the first connect to the port's outcome. */
  ms: number;
}

/** Options of {@linkcode scan}. */
export interface ScanOptions
  extends Pick<ResolveOptions, "family" | "nameServer" | "hostsFile"> {
  /**
   * Milliseconds to wait for each port (all its addresses) before it is
   * reported as `timeout`; at least 1.
   *
   * @default {1000}
   */
  timeout?: number;
  /**
   * How many connects run at once. When the process runs out of file
   * descriptors, the scan lowers this and tries the port again, so a
   * large value never turns into wrong answers.
   *
   * @default {256}
   */
  concurrency?: number;
  /** Cancels the scan with `ECANCELED`; no connect outlives the call. */
  signal?: AbortSignal;
  /**
   * Called with each port's result in ascending port order, as soon as it
   * and every port below it are done: enough to print as the scan goes.
   * What it throws stops the scan, and `scan()` throws it.
   */
  onResult?: (result: PortResult) => void;
}

/** The default of {@linkcode ScanOptions.timeout}. */
export const DEFAULT_SCAN_TIMEOUT = 1000;
/**
 * The default of {@linkcode ScanOptions.concurrency}: 1,000 closed
 * loopback ports take as long at 64 as at 1,000 (bench/scan_bench.ts),
 * and 256 leaves room for slower networks within the usual limit of
 * 1,024 open files.
 */
export const DEFAULT_SCAN_CONCURRENCY = 256;

const MAX_PORT = 65535;

/**
 * Reads a list of ports as `nc` and `nmap` take it: ports and ranges,
 * comma-separated (`"20-25,80,8000-8100"`). Every port is 1–65535, every
 * range ascending; repeats and overlaps are merged.
 *
 * @example
 * ```ts
 * import { parsePorts } from "@socket-programming/socket";
 *
 * parsePorts("22,80-82,80"); // [22, 80, 81, 82]
 * ```
 *
 * @param text The list.
 * @returns The ports, ascending, each once.
 * @throws {InvalidArgumentError} naming the bad part.
 */
export function parsePorts(text: string): number[] {
  if (typeof text !== "string" || text === "") {
    throw new InvalidArgumentError({
      reason:
        `invalid ports ${describe(text)}: expected ports and ranges such as ` +
        `"20-25,80"`,
    });
  }
  const seen = new Set<number>();
  for (const part of text.split(",")) {
    const [low, high] = parseRange(part, text);
    for (let port = low; port <= high; port++) seen.add(port);
  }
  return [...seen].sort((a, b) => a - b);
}

/** One item of a port list: `PORT` or `LOW-HIGH`. */
function parseRange(part: string, text: string): [number, number] {
  const match = /^(\d{1,5})(?:-(\d{1,5}))?$/.exec(part);
  const low = match ? Number(match[1]) : NaN;
  const high = match?.[2] === undefined ? low : Number(match[2]);
  const fail = (why: string) =>
    new InvalidArgumentError({
      reason: `invalid ports ${describe(text)}: ${describe(part)} ${why}`,
    });
  if (!match) throw fail("is not a port or a range LOW-HIGH");
  for (const port of [low, high]) {
    if (port < 1 || port > MAX_PORT) {
      throw fail(`has port ${port}, outside 1–${MAX_PORT}`);
    }
  }
  if (high < low) throw fail("is not ascending");
  return [low, high];
}

/** The ports argument of scan(): a list of numbers or a list as text. */
function checkPorts(value: unknown): number[] {
  if (typeof value === "string") return parsePorts(value);
  if (!Array.isArray(value) || value.length === 0) {
    throw new InvalidArgumentError({
      reason:
        `invalid ports ${describe(value)}: expected a non-empty array of ` +
        `ports or a list such as "20-25,80"`,
    });
  }
  for (const port of value) {
    if (!Number.isInteger(port) || port < 1 || port > MAX_PORT) {
      throw new InvalidArgumentError({
        reason:
          `invalid port ${describe(port)} in ports: expected an integer in ` +
          `1–${MAX_PORT}`,
      });
    }
  }
  return [...new Set<number>(value)].sort((a, b) => a - b);
}

function checkTimeout(value: unknown): number {
  const timeout = checkDuration(value, "timeout") ?? DEFAULT_SCAN_TIMEOUT;
  // 0 would report every port as timed out before it could answer.
  if (timeout < 1) {
    throw new InvalidArgumentError({
      reason:
        `invalid timeout ${describe(value)}: expected milliseconds, 1 to ` +
        `${MAX_DURATION}`,
    });
  }
  return timeout;
}

/**
 * Tries a TCP connect to each port of a host, many at once, and says which
 * are open. The host is resolved once; each port tries the host's addresses
 * in turn (IPv6 first) until one connects, within `timeout`. Nothing is
 * sent, and a connection is closed as soon as it is made.
 *
 * @example Which of two loopback ports is open
 * ```ts
 * import { scan } from "@socket-programming/socket";
 *
 * using open = Deno.listen({ hostname: "127.0.0.1", port: 0 });
 * const closed = Deno.listen({ hostname: "127.0.0.1", port: 0 });
 * const closedPort = closed.addr.port;
 * closed.close(); // Refused from now on, unless someone else takes it.
 * const results = await scan("127.0.0.1", [open.addr.port, closedPort], {
 *   timeout: 1000,
 * });
 * const stateOf = (port: number) => results.find((r) => r.port === port)?.state;
 * console.log(stateOf(open.addr.port)); // "open"
 * console.log(stateOf(closedPort)); // "closed"
 * ```
 *
 * @param host A name or an IP literal.
 * @param ports The ports: numbers, or a list as {@linkcode parsePorts}
 *   reads it (`"20-25,80"`).
 * @param options Timeout, concurrency, family, signal and a hook for each
 *   result.
 * @returns One result per port, in ascending port order.
 * @throws {InvalidArgumentError} for a bad host, port list or option,
 *   before any socket is made.
 * @throws {ResolveError} when the host does not resolve.
 * @throws {PermissionDeniedError} without the network permission.
 * @throws {CancelledError} when `signal` aborts.
 */
export async function scan(
  host: string,
  ports: readonly number[] | string,
  options: ScanOptions = {},
): Promise<PortResult[]> {
  validateHost(host);
  const list = checkPorts(ports);
  checkOptions(options);
  const timeout = checkTimeout(options.timeout);
  const concurrency = checkCount(options.concurrency, "concurrency", 1) ??
    DEFAULT_SCAN_CONCURRENCY;
  const signal = checkSignal(options.signal);
  checkFunction(options.onResult, "onResult");
  if (signal?.aborted) throw abortError(signal, { op: "scan", host });
  const addresses = await resolve(host, {
    family: options.family,
    nameServer: options.nameServer,
    hostsFile: options.hostsFile,
    signal,
  });
  return await runScan({
    host,
    ports: list,
    addresses,
    timeout,
    concurrency,
    signal,
    onResult: options.onResult,
  });
}

interface Plan {
  host: string;
  ports: number[];
  addresses: IpAddress[];
  timeout: number;
  concurrency: number;
  signal: AbortSignal | undefined;
  onResult: ((result: PortResult) => void) | undefined;
}

/**
 * What one port's probe came to: a result, or "try again later" when the
 * process had no file descriptor left.
 */
type Outcome =
  | { kind: "done"; result: PortResult }
  | { kind: "exhausted"; cause: unknown }
  | { kind: "fatal"; error: unknown }
  | { kind: "stopped" };

/**
 * Runs the probes, at most `limit` at once, and settles only once every
 * probe has ended, so that no connect outlives the call.
 */
function runScan(plan: Plan): Promise<PortResult[]> {
  const { ports, signal } = plan;
  const { promise, resolve, reject } = Promise.withResolvers<PortResult[]>();
  const results: (PortResult | undefined)[] = new Array(ports.length);
  const controllers = new Set<AbortController>();
  const retry: number[] = [];
  let next = 0;
  let reported = 0;
  let running = 0;
  let limit = plan.concurrency;
  let failure: unknown;
  let failed = false;

  const fail = (error: unknown) => {
    if (failed) return;
    failed = true;
    failure = error;
    for (const controller of controllers) controller.abort();
  };
  const onAbort = () =>
    // deno-lint-ignore no-non-null-assertion -- only called on abort
    fail(abortError(signal!, { op: "scan", host: plan.host }));
  const report = () => {
    while (!failed && results[reported] !== undefined) {
      try {
        // deno-lint-ignore no-non-null-assertion -- checked just above
        plan.onResult?.(results[reported]!);
      } catch (error) {
        fail(error);
      }
      reported++;
    }
  };
  const settle = (outcome: Outcome, index: number) => {
    if (outcome.kind === "done") {
      results[index] = outcome.result;
      report();
    } else if (outcome.kind === "fatal") {
      fail(outcome.error);
    } else if (outcome.kind === "exhausted") {
      if (running === 0) fail(exhaustedError(plan, outcome.cause));
      // Out of file descriptors: fewer at once, and this port again later.
      retry.push(index);
      limit = Math.max(1, running);
    }
  };
  const pump = () => {
    while (!failed && running < limit) {
      const index = retry.pop() ?? (next < ports.length ? next++ : undefined);
      if (index === undefined) break;
      launch(index);
    }
    if (running > 0) return;
    signal?.removeEventListener("abort", onAbort);
    if (failed) reject(failure);
    else resolve(results as PortResult[]);
  };
  const launch = (index: number) => {
    const controller = new AbortController();
    controllers.add(controller);
    running++;
    // A bug in probe must fail the scan, not leave it waiting forever.
    const fatal = (error: unknown): Outcome => ({ kind: "fatal", error });
    probe(plan, ports[index], controller).catch(fatal).then((outcome) => {
      controllers.delete(controller);
      running--;
      settle(outcome, index);
      pump();
    });
  };

  // The signal may have fired during the name lookup.
  if (signal?.aborted) onAbort();
  else signal?.addEventListener("abort", onAbort, { once: true });
  pump();
  return promise;
}

const REFUSED = {
  state: "closed",
  code: "ECONNREFUSED",
  reason: "Connection refused",
} as const;
const SELF = {
  state: "closed",
  code: "ECONNREFUSED",
  reason: "no listener: each connect reached itself",
} as const;

/** Why a probe's signal fired on its timer, and not for a cancel. */
const TIMED_OUT = Symbol("timed out");

/** Connects to each address of one port until one connects. */
async function probe(
  plan: Plan,
  port: number,
  controller: AbortController,
): Promise<Outcome> {
  const started = performance.now();
  const timer = setTimeout(() => controller.abort(TIMED_OUT), plan.timeout);
  const done = (result: Omit<PortResult, "port" | "ms">): Outcome => ({
    kind: "done",
    result: { port, ...result, ms: elapsed(started) },
  });
  let last: Omit<PortResult, "port" | "ms"> | undefined;
  try {
    for (const { address } of plan.addresses) {
      try {
        if (await connectsToListener(address, port, controller.signal)) {
          return done({ address, state: "open" });
        }
        last = { address, ...SELF };
      } catch (error) {
        if (controller.signal.reason === TIMED_OUT) {
          return done({
            address,
            state: "timeout",
            code: "ETIMEDOUT",
            reason: `no answer in ${plan.timeout} ms`,
          });
        }
        if (controller.signal.aborted) return { kind: "stopped" };
        if (isOutOfFiles(error)) return { kind: "exhausted", cause: error };
        // The common case, without building an error (and its stack).
        if (error instanceof Deno.errors.ConnectionRefused) {
          last = { address, ...REFUSED };
          continue;
        }
        const failure = fromRuntimeError(error, {
          op: "connect",
          host: plan.host,
          address,
          port,
        });
        // Without the permission no port can be tried: stop at once.
        if (error instanceof Deno.errors.NotCapable) {
          return { kind: "fatal", error: failure };
        }
        last = {
          address,
          state: stateOf(failure),
          code: failure.code,
          reason: failure.reason,
        };
      }
    }
  } finally {
    clearTimeout(timer);
  }
  // deno-lint-ignore no-non-null-assertion -- resolve() gives ≥ 1 address
  return done(last!);
}

/** Tries of a port that keep reaching the scanner's own socket. */
const SELF_TRIES = 3;

/**
 * Connects and closes at once; false when the connect reached its own
 * socket: a port in the ephemeral range, with no listener, can be picked
 * as the connect's own local port, and TCP's simultaneous open then
 * "succeeds" (Go's dialer guards against the same). Another try picks
 * another local port.
 */
async function connectsToListener(
  address: string,
  port: number,
  signal: AbortSignal,
): Promise<boolean> {
  for (let i = 0; i < SELF_TRIES; i++) {
    const conn = await Deno.connect({ hostname: address, port, signal });
    const self = conn.localAddr.port === conn.remoteAddr.port &&
      conn.localAddr.hostname === conn.remoteAddr.hostname;
    conn.close();
    if (!self) return true;
  }
  return false;
}

function stateOf(error: SocketError): PortState {
  if (error.code === "ECONNREFUSED") return "closed";
  if (error.code === "ETIMEDOUT") return "timeout";
  return "error";
}

/** EMFILE (this process) or ENFILE (the system): no descriptor left. */
function isOutOfFiles(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return code === "EMFILE" || code === "ENFILE";
}

function exhaustedError(plan: Plan, cause: unknown): SocketError {
  return new SocketError({
    code: "EIO",
    op: "scan",
    host: plan.host,
    reason: `no file descriptor left for even one connect (raise "ulimit -n")`,
    cause,
  });
}

/** Milliseconds since `started`, to a hundredth. */
function elapsed(started: number): number {
  return Math.round((performance.now() - started) * 100) / 100;
}
