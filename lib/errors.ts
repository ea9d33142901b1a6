/**
 * The module's one error family: every failure is a {@linkcode SocketError}
 * with a stable `code`, the runtime's original error as `cause`, and, where
 * one is involved, the host and port in both the message and the fields.
 *
 * @module
 */

/**
 * The stable codes of {@linkcode SocketError}, named as POSIX, Python and
 * Node name them.
 *
 * - `EINVAL`: a bad argument (port, host, option), caught before any socket
 *   is made.
 * - `ENOTFOUND`, `ESERVFAIL`: a name that cannot be resolved (Python's
 *   `socket.gaierror`).
 * - `ECONNREFUSED`, `ETIMEDOUT`, `EHOSTUNREACH`, `ENETUNREACH`: connecting or
 *   waiting failed.
 * - `EADDRINUSE`, `EADDRNOTAVAIL`, `EACCES`: binding failed, or the runtime
 *   lacks the permission.
 * - `ECONNRESET`, `EPIPE`: the peer went away mid-transfer.
 * - `EBADF`: the connection was already closed (as Python's "Bad file
 *   descriptor").
 * - `EMSGSIZE`: more data arrived than the caller allowed.
 * - `ECANCELED`: an `AbortSignal` fired.
 * - `EIO`: any other failure of the runtime.
 */
export type SocketErrorCode =
  | "EINVAL"
  | "ENOTFOUND"
  | "ESERVFAIL"
  | "ECONNREFUSED"
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
  | "EIO";

/** What a {@linkcode SocketError} may carry besides its message. */
export interface SocketErrorOptions {
  /** The runtime's original error, or another underlying reason. */
  cause?: unknown;
  /** The host involved, as the caller gave it. */
  host?: string;
  /** The port involved. */
  port?: number;
  /** Each address tried, when a connect tried several. */
  attempts?: readonly AttemptFailure[];
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

/**
 * The base class of every error this module throws (Python's
 * `socket.error`, today's `OSError`).
 *
 * @example Telling failures apart by code
 * ```ts
 * import { connect, SocketError } from "@socket-programming/socket";
 *
 * try {
 *   await connect("127.0.0.1", 1, { timeout: 1000 });
 * } catch (error) {
 *   if (!(error instanceof SocketError)) throw error;
 *   console.log(error.code); // "ECONNREFUSED" where nothing listens
 * }
 * ```
 */
export class SocketError extends Error {
  /** The stable code, for programs to branch on. */
  readonly code: SocketErrorCode;
  /** The host involved, if any. */
  readonly host?: string;
  /** The port involved, if any. */
  readonly port?: number;
  /** Each address tried, when a connect tried several and all failed. */
  readonly attempts?: readonly AttemptFailure[];

  /**
   * Makes an error with a code; subclasses fix the code.
   *
   * @param code The stable code.
   * @param message What went wrong, naming host and port where there are.
   * @param options The cause, host and port.
   */
  constructor(
    code: SocketErrorCode,
    message: string,
    options: SocketErrorOptions = {},
  ) {
    super(message, { cause: options.cause });
    this.name = new.target.name;
    this.code = code;
    this.host = options.host;
    this.port = options.port;
    this.attempts = options.attempts;
  }
}

/**
 * A bad argument, caught before any socket is made: a port outside 1–65535
 * (0 is allowed where binding) or not an integer, a malformed host, an option out of range.
 *
 * @example
 * ```ts
 * import { connect, InvalidArgumentError } from "@socket-programming/socket";
 *
 * await connect("127.0.0.1", 65536).catch((error) => {
 *   console.log(error instanceof InvalidArgumentError); // true
 * });
 * ```
 */
export class InvalidArgumentError extends SocketError {
  /** The stable code. */
  declare readonly code: "EINVAL";

  /**
   * Makes the error.
   *
   * @param message What is wrong, naming the bad value.
   * @param options Host, port and cause.
   */
  constructor(message: string, options: SocketErrorOptions = {}) {
    super("EINVAL", message, options);
  }
}

/**
 * A name that could not be resolved to an address: the tutorial's
 * `socket.gaierror`. `ENOTFOUND` when no address exists, `ESERVFAIL` when
 * the name server failed, `ETIMEDOUT` when it did not answer in time.
 *
 * @example
 * ```ts
 * import { ResolveError } from "@socket-programming/socket";
 *
 * const error = new ResolveError("ENOTFOUND", "no-such-name.test", "no such name");
 * console.log(error.message); // "there was an error resolving the host: no-such-name.test (no such name)"
 * ```
 */
export class ResolveError extends SocketError {
  /** The stable code. */
  declare readonly code: "ENOTFOUND" | "ESERVFAIL" | "ETIMEDOUT";
  /** The name that did not resolve. */
  declare readonly host: string;

