/**
 * The module's one error family: every failure is a {@linkcode SocketError}
 * whose fields say what was being done (`op`), where (`host`, `port`,
 * `address`) and why (`code`, `reason`, `cause`). The message is built from
 * those fields in one place, as Node's (`syscall`, `address`, `port`) and
 * Go's (`net.OpError{Op, Addr, Err}`) are: programs read the fields, never
 * the message.
 *
 * @module
 */

import { hostPort } from "./_describe.ts";

/**
 * The stable codes of {@linkcode SocketError}, named as POSIX, Python and
 * Node name them. Each code belongs to exactly one class.
 *
 * - `EINVAL`: a bad argument (port, host, option), caught before any socket
 *   is made ({@linkcode InvalidArgumentError}).
 * - `ENOTFOUND`, `ESERVFAIL`: a name that cannot be resolved (Python's
 *   `socket.gaierror`, {@linkcode ResolveError}).
 * - `ETIMEDOUT`: anything that did not finish in time, a DNS lookup
 *   included ({@linkcode TimeoutError}).
 * - `ECONNREFUSED`, `EHOSTUNREACH`, `ENETUNREACH`: connecting failed. For
 *   a Unix socket, `ECONNREFUSED` means the file exists but nobody listens
 *   on it (a server that crashed left it, or it is not a socket).
 * - `ENOENT`: no such file: a Unix socket path with nothing there, or whose
 *   directory does not exist ({@linkcode NotFoundError}).
 * - `EADDRINUSE`, `EADDRNOTAVAIL`, `EACCES`: binding failed, or the runtime
 *   lacks the permission.
 * - `ECONNRESET`, `EPIPE`: the peer went away mid-transfer.
 * - `EBADF`: the connection was already closed (as Python's "Bad file
 *   descriptor").
 * - `EMSGSIZE`: more data arrived than the caller allowed.
 * - `ECANCELED`: an `AbortSignal` fired.
 * - `EUNKNOWNCA`, `ECERTNAME`, `ECERTEXPIRED`, `ECERTINVALID`: the TLS
 *   peer's certificate was refused ({@linkcode CertificateError}): signed by
 *   an authority not trusted here (Node's `UNABLE_TO_VERIFY_LEAF_SIGNATURE`,
 *   OpenSSL's "unable to get local issuer certificate"), not valid for the
 *   name asked for (Node's `ERR_TLS_CERT_ALTNAME_INVALID`), past its end
 *   date (`CERT_HAS_EXPIRED`), or bad another way. Op `"handshake"`.
 * - `ETLS`: any other failed TLS handshake: not TLS, no protocol or cipher
 *   in common, a fatal alert from the peer ({@linkcode TlsError}). A
 *   handshake that did not finish in time is a {@linkcode TimeoutError}
 *   with op `"handshake"`.
 * - `EIO`: any other failure of the runtime (the base class itself).
 */
export type SocketErrorCode =
  | "EINVAL"
  | "ENOTFOUND"
  | "ESERVFAIL"
  | "ECONNREFUSED"
  | "ENOENT"
  | "ETIMEDOUT"
  | "EHOSTUNREACH"
  | "ENETUNREACH"
  | "EADDRINUSE"
  | "EADDRNOTAVAIL"
  | "EACCES"
  | "ECONNRESET"
  | "EPIPE"
  | "EBADF"
  | "EMSGSIZE"
  | "ECANCELED"
  | CertificateErrorCode
  | "ETLS"
  | "EIO";

/** The codes of {@linkcode CertificateError}. */
export type CertificateErrorCode =
  | "EUNKNOWNCA"
  | "ECERTNAME"
  | "ECERTEXPIRED"
  | "ECERTINVALID";

