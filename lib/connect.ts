/**
 * Connecting to a server by name or IP: the tutorial's
 * `s.connect((host_ip, port))`, with every address of the name tried as
 * RFC 8305 ("Happy Eyeballs") says.
 *
 * @module
 */

import {
  formatAddress,
  type IpAddress,
  ipFamily,
  validateHost,
  validatePort,
} from "./address.ts";
import { Connection, type ConnectionOptions } from "./connection.ts";
import {
  abortError,
  type AttemptFailure,
  fromRuntimeError,
  netPermissionHint,
  PermissionDeniedError,
  reasonOf,
  type SocketError,
  TimeoutError,
} from "./errors.ts";
import { resolve, type ResolveOptions } from "./resolve.ts";
import {
  checkDuration,
  checkFunction,
  checkOptions,
  checkSignal,
  deadlineSignal,
} from "./validate.ts";

/** One connection attempt, as {@linkcode ConnectOptions.onAttempt} sees it. */
export interface AttemptEvent extends IpAddress {
  /** The port. */
  port: number;
  /** Starting, or how it ended. */
  state: "trying" | "connected" | "failed";
  /** Why it failed, when `state` is `"failed"`. */
  error?: SocketError;
}

/** Options of {@linkcode connect}. */
export interface ConnectOptions
  extends Omit<ResolveOptions, "timeout" | "signal">, ConnectionOptions {
  /**
   * Milliseconds for the whole connect, name lookup included, before it
   * fails with `ETIMEDOUT`. No limit but the system's when not given.
   */
  timeout?: number;
  /** Cancels the connect with `ECANCELED`. */
  signal?: AbortSignal;
  /**
   * Milliseconds to wait on one address before also trying the next
   * (RFC 8305's "Connection Attempt Delay"). A refused attempt starts the
   * next at once.
   *
   * @default {250}
   */
  attemptDelay?: number;
  /**
   * Called as each attempt starts and ends: enough to print a telnet-style
   * trace ("Trying ::1...", "Connection refused", "Connected to ...").
   * What it throws is ignored.
   */
  onAttempt?: (event: AttemptEvent) => void;
}

const DEFAULT_ATTEMPT_DELAY = 250;
/** How many failed addresses an error names before "and N more". */
const NAMED_FAILURES = 3;

/**
 * Connects to a host (a name or an IP literal) and port. A name is resolved
 * first, and its addresses are tried in turn: the next one starts when the
 * last is refused, or after `attemptDelay` if it has not answered; the first
 * to connect wins and the others are cancelled and closed.
 *
 * Deno checks the network permission against the address it dials, so
 * when the program may reach the name (`--allow-net=localhost`) but none
 * of its addresses, the name itself is dialled once and Deno picks the
 * address: the permission people write works.
 *
 * @example Connect to a local server
 * ```ts
 * import { connect, serve } from "@socket-programming/socket";
 *
 * await using server = serve({ hostname: "127.0.0.1" }, () => {});
 * await using conn = await connect("localhost", server.addr.port);
 * console.log(conn.remoteAddr.address); // "127.0.0.1"
 * ```
 *
 * @param host A name or an IP literal (`"127.0.0.1"`, `"::1"`, `"[::1]"`).
 * @param port 1–65535.
 * @param options Timeout, signal, attempt delay and hook, name lookup and
 *   connection options.
 * @returns The open connection.
 * @throws {ConnectionRefusedError} when every address refused; the message
 *   and `attempts` give each address's error.
 * @throws {TimeoutError} past `timeout`.
 * @throws {ResolveError} when the name does not resolve.
 * @throws {InvalidArgumentError} for a bad port, host or option, before any
 *   socket is made.
 */
export async function connect(
  host: string,
  port: number,
  options: ConnectOptions = {},
): Promise<Connection> {
  validateHost(host);
  validatePort(port);
  checkOptions(options);
  const timeout = checkDuration(options.timeout, "timeout");
  const attemptDelay = checkDuration(options.attemptDelay, "attemptDelay") ??
    DEFAULT_ATTEMPT_DELAY;
  checkFunction(options.onAttempt, "onAttempt");
  const connectionOptions = {
    idleTimeout: options.idleTimeout,
    noDelay: options.noDelay,
    keepAlive: options.keepAlive,
  };
  // Checked now, so that a bad option fails before any socket is made.
  checkDuration(options.idleTimeout, "idleTimeout");
  const deadline = deadlineSignal(
    checkSignal(options.signal),
    timeout,
    () =>
      new TimeoutError(
        `connect to ${host} port ${port}: timed out after ${timeout} ms`,
        { host, port },
      ),
  );
  try {
    const signal = deadline.signal;
    if (signal?.aborted) {
      throw abortError(signal, `connect to ${host} port ${port}`, {
        host,
        port,
      });
    }
    const addresses = await resolve(host, {
      family: options.family,
      nameServer: options.nameServer,
      hostsFile: options.hostsFile,
      timeout,
      signal,
    });
    const byName = onlyNamePermitted(host, port, addresses);
    const conn = await race({
      host,
      port,
      // The family is the first address's: only the trace shows it.
      addresses: byName ? [{ ...addresses[0], address: host }] : addresses,
      byName,
      attemptDelay,
      signal,
      onAttempt: options.onAttempt,
    });
    return new Connection(conn, connectionOptions);
  } finally {
    deadline.clear();
  }
}

