/**
 * TLS on every flow: the options of `connect(…, { tls })` and
 * `serve({ tls }, …)`, the handshake as one more traced step with its own
 * deadline and typed errors, and {@linkcode startTls} for STARTTLS.
 *
 * Deno does the cryptography (rustls): `Deno.startTls` on the connection
 * the Happy Eyeballs race won, `Deno.connectTls` when a client certificate
 * is sent (only it takes one), `Deno.listenTls` for servers.
 *
 * @module
 */

import { describe } from "./_describe.ts";
import { Connection, connectionInternals, type TlsInfo } from "./connection.ts";
import { abortError, fromRuntimeError } from "./_error_mapping.ts";
import {
  InvalidArgumentError,
  type SocketError,
  TimeoutError,
} from "./errors.ts";
import { deadlineSignal } from "./_deadline.ts";
import { checkDuration, checkOptions, checkSignal } from "./_validate.ts";

export type { TlsInfo };

/** The TLS options of a client: `connect(…, { tls })` and `startTls`. */
export interface ClientTlsOptions {
  /**
   * Certificates (PEM) of the authorities to trust, in addition to the
   * runtime's root store (Mozilla's roots, or the system's with
   * `DENO_TLS_CA_STORE=system`).
   */
  caCerts?: string[];
  /**
   * The name the server's certificate must be valid for, sent as SNI.
   *
   * @default {the host given to connect}
   */
  serverName?: string;
  /** ALPN protocols to offer, in order of preference (`["h2", "http/1.1"]`). */
  alpnProtocols?: string[];
  /**
   * Our certificate chain (PEM), for a server that asks for one (mutual
   * TLS); give `key` with it. Only `connect` takes it (Deno's `startTls`
   * cannot send one), and the name dialled is then the certificate name
   * too: `serverName` must be absent or the host.
   */
  cert?: string;
  /** The private key (PEM) of `cert`. */
  key?: string;
  /**
   * Whether the certificate must be valid for `serverName`. `false` still
   * checks the chain and dates: Deno has no API to skip those (only its
   * `--unsafely-ignore-certificate-errors` flag does, for the whole
   * process).
   *
   * @default {true}
   */
  verifyName?: boolean;
}

/** Options of {@linkcode startTls}. */
export interface StartTlsOptions
  extends Omit<ClientTlsOptions, "cert" | "key"> {
  /** Milliseconds the handshake may take before `ETIMEDOUT`. */
  timeout?: number;
  /** Cancels the handshake with `ECANCELED`. */
  signal?: AbortSignal;
}

/** The TLS options of a server: `serve({ tls }, …)`. */
export interface ServeTlsOptions {
  /** The certificate chain (PEM), the server's own first. */
  cert: string;
  /** Its private key (PEM): RSA, EC or PKCS#8. */
  key: string;
  /** ALPN protocols the server accepts, in order of preference. */
  alpnProtocols?: string[];
  /**
   * Milliseconds a client has to finish its handshake; then it is closed
   * and counted as failed (`ETIMEDOUT`, op `"handshake"`), which frees
   * its handler slot.
   *
   * @default {10000}
   */
  handshakeTimeout?: number;
}

/** One step of a client's TLS handshake, for a trace. */
export interface HandshakeEvent {
  /** The name the certificate is checked against. */
  serverName: string;
  /** The peer's IP address. */
  address: string;
  /** The peer's port. */
  port: number;
  /** Starting, or how it ended. */
  state: "started" | "done" | "failed";
  /** The ALPN protocol agreed, when `state` is `"done"`. */
  alpnProtocol?: string | null;
  /** Why it failed, when `state` is `"failed"`. */
  error?: SocketError;
}

/** {@linkcode ClientTlsOptions}, checked once. Internal. */
export interface ClientTlsSettings {
  readonly caCerts: string[] | undefined;
  readonly serverName: string | undefined;
  readonly alpnProtocols: string[] | undefined;
  readonly cert: string | undefined;
  readonly key: string | undefined;
  readonly verifyName: boolean;
}

/** {@linkcode ServeTlsOptions}, checked once. Internal. */
export interface ServerTlsSettings {
  readonly cert: string;
  readonly key: string;
  readonly alpnProtocols: string[] | undefined;
  readonly handshakeTimeout: number;
}