/**
 * What was being done when an error happened (Node's `syscall`, Go's
 * `OpError.Op`):
 *
 * - `resolve`: looking a name up; `connect`: dialling; `bind`: listening;
 *   `accept`: taking a connection from the kernel.
 * - `send`, `recv`: writing or reading a connection (`recvAll` included);
 *   `shutdown`: closing its sending side (`closeWrite`); `close`: closing it.
 * - `handle`: a server's handler running for one connection.
 * - `scan`: a port scan as a whole (each port's outcome is a result, not an
 *   error).
 * - `handshake`: a TLS handshake, client or server side.
 */
export type SocketOp =
  | "resolve"
  | "connect"
  | "bind"
  | "accept"
  | "send"
  | "recv"
  | "shutdown"
  | "close"
  | "handle"
  | "scan"
  | "handshake";

/**
 * The fields of a {@linkcode SocketError}, as every class's constructor
 * takes them (a class with several codes also takes `code`).
 */
export interface SocketErrorOptions {
  /**
   * What was being done; absent for a bad argument, caught before anything
   * was done.
   */
  op?: SocketOp;
  /**
   * The host involved, as the caller gave it (a name or an IP), or a Unix
   * socket's path (then there is no `port`).
   */
  host?: string;
  /** The port involved. */
  port?: number;
  /** The IP address actually tried, when it is known and one was. */
  address?: string;
  /**
   * Why, in a few words: "Connection refused", "no such name", "timed out
   * after 5000 ms". The message ends with it.
   */
  reason: string;
  /** Each address tried, when a connect tried several and all failed. */
  attempts?: readonly AttemptFailure[];
  /** The runtime's original error, or another underlying reason. */
  cause?: unknown;
}

/** One address a connect tried, and why it failed. */
export interface AttemptFailure {
  /** The IP address tried. */
  address: string;
  /** Its port. */
  port: number;
  /** Why it failed. */
  error: SocketError;
}

/** The codes of a name that does not resolve: the tutorial's gaierror. */
const GAIERROR_CODES: ReadonlySet<SocketErrorCode> = new Set([
  "ENOTFOUND",
  "ESERVFAIL",
  "ETIMEDOUT",
]);
/** How each op reads in a message: "connect to 127.0.0.1 port 80". */
const OP_PHRASES: Record<SocketOp, string> = {
  resolve: "resolve",
  connect: "connect to",
  bind: "bind to",
  accept: "accept on",
  send: "send to",
  recv: "recv from",
  shutdown: "closeWrite to",
  close: "close",
  handle: "handler for",
  scan: "scan",
  handshake: "TLS handshake with",
};
/** How many failed addresses a message names before "and N more". */
const NAMED_ATTEMPTS = 3;

/**
 * The one place a message is made from the fields:
 *
 * - no `op` (a bad argument): the reason alone;
 * - a name that did not resolve: the tutorial's gaierror line,
 *   "there was an error resolving the host: NAME (REASON)";
 * - a connect whose every address failed: "connect to HOST port PORT failed
 *   for every address: " and each address's reason;
 * - anything else: "OP HOST port PORT: REASON", naming the address tried
 *   where there was one, else the host.
 */
function formatMessage(code: SocketErrorCode, f: SocketErrorOptions): string {
  if (f.op === undefined) return f.reason;
  // A certificate is checked against the name asked for: name that.
  const target = f.op === "handshake"
    ? f.host ?? f.address
    : f.address ?? f.host;
  if (f.op === "resolve" && GAIERROR_CODES.has(code)) {
    return `there was an error resolving the host: ${target} (${f.reason})`;
  }
  const where = target === undefined
    ? OP_PHRASES[f.op]
    : `${OP_PHRASES[f.op]} ${hostPort(target, f.port)}`;
  const attempts = f.attempts ?? [];
  if (attempts.length < 2) return `${where}: ${f.reason}`;
  const each = attempts.slice(0, NAMED_ATTEMPTS)
    .map((a) => `${a.address}: ${a.error.reason}`);
  const more = attempts.length - NAMED_ATTEMPTS;
  if (more > 0) each.push(`and ${more} more`);
  return `${where} failed for every address: ${each.join("; ")}`;
}

