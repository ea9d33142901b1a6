/**
 * Turning what others throw (the runtime's errors, an abort signal's
 * reason) into the module's errors: the one class for each code, and the
 * reason in words for each runtime error. Internal: `mod.ts` does not
 * re-export this file.
 *
 * @module
 */

import {
  AddressInUseError,
  CancelledError,
  CertificateError,
  ConnectionRefusedError,
  ConnectionResetError,
  InvalidArgumentError,
  MessageTooLargeError,
  NotFoundError,
  PermissionDeniedError,
  ResolveError,
  SocketClosedError,
  SocketError,
  type SocketErrorCode,
  type SocketErrorOptions,
  type SocketOp,
  TimeoutError,
  TlsError,
  UnreachableError,
} from "./errors.ts";

/** The fields of an error but its reason and cause, which the mapping sets. */
export type ErrorContext = Omit<SocketErrorOptions, "reason" | "cause">;

/**
 * The error of the one class that owns `code`, so that class and code
 * always agree.
 *
 * @param code The code.
 * @param fields The fields.
 * @returns The error.
 */
export function errorFor(
  code: SocketErrorCode,
  fields: SocketErrorOptions,
): SocketError {
  switch (code) {
    case "EINVAL":
      return new InvalidArgumentError(fields);
    case "ENOTFOUND":
    case "ESERVFAIL":
      return new ResolveError({ ...fields, code });
    case "ECONNREFUSED":
      return new ConnectionRefusedError(fields);
    case "ENOENT":
      return new NotFoundError(fields);
    case "ETIMEDOUT":
      return new TimeoutError(fields);
    case "EHOSTUNREACH":
    case "ENETUNREACH":
      return new UnreachableError({ ...fields, code });
    case "EADDRINUSE":
    case "EADDRNOTAVAIL":
      return new AddressInUseError({ ...fields, code });
    case "EACCES":
      return new PermissionDeniedError(fields);
    case "ECONNRESET":
    case "EPIPE":
      return new ConnectionResetError({ ...fields, code });
    case "EBADF":
      return new SocketClosedError(fields);
    case "EMSGSIZE":
      return new MessageTooLargeError(fields);
    case "ECANCELED":
      return new CancelledError(fields);
    case "EUNKNOWNCA":
    case "ECERTNAME":
    case "ECERTEXPIRED":
    case "ECERTINVALID":
      return new CertificateError({ ...fields, code });
    case "ETLS":
      return new TlsError(fields);
    case "EIO":
      return new SocketError({ ...fields, code });
  }
}

/** Deno's error classes, each with the module's code and reason. */
const RUNTIME_ERRORS: [
  new (...args: never[]) => Error,
  SocketErrorCode,
  string,
][] = [
  [Deno.errors.ConnectionRefused, "ECONNREFUSED", "Connection refused"],
  [Deno.errors.AddrInUse, "EADDRINUSE", "Address already in use"],
  [
    Deno.errors.AddrNotAvailable,
    "EADDRNOTAVAIL",
    "Cannot assign requested address",
  ],
  [Deno.errors.PermissionDenied, "EACCES", "Permission denied"],
  [Deno.errors.TimedOut, "ETIMEDOUT", "Connection timed out"],
  [Deno.errors.ConnectionReset, "ECONNRESET", "Connection reset by peer"],
  [Deno.errors.BrokenPipe, "EPIPE", "Broken pipe"],
  [Deno.errors.ConnectionAborted, "EPIPE", "Broken pipe"],
  [Deno.errors.NotConnected, "EPIPE", "Broken pipe"],
  [Deno.errors.BadResource, "EBADF", "the connection is closed"],
  [Deno.errors.Interrupted, "EBADF", "the connection is closed"],
  [Deno.errors.NetworkUnreachable, "ENETUNREACH", "Network is unreachable"],
  [Deno.errors.NotFound, "ENOENT", "No such file or directory"],
];

/**
 * Turns an error thrown by Deno's network API into the module's error, so
 * that no raw runtime error escapes. A {@linkcode SocketError} passes through.
 *
 * @param error What the runtime threw.
 * @param context What was being done, and where.
 * @returns The matching module error, with the original as `cause`.
 */
export function fromRuntimeError(
  error: unknown,
  context: ErrorContext,
): SocketError {
  if (error instanceof SocketError) return error;
  const [code, reason] = classify(error, context);
  return errorFor(code, { ...context, reason, cause: error });
}