const DEFAULT_HANDSHAKE_TIMEOUT = 10_000;

/**
 * Checks a client's TLS options; `true` means every default.
 *
 * @returns The settings, or `undefined` for no TLS.
 */
export function clientTlsSettings(
  value: ClientTlsOptions | boolean | undefined,
): ClientTlsSettings | undefined {
  if (value === undefined || value === false) return undefined;
  const options = value === true ? {} : value;
  if (typeof options !== "object" || options === null) {
    throw invalid("tls", value, "an object or a boolean");
  }
  const cert = checkPem(options.cert, "tls.cert");
  const key = checkPem(options.key, "tls.key");
  if ((cert === undefined) !== (key === undefined)) {
    throw new InvalidArgumentError({
      reason: "invalid tls: cert and key go together",
    });
  }
  if (options.verifyName !== undefined) {
    checkBoolean(options.verifyName, "tls.verifyName");
  }
  return Object.freeze({
    caCerts: checkPemList(options.caCerts, "tls.caCerts"),
    serverName: checkName(options.serverName),
    alpnProtocols: checkAlpn(options.alpnProtocols),
    cert,
    key,
    verifyName: options.verifyName !== false,
  });
}

/** Checks a server's TLS options. */
export function serverTlsSettings(
  value: ServeTlsOptions | undefined,
): ServerTlsSettings | undefined {
  if (value === undefined) return undefined;
  checkOptions(value);
  const cert = checkPem(value.cert, "tls.cert");
  const key = checkPem(value.key, "tls.key");
  if (cert === undefined || key === undefined) {
    throw new InvalidArgumentError({
      reason: "invalid tls: a server needs cert and key (PEM)",
    });
  }
  return Object.freeze({
    cert,
    key,
    alpnProtocols: checkAlpn(value.alpnProtocols),
    handshakeTimeout:
      checkDuration(value.handshakeTimeout, "tls.handshakeTimeout") ??
        DEFAULT_HANDSHAKE_TIMEOUT,
  });
}

/** Where a handshake happens, for its errors and trace. */
export interface HandshakeTarget {
  /** The host as the caller gave it. */
  host: string;
  /** The port. */
  port: number;
  /** Ends the handshake with the signal's error. */
  signal: AbortSignal | undefined;
  /** Told as the handshake starts and ends. */
  onHandshake: ((event: HandshakeEvent) => void) | undefined;
}

/**
 * The client's handshake on a connection the race won: `Deno.startTls`,
 * then `handshake()`, so that nothing the server sent is read before its
 * certificate is verified. The TCP connection is closed on failure.
 */
export async function secureClient(
  tcp: Deno.TcpConn,
  tls: ClientTlsSettings,
  target: HandshakeTarget,
): Promise<Deno.TlsConn> {
  const serverName = tls.serverName ?? target.host;
  let conn: Deno.TlsConn;
  try {
    conn = await Deno.startTls(tcp, {
      hostname: serverName,
      caCerts: tls.caCerts,
      alpnProtocols: tls.alpnProtocols,
      unsafelyDisableHostnameVerification: !tls.verifyName,
    });
  } catch (error) {
    tcp.close();
    throw fromRuntimeError(error, where(target, serverName, tcp.remoteAddr));
  }
  return await handshake(conn, serverName, target);
}

/**
 * The client's connection when it sends a certificate: only
 * `Deno.connectTls` takes one, and it dials the name itself (its own
 * Happy Eyeballs), so the trace shows one attempt to the host.
 */
export async function dialWithCertificate(
  tls: ClientTlsSettings,
  target: HandshakeTarget,
): Promise<Deno.TlsConn> {
  const { host, port, signal } = target;
  if (tls.serverName !== undefined && tls.serverName !== host) {
    throw new InvalidArgumentError({
      reason: "invalid tls: with a client certificate the server name is " +
        "the host (Deno's connectTls takes no other)",
    });
  }
  if (signal?.aborted) throw abortError(signal, { op: "connect", host, port });
  const dialling = Deno.connectTls({
    hostname: host,
    port,
    caCerts: tls.caCerts,
    alpnProtocols: tls.alpnProtocols,
    unsafelyDisableHostnameVerification: !tls.verifyName,
    // Checked together by clientTlsSettings.
    cert: tls.cert as string,
    key: tls.key as string,
  });
  // connectTls takes no signal: a late connection is closed when it comes.
  const conn = await raceSignal(dialling, signal, (c) => c.close()).catch(
    (error) => {
      throw signal?.aborted
        ? abortError(signal, { op: "connect", host, port })
        : fromRuntimeError(error, { op: "connect", host, port });
    },
  );
  return await handshake(conn, host, target);
}

