/**
 * Unit tests of lib/errors.ts (the error classes, their fields and the one
 * message formatter) and lib/_error_mapping.ts (the class for each code,
 * fromRuntimeError's mapping of every runtime error, and abortError).
 */

import assert from "node:assert/strict";
import { missing, ROOT, run } from "./fixtures/process.ts";
import {
  abortError,
  type ErrorContext,
  errorFor,
  fromRuntimeError,
  netPermissionHint,
} from "../lib/_error_mapping.ts";
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
  TimeoutError,
  TlsError,
  UnreachableError,
} from "../lib/errors.ts";

const CONTEXT: ErrorContext = {
  op: "connect",
  host: "127.0.0.1",
  port: 5000,
};

Deno.test("SocketError: carries code, op, host, port, address, reason, cause and attempts", () => {
  const cause = new Error("raw");
  const attempt = new ConnectionRefusedError({ reason: "refused" });
  const attempts = [{ address: "::1", port: 80, error: attempt }];
  const error = new SocketError({
    code: "EIO",
    op: "recv",
    host: "example.test",
    port: 80,
    address: "192.0.2.1",
    reason: "it broke",
    cause,
    attempts,
  });
  assert.ok(error instanceof Error);
  assert.equal(error.name, "SocketError");
  assert.equal(error.code, "EIO");
  assert.equal(error.op, "recv");
  assert.equal(error.host, "example.test");
  assert.equal(error.port, 80);
  assert.equal(error.address, "192.0.2.1");
  assert.equal(error.reason, "it broke");
  assert.equal(error.cause, cause);
  assert.equal(error.attempts, attempts);
});

Deno.test("SocketError: fields default to none; the message is the reason alone without op", () => {
  const error = new SocketError({ code: "EIO", reason: "plain" });
  assert.equal(error.message, "plain");
  assert.equal(error.op, undefined);
  assert.equal(error.cause, undefined);
  assert.equal(error.host, undefined);
  assert.equal(error.port, undefined);
  assert.equal(error.address, undefined);
  assert.equal(error.attempts, undefined);
});

Deno.test("SocketError: the message is built from the fields in one place", async (t) => {
  const message = (fields: ConstructorParameters<typeof SocketError>[0]) =>
    new SocketError(fields).message;
  await t.step(
    "op, host and port; the address tried wins over the host",
    () => {
      const where = { op: "connect", host: "h.test", port: 80 } as const;
      assert.equal(
        message({ ...where, code: "EIO", reason: "r" }),
        "connect to h.test port 80: r",
      );
      assert.equal(
        message({ ...where, address: "::1", code: "EIO", reason: "r" }),
        "connect to ::1 port 80: r",
      );
    },
  );
  await t.step("each op's phrase", () => {
    const phrases = {
      resolve: "resolve h",
      connect: "connect to h port 1",
      bind: "bind to h port 1",
      accept: "accept on h port 1",
      send: "send to h port 1",
      recv: "recv from h port 1",
      shutdown: "closeWrite to h port 1",
      close: "close h port 1",
      handle: "handler for h port 1",
      scan: "scan h",
    } as const;
    for (const [op, where] of Object.entries(phrases)) {
      const port = op === "resolve" || op === "scan" ? undefined : 1;
      assert.equal(
        message({
          op: op as keyof typeof phrases,
          host: "h",
          port,
          code: "EIO",
          reason: "r",
        }),
        `${where}: r`,
      );
    }
  });
  await t.step(
    "a name that does not resolve: the tutorial's gaierror line",
    () => {
      for (const code of ["ENOTFOUND", "ESERVFAIL", "ETIMEDOUT"] as const) {
        assert.equal(
          message({ code, op: "resolve", host: "nowhere.test", reason: "r" }),
          "there was an error resolving the host: nowhere.test (r)",
        );
      }
      // Other failures of a lookup say what was being done, as elsewhere.
      assert.equal(
        message({
          code: "ECANCELED",
          op: "resolve",
          host: "x.test",
          reason: "cancelled",
        }),
        "resolve x.test: cancelled",
      );
    },
  );
  await t.step(
    "several attempts: each address's reason, then how many more",
    () => {
      const attempt = (address: string) => ({
        address,
        port: 80,
        error: new ConnectionRefusedError({
          op: "connect",
          address,
          port: 80,
          reason: "Connection refused",
        }),
      });
      const attempts = ["::1", "127.0.0.1", "::2", "127.0.0.2"].map(attempt);
      assert.equal(
        message({
          code: "ECONNREFUSED",
          op: "connect",
          host: "many.test",
          port: 80,
          reason: "Connection refused",
          attempts,
        }),
        "connect to many.test port 80 failed for every address: " +
          "::1: Connection refused; 127.0.0.1: Connection refused; " +
          "::2: Connection refused; and 1 more",
      );
    },
  );
});

