/**
 * Unit tests of lib/errors.ts: the error classes, fromRuntimeError's
 * mapping of every runtime error, and abortError.
 */

import assert from "node:assert/strict";
import { missing, ROOT, run } from "./fixtures/process.ts";
import {
  abortError,
  AddressInUseError,
  CancelledError,
  ConnectionRefusedError,
  ConnectionResetError,
  type ErrorContext,
  fromRuntimeError,
  InvalidArgumentError,
  MessageTooLargeError,
  netPermissionHint,
  PermissionDeniedError,
  ResolveError,
  SocketClosedError,
  SocketError,
  TimeoutError,
  UnreachableError,
} from "../lib/errors.ts";

const CONTEXT: ErrorContext = {
  action: "connect to",
  host: "127.0.0.1",
  port: 5000,
};

Deno.test("SocketError: carries code, message, cause, host, port and attempts", () => {
  const cause = new Error("raw");
  const attempt = new ConnectionRefusedError("refused");
  const attempts = [{ address: "::1", port: 80, error: attempt }];
  const error = new SocketError("EIO", "it broke", {
    cause,
    host: "example.test",
    port: 80,
    attempts,
  });
  assert.ok(error instanceof Error);
  assert.equal(error.name, "SocketError");
  assert.equal(error.code, "EIO");
  assert.equal(error.message, "it broke");
  assert.equal(error.cause, cause);
  assert.equal(error.host, "example.test");
  assert.equal(error.port, 80);
  assert.equal(error.attempts, attempts);
});

Deno.test("SocketError: options default to none", () => {
  const error = new SocketError("EIO", "plain");
  assert.equal(error.cause, undefined);
  assert.equal(error.host, undefined);
  assert.equal(error.port, undefined);
  assert.equal(error.attempts, undefined);
});

Deno.test("SocketError subclasses: fixed codes, own names, instanceof the base", () => {
  const cases: [SocketError, string, string][] = [
    [new InvalidArgumentError("m"), "InvalidArgumentError", "EINVAL"],
    [new ConnectionRefusedError("m"), "ConnectionRefusedError", "ECONNREFUSED"],
    [new TimeoutError("m"), "TimeoutError", "ETIMEDOUT"],
    [
      new AddressInUseError("EADDRNOTAVAIL", "m"),
      "AddressInUseError",
      "EADDRNOTAVAIL",
    ],
    [new PermissionDeniedError("m"), "PermissionDeniedError", "EACCES"],
    [
      new UnreachableError("EHOSTUNREACH", "m"),
      "UnreachableError",
      "EHOSTUNREACH",
    ],
    [new ConnectionResetError("EPIPE", "m"), "ConnectionResetError", "EPIPE"],
    [new SocketClosedError("m"), "SocketClosedError", "EBADF"],
    [new MessageTooLargeError("m"), "MessageTooLargeError", "EMSGSIZE"],
    [new CancelledError("m"), "CancelledError", "ECANCELED"],
  ];
  for (const [error, name, code] of cases) {
    assert.ok(error instanceof SocketError, name);
    assert.equal(error.name, name);
    assert.equal(error.code, code);
    assert.equal(error.message, "m");
  }
});

Deno.test("ResolveError: names the host and the reason, keeps the cause", () => {
  const cause = new Deno.errors.NotFound("no record");
  const error = new ResolveError(
    "ENOTFOUND",
    "nowhere.test",
    "no such name",
    cause,
  );
  assert.equal(error.code, "ENOTFOUND");
  assert.equal(error.host, "nowhere.test");
  assert.equal(error.port, undefined);
  assert.equal(error.cause, cause);
  assert.equal(
    error.message,
    "there was an error resolving the host: nowhere.test (no such name)",
  );
});