  /**
   * Makes the error.
   *
   * @param code Why the name did not resolve.
   * @param host The name.
   * @param reason A few words on the reason, put in the message.
   * @param cause The runtime's error.
   */
  constructor(
    code: "ENOTFOUND" | "ESERVFAIL" | "ETIMEDOUT",
    host: string,
    reason: string,
    cause?: unknown,
  ) {
    super(code, `there was an error resolving the host: ${host} (${reason})`, {
      host,
      cause,
    });
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
 * const error = new ConnectionRefusedError("connect to 127.0.0.1 port 1: Connection refused");
 * console.log(error.code); // "ECONNREFUSED"
 * ```
 */
export class ConnectionRefusedError extends SocketError {
  /** The stable code. */
  declare readonly code: "ECONNREFUSED";

  /**
   * Makes the error.
   *
   * @param message What was refused, naming host and port.
   * @param options Host, port, cause and attempts.
   */
  constructor(message: string, options: SocketErrorOptions = {}) {
    super("ECONNREFUSED", message, options);
  }
}

/**
 * An operation did not finish in the time allowed: a connect, a read or a
 * write that made no progress, a handler past its deadline.
 *
 * @example
 * ```ts
 * import { TimeoutError } from "@socket-programming/socket";
 *
 * const error = new TimeoutError("read from 127.0.0.1 port 80: timed out after 5000 ms");
 * console.log(error.code); // "ETIMEDOUT"
 * ```
 */
export class TimeoutError extends SocketError {
  /** The stable code. */
  declare readonly code: "ETIMEDOUT";

  /**
   * Makes the error.
   *
   * @param message What timed out, after how long.
   * @param options Host, port and cause.
   */
  constructor(message: string, options: SocketErrorOptions = {}) {
    super("ETIMEDOUT", message, options);
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
   * @param code Which binding failure.
   * @param message What failed, naming host and port.
   * @param options Host, port and cause.
   */
  constructor(
    code: "EADDRINUSE" | "EADDRNOTAVAIL",
    message: string,
    options: SocketErrorOptions = {},
  ) {
    super(code, message, options);
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
 * const error = new PermissionDeniedError("bind to 0.0.0.0 port 80: Permission denied");
 * console.log(error.code); // "EACCES"
 * ```
 */
export class PermissionDeniedError extends SocketError {
  /** The stable code. */
  declare readonly code: "EACCES";

  /**
   * Makes the error.
   *
   * @param message What was denied.
   * @param options Host, port and cause.
   */
  constructor(message: string, options: SocketErrorOptions = {}) {
    super("EACCES", message, options);
  }
}

/**
 * The network or host cannot be reached from here.
 *
 * @example
 * ```ts
 * import { UnreachableError } from "@socket-programming/socket";
 *
 * const error = new UnreachableError("ENETUNREACH", "connect to 2001:db8::1 port 80: Network is unreachable");
 * console.log(error.code); // "ENETUNREACH"
 * ```
 */
export class UnreachableError extends SocketError {
  /** The stable code. */
  declare readonly code: "EHOSTUNREACH" | "ENETUNREACH";

  /**
   * Makes the error.
   *
   * @param code Host or network.
   * @param message What failed, naming host and port.
   * @param options Host, port, cause and attempts.
   */
  constructor(
    code: "EHOSTUNREACH" | "ENETUNREACH",
    message: string,
    options: SocketErrorOptions = {},
  ) {
    super(code, message, options);
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
 * const error = new ConnectionResetError("EPIPE", "write to 127.0.0.1 port 5000: Broken pipe");
 * console.log(error.code); // "EPIPE"
 * ```
 */
export class ConnectionResetError extends SocketError {
  /** The stable code. */
  declare readonly code: "ECONNRESET" | "EPIPE";

  /**
   * Makes the error.
   *
   * @param code Reset or broken pipe.
   * @param message What failed, naming the peer.
   * @param options Host, port and cause.
   */
  constructor(
    code: "ECONNRESET" | "EPIPE",
    message: string,
    options: SocketErrorOptions = {},
  ) {
    super(code, message, options);
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
 * const error = new SocketClosedError("recv from 127.0.0.1 port 80: the connection is closed");
 * console.log(error.code); // "EBADF"
 * ```
 */
export class SocketClosedError extends SocketError {
  /** The stable code. */
  declare readonly code: "EBADF";

  /**
   * Makes the error.
   *
   * @param message What was attempted.
   * @param options Host, port and cause.
   */
  constructor(message: string, options: SocketErrorOptions = {}) {
    super("EBADF", message, options);
  }
}

/**
 * More data arrived than the caller allowed (`recvAll()`'s `maxBytes`).
 *
 * @example
 * ```ts
 * import { MessageTooLargeError } from "@socket-programming/socket";
 *
 * const error = new MessageTooLargeError("recvAll from 127.0.0.1 port 80: more than 1024 bytes");
 * console.log(error.code); // "EMSGSIZE"
 * ```
 */
export class MessageTooLargeError extends SocketError {
  /** The stable code. */
  declare readonly code: "EMSGSIZE";

  /**
   * Makes the error.
   *
   * @param message What limit was passed.
   * @param options Host, port and cause.
   */
  constructor(message: string, options: SocketErrorOptions = {}) {
    super("EMSGSIZE", message, options);
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
   * @param message What was cancelled.
   * @param options Host, port, and the signal's reason as cause.
   */
  constructor(message: string, options: SocketErrorOptions = {}) {
    super("ECANCELED", message, options);
  }
}

/** Where a runtime error happened, for {@linkcode fromRuntimeError}. */
export interface ErrorContext {
  /** What was being done: "connect to", "bind to", "recv from", "send to". */
  action: string;
  /** The address (IP or name) involved. */
  host: string;
  /** The port involved. */
  port: number;
  /** Replaces the message made from action, host, port and reason. */
  message?: string;
  /** Each address tried, when a connect tried several. */
  attempts?: readonly AttemptFailure[];
}

/**
 * Turns an error thrown by Deno's network API into the module's error, so
 * that no raw runtime error escapes. A {@linkcode SocketError} passes through.
 *
 * @param error What the runtime threw.
 * @param context The action, host and port, for the message.
 * @returns The matching module error, with the original as `cause`.
 */
export function fromRuntimeError(
  error: unknown,
  context: ErrorContext,
): SocketError {
  if (error instanceof SocketError) return error;
  const { host, port, attempts } = context;
  const options = { host, port, attempts, cause: error };
  const say = (reason: string) =>
    context.message ?? `${context.action} ${host} port ${port}: ${reason}`;
  const errors = Deno.errors;
  if (error instanceof errors.ConnectionRefused) {
    return new ConnectionRefusedError(say("Connection refused"), options);
  }
  if (error instanceof errors.AddrInUse) {
    return new AddressInUseError(
      "EADDRINUSE",
      say("Address already in use"),
      options,
    );
  }
  if (error instanceof errors.AddrNotAvailable) {
    return new AddressInUseError(
      "EADDRNOTAVAIL",
      say("Cannot assign requested address"),
      options,
    );
  }
  if (error instanceof errors.NotCapable) {
    return new PermissionDeniedError(
      say(netPermissionHint(host, port)),
      options,
    );
  }
  if (error instanceof errors.PermissionDenied) {
    return new PermissionDeniedError(
      say(
        context.action === "bind to" && port > 0 && port < 1024
          ? PRIVILEGED_PORT
          : "Permission denied",
      ),
      options,
    );
  }
  if (error instanceof errors.TimedOut) {
    return new TimeoutError(say("Connection timed out"), options);
  }
  if (error instanceof errors.ConnectionReset) {
    return new ConnectionResetError(
      "ECONNRESET",
      say("Connection reset by peer"),
      options,
    );
  }
  if (
    error instanceof errors.BrokenPipe ||
    error instanceof errors.ConnectionAborted ||
    error instanceof errors.NotConnected
  ) {
    return new ConnectionResetError("EPIPE", say("Broken pipe"), options);
  }
  if (
    error instanceof errors.BadResource || error instanceof errors.Interrupted
  ) {
    return new SocketClosedError(say("the connection is closed"), options);
  }
  if (error instanceof errors.NetworkUnreachable) {
    return new UnreachableError(
      "ENETUNREACH",
      say("Network is unreachable"),
      options,
    );
  }
  const text = error instanceof Error ? error.message : String(error);
  if (/no route to host|host is unreachable/i.test(text)) {
    return new UnreachableError(
      "EHOSTUNREACH",
      say("No route to host"),
      options,
    );
  }
  return new SocketError("EIO", say(text), options);
}

/** Why binding a port below 1024 fails, and the three ways around it. */
const PRIVILEGED_PORT = "Permission denied (a port below 1024 needs root, " +
  "the CAP_NET_BIND_SERVICE capability, or a lower " +
  "net.ipv4.ip_unprivileged_port_start)";

/**
 * The reason for a missing network permission, naming the exact flag that
 * grants it: Deno checks the address it is asked to use, so
 * `--allow-net=localhost` does not cover `127.0.0.1` or `::1`.
 *
 * @param host The host or IP address Deno was asked to use.
 * @param port Its port; 0 (any port) names the host alone.
 * @returns "Deno needs the network permission (run with -N or
 *   --allow-net=HOST:PORT)".
 */
export function netPermissionHint(host: string, port: number): string {
  const name = host.includes(":") && !host.startsWith("[") ? `[${host}]` : host;
  const flag = port > 0 ? `${name}:${port}` : name;
  return `Deno needs the network permission (run with -N or --allow-net=${flag})`;
}

/**
 * The reason part of an error's message, without what was being done and
 * where: "Connection refused" from "connect to ::1 port 80: Connection
 * refused". For traces that name the address themselves.
 *
 * @param error One of the module's errors.
 * @returns The text after the last ": ".
 */
export function reasonOf(error: SocketError): string {
  return error.message.replace(/^.*: /, "");
}

/**
 * The error for an aborted signal: a {@linkcode SocketError} reason passes
 * through (a timeout made by this module), anything else becomes
 * {@linkcode CancelledError}.
 *
 * @param signal The aborted signal.
 * @param what What was cancelled, for the message.
 * @param options Host and port.
 * @returns The error to throw.
 */
export function abortError(
  signal: AbortSignal,
  what: string,
  options: SocketErrorOptions = {},
): SocketError {
  if (signal.reason instanceof SocketError) return signal.reason;
  return new CancelledError(`${what}: cancelled`, {
    ...options,
    cause: signal.reason,
  });
}