Deno.test("SocketError subclasses: fixed codes, own names, instanceof the base", () => {
  const fields = { op: "connect", host: "h", port: 1, reason: "m" } as const;
  const cases: [SocketError, string, string][] = [
    [
      new InvalidArgumentError({ reason: "m" }),
      "InvalidArgumentError",
      "EINVAL",
    ],
    [
      new ResolveError({ ...fields, code: "ESERVFAIL" }),
      "ResolveError",
      "ESERVFAIL",
    ],
    [
      new ConnectionRefusedError(fields),
      "ConnectionRefusedError",
      "ECONNREFUSED",
    ],
    [new TimeoutError(fields), "TimeoutError", "ETIMEDOUT"],
    [
      new AddressInUseError({ ...fields, code: "EADDRNOTAVAIL" }),
      "AddressInUseError",
      "EADDRNOTAVAIL",
    ],
    [new PermissionDeniedError(fields), "PermissionDeniedError", "EACCES"],
    [
      new UnreachableError({ ...fields, code: "EHOSTUNREACH" }),
      "UnreachableError",
      "EHOSTUNREACH",
    ],
    [
      new ConnectionResetError({ ...fields, code: "EPIPE" }),
      "ConnectionResetError",
      "EPIPE",
    ],
    [new SocketClosedError(fields), "SocketClosedError", "EBADF"],
    [new MessageTooLargeError(fields), "MessageTooLargeError", "EMSGSIZE"],
    [new CancelledError(fields), "CancelledError", "ECANCELED"],
  ];
  for (const [error, name, code] of cases) {
    assert.ok(error instanceof SocketError, name);
    assert.equal(error.name, name);
    assert.equal(error.code, code);
    assert.equal(error.reason, "m");
  }
});

Deno.test("errorFor(): each code has one class, and class and code agree", () => {
  const classes: Record<
    SocketErrorCode,
    new (...args: never[]) => SocketError
  > = {
    EINVAL: InvalidArgumentError,
    ENOTFOUND: ResolveError,
    ESERVFAIL: ResolveError,
    ECONNREFUSED: ConnectionRefusedError,
    ENOENT: NotFoundError,
    ETIMEDOUT: TimeoutError,
    EHOSTUNREACH: UnreachableError,
    ENETUNREACH: UnreachableError,
    EADDRINUSE: AddressInUseError,
    EADDRNOTAVAIL: AddressInUseError,
    EACCES: PermissionDeniedError,
    ECONNRESET: ConnectionResetError,
    EPIPE: ConnectionResetError,
    EBADF: SocketClosedError,
    EMSGSIZE: MessageTooLargeError,
    ECANCELED: CancelledError,
    EUNKNOWNCA: CertificateError,
    ECERTNAME: CertificateError,
    ECERTEXPIRED: CertificateError,
    ECERTINVALID: CertificateError,
    ETLS: TlsError,
    EIO: SocketError,
  };
  for (const [code, type] of Object.entries(classes)) {
    const error = errorFor(code as SocketErrorCode, {
      op: "resolve",
      host: "h",
      reason: "r",
    });
    assert.equal(error.constructor, type, code);
    assert.equal(error.code, code);
  }
});

Deno.test("ResolveError: names the host and the reason, keeps the cause", () => {
  const cause = new Deno.errors.NotFound("no record");
  const error = new ResolveError({
    code: "ENOTFOUND",
    op: "resolve",
    host: "nowhere.test",
    reason: "no such name",
    cause,
  });
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
    assert.equal(error.reason, reason);
    assert.equal(error.op, "connect");
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
  const bind = { op: "bind", host: "0.0.0.0", port: 80 } as const;
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

Deno.test("fromRuntimeError(): NotFound is ENOENT (a Unix socket path with no file)", () => {
  const raw = new Deno.errors.NotFound(
    "No such file or directory (os error 2)",
  );
  const error = fromRuntimeError(raw, { op: "connect", host: "/tmp/x.sock" });
  assert.ok(error instanceof NotFoundError);
  assert.equal(
    error.message,
    "connect to /tmp/x.sock: No such file or directory",
  );
  assert.equal(error.cause, raw);
});

Deno.test("fromRuntimeError(): anything else is EIO with the original text", () => {
  const raw = new Deno.errors.InvalidData("something odd");
  const error = fromRuntimeError(raw, { ...CONTEXT, op: "recv" });
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
  const original = new TimeoutError({ reason: "already ours" });
  assert.equal(fromRuntimeError(original, CONTEXT), original);
});

Deno.test("fromRuntimeError(): the address tried names the permission; attempts are kept", () => {
  const attempts = [{
    address: "::1",
    port: 5000,
    error: new ConnectionRefusedError({ reason: "refused" }),
  }];
  const error = fromRuntimeError(new Deno.errors.NotCapable("x"), {
    ...CONTEXT,
    host: "localhost",
    address: "::1",
    attempts,
  });
  assert.ok(error instanceof PermissionDeniedError);
  assert.equal(error.host, "localhost");
  assert.equal(error.address, "::1");
  assert.equal(
    error.reason,
    "Deno needs the network permission (run with -N or --allow-net=[::1]:5000)",
  );
  assert.equal(error.attempts, attempts);
});

Deno.test("abortError(): a SocketError reason passes through", () => {
  const reason = new TimeoutError({ reason: "timed out after 5 ms" });
  const signal = AbortSignal.abort(reason);
  assert.equal(
    abortError(signal, { op: "connect", host: "x", port: 1 }),
    reason,
  );
});

Deno.test("abortError(): any other reason becomes ECANCELED with it as cause", () => {
  const reason = new Error("user gave up");
  const error = abortError(AbortSignal.abort(reason), {
    op: "connect",
    host: "h",
    port: 9,
  });
  assert.ok(error instanceof CancelledError);
  assert.equal(error.code, "ECANCELED");
  assert.equal(error.message, "connect to h port 9: cancelled");
  assert.equal(error.reason, "cancelled");
  assert.equal(error.cause, reason);
  assert.equal(error.host, "h");
  assert.equal(error.port, 9);
});

Deno.test("abortError(): the default reason (a DOMException), no host", () => {
  const controller = new AbortController();
  controller.abort();
  const error = abortError(controller.signal, { op: "scan" });
  assert.ok(error instanceof CancelledError);
  assert.ok(error.cause instanceof DOMException);
  assert.equal((error.cause as DOMException).name, "AbortError");
  assert.equal(error.host, undefined);
});