/** Runs `handshake()` against the signal, reporting it and its outcome. */
async function handshake(
  conn: Deno.TlsConn,
  serverName: string,
  target: HandshakeTarget,
): Promise<Deno.TlsConn> {
  const context = where(target, serverName, conn.remoteAddr);
  const event = {
    serverName,
    address: context.address as string,
    port: target.port,
  };
  report(target.onHandshake, { ...event, state: "started" });
  try {
    const info = await raceSignal(conn.handshake(), target.signal);
    report(target.onHandshake, {
      ...event,
      state: "done",
      alpnProtocol: info.alpnProtocol,
    });
    return conn;
  } catch (error) {
    conn.close();
    const failure = handshakeError(error, target.signal, context);
    report(target.onHandshake, { ...event, state: "failed", error: failure });
    throw failure;
  }
}

/** The error of a failed handshake: the signal's, or the runtime's mapped. */
function handshakeError(
  error: unknown,
  signal: AbortSignal | undefined,
  context: ReturnType<typeof where>,
): SocketError {
  if (!signal?.aborted) return fromRuntimeError(error, context);
  const reason = signal.reason;
  // The connect's deadline ran out during the handshake: say so.
  if (reason instanceof TimeoutError) {
    return new TimeoutError({
      ...context,
      reason: reason.reason,
      cause: reason,
    });
  }
  return abortError(signal, context);
}

/**
 * The server's side of one connection's handshake, bounded by
 * `handshakeTimeout`: past it the connection is closed and the error is a
 * {@linkcode TimeoutError} with op `"handshake"`.
 *
 * @returns What was agreed.
 */
export async function secureServer(
  conn: Deno.TlsConn,
  timeout: number,
): Promise<TlsInfo> {
  const peer = conn.remoteAddr;
  const context = {
    op: "handshake" as const,
    host: peer.hostname,
    address: peer.hostname,
    port: peer.port,
  };
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    // Closing ends the pending handshake (it rejects as interrupted).
    conn.close();
  }, timeout);
  try {
    const info = await conn.handshake();
    return { alpnProtocol: info.alpnProtocol };
  } catch (error) {
    if (timedOut) {
      throw new TimeoutError({
        ...context,
        reason: `no handshake in ${timeout} ms`,
      });
    }
    throw fromRuntimeError(error, context);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Upgrades a plain connection to TLS (STARTTLS, as SMTP, IMAP and XMPP
 * do after a plain-text exchange): the handshake runs on the same socket,
 * and the returned connection carries the rest. The plain connection is
 * spent (any call on it throws `EBADF`); nothing may be reading it.
 * Deno has this for the client side only: a server cannot upgrade.
 *
 * @example Upgrade after a server says "go ahead"
 * ```ts ignore
 * import { connect, startTls } from "@socket-programming/socket";
 *
 * const plain = await connect("mail.example", 587);
 * await plain.recv(); // "220 ready"
 * await plain.sendAll("STARTTLS\r\n");
 * await plain.recv(); // "220 go ahead"
 * await using conn = await startTls(plain, { serverName: "mail.example" });
 * console.log(conn.tls?.alpnProtocol); // null
 * ```
 *
 * @param conn A plain connection from {@linkcode connect}.
 * @param options The server's name (default: its address), the
 *   authorities to trust, ALPN, and the handshake's timeout and signal.
 * @returns The TLS connection, with the same idle timeout.
 * @throws {CertificateError} when the certificate is refused.
 * @throws {TlsError} when the handshake fails otherwise.
 * @throws {TimeoutError} past `timeout` (op `"handshake"`).
 */
export async function startTls(
  conn: Connection,
  options: StartTlsOptions = {},
): Promise<Connection> {
  if (!(conn instanceof Connection)) {
    throw invalid("conn", conn, "a Connection");
  }
  checkOptions(options);
  const rest = { ...options, timeout: undefined, signal: undefined };
  if ("cert" in rest || "key" in rest) {
    throw new InvalidArgumentError({
      reason: "invalid options: startTls cannot send a client certificate " +
        "(Deno's startTls takes none); use connect(…, { tls: { cert, key } })",
    });
  }
  // deno-lint-ignore no-non-null-assertion -- an object always gives settings
  const tls = clientTlsSettings(rest)!;
  const timeout = checkDuration(options.timeout, "timeout");
  checkSignal(options.signal);
  const host = tls.serverName ?? conn.remoteAddr.address;
  const port = conn.remoteAddr.port;
  const settings = connectionInternals.settings(conn);
  const tcp = connectionInternals.take(conn);
  const deadline = deadlineSignal(
    options.signal,
    timeout,
    () =>
      new TimeoutError({
        op: "handshake",
        host,
        port,
        reason: `timed out after ${timeout} ms`,
      }),
  );
  try {
    const tlsConn = await secureClient(tcp, tls, {
      host,
      port,
      signal: deadline.signal,
      onHandshake: undefined,
    });
    return await secured(tlsConn, settings, host);
  } finally {
    deadline.clear();
  }
}

/**
 * A {@linkcode Connection} on a finished client handshake, saying what it
 * agreed.
 */
export async function secured(
  conn: Deno.TlsConn,
  settings: ConstructorParameters<typeof Connection>[1],
  serverName: string,
): Promise<Connection> {
  // The handshake has finished: this resolves at once with what it agreed.
  const info = await conn.handshake();
  const connection = new Connection(conn, settings);
  connectionInternals.setTls(connection, {
    alpnProtocol: info.alpnProtocol,
    serverName,
  });
  return connection;
}

/** Settles as `promise`, or rejects when the signal aborts first. */
function raceSignal<T>(
  promise: Promise<T>,
  signal: AbortSignal | undefined,
  discard?: (late: T) => void,
): Promise<T> {
  if (signal === undefined) return promise;
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => {
      promise.then((late) => discard?.(late), () => {});
      reject(signal.reason);
    };
    if (signal.aborted) return onAbort();
    signal.addEventListener("abort", onAbort, { once: true });
    promise.then(resolve, reject).finally(() =>
      signal.removeEventListener("abort", onAbort)
    );
  });
}