/**
 * The base class of every error this module throws (Python's
 * `socket.error`, today's `OSError`). The module makes the base class itself
 * only for `EIO`; every other code has its subclass.
 *
 * @example Reading the fields, never the message
 * ```ts
 * import { connect, serve, SocketError } from "@socket-programming/socket";
 *
 * const server = serve({ hostname: "127.0.0.1" }, () => {});
 * const { port } = server.addr;
 * await server.shutdown(); // nothing listens there now
 * try {
 *   await connect("127.0.0.1", port, { timeout: 1000 });
 * } catch (error) {
 *   if (!(error instanceof SocketError)) throw error;
 *   console.log(error.code); // "ECONNREFUSED"
 *   console.log(error.op); // "connect"
 *   console.log(error.address, error.port === port); // "127.0.0.1" true
 *   console.log(error.reason); // "Connection refused"
 *   console.log(error.message); // "connect to 127.0.0.1 port …: Connection refused"
 * }
 * ```
 *
 * @example Making one, as a library built on this module would
 * ```ts
 * import { TimeoutError } from "@socket-programming/socket";
 *
 * const error = new TimeoutError({
 *   op: "recv",
 *   host: "127.0.0.1",
 *   port: 80,
 *   reason: "no progress in 5000 ms",
 * });
 * console.log(error.message); // "recv from 127.0.0.1 port 80: no progress in 5000 ms"
 * ```
 */
export class SocketError extends Error {
  /** The stable code, for programs to branch on. */
  readonly code: SocketErrorCode;
  /** What was being done; absent for a bad argument. */
  readonly op?: SocketOp;
  /** The host involved, as the caller gave it. */
  readonly host?: string;
  /** The port involved. */
  readonly port?: number;
  /** The IP address actually tried, where there was one. */
  readonly address?: string;
  /** Why, in a few words: the end of the message. */
  readonly reason: string;
  /** Each address tried, when a connect tried several and all failed. */
  readonly attempts?: readonly AttemptFailure[];

  /**
   * Makes an error from its fields; the message is built from them.
   *
   * @param options The code and the fields.
   */
  constructor(options: SocketErrorOptions & { code: SocketErrorCode }) {
    super(formatMessage(options.code, options), { cause: options.cause });
    this.name = new.target.name;
    this.code = options.code;
    this.op = options.op;
    this.host = options.host;
    this.port = options.port;
    this.address = options.address;
    this.reason = options.reason;
    this.attempts = options.attempts;
  }
}

/**
 * A bad argument, caught before any socket is made: a port outside 1–65535
 * (0 is allowed where binding) or not an integer, a malformed host, an
 * option out of range. It has no `op`: nothing was done yet.
 *
 * It stays a {@linkcode SocketError} with code `EINVAL` rather than a
 * `TypeError` or `RangeError` as std and Deno throw: every public function
 * throws the module's one error family with a stable `code` (C3), so that a
 * program branches on `error.code` alone, and the CLI tells a usage error
 * (exit 2) from a runtime failure (exit 1) by this class.
 *
 * @example
 * ```ts
 * import { connect, InvalidArgumentError } from "@socket-programming/socket";
 *
 * await connect("127.0.0.1", 65536).catch((error) => {
 *   console.log(error instanceof InvalidArgumentError); // true
 *   console.log(error.reason); // "invalid port 65536: expected an integer in 1–65535"
 * });
 * ```
 */
export class InvalidArgumentError extends SocketError {
  /** The stable code. */
  declare readonly code: "EINVAL";

  /**
   * Makes the error.
   *
   * @param options The reason, naming the bad value.
   */
  constructor(options: SocketErrorOptions) {
    super({ ...options, code: "EINVAL" });
  }
}