/**
 * Whether the program may connect to `host` by name but to none of its
 * addresses: Deno then has to resolve the name itself.
 */
function onlyNamePermitted(
  host: string,
  port: number,
  addresses: IpAddress[],
): boolean {
  if (ipFamily(host) !== undefined) return false;
  const granted = (address: string) =>
    Deno.permissions.querySync({
      name: "net",
      host: formatAddress({ address, port }),
    }).state === "granted";
  return !addresses.some((a) => granted(a.address)) && granted(host);
}

interface Race {
  host: string;
  port: number;
  addresses: IpAddress[];
  /** The one "address" is the name, for Deno to resolve and race. */
  byName: boolean;
  attemptDelay: number;
  signal: AbortSignal | undefined;
  onAttempt: ((event: AttemptEvent) => void) | undefined;
}

/**
 * Runs the attempts, and settles only once every attempt has ended, so
 * that no connect outlives the call.
 */
function race(
  { host, port, addresses, byName, attemptDelay, signal, onAttempt }: Race,
): Promise<Deno.TcpConn> {
  const { promise, resolve, reject } = Promise.withResolvers<Deno.TcpConn>();
  const controllers = new Set<AbortController>();
  const failures: AttemptFailure[] = [];
  let next = 0;
  let running = 0;
  let winner: Deno.TcpConn | undefined;
  let failure: SocketError | undefined;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const decided = () => winner !== undefined || failure !== undefined;
  // The caller's hook must not break the race: what it throws is dropped.
  const report = (event: AttemptEvent) => {
    try {
      onAttempt?.(event);
    } catch {
      // Ignored, as documented on ConnectOptions.onAttempt.
    }
  };

  const settle = () => {
    if (running > 0 || !decided()) return;
    clearTimeout(timer);
    signal?.removeEventListener("abort", onAbort);
    if (winner) resolve(winner);
    else reject(failure);
  };
  const stopOthers = () => {
    clearTimeout(timer);
    for (const controller of controllers) controller.abort();
  };
  const onAbort = () => {
    if (decided()) return;
    // deno-lint-ignore no-non-null-assertion -- only called on abort
    failure = abortError(signal!, `connect to ${host} port ${port}`, {
      host,
      port,
    });
    stopOthers();
    settle();
  };
  const start = () => {
    clearTimeout(timer);
    const address = addresses[next++];
    const controller = new AbortController();
    controllers.add(controller);
    running++;
    report({ ...address, port, state: "trying" });
    Deno.connect({
      hostname: address.address,
      port,
      signal: controller.signal,
      autoSelectFamily: byName,
    }).then((conn) => {
      if (decided()) return conn.close();
      winner = conn;
      controllers.delete(controller);
      stopOthers();
      report({ ...address, port, state: "connected" });
    }, (error) => {
      if (decided()) return;
      const attempt = fromRuntimeError(error, {
        action: "connect to",
        host: address.address,
        port,
      });
      failures.push({ address: address.address, port, error: attempt });
      report({ ...address, port, state: "failed", error: attempt });
      if (next < addresses.length) start();
      else if (running === 1) failure = allFailed(host, port, failures);
    }).finally(() => {
      controllers.delete(controller);
      running--;
      settle();
    });
    if (next < addresses.length) timer = setTimeout(start, attemptDelay);
  };

  // The signal may have fired during the name lookup.
  if (signal?.aborted) {
    onAbort();
    return promise;
  }
  signal?.addEventListener("abort", onAbort, { once: true });
  start();
  return promise;
}

/** The error when every address failed: the last one's, naming them all. */
function allFailed(
  host: string,
  port: number,
  failures: AttemptFailure[],
): SocketError {
  const last = failures[failures.length - 1].error;
  if (failures.every((f) => f.error.cause instanceof Deno.errors.NotCapable)) {
    // Named as the caller gave it: that permission is enough (see connect).
    return new PermissionDeniedError(
      `connect to ${host} port ${port}: ${netPermissionHint(host, port)}`,
      { host, port, cause: last.cause, attempts: failures },
    );
  }
  if (failures.length === 1) return last;
  const each = failures.slice(0, NAMED_FAILURES)
    .map((f) => `${f.address}: ${reasonOf(f.error)}`);
  const more = failures.length - NAMED_FAILURES;
  if (more > 0) each.push(`and ${more} more`);
  return fromRuntimeError(last.cause, {
    action: "connect to",
    host,
    port,
    message: `connect to ${host} port ${port} failed for every address: ${
      each.join("; ")
    }`,
    attempts: failures,
  });
}