Deno.test("fromRuntimeError(): maps each Deno error to its class, code and reason", () => {
  const cases: [
    Error,
    new (...args: never[]) => SocketError,
    string,
    string,
  ][] = [
    [
      new Deno.errors.ConnectionRefused("x"),
      ConnectionRefusedError,
      "ECONNREFUSED",
      "Connection refused",
    ],
    [
      new Deno.errors.AddrInUse("x"),
      AddressInUseError,
      "EADDRINUSE",
      "Address already in use",
    ],
    [
      new Deno.errors.AddrNotAvailable("x"),
      AddressInUseError,
      "EADDRNOTAVAIL",
      "Cannot assign requested address",
    ],
    [
      new Deno.errors.NotCapable("x"),
      PermissionDeniedError,
      "EACCES",
      "Deno needs the network permission (run with -N or --allow-net=127.0.0.1:5000)",
    ],
    [
      new Deno.errors.PermissionDenied("x"),
      PermissionDeniedError,
      "EACCES",
      "Permission denied",
    ],
    [
      new Deno.errors.TimedOut("x"),
      TimeoutError,
      "ETIMEDOUT",
      "Connection timed out",
    ],
    [
      new Deno.errors.ConnectionReset("x"),
      ConnectionResetError,
      "ECONNRESET",
      "Connection reset by peer",
    ],
    [
      new Deno.errors.BrokenPipe("x"),
      ConnectionResetError,
      "EPIPE",
      "Broken pipe",
    ],
    [
      new Deno.errors.ConnectionAborted("x"),
      ConnectionResetError,
      "EPIPE",
      "Broken pipe",
    ],
    [
      new Deno.errors.NotConnected("x"),
      ConnectionResetError,
      "EPIPE",
      "Broken pipe",
    ],
    [
      new Deno.errors.BadResource("x"),
      SocketClosedError,
      "EBADF",
      "the connection is closed",
    ],
    [
      new Deno.errors.Interrupted("x"),
      SocketClosedError,
      "EBADF",
      "the connection is closed",
    ],
    [
      new Deno.errors.NetworkUnreachable("x"),
      UnreachableError,
      "ENETUNREACH",
      "Network is unreachable",
    ],
    [
      new Error("No route to host (os error 113)"),
      UnreachableError,
      "EHOSTUNREACH",
      "No route to host",
    ],
    [
      new Error("Host is unreachable"),
      UnreachableError,
      "EHOSTUNREACH",
      "No route to host",
    ],
  ];
  for (const [raw, type, code, reason] of cases) {
    const error = fromRuntimeError(raw, CONTEXT);
    assert.ok(error instanceof type, `${raw.name}: got ${error.name}`);
    assert.equal(error.code, code, raw.name);
    assert.equal(error.message, `connect to 127.0.0.1 port 5000: ${reason}`);
    assert.equal(error.cause, raw);
    assert.equal(error.host, "127.0.0.1");
    assert.equal(error.port, 5000);
  }
});

Deno.test("netPermissionHint(): names the exact --allow-net that grants it", () => {
  assert.equal(
    netPermissionHint("::1", 80),
    "Deno needs the network permission (run with -N or --allow-net=[::1]:80)",
  );
  assert.equal(
    netPermissionHint("localhost", 0),
    "Deno needs the network permission (run with -N or --allow-net=localhost)",
  );
});

Deno.test("fromRuntimeError(): binding below 1024 without privilege names the privilege", () => {
  const denied = new Deno.errors.PermissionDenied("x");
  const bind = { action: "bind to", host: "0.0.0.0", port: 80 };
  assert.equal(
    fromRuntimeError(denied, bind).message,
    "bind to 0.0.0.0 port 80: Permission denied (a port below 1024 needs " +
      "root, the CAP_NET_BIND_SERVICE capability, or a lower " +
      "net.ipv4.ip_unprivileged_port_start)",
  );
  // Elsewhere the plain reason stays.
  assert.equal(
    fromRuntimeError(denied, { ...bind, port: 8080 }).message,
    "bind to 0.0.0.0 port 8080: Permission denied",
  );
});