/**
 * A name that could not be resolved to an address: the tutorial's
 * `socket.gaierror`. `ENOTFOUND` when no address exists, `ESERVFAIL` when
 * the name server failed. A lookup that got no answer in time is a
 * {@linkcode TimeoutError} with `op` `"resolve"` (its message is the same
 * gaierror line).
 *
 * @example
 * ```ts
 * import { ResolveError } from "@socket-programming/socket";
 *
 * const error = new ResolveError({
 *   code: "ENOTFOUND",
 *   op: "resolve",
 *   host: "no-such-name.test",
 *   reason: "no such name",
 * });
 * console.log(error.message); // "there was an error resolving the host: no-such-name.test (no such name)"
 * ```
 */
export class ResolveError extends SocketError {
  /** The stable code. */
  declare readonly code: "ENOTFOUND" | "ESERVFAIL";

  /**
   * Makes the error.
   *
   * @param options Why the name did not resolve (`code`), the name
   *   (`host`) and the fields.
   */
  constructor(
    options: SocketErrorOptions & { code: "ENOTFOUND" | "ESERVFAIL" },
  ) {
    super(options);
  }
}

/**
 * No one listens at the address: the peer answered the connection attempt
 * with a reset (Python's `ConnectionRefusedError`).
 *
 * @example
 * ```ts
 * import { ConnectionRefusedError } from "@socket-programming/socket";
 *
 * const error = new ConnectionRefusedError({
 *   op: "connect",
 *   host: "127.0.0.1",
 *   port: 1,
 *   reason: "Connection refused",
 * });
 * console.log(error.message); // "connect to 127.0.0.1 port 1: Connection refused"
 * ```
 */
export class ConnectionRefusedError extends SocketError {
  /** The stable code. */
  declare readonly code: "ECONNREFUSED";

  /**
   * Makes the error.
   *
   * @param options The fields.
   */
  constructor(options: SocketErrorOptions) {
    super({ ...options, code: "ECONNREFUSED" });
  }
}

/**
 * A Unix socket's path names no file (`ENOENT`): no server has made it, or
 * the one that did has removed it on its way out. A file that exists but
 * that nobody listens on is a {@linkcode ConnectionRefusedError} instead.
 *
 * @example
 * ```ts
 * import { connect, NotFoundError } from "@socket-programming/socket";
 *
 * const dir = await Deno.makeTempDir();
 * await connect({ path: `${dir}/none.sock` }).catch((error) => {
 *   console.log(error instanceof NotFoundError); // true
 *   console.log(error.message); // "connect to …/none.sock: No such file or directory"
 * });
 * await Deno.remove(dir);
 * ```
 */
export class NotFoundError extends SocketError {
  /** The stable code. */
  declare readonly code: "ENOENT";

  /**
   * Makes the error.
   *
   * @param options The fields; `host` is the path.
   */
  constructor(options: SocketErrorOptions) {
    super({ ...options, code: "ENOENT" });
  }
}

/**
 * An operation did not finish in the time allowed: a name lookup, a
 * connect, a read or a write that made no progress, a handler past its
 * deadline. Every `ETIMEDOUT` is this class, whatever the `op`.
 *
 * @example
 * ```ts
 * import { TimeoutError } from "@socket-programming/socket";
 *
 * const error = new TimeoutError({
 *   op: "recv",
 *   host: "127.0.0.1",
 *   port: 80,
 *   reason: "no progress in 5000 ms",
 * });
 * console.log(error.code); // "ETIMEDOUT"
 * ```
 */
export class TimeoutError extends SocketError {
  /** The stable code. */
  declare readonly code: "ETIMEDOUT";

  /**
   * Makes the error.
   *
   * @param options The fields; the reason says after how long.
   */
  constructor(options: SocketErrorOptions) {
    super({ ...options, code: "ETIMEDOUT" });
  }
}