/** The code and reason of a runtime error. */
function classify(
  error: unknown,
  { op, host, address, port }: ErrorContext,
): [SocketErrorCode, string] {
  if (error instanceof Deno.errors.NotCapable) {
    return ["EACCES", netPermissionHint(address ?? host ?? "", port ?? 0)];
  }
  if (
    error instanceof Deno.errors.PermissionDenied && op === "bind" &&
    port !== undefined && port > 0 && port < 1024
  ) {
    return ["EACCES", PRIVILEGED_PORT];
  }
  for (const [type, code, reason] of RUNTIME_ERRORS) {
    if (error instanceof type) return [code, reason];
  }
  const text = error instanceof Error ? error.message : String(error);
  if (op === "handshake") return classifyTls(text);
  if (/no route to host|host is unreachable/i.test(text)) {
    return ["EHOSTUNREACH", "No route to host"];
  }
  return ["EIO", text];
}

/**
 * The code and reason of a failed TLS handshake. rustls reports it only as
 * text ("invalid peer certificate: UnknownIssuer", "received fatal alert:
 * UnknownCA"): this is the one place the module reads a runtime's message.
 */
function classifyTls(text: string): [SocketErrorCode, string] {
  const peer = /invalid peer certificate: (.*)$/s.exec(text)?.[1];
  if (peer !== undefined) return classifyCertificate(peer);
  const alert = /received fatal alert: (\w+)/.exec(text)?.[1];
  if (alert !== undefined) {
    return [
      ALERT_CODES[alert] ?? "ETLS",
      `the peer refused the handshake (alert ${alert})`,
    ];
  }
  if (
    /corrupt message|InvalidContentType|invalid (message|record)/i.test(text)
  ) {
    return ["ETLS", `the peer does not speak TLS (${text})`];
  }
  if (/eof|unexpected end/i.test(text)) {
    return ["ETLS", "the peer closed the connection during the handshake"];
  }
  return ["ETLS", text];
}

/** A peer's fatal alert about our certificate, as the code it means. */
const ALERT_CODES: Record<string, SocketErrorCode> = {
  UnknownCA: "EUNKNOWNCA",
  CertificateExpired: "ECERTEXPIRED",
  BadCertificate: "ECERTINVALID",
  CertificateUnknown: "ECERTINVALID",
};

/** What rustls found wrong with the peer's certificate. */
function classifyCertificate(what: string): [SocketErrorCode, string] {
  if (/UnknownIssuer/.test(what)) {
    return ["EUNKNOWNCA", "certificate signed by an unknown authority"];
  }
  if (/NotValidForName|not valid for name/.test(what)) {
    return ["ECERTNAME", what.replace(/^NotValidForName:?\s*/, "")];
  }
  if (/Expired|expired/.test(what)) {
    const after = /not valid after (\d+)/.exec(what)?.[1];
    const date = after === undefined
      ? ""
      : ` on ${new Date(Number(after) * 1000).toISOString()}`;
    return ["ECERTEXPIRED", `certificate expired${date}`];
  }
  return ["ECERTINVALID", `invalid certificate (${what})`];
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
 * {@linkcode fromRuntimeError} for a Unix socket, whose missing permission
 * is three flags, not the network one alone.
 *
 * @param error What the runtime threw.
 * @param context What was being done; `host` is the path.
 * @returns The module's error.
 */
export function fromUnixError(
  error: unknown,
  context: ErrorContext & { host: string },
): SocketError {
  if (!(error instanceof Deno.errors.NotCapable)) {
    return fromRuntimeError(error, context);
  }
  return new PermissionDeniedError({
    ...context,
    reason: unixPermissionHint(context.host),
    cause: error,
  });
}

/**
 * The reason for a missing permission on a Unix socket: Deno 2 checks
 * read, write and net (`unix:PATH`) for both connect and listen.
 *
 * @param path The socket's path.
 * @returns The flags that grant it.
 */
export function unixPermissionHint(path: string): string {
  return "Deno needs read, write and net permissions for a Unix socket " +
    `(run with --allow-read=${path} --allow-write=${path} ` +
    `--allow-net=unix:${path}, or -R -W -N)`;
}

/**
 * The error for an aborted signal: a {@linkcode SocketError} reason passes
 * through (a timeout made by this module), anything else becomes
 * {@linkcode CancelledError}.
 *
 * @param signal The aborted signal.
 * @param context What was cancelled, and where.
 * @returns The error to throw.
 */
export function abortError(
  signal: AbortSignal,
  context: ErrorContext & { op: SocketOp },
): SocketError {
  if (signal.reason instanceof SocketError) return signal.reason;
  return new CancelledError({
    ...context,
    reason: "cancelled",
    cause: signal.reason,
  });
}
