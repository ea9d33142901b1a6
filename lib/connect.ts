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
  type UnixAddress,
  validateHost,
  validatePath,
  validatePort,
} from "./address.ts";
import {
  Connection,
  type ConnectionOptions,
  type ConnectionSettings,
  connectionSettings,
} from "./connection.ts";
import { abortError, fromUnixError } from "./_error_mapping.ts";
import { InvalidArgumentError, TimeoutError } from "./errors.ts";
import { type AttemptEvent, happyEyeballs } from "./_happy_eyeballs.ts";
import { resolve, type ResolveOptions } from "./resolve.ts";
import {
  type ClientTlsOptions,
  type ClientTlsSettings,
  clientTlsSettings,
  dialWithCertificate,
  type HandshakeEvent,
  secureClient,
  secured,
} from "./tls.ts";
import { deadlineSignal } from "./_deadline.ts";
import {
  checkDuration,
  checkFunction,
  checkOptions,
  checkSignal,
} from "./_validate.ts";

export type { AttemptEvent, HandshakeEvent };

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
  /**
   * Speaks TLS over the connection: the server's certificate and name are
   * checked (`true` for every default: the runtime's roots, the host as the
   * name). The handshake runs after the race, within `timeout`, before
   * `connect` returns; {@linkcode Connection.tls} says what it agreed.
   */
  tls?: ClientTlsOptions | boolean;
  /**
   * Called as the TLS handshake starts and ends ("TLS handshake with
   * localhost: ok, ALPN h2"). What it throws is ignored.
   */
  onHandshake?: (event: HandshakeEvent) => void;
}

const DEFAULT_ATTEMPT_DELAY = 250;

/** {@linkcode ConnectOptions}, checked once where they enter. */
interface ConnectSettings {
  timeout: number | undefined;
  attemptDelay: number;
  signal: AbortSignal | undefined;
  onAttempt: ((event: AttemptEvent) => void) | undefined;
  tls: ClientTlsSettings | undefined;
  onHandshake: ((event: HandshakeEvent) => void) | undefined;
  connection: ConnectionSettings;
}

function connectSettings(options: ConnectOptions): ConnectSettings {
  checkOptions(options);
  checkFunction(options.onAttempt, "onAttempt");
  checkFunction(options.onHandshake, "onHandshake");
  return {
    timeout: checkDuration(options.timeout, "timeout"),
    attemptDelay: checkDuration(options.attemptDelay, "attemptDelay") ??
      DEFAULT_ATTEMPT_DELAY,
    signal: checkSignal(options.signal),
    onAttempt: options.onAttempt,
    tls: clientTlsSettings(options.tls),
    onHandshake: options.onHandshake,
    // Checked now, so that a bad option fails before any socket is made.
    connection: connectionSettings(options),
  };
}

/**
 * Connects to a Unix domain socket (`nc -U PATH`). Deno needs read, write
 * and net permission for the path: `--allow-read=PATH --allow-write=PATH
 * --allow-net=unix:PATH` (or `-R -W -N`).
 *
 * @example Connect to a server on a Unix socket
 * ```ts
 * import { connect, serve } from "@socket-programming/socket";
 *
 * const dir = await Deno.makeTempDir();
 * const path = `${dir}/app.sock`;
 * {
 *   await using server = serve({ path }, (conn) => conn.sendAll("hi"));
 *   await using conn = await connect({ path });
 *   console.log(conn.remoteAddr.path === path); // true
 *   console.log(new TextDecoder().decode(await conn.recvAll())); // "hi"
 * }
 * await Deno.remove(dir);
 * ```
 *
 * @param address The socket file's path.
 * @param options Timeout, signal and idle timeout.
 * @returns The open connection.
 * @throws {NotFoundError} when no file is at the path (`ENOENT`).
 * @throws {ConnectionRefusedError} when the file exists but nobody listens
 *   on it: a stale socket, or not a socket at all.
 * @throws {PermissionDeniedError} for a missing permission, naming the
 *   flags.
 * @throws {TimeoutError} past `timeout`.
 * @throws {InvalidArgumentError} for a bad path or option.
 */
export function connect(
  address: { path: string },
  options?: UnixConnectOptions,
): Promise<Connection<UnixAddress>>;
// The TCP overload comes last: `ReturnType<typeof connect>` reads it.
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
 * @example Connect with TLS (the certificate and name are checked)
 * ```ts ignore
 * import { connect } from "@socket-programming/socket";
 *
 * await using conn = await connect("example.com", 443, {
 *   tls: { alpnProtocols: ["http/1.1"] },
 *   timeout: 5000,
 * });
 * console.log(conn.tls?.alpnProtocol); // "http/1.1"
 * ```
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
 * @throws {CertificateError} with `tls`, when the server's certificate is
 *   refused (unknown authority, wrong name, expired).
 * @throws {TlsError} with `tls`, when the handshake fails otherwise.
 * @throws {InvalidArgumentError} for a bad port, host or option, before any
 *   socket is made.
 */