const noSetpriv = missing(
  "setpriv",
  "a real bind to port 80 without CAP_NET_BIND_SERVICE",
);
Deno.test({
  name:
    "serve(): a real bind to port 80 without CAP_NET_BIND_SERVICE says which privilege",
  ignore: noSetpriv,
  fn: async () => {
    // setpriv drops the capability from the bounding set, so even root
    // cannot bind below 1024 (unless the sysctl allows everyone to).
    const start = Number(
      Deno.readTextFileSync("/proc/sys/net/ipv4/ip_unprivileged_port_start"),
    );
    if (start <= 80) {
      console.log("skipping the assertion: ip_unprivileged_port_start ≤ 80");
      return;
    }
    const script = `import { serve } from "${ROOT}mod.ts";
try {
  const server = serve({ hostname: "127.0.0.1", port: 80 }, () => {});
  await server.shutdown();
  console.log("bound");
} catch (error) { console.log(error.code, error.message); }`;
    const result = await run("setpriv", [
      "--bounding-set=-net_bind_service",
      "--inh-caps=-net_bind_service",
      Deno.execPath(),
      "eval",
      script,
    ]);
    assert.equal(result.code, 0, result.stderr);
    assert.equal(
      result.stdout,
      "EACCES bind to 127.0.0.1 port 80: Permission denied (a port below " +
        "1024 needs root, the CAP_NET_BIND_SERVICE capability, or a lower " +
        "net.ipv4.ip_unprivileged_port_start)\n",
    );
  },
});

Deno.test("fromRuntimeError(): anything else is EIO with the original text", () => {
  const raw = new Deno.errors.NotFound("something odd");
  const error = fromRuntimeError(raw, { ...CONTEXT, action: "recv from" });
  assert.equal(error.constructor, SocketError);
  assert.equal(error.code, "EIO");
  assert.equal(error.message, "recv from 127.0.0.1 port 5000: something odd");
  assert.equal(error.cause, raw);
});

Deno.test("fromRuntimeError(): a thrown non-Error is EIO with its string form", () => {
  const error = fromRuntimeError("a string was thrown", CONTEXT);
  assert.equal(error.code, "EIO");
  assert.equal(
    error.message,
    "connect to 127.0.0.1 port 5000: a string was thrown",
  );
  assert.equal(error.cause, "a string was thrown");
  const fromNumber = fromRuntimeError(42, CONTEXT);
  assert.equal(fromNumber.message, "connect to 127.0.0.1 port 5000: 42");
});

Deno.test("fromRuntimeError(): a SocketError passes through untouched", () => {
  const original = new TimeoutError("already ours");
  assert.equal(fromRuntimeError(original, CONTEXT), original);
});

Deno.test("fromRuntimeError(): context.message replaces the message; attempts are kept", () => {
  const attempts = [{
    address: "::1",
    port: 5000,
    error: new ConnectionRefusedError("refused"),
  }];
  const error = fromRuntimeError(new Deno.errors.ConnectionRefused("x"), {
    ...CONTEXT,
    message: "every address failed",
    attempts,
  });
  assert.ok(error instanceof ConnectionRefusedError);
  assert.equal(error.message, "every address failed");
  assert.equal(error.attempts, attempts);
});

Deno.test("abortError(): a SocketError reason passes through", () => {
  const reason = new TimeoutError("timed out after 5 ms");
  const signal = AbortSignal.abort(reason);
  assert.equal(abortError(signal, "connect to x port 1"), reason);
});

Deno.test("abortError(): any other reason becomes ECANCELED with it as cause", () => {
  const reason = new Error("user gave up");
  const error = abortError(AbortSignal.abort(reason), "connect to h port 9", {
    host: "h",
    port: 9,
  });
  assert.ok(error instanceof CancelledError);
  assert.equal(error.code, "ECANCELED");
  assert.equal(error.message, "connect to h port 9: cancelled");
  assert.equal(error.cause, reason);
  assert.equal(error.host, "h");
  assert.equal(error.port, 9);
});

Deno.test("abortError(): the default reason (a DOMException) and no options", () => {
  const controller = new AbortController();
  controller.abort();
  const error = abortError(controller.signal, "resolve x");
  assert.ok(error instanceof CancelledError);
  assert.ok(error.cause instanceof DOMException);
  assert.equal((error.cause as DOMException).name, "AbortError");
  assert.equal(error.host, undefined);
});