/**
 * The address could not be bound: `EADDRINUSE` (someone has the port) or
 * `EADDRNOTAVAIL` (no interface has that address).
 *
 * @example
 * ```ts
 * import { AddressInUseError, serve } from "@socket-programming/socket";
 *
 * await using first = serve({ hostname: "127.0.0.1" }, () => {});
 * try {
 *   serve({ hostname: "127.0.0.1", port: first.addr.port }, () => {});
 * } catch (error) {
 *   console.log(error instanceof AddressInUseError); // true
 * }
 * ```
 */
export class AddressInUseError extends SocketError {
  /** The stable code. */
  declare readonly code: "EADDRINUSE" | "EADDRNOTAVAIL";

  /**
   * Makes the error.
   *
   * @param options Which binding failure (`code`) and the fields.
   */
  constructor(
    options: SocketErrorOptions & { code: "EADDRINUSE" | "EADDRNOTAVAIL" },
  ) {
    super(options);
  }
}

/**
 * Permission denied: a port below 1024 without the privilege, or a Deno
 * permission (`--allow-net`, `--allow-read`) the program was not given.
 *
 * @example
 * ```ts
 * import { PermissionDeniedError } from "@socket-programming/socket";
 *
 * const error = new PermissionDeniedError({
 *   op: "bind",
 *   host: "0.0.0.0",
 *   port: 80,
 *   reason: "Permission denied",
 * });
 * console.log(error.message); // "bind to 0.0.0.0 port 80: Permission denied"
 * ```
 */
export class PermissionDeniedError extends SocketError {
  /** The stable code. */
  declare readonly code: "EACCES";

  /**
   * Makes the error.
   *
   * @param options The fields.
   */
  constructor(options: SocketErrorOptions) {
    super({ ...options, code: "EACCES" });
  }
}

/**
 * The network or host cannot be reached from here.
 *
 * @example
 * ```ts
 * import { UnreachableError } from "@socket-programming/socket";
 *
 * const error = new UnreachableError({
 *   code: "ENETUNREACH",
 *   op: "connect",
 *   host: "2001:db8::1",
 *   port: 80,
 *   reason: "Network is unreachable",
 * });
 * console.log(error.message); // "connect to 2001:db8::1 port 80: Network is unreachable"
 * ```
 */
export class UnreachableError extends SocketError {
  /** The stable code. */
  declare readonly code: "EHOSTUNREACH" | "ENETUNREACH";

  /**
   * Makes the error.
   *
   * @param options Host or network (`code`) and the fields.
   */
  constructor(
    options: SocketErrorOptions & { code: "EHOSTUNREACH" | "ENETUNREACH" },
  ) {
    super(options);
  }
}

/**
 * The peer reset the connection (`ECONNRESET`) or is gone while we were
 * writing (`EPIPE`).
 *
 * @example
 * ```ts
 * import { ConnectionResetError } from "@socket-programming/socket";
 *
 * const error = new ConnectionResetError({
 *   code: "EPIPE",
 *   op: "send",
 *   host: "127.0.0.1",
 *   port: 5000,
 *   reason: "Broken pipe",
 * });
 * console.log(error.message); // "send to 127.0.0.1 port 5000: Broken pipe"
 * ```
 */
export class ConnectionResetError extends SocketError {
  /** The stable code. */
  declare readonly code: "ECONNRESET" | "EPIPE";

  /**
   * Makes the error.
   *
   * @param options Reset or broken pipe (`code`) and the fields.
   */
  constructor(
    options: SocketErrorOptions & { code: "ECONNRESET" | "EPIPE" },
  ) {
    super(options);
  }
}

/**
 * The connection was used after it was closed (Python's "Bad file
 * descriptor").
 *
 * @example
 * ```ts
 * import { SocketClosedError } from "@socket-programming/socket";
 *
 * const error = new SocketClosedError({
 *   op: "recv",
 *   host: "127.0.0.1",
 *   port: 80,
 *   reason: "the connection is closed",
 * });
 * console.log(error.code); // "EBADF"
 * ```
 */