export function connect(
  host: string,
  port: number,
  options?: ConnectOptions,
): Promise<Connection>;
export function connect(
  target: string | { path: string },
  portOrOptions?: number | UnixConnectOptions,
  options?: ConnectOptions,
): Promise<Connection | Connection<UnixAddress>> {
  if (typeof target === "object" && target !== null) {
    return connectUnix(target, portOrOptions as UnixConnectOptions);
  }
  return connectTcp(target, portOrOptions as number, options);
}

async function connectTcp(
  given: string,
  port: number,
  options: ConnectOptions = {},
): Promise<Connection> {
  // "[::1]" is ::1: the TLS server name and every message take the bare one.
  const host = validateHost(given);
  validatePort(port);
  const settings = connectSettings(options);
  const { timeout } = settings;
  const deadline = deadlineSignal(
    settings.signal,
    timeout,
    () =>
      new TimeoutError({
        op: "connect",
        host,
        port,
        reason: `timed out after ${timeout} ms`,
      }),
  );
  try {
    const signal = deadline.signal;
    if (signal?.aborted) {
      throw abortError(signal, { op: "connect", host, port });
    }
    const addresses = await resolve(host, {
      family: options.family,
      nameServer: options.nameServer,
      hostsFile: options.hostsFile,
      timeout,
      signal,
    });
    const { tls } = settings;
    const target = { host, port, signal, onHandshake: settings.onHandshake };
    if (tls?.cert !== undefined) {
      const conn = await dialWithCertificate(tls, target);
      return await secured(conn, settings.connection, host);
    }
    const byName = onlyNamePermitted(host, port, addresses);
    const conn = await happyEyeballs({
      host,
      port,
      // The family is the first address's: only the trace shows it.
      addresses: byName ? [{ ...addresses[0], address: host }] : addresses,
      byName,
      attemptDelay: settings.attemptDelay,
      signal,
      onAttempt: settings.onAttempt,
    });
    if (tls === undefined) return new Connection(conn, settings.connection);
    const secure = await secureClient(conn, tls, target);
    return await secured(secure, settings.connection, tls.serverName ?? host);
  } finally {
    deadline.clear();
  }
}

/** Options of {@linkcode connect} to a Unix socket. */
export type UnixConnectOptions = Pick<
  ConnectOptions,
  "timeout" | "signal" | "idleTimeout"
>;

async function connectUnix(
  address: { path: string },
  options: UnixConnectOptions = {},
): Promise<Connection<UnixAddress>> {
  const path = validatePath(address.path);
  checkOptions(options);
  // Deno's TLS dials TCP only; the type has no `tls`, untyped callers may.
  if ((options as ConnectOptions | undefined)?.tls !== undefined) {
    throw new InvalidArgumentError({
      reason: "invalid tls: TLS runs over TCP only, not to a Unix socket's " +
        "path",
    });
  }
  const timeout = checkDuration(options.timeout, "timeout");
  const connection = connectionSettings({ idleTimeout: options.idleTimeout });
  const where = { op: "connect" as const, host: path };
  const deadline = deadlineSignal(
    checkSignal(options.signal),
    timeout,
    () =>
      new TimeoutError({ ...where, reason: `timed out after ${timeout} ms` }),
  );
  try {
    const signal = deadline.signal;
    if (signal?.aborted) throw abortError(signal, where);
    const attempt = Deno.connect({ transport: "unix", path });
    // Deno's unix connect takes no signal: a late connection is closed.
    const conn = await raceSignal(attempt, signal).catch((error) => {
      attempt.then((late) => late.close(), () => {});
      throw signal?.aborted
        ? abortError(signal, where)
        : fromUnixError(error, where);
    });
    return new Connection<UnixAddress>(conn, connection);
  } finally {
    deadline.clear();
  }
}

/** `promise`, or a rejection as soon as `signal` aborts. */
function raceSignal<T>(
  promise: Promise<T>,
  signal: AbortSignal | undefined,
): Promise<T> {
  if (signal === undefined) return promise;
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener("abort", onAbort, { once: true });
    promise.then(resolve, reject).finally(() =>
      signal.removeEventListener("abort", onAbort)
    );
  });
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