function report(
  hook: ((event: HandshakeEvent) => void) | undefined,
  event: HandshakeEvent,
): void {
  try {
    hook?.(event);
  } catch {
    // A hook's failure must not break the handshake, as for onAttempt.
  }
}

function where(target: HandshakeTarget, serverName: string, peer: Deno.Addr) {
  const address = (peer as Deno.NetAddr).hostname;
  return {
    op: "handshake" as const,
    host: serverName,
    address,
    port: target.port,
  };
}

function checkPem(value: unknown, name: string): string | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== "string" || !value.includes("-----BEGIN ")) {
    throw invalid(name, value, "PEM text (-----BEGIN …)");
  }
  return value;
}

function checkPemList(value: unknown, name: string): string[] | undefined {
  if (value === undefined) return undefined;
  if (!Array.isArray(value)) throw invalid(name, value, "an array of PEM");
  return value.map((pem, i) => checkPem(pem, `${name}[${i}]`) as string);
}

function checkAlpn(value: unknown): string[] | undefined {
  if (value === undefined) return undefined;
  const ok = Array.isArray(value) && value.length > 0 &&
    value.every((p) => typeof p === "string" && p.length > 0 && p.length < 256);
  if (!ok) {
    throw invalid("tls.alpnProtocols", value, "a list of protocol names");
  }
  return [...value];
}

function checkName(value: unknown): string | undefined {
  if (value === undefined) return undefined;
  if (
    typeof value !== "string" || !/^[A-Za-z0-9.:_\[\]-]{1,253}$/.test(value)
  ) {
    throw invalid("tls.serverName", value, "a host name or an IP address");
  }
  return value.replace(/^\[(.*)\]$/, "$1");
}

function checkBoolean(value: unknown, name: string): void {
  if (typeof value !== "boolean") throw invalid(name, value, "a boolean");
}

function invalid(name: string, value: unknown, expected: string) {
  return new InvalidArgumentError({
    reason: `invalid ${name} ${describe(value)}: expected ${expected}`,
  });
}