export class SocketClosedError extends SocketError {
  /** The stable code. */
  declare readonly code: "EBADF";

  /**
   * Makes the error.
   *
   * @param options The fields.
   */
  constructor(options: SocketErrorOptions) {
    super({ ...options, code: "EBADF" });
  }
}

/**
 * More data arrived than the caller allowed (`recvAll()`'s `maxBytes`).
 *
 * @example
 * ```ts
 * import { MessageTooLargeError } from "@socket-programming/socket";
 *
 * const error = new MessageTooLargeError({
 *   op: "recv",
 *   host: "127.0.0.1",
 *   port: 80,
 *   reason: "more than 1024 bytes",
 * });
 * console.log(error.code); // "EMSGSIZE"
 * ```
 */
export class MessageTooLargeError extends SocketError {
  /** The stable code. */
  declare readonly code: "EMSGSIZE";

  /**
   * Makes the error.
   *
   * @param options The fields; the reason names the limit passed.
   */
  constructor(options: SocketErrorOptions) {
    super({ ...options, code: "EMSGSIZE" });
  }
}

/**
 * An `AbortSignal` stopped the operation; `cause` is the signal's reason.
 *
 * @example
 * ```ts
 * import { CancelledError, connect } from "@socket-programming/socket";
 *
 * await connect("127.0.0.1", 80, { signal: AbortSignal.abort() })
 *   .catch((error) => console.log(error instanceof CancelledError)); // true
 * ```
 */
export class CancelledError extends SocketError {
  /** The stable code. */
  declare readonly code: "ECANCELED";

  /**
   * Makes the error.
   *
   * @param options The fields, and the signal's reason as `cause`.
   */
  constructor(options: SocketErrorOptions) {
    super({ ...options, code: "ECANCELED" });
  }
}

/**
 * A TLS handshake failed (`ETLS`): the peer does not speak TLS, has no
 * protocol version or cipher in common, or sent a fatal alert. The base
 * class of {@linkcode CertificateError}, so that `instanceof TlsError`
 * catches every TLS failure but a timeout.
 *
 * @example
 * ```ts
 * import { TlsError } from "@socket-programming/socket";
 *
 * const error = new TlsError({
 *   op: "handshake",
 *   host: "localhost",
 *   port: 443,
 *   reason: "the peer does not speak TLS",
 * });
 * console.log(error.message); // "TLS handshake with localhost port 443: the peer does not speak TLS"
 * ```
 */
export class TlsError extends SocketError {
  /** The stable code. */
  declare readonly code: "ETLS" | CertificateErrorCode;

  /**
   * Makes the error.
   *
   * @param options The fields.
   */
  constructor(options: SocketErrorOptions) {
    super({ ...options, code: "ETLS" });
  }
}

/**
 * The peer's certificate was refused, or the peer refused ours: unknown
 * authority (`EUNKNOWNCA`), not valid for the name (`ECERTNAME`), expired
 * (`ECERTEXPIRED`), or another defect (`ECERTINVALID`). Nothing the peer
 * sent is delivered before its certificate is verified.
 *
 * @example
 * ```ts
 * import { CertificateError } from "@socket-programming/socket";
 *
 * const error = new CertificateError({
 *   code: "ECERTNAME",
 *   op: "handshake",
 *   host: "localhost",
 *   port: 443,
 *   reason: 'certificate not valid for name "localhost"',
 * });
 * console.log(error.message); // 'TLS handshake with localhost port 443: certificate not valid for name "localhost"'
 * ```
 */
export class CertificateError extends TlsError {
  /** The stable code. */
  declare readonly code: CertificateErrorCode;

  /**
   * Makes the error.
   *
   * @param options Which defect (`code`) and the fields.
   */
  constructor(options: SocketErrorOptions & { code: CertificateErrorCode }) {
    super(options);
    // TlsError's constructor sets ETLS: this class owns the certificate codes.
    (this as { code: SocketErrorCode }).code = options.code;
  }
}
