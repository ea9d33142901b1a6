/**
 * The executable specification: the tutorial's claims C1–C19, in order, on
 * real loopback sockets. Where the tutorial is wrong on a real system, the
 * test name says so and the steps pin down the truth.
 *
 * Claim → spec test here → unit tests covering the same ground:
 *
 * | Claim | Here | Unit tests |
 * | ----- | ---- | ---------- |
 * | C1 two nodes, one listens | C1 | server_test "the greeting server"; connection_test send/recv |
 * | C2 import, make a socket | C2 | import_test (by URL); connection_test dispose |
 * | C3 one typed error family | C3 | errors_test (fromRuntimeError, subclasses); faults_test "bad input", "random arguments" |
 * | C4 gethostbyname, names | C4 | resolve_test; dns_test; dns_fixture_test (incl. dnsmasq); address_test validateHost |
 * | C5 unresolvable host | C5 | resolve_test "DNS failures"; faults_test "failing DNS server"; cli_test resolve |
 * | C6 connect on a port | C6 | connect_test (literals, localhost, Happy Eyeballs); cli_test connect; examples_test connect_to_google |
 * | C7 sendall | C7 | connection_test sendAll/send partial/recvAll; interop_test 10 MiB; faults_test half-closed |
 * | C8 bind | C8 | server_test "a port in use"; address_test fromDenoAddr |
 * | C9 listen | C9 | connect_test "one address refused" |
 * | C10 accept, close | C10 | server_test hooks, "closed after the handler" |
 * | C11 any port, 0 | C11 | address_test validatePort/parsePort; server_test options; cli_test bad input |
 * | C12 bind '' | C12 | server_test hostname checks |
 * | C13 bind 127.0.0.1 | C13 | connect_test eyeballs (127.0.0.3 silent) |
 * | C14 listen(5) | C14 | server_test backlog/concurrency; faults_test flood; interop_test --busy; cli_serve_test refusals |
 * | C15 serve forever, abort | C15 | server_test shutdown/abort/handlerTimeout; faults_test shutdown under load, churn; cli_serve_test graceful stop |
 * | C16 printed lines | C16 | cli_serve_test; examples_test server.ts |
 * | C17 telnet | C17 | cli_test telnet; interop_test telnet, Python server |
 * | C18 recv(1024) | C18 | connection_test recv/recvInto/recvAll; cli_test client |
 * | C19 two processes, UTF-8 | C19 (two) | examples_test server/client, demo; interop_test Python client; connection_test UTF-8 |
 */

import assert from "node:assert/strict";
import * as mod from "../mod.ts";
import {
  AddressInUseError,
  CancelledError,
  connect,
  ConnectionRefusedError,
  gethostbyname,
  InvalidArgumentError,
  PermissionDeniedError,
  resolve,
  ResolveError,
  serve,
  SocketError,
  TimeoutError,
} from "../mod.ts";
import { startDnsServer } from "./fixtures/dns_server.ts";
import {
  missing,
  run,
  runCli,
  start,
  startCli,
  startDeno,
} from "./fixtures/process.ts";
import { dnsmasqMissing, startDnsmasq } from "./fixtures/dnsmasq.ts";
import {
  gate,
  pattern,
  rawConnect,
  readText,
  sameBytes,
  unheardAddress,
} from "./fixtures/net.ts";
import { rejectsWith } from "./fixtures/assertions.ts";
import { within } from "./fixtures/deadline.ts";

const GREETING = "Thank you for connecting";
const decoder = new TextDecoder();

/**
 * The deadline of one wait on loopback: a round trip takes well under
 * 50 ms on an idle machine, so 10 s leaves a loaded 2-core machine 200×
 * room, while a broken change fails in seconds instead of hanging.
 */
const NET_MS = 10_000;
/**
 * The deadline of C7's 24 MiB transfers: ~1 s each on an idle machine;
 * 30 s is room for load, and a hang still fails within a minute.
 */
const BULK_MS = 30_000;

/** Reads a connection to its end, as text, within {@linkcode NET_MS}. */
async function recvText(conn: mod.Connection, what: string): Promise<string> {
  return decoder.decode(await within(conn.recvAll(), NET_MS, what));
}

/**
 * Collects what a server's handlers throw: the server catches a handler's
 * error (it must go on serving), so an assertion inside a handler cannot
 * fail the test. Handlers hand their findings to the test instead, and
 * the test checks that no handler failed.
 */
function handlerErrors(): {
  errors: unknown[];
  onError: (error: unknown) => void;
  assertNone: (server: mod.Server) => void;
} {
  const errors: unknown[] = [];
  return {
    errors,
    onError: (error) => errors.push(error),
    assertNone: (server) => {
      assert.deepEqual(errors, [], "no handler failed");
      assert.equal(server.stats.failed, 0, "no handler counted as failed");
    },
  };
}

function throwsWith(fn: () => unknown, code: string): SocketError {
  try {
    fn();
  } catch (error) {
    assert.ok(error instanceof SocketError, `expected a SocketError: ${error}`);
    assert.equal(error.code, code);
    return error;
  }
  assert.fail(`expected ${code}`);
}

Deno.test("C1: two nodes, one listens on a port, the other reaches it, and bytes go both ways", async () => {
  const handler = handlerErrors();
  const heard = Promise.withResolvers<string>();
  await using server = serve(
    { hostname: "127.0.0.1", onError: handler.onError },
    async (conn) => {
      const question = await conn.recv(1024);
      heard.resolve(question === null ? "(end)" : decoder.decode(question));
      await conn.sendAll("pong");
    },
  );
  assert.ok(server.addr.port > 0, "an ephemeral port was chosen");
  await using client = await within(
    connect("127.0.0.1", server.addr.port),
    NET_MS,
    "the connect",
  );
  await within(client.sendAll("ping"), NET_MS, "the ping to be sent");
  assert.equal(await within(heard.promise, NET_MS, "the ping"), "ping");
  assert.equal(await recvText(client, "the pong"), "pong");
  handler.assertNone(server);
});

Deno.test("C2: everything the tutorial does is imported from mod.ts alone, and closing leaks nothing", async (t) => {
  await t.step("the tutorial's flows run on mod.ts's names alone", async () => {
    // Only the namespace import: a name missing from mod.ts fails here.
    assert.deepEqual(await mod.resolve("127.0.0.1"), [{
      address: "127.0.0.1",
      family: 4,
    }]);
    assert.equal(await mod.gethostbyname("localhost"), "127.0.0.1");
    await using server = mod.serve(
      { hostname: "127.0.0.1" },
      (conn) => conn.sendAll(GREETING),
    );
    await using client = await within(
      mod.connect("127.0.0.1", server.addr.port),
      NET_MS,
      "the connect",
    );
    assert.ok(client instanceof mod.Connection);
    assert.equal(await recvText(client, "the greeting"), GREETING);
    // The error family: a refusal and a failed lookup, each its own class
    // under the one base class.
    const refused = await rejectsWith(
      mod.connect("127.0.0.2", server.addr.port),
      mod.ConnectionRefusedError,
      "ECONNREFUSED",
    );
    assert.ok(refused instanceof mod.SocketError);
    await using dns = await startDnsServer({});
    const unknown = await rejectsWith(
      mod.resolve("no-such-host.test", {
        hostsFile: false,
        nameServer: { ipAddr: dns.hostname, port: dns.port },
      }),
      mod.ResolveError,
      "ENOTFOUND",
    );
    assert.ok(unknown instanceof mod.SocketError);
  });
  await t.step("a listener and a connection are made and closed", async () => {
    const server = serve({ hostname: "127.0.0.1" }, () => {});
    const client = await within(
      connect("127.0.0.1", server.addr.port),
      NET_MS,
      "the connect",
    );
    client.close();
    client.close(); // a second close is harmless
    await within(server.shutdown(), NET_MS, "the shutdown");
    // The resource and op sanitizers fail this test if anything is left.
  });
});

Deno.test("C3: every failure is one typed error family with a stable code (socket.error)", async (t) => {
  await t.step("address already in use: EADDRINUSE", async () => {
    await using first = serve({ hostname: "127.0.0.1" }, () => {});
    const error = throwsWith(
      () => serve({ hostname: "127.0.0.1", port: first.addr.port }, () => {}),
      "EADDRINUSE",
    );
    assert.ok(error instanceof AddressInUseError);
    assert.ok(error.cause instanceof Deno.errors.AddrInUse);
    assert.match(
      error.message,
      new RegExp(`127\\.0\\.0\\.1 port ${first.addr.port}`),
    );
  });

  await t.step({
    name: "permission denied: a port below 1024 as non-root is EACCES",
    // As root, the step runs as nobody, which takes setpriv.
    ignore: Deno.uid() === 0 &&
      missing("setpriv", "C3: a port below 1024 as non-root"),
    fn: async () => {
      if (Deno.uid() !== 0) {
        throwsWith(
          () => serve({ hostname: "127.0.0.1", port: 1 }, () => {}),
          "EACCES",
        );
        return;
      }
      // As root, which may bind any port, bind as the user nobody instead.
      const lines = await runAsNobody(
        `import { serve } from "./mod.ts";
        try { serve({ hostname: "127.0.0.1", port: 1 }, () => {}); }
        catch (e) { console.log(e.constructor.name, e.code, e.message); }`,
      );
      assert.equal(
        lines,
        "PermissionDeniedError EACCES bind to 127.0.0.1 port 1: Permission " +
          "denied (a port below 1024 needs root, the CAP_NET_BIND_SERVICE " +
          "capability, or a lower net.ipv4.ip_unprivileged_port_start)\n",
      );
    },
  });

  await t.step("permission denied: no --allow-net is EACCES too", async () => {
    const script = await Deno.makeTempFile({ suffix: ".ts" });
    const mod = JSON.stringify(new URL("../mod.ts", import.meta.url).href);
    try {
      await Deno.writeTextFile(
        script,
        `import { connect } from ${mod};
        await connect("127.0.0.1", 9).catch((e) => console.log(e.constructor.name, e.code));`,
      );
      const result = await run(Deno.execPath(), [
        "run",
        "--no-prompt",
        "--allow-read",
        script,
      ]);
      assert.equal(
        result.stdout.trim(),
        `${PermissionDeniedError.name} EACCES`,
        result.stderr,
      );
    } finally {
      await Deno.remove(script);
    }
  });

  await t.step(
    "connection refused: ECONNREFUSED, naming host and port",
    async () => {
      using nobody = unheardAddress();
      const error = await rejectsWith(
        within(connect(nobody.hostname, nobody.port), NET_MS, "the refusal"),
        ConnectionRefusedError,
        "ECONNREFUSED",
      );
      assert.equal(
        error.message,
        `connect to 127.0.0.2 port ${nobody.port}: Connection refused`,
      );
      assert.ok(error.cause instanceof Deno.errors.ConnectionRefused);
    },
  );

  await t.step("timeout: ETIMEDOUT", async () => {
    await using server = serve(
      { hostname: "127.0.0.1" },
      // Silent until the client gives up.
      (conn) => conn.recv().then(() => {}, () => {}),
    );
    await using client = await within(
      connect("127.0.0.1", server.addr.port, { idleTimeout: 50 }),
      NET_MS,
      "the connect",
    );
    await rejectsWith(
      within(client.recv(), NET_MS, "the idle timeout"),
      TimeoutError,
      "ETIMEDOUT",
    );
  });

  await t.step("bad port: EINVAL, before any socket is made", async () => {
    for (const port of [-1, 0, 65536, 1.5, NaN]) {
      await rejectsWith(
        connect("127.0.0.1", port),
        InvalidArgumentError,
        "EINVAL",
      );
    }
  });

  await t.step("bad host: EINVAL; an unknown name: ENOTFOUND", async () => {
    for (const host of ["", " ", "a b", "256.1.1.1", "[::1"]) {
      await rejectsWith(connect(host, 80), InvalidArgumentError, "EINVAL");
    }
    await using dns = await startDnsServer({});
    await rejectsWith(
      connect("no-such-host.test", 80, {
        hostsFile: false,
        nameServer: { ipAddr: dns.hostname, port: dns.port },
      }),
      ResolveError,
      "ENOTFOUND",
    );
  });

  await t.step("cancelled: ECANCELED", async () => {
    await rejectsWith(
      connect("127.0.0.1", 80, { signal: AbortSignal.abort() }),
      CancelledError,
      "ECANCELED",
    );
  });
});

/**
 * Runs a script as the user nobody, with a copy of the module and of deno
 * in a folder nobody may read (root's own files may not be readable).
 */
async function runAsNobody(script: string): Promise<string> {
  const folder = await Deno.makeTempDir();
  try {
    await Deno.chmod(folder, 0o755);
    const root = new URL("../", import.meta.url);
    await Deno.mkdir(`${folder}/lib`);
    for (const entry of Deno.readDirSync(new URL("lib/", root))) {
      await Deno.copyFile(
        new URL(`lib/${entry.name}`, root),
        `${folder}/lib/${entry.name}`,
      );
    }
    await Deno.copyFile(new URL("mod.ts", root), `${folder}/mod.ts`);
    await Deno.copyFile(Deno.execPath(), `${folder}/deno`);
    await Deno.chmod(`${folder}/deno`, 0o755);
    await Deno.writeTextFile(`${folder}/main.ts`, script);
    // A subprocess (no socket of ours): bounded all the same, so that a
    // hang fails the step.
    const { stdout, stderr } = await within(
      new Deno.Command("setpriv", {
        args: [
          "--reuid=65534",
          "--regid=65534",
          "--clear-groups",
          `${folder}/deno`,
          "run",
          "--no-prompt",
          "--no-config",
          "-N",
          "main.ts",
        ],
        cwd: folder,
        env: {
          HOME: folder,
          DENO_DIR: `${folder}/deno_dir`,
          DENO_NO_UPDATE_CHECK: "1",
        },
        clearEnv: true,
        stdout: "piped",
        stderr: "piped",
      }).output(),
      60_000,
      "the script run as nobody",
    );
    return decoder.decode(stdout) || decoder.decode(stderr);
  } finally {
    await Deno.remove(folder, { recursive: true });
  }
}

Deno.test("C4: gethostbyname finds a server's IP: literals, localhost, the hosts file, and DNS on loopback", async (t) => {
  await t.step("gethostbyname gives one dotted-quad IPv4", async () => {
    const ip = await gethostbyname("localhost");
    assert.equal(ip, "127.0.0.1");
  });

  await t.step(
    "IP literals pass through untouched, bracketed or not",
    async () => {
      assert.deepEqual(await resolve("127.0.0.1"), [{
        address: "127.0.0.1",
        family: 4,
      }]);
      assert.deepEqual(await resolve("::1"), [{ address: "::1", family: 6 }]);
      assert.deepEqual(await resolve("[::1]"), [{ address: "::1", family: 6 }]);
      assert.equal(await gethostbyname("10.1.2.3"), "10.1.2.3");
    },
  );

  await using dns = await startDnsServer({
    records: {
      "www.example.test": { A: ["127.0.0.7"], AAAA: ["::1"] },
      "v4only.example.test": { A: ["127.0.0.8", "127.0.0.9"] },
    },
  });
  const nameServer = { ipAddr: dns.hostname, port: dns.port };

  await t.step("localhost resolves without DNS", async () => {
    const addresses = await resolve("localhost", { nameServer });
    assert.deepEqual(addresses.map((a) => a.address), ["::1", "127.0.0.1"]);
    assert.equal(dns.queries.length, 0, "no DNS query was made");
  });

  await t.step("names in the hosts file resolve without DNS", async () => {
    const hostsFile = await Deno.makeTempFile();
    try {
      await Deno.writeTextFile(
        hostsFile,
        "# a hosts file\n127.0.0.5  spec-host.test spec-alias\n::1 spec-host.test\n",
      );
      const addresses = await resolve("SPEC-HOST.test", {
        hostsFile,
        nameServer,
      });
      assert.deepEqual(addresses.map((a) => a.address), ["::1", "127.0.0.5"]);
      assert.equal(
        await gethostbyname("spec-alias", { hostsFile, nameServer }),
        "127.0.0.5",
      );
      assert.equal(dns.queries.length, 0, "no DNS query was made");
    } finally {
      await Deno.remove(hostsFile);
    }
  });

  await t.step(
    "DNS names resolve against a real DNS server on loopback",
    async () => {
      const addresses = await resolve("www.example.test", {
        nameServer,
        hostsFile: false,
      });
      assert.deepEqual(addresses, [
        { address: "::1", family: 6 },
        { address: "127.0.0.7", family: 4 },
      ]);
      assert.equal(
        await gethostbyname("v4only.example.test", {
          nameServer,
          hostsFile: false,
        }),
        "127.0.0.8",
      );
      assert.ok(
        dns.queries.some((q) =>
          q.name === "www.example.test" && q.type === "AAAA"
        ),
      );
    },
  );

  await t.step({
    name: "…and against dnsmasq, where it is installed",
    ignore: dnsmasqMissing("C4: against dnsmasq"),
    fn: async () => {
      const dnsmasq = await startDnsmasq({
        "masq.example.test": ["127.0.0.11"],
      });
      if ("skipped" in dnsmasq) assert.fail(dnsmasq.skipped);
      try {
        assert.equal(
          await gethostbyname("masq.example.test", {
            nameServer: { ipAddr: dnsmasq.hostname, port: dnsmasq.port },
            hostsFile: false,
          }),
          "127.0.0.11",
        );
      } finally {
        await dnsmasq.close();
      }
    },
  });
});

Deno.test("C5: an unresolvable host is a typed resolve error naming the host and the reason (socket.gaierror)", async (t) => {
  await using dns = await startDnsServer({
    faults: { "broken.test": "servfail", "silent.test": "silent" },
  });
  const options = {
    nameServer: { ipAddr: dns.hostname, port: dns.port },
    hostsFile: false as const,
  };

  await t.step("no such name: ENOTFOUND", async () => {
    const error = await rejectsWith(
      resolve("nowhere.test", options),
      ResolveError,
      "ENOTFOUND",
    );
    assert.equal(error.host, "nowhere.test");
    assert.equal(
      error.message,
      "there was an error resolving the host: nowhere.test (no such name)",
    );
  });

  await t.step(
    "server failure: ESERVFAIL, saying the server failed",
    async () => {
      const error = await rejectsWith(
        within(resolve("broken.test", options), NET_MS, "the SERVFAIL"),
        ResolveError,
        "ESERVFAIL",
      );
      assert.equal(error.host, "broken.test");
      assert.equal(
        error.message,
        "there was an error resolving the host: broken.test (the name server failed)",
      );
    },
  );

  await t.step("no answer: ETIMEDOUT at the timeout, not before", async () => {
    const timeout = 500;
    const started = performance.now();
    const error = await rejectsWith(
      within(
        resolve("silent.test", { ...options, timeout }),
        NET_MS,
        "the resolve timeout",
      ),
      TimeoutError,
      "ETIMEDOUT",
    );
    const waited = performance.now() - started;
    // Not early: timers never fire before their time (1 ms for rounding).
    // Not late: timeout + 8 ms idle; twice the timeout leaves a loaded
    // machine 500 ms, and a timer armed twice over fails.
    assert.ok(waited >= timeout - 1, `gave up early, after ${waited} ms`);
    assert.ok(waited < 2 * timeout, `gave up late, after ${waited} ms`);
    // Every ETIMEDOUT is a TimeoutError, a DNS timeout included: its op
    // is "resolve", and its message is the tutorial's gaierror line.
    assert.equal(error.op, "resolve");
    assert.equal(error.host, "silent.test");
    assert.equal(
      error.message,
      `there was an error resolving the host: silent.test (no answer from DNS in ${timeout} ms)`,
    );
  });
  await t.step("the CLI prints one line and exits non-zero", async () => {
    const result = await runCli([
      "resolve",
      "nowhere.test",
      "--nameserver",
      `${dns.hostname}:${dns.port}`,
    ]);
    assert.equal(result.code, 1);
    assert.equal(result.stdout, "");
    assert.equal(
      result.stderr,
      // Run with -N alone, the CLI says the hosts file was not read.
      "there was an error resolving the host: nowhere.test (no such name; " +
        "/etc/hosts was not read: run with --allow-read=/etc/hosts if the " +
        "name is there)\n",
    );
  });
});

Deno.test("C6: connect to the server on its port (80 in the tutorial; an ephemeral stand-in here), by name and by IP", async (t) => {
  await using server = serve(
    { hostname: "127.0.0.1" },
    (conn) => conn.sendAll("HTTP/1.0 200 OK\r\n\r\n"),
  );
  const { port } = server.addr;

  await t.step("by IP", async () => {
    await using conn = await within(
      connect("127.0.0.1", port),
      NET_MS,
      "the connect",
    );
    assert.deepEqual(conn.remoteAddr, {
      address: "127.0.0.1",
      port,
      family: 4,
    });
  });

  await t.step(
    "by name: localhost tries ::1, is refused, then connects to 127.0.0.1",
    async () => {
      const trace: string[] = [];
      await using conn = await within(
        connect("localhost", port, {
          onAttempt: (e) => trace.push(`${e.state} ${e.address}`),
        }),
        NET_MS,
        "the connect",
      );
      assert.equal(conn.remoteAddr.address, "127.0.0.1");
      assert.deepEqual(trace, [
        "trying ::1",
        "failed ::1",
        "trying 127.0.0.1",
        "connected 127.0.0.1",
      ]);
    },
  );
  await t.step(
    "the success line names the port, where the tutorial printed the IP",
    async () => {
      const result = await runCli(["connect", "localhost", String(port)]);
      assert.equal(result.code, 0, result.stderr);
      assert.equal(
        result.stdout,
        "Socket successfully created\n" +
          `the socket has successfully connected to localhost on port ${port} (127.0.0.1)\n`,
      );
    },
  );
});

Deno.test("C7: sendAll sends every byte, both ways, to a slow reader; a partial write is never taken for a full one", async (t) => {
  const size = 24 * 1024 * 1024; // many times the loopback socket buffers
  const payload = pattern(size);

  await t.step(
    "send() may write only part; sendAll() writes it all",
    async () => {
      const { opened, open } = gate();
      const handler = handlerErrors();
      const received = Promise.withResolvers<Uint8Array>();
      await using server = serve(
        { hostname: "127.0.0.1", onError: handler.onError },
        async (conn) => {
          await opened; // not reading yet, so the buffers fill up
          received.resolve(await conn.recvAll({ maxBytes: size }));
        },
      );
      await using client = await within(
        connect("127.0.0.1", server.addr.port),
        NET_MS,
        "the connect",
      );
      const written = await within(client.send(payload), NET_MS, "send()");
      assert.ok(
        written > 0 && written < size,
        `send wrote ${written} of ${size}`,
      );
      open();
      await within(
        client.sendAll(payload.subarray(written)),
        BULK_MS,
        "sendAll() of the rest",
      );
      await within(client.closeWrite(), NET_MS, "closeWrite()");
      // The server's count is asserted here, on the test's side: a failed
      // assertion inside the handler would only be a line on stderr.
      sameBytes(
        await within(received.promise, BULK_MS, "the server's bytes"),
        payload,
      );
      assert.equal(
        await within(client.recv(), NET_MS, "the server's close"),
        null,
      );
      handler.assertNone(server);
    },
  );

  await t.step("client to server, the server reading slowly", async () => {
    const handler = handlerErrors();
    const received = Promise.withResolvers<SlowRead>();
    await using server = serve(
      { hostname: "127.0.0.1", onError: handler.onError },
      async (conn) => received.resolve(await slowRead(conn, size)),
    );
    await using client = await within(
      connect("127.0.0.1", server.addr.port),
      NET_MS,
      "the connect",
    );
    await within(client.sendAll(payload), BULK_MS, "sendAll()");
    await within(client.closeWrite(), NET_MS, "closeWrite()");
    const { bytes, largest, total } = await within(
      received.promise,
      BULK_MS,
      "the server's slow read",
    );
    assert.equal(total, size, "how many bytes the server read");
    sameBytes(bytes, payload);
    assert.ok(largest <= 4096, `a recv(4096) returned ${largest} bytes`);
    handler.assertNone(server);
  });

  await t.step("server to client, the client reading slowly", async () => {
    const handler = handlerErrors();
    await using server = serve(
      { hostname: "127.0.0.1", onError: handler.onError },
      (conn) => conn.sendAll(payload),
    );
    await using client = await within(
      connect("127.0.0.1", server.addr.port),
      NET_MS,
      "the connect",
    );
    const { bytes, largest, total } = await within(
      slowRead(client, size),
      BULK_MS,
      "the client's slow read",
    );
    assert.equal(total, size, "how many bytes the client read");
    sameBytes(bytes, payload);
    assert.ok(largest <= 4096, `a recv(4096) returned ${largest} bytes`);
    handler.assertNone(server);
  });
});

/** What {@linkcode slowRead} got, for the test (not a handler) to check. */
interface SlowRead {
  /** Every byte read, up to the end of stream (or `limit`). */
  bytes: Uint8Array;
  /** The largest single read. */
  largest: number;
  /** How many bytes arrived in all (more than `limit` is kept out). */
  total: number;
}

/**
 * Reads in 4 KiB steps to the end of stream, yielding to the event loop
 * now and then. It asserts nothing: it may run inside a handler.
 */
async function slowRead(
  conn: mod.Connection,
  limit: number,
): Promise<SlowRead> {
  const out = new Uint8Array(limit);
  let offset = 0;
  let reads = 0;
  let largest = 0;
  let total = 0;
  while (true) {
    const chunk = await conn.recv(4096);
    if (chunk === null) break;
    largest = Math.max(largest, chunk.length);
    total += chunk.length;
    out.set(chunk.subarray(0, limit - offset), offset);
    offset = Math.min(limit, offset + chunk.length);
    if (++reads % 64 === 0) await new Promise((r) => setTimeout(r, 0));
  }
  return { bytes: out.subarray(0, offset), largest, total };
}

Deno.test("C8: bind ties the server to an address and port, and a taken port fails with EADDRINUSE", async () => {
  const reported: mod.NetAddress[] = [];
  await using server = serve({
    hostname: "127.0.0.1",
    port: 0,
    onListen: (addr) => reported.push(addr),
  }, (conn) => conn.sendAll(GREETING));
  assert.equal(server.addr.address, "127.0.0.1");
  assert.equal(server.addr.family, 4);
  assert.deepEqual(reported, [server.addr]);
  // The reported port is the bound one: Deno's own connect there reaches
  // this server (its greeting, its count), not some other listener.
  const raw = await within(
    rawConnect(server.addr.port),
    NET_MS,
    "a raw connect",
  );
  try {
    assert.equal(await readText(raw, NET_MS), GREETING);
  } finally {
    raw.close();
  }
  assert.equal(server.stats.accepted, 1);
  const error = throwsWith(
    () => serve({ hostname: "127.0.0.1", port: server.addr.port }, () => {}),
    "EADDRINUSE",
  );
  assert.ok(error instanceof AddressInUseError);
});

/**
 * The tutorial's server in two steps, bind then listen, held between them
 * until a line on stdin: Deno's listen does both at once, Python's socket
 * can stop in between, on the same port, with no race.
 */
const PYTHON_BIND_THEN_LISTEN = `
import socket, sys
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1], flush=True)
sys.stdin.readline()
s.listen(5)
print("listening", flush=True)
c, _ = s.accept()
c.sendall(b"${GREETING}")
c.close()
`;

Deno.test({
  name: "C9: before listen a connect is refused; once listening it succeeds",
  ignore: missing("python3", "C9: bind, then listen, in Python"),
}, async () => {
  await using python = start("python3", ["-c", PYTHON_BIND_THEN_LISTEN], {
    stdin: true,
  });
  const [port] = await python.waitForLine(/^\d+$/);
  await rejectsWith(
    within(connect("127.0.0.1", Number(port)), NET_MS, "the refusal"),
    ConnectionRefusedError,
    "ECONNREFUSED",
  );
  await python.write("listen\n");
  await python.waitForLine(/^listening$/);
  await using conn = await within(
    connect("127.0.0.1", Number(port)),
    NET_MS,
    "the connect",
  );
  assert.equal(await recvText(conn, "the greeting"), GREETING);
  assert.equal((await python.exit()).code, 0, python.report());
});

Deno.test("C10: accept gives the handler the client's address; close ends the connection", async () => {
  const { promise: seen, resolve: see } = Promise.withResolvers<
    mod.NetAddress
  >();
  await using server = serve(
    { hostname: "127.0.0.1" },
    (_conn, info) => see(info.remoteAddr),
  );
  await using client = await within(
    connect("127.0.0.1", server.addr.port),
    NET_MS,
    "the connect",
  );
  assert.deepEqual(
    await within(seen, NET_MS, "the handler"),
    client.localAddr,
  );
  assert.equal(
    await within(client.recv(), NET_MS, "the server's close"),
    null,
    "the client reads end of stream",
  );
  assert.equal(await client.recv(), null, "and again");
});

Deno.test("C11: any free port works, 0 picks one and reports it, and bad ports fail before any socket is made", async (t) => {
  await t.step("port 0 picks a free port and reports it", async () => {
    const ports: number[] = [];
    await using server = serve({
      hostname: "127.0.0.1",
      port: 0,
      onListen: (a) => ports.push(a.port),
    }, () => {});
    assert.deepEqual(ports, [server.addr.port]);
  });
  await t.step("a given free port is used as given", async () => {
    // A port that 127.0.0.2 holds is kept from every other program's
    // ephemeral ports, and is free on 127.0.0.1: nothing is released and
    // bound again. (Only a program binding 127.0.0.1 at that very port by
    // number could take it: then EADDRINUSE, and another try.)
    for (let tries = 1;; tries++) {
      using holder = Deno.listen({ hostname: "127.0.0.2", port: 0 });
      const { port } = holder.addr;
      let server: mod.Server;
      try {
        server = serve({ hostname: "127.0.0.1", port }, () => {});
      } catch (error) {
        if (error instanceof AddressInUseError && tries < 5) continue;
        throw error;
      }
      await using _ = server;
      assert.equal(server.addr.port, port);
      return;
    }
  });
  await t.step("out of range or not a number: EINVAL naming the value", () => {
    for (const port of [-1, 65536, 1.5, NaN, "80", "abc", null]) {
      const error = throwsWith(
        () => serve({ hostname: "127.0.0.1", port: port as number }, () => {}),
        "EINVAL",
      );
      assert.match(error.message, /invalid port/);
    }
    assert.equal(mod.parsePort("12345"), 12345);
    for (const text of ["", "-1", "65536", "abc", "1e3", " 80"]) {
      throwsWith(() => mod.parsePort(text), "EINVAL");
    }
  });
});

Deno.test("C12: binding '' listens on every IPv4 interface: reached at 127.0.0.2 too", async () => {
  await using server = serve(
    { hostname: "", port: 0 },
    (conn) => conn.sendAll(GREETING),
  );
  assert.equal(server.addr.address, "0.0.0.0");
  for (const hostname of ["127.0.0.1", "127.0.0.2"]) {
    await using conn = await within(
      connect(hostname, server.addr.port),
      NET_MS,
      `the connect to ${hostname}`,
    );
    assert.equal(await recvText(conn, "the greeting"), GREETING);
  }
});

Deno.test("C13: binding 127.0.0.1 hears only this machine's calls to 127.0.0.1: 127.0.0.2 is refused", async () => {
  await using server = serve(
    { hostname: "127.0.0.1", port: 0 },
    (conn) => conn.sendAll(GREETING),
  );
  await rejectsWith(
    within(connect("127.0.0.2", server.addr.port), NET_MS, "the refusal"),
    ConnectionRefusedError,
    "ECONNREFUSED",
  );
  await using conn = await within(
    connect("127.0.0.1", server.addr.port),
    NET_MS,
    "the connect",
  );
  assert.equal(await recvText(conn, "the greeting"), GREETING);
});

/** How soon the 7th client of C14 (b) must be refused; see there. */
const REFUSAL_MS = 240;

const kernelBacklogTestable = await (async () => {
  if (Deno.build.os !== "linux") return "the kernel's behaviour is Linux's";
  const abort = await Deno.readTextFile(
    "/proc/sys/net/ipv4/tcp_abort_on_overflow",
  )
    .catch(() => "0");
  return abort.trim() === "0" ? true : "tcp_abort_on_overflow is set";
})();

Deno.test("C14: listen(5) — the tutorial says 5 wait and the 6th is refused", async (t) => {
  await t.step({
    name:
      "(a) wrong on Linux: the kernel queues backlog + 1, and leaves the next unanswered, not refused",
    ignore: kernelBacklogTestable !== true,
    fn: async () => {
      const listener = Deno.listen({
        hostname: "127.0.0.1",
        port: 0,
        tcpBacklog: 5,
      });
      const conns: Deno.TcpConn[] = [];
      try {
        // Nothing accepts: the kernel completes backlog + 1 handshakes alone.
        for (let i = 0; i < 6; i++) {
          conns.push(
            await within(rawConnect(listener.addr.port), NET_MS, "a connect"),
          );
        }
        // The next SYN is dropped: no refusal, the client just waits.
        const error = await rejectsWith(
          within(
            connect("127.0.0.1", listener.addr.port, { timeout: 300 }),
            NET_MS,
            "the connect's timeout",
          ),
          TimeoutError,
          "ETIMEDOUT",
        );
        assert.doesNotMatch(error.message, /refused/);
      } finally {
        for (const conn of conns) conn.close();
        listener.close();
      }
    },
  });
  if (kernelBacklogTestable !== true) {
    console.log(`  (skipped (a): ${kernelBacklogTestable})`);
  }

  await t.step(
    "(b) the module's accept loop keeps the tutorial's rule exactly and at once",
    async () => {
      const { opened, open } = gate();
      const accepted: Promise<void>[] = [];
      const acceptedOne: (() => void)[] = [];
      for (let i = 0; i < 7; i++) {
        const { promise, resolve } = Promise.withResolvers<void>();
        accepted.push(promise);
        acceptedOne.push(resolve);
      }
      const servedOrder: number[] = [];
      const refused: number[] = [];
      const handler = handlerErrors();
      await using server = serve({
        hostname: "127.0.0.1",
        backlog: 5,
        concurrency: 1,
        refusalMessage: "busy\n",
        onError: handler.onError,
        onAccept: (info) => acceptedOne[info.id - 1]?.(),
        onRefused: (info) => refused.push(info.id),
      }, async (conn, info) => {
        servedOrder.push(info.id);
        if (info.id === 1) await opened;
        await conn.sendAll(`${GREETING} #${info.id}`);
      });

      // One at a time, so that arrival order is the order of the list.
      const clients: mod.Connection[] = [];
      try {
        for (let i = 0; i < 6; i++) {
          clients.push(
            await within(
              connect("127.0.0.1", server.addr.port),
              NET_MS,
              `client ${i + 1}'s connect`,
            ),
          );
          await within(accepted[i], NET_MS, `client ${i + 1}'s accept`);
        }
        assert.deepEqual(server.stats, {
          accepted: 6,
          served: 0,
          failed: 0,
          refused: 0,
          waiting: 5,
          active: 1,
        });

        const started = performance.now();
        await using seventh = await within(
          connect("127.0.0.1", server.addr.port),
          NET_MS,
          "the 7th connect",
        );
        assert.equal(await recvText(seventh, "the refusal"), "busy\n");
        const waited = performance.now() - started;
        // At once: the README says p99 ≤ 60 ms; on an idle machine this
        // takes 1–3 ms. 240 ms (4× the README's p99) fails a refusal that
        // waits for anything (a timer, the handler, a retry) yet leaves a
        // loaded 2-core machine room.
        assert.ok(
          waited < REFUSAL_MS,
          `refused at once, not after a timeout (${waited} ms)`,
        );
        assert.deepEqual(refused, [7]);

        open();
        const greetings = await within(
          Promise.all(clients.map((c) => c.recvAll())),
          NET_MS,
          "the six greetings",
        );
        assert.deepEqual(
          greetings.map((g) => decoder.decode(g)),
          [1, 2, 3, 4, 5, 6].map((id) => `${GREETING} #${id}`),
        );
        assert.deepEqual(
          servedOrder,
          [1, 2, 3, 4, 5, 6],
          "served in arrival order",
        );
        handler.assertNone(server);
      } finally {
        for (const client of clients) client.close();
      }
    },
  );
});

Deno.test("C15: the server greets every connection and closes it, until interrupted or an error occurs", async (t) => {
  const greet = (conn: mod.Connection) => conn.sendAll(GREETING);

  await t.step("N sequential clients each get the full greeting", async () => {
    await using server = serve({ hostname: "127.0.0.1" }, greet);
    for (let i = 0; i < 50; i++) {
      await using conn = await within(
        connect("127.0.0.1", server.addr.port),
        NET_MS,
        `client ${i + 1}'s connect`,
      );
      assert.equal(await recvText(conn, `greeting ${i + 1}`), GREETING);
    }
    assert.equal(server.stats.served, 50);
  });

  await t.step("N concurrent clients each get the full greeting", async () => {
    await using server = serve({ hostname: "127.0.0.1", backlog: 100 }, greet);
    const replies = await within(
      Promise.all(
        Array.from({ length: 50 }, async () => {
          await using conn = await connect("127.0.0.1", server.addr.port);
          return decoder.decode(await conn.recvAll());
        }),
      ),
      NET_MS,
      "50 concurrent greetings",
    );
    assert.deepEqual(replies, Array(50).fill(GREETING));
    assert.equal(server.stats.served, 50);
  });

  await t.step(
    "an abort stops accepting, lets handlers in flight finish, and closes the listener",
    async () => {
      const controller = new AbortController();
      const { opened, open } = gate();
      const { promise: busy, resolve: isBusy } = Promise.withResolvers<void>();
      const handler = handlerErrors();
      const server = serve(
        {
          hostname: "127.0.0.1",
          signal: controller.signal,
          onError: handler.onError,
        },
        async (conn) => {
          isBusy();
          await opened;
          await conn.sendAll(GREETING);
        },
      );
      const { port } = server.addr;
      await using client = await within(
        connect("127.0.0.1", port),
        NET_MS,
        "the connect",
      );
      await within(busy, NET_MS, "the handler to start");
      controller.abort();
      // While the handler drains, the runtime still holds the listening
      // socket a moment (its pending accept keeps it), so the kernel
      // completes the handshake and resets the connection as the socket
      // goes: the connect fails with ECONNRESET (300 of 300 runs, idle
      // and with both cores busy). Never served.
      await rejectsWith(
        within(connect("127.0.0.1", port), NET_MS, "the late connect"),
        mod.ConnectionResetError,
        "ECONNRESET",
      );
      open();
      assert.equal(
        await recvText(client, "the greeting in flight"),
        GREETING,
        "the handler in flight finished",
      );
      await within(server.finished, NET_MS, "the server to finish");
      assert.deepEqual(server.stats, {
        accepted: 1,
        served: 1,
        failed: 0,
        refused: 0,
        waiting: 0,
        active: 0,
      });
      handler.assertNone(server);
      // Once finished, the listener is gone: a connect is refused.
      await rejectsWith(
        within(connect("127.0.0.1", port), NET_MS, "the refusal"),
        ConnectionRefusedError,
        "ECONNREFUSED",
      );
    },
  );

  await t.step(
    "a handler that throws closes its own connection, and the server keeps serving",
    async () => {
      const errors: unknown[] = [];
      let calls = 0;
      await using server = serve({
        hostname: "127.0.0.1",
        onError: (error) => errors.push(error),
      }, async (conn) => {
        if (++calls === 1) throw new Error("handler bug");
        await conn.sendAll(GREETING);
      });
      const first = await within(
        rawConnect(server.addr.port),
        NET_MS,
        "the first connect",
      );
      try {
        assert.equal(
          await readText(first, NET_MS),
          "",
          "the failed handler's connection is closed",
        );
      } finally {
        first.close();
      }
      await using second = await within(
        connect("127.0.0.1", server.addr.port),
        NET_MS,
        "the second connect",
      );
      assert.equal(await recvText(second, "the greeting"), GREETING);
      assert.equal(server.stats.failed, 1);
      assert.equal(server.stats.served, 1);
      assert.equal(errors.length, 1);
      assert.equal((errors[0] as Error).message, "handler bug");
    },
  );
  await t.step(
    "Ctrl-C (SIGINT) stops the CLI server gracefully: exit 0 and a summary",
    async () => {
      await using server = startCli([
        "serve",
        "--hostname",
        "127.0.0.1",
        "--port",
        "0",
      ]);
      const [, port] = await server.waitForLine(/^socket binded to (\d+)$/);
      await using conn = await within(
        connect("127.0.0.1", Number(port)),
        NET_MS,
        "the connect",
      );
      assert.equal(await recvText(conn, "the greeting"), GREETING);
      server.kill("SIGINT");
      const exit = await server.exit();
      assert.equal(exit.code, 0, server.report());
      assert.match(server.stdout, /accepted 1\b.*served 1\b/);
    },
  );
});

Deno.test("C16: the example server and the CLI print the tutorial's four kinds of line", async (t) => {
  const expectLines = async (server: ReturnType<typeof startCli>) => {
    const [, port] = await server.waitForLine(/^socket binded to (\d+)$/);
    await server.waitForLine(/^socket is listening$/);
    await using conn = await within(
      connect("127.0.0.1", Number(port)),
      NET_MS,
      "the connect",
    );
    const [line] = await server.waitForLine(/^Got connection from .*$/);
    assert.equal(
      line,
      `Got connection from ('127.0.0.1', ${conn.localAddr.port})`,
    );
    assert.equal(await recvText(conn, "the greeting"), GREETING);
    assert.deepEqual(server.stdout.split("\n").slice(0, 3), [
      "Socket successfully created",
      `socket binded to ${port}`,
      "socket is listening",
    ]);
    server.kill("SIGINT");
    assert.equal((await server.exit()).code, 0, server.report());
  };
  await t.step("examples/server.ts", async () => {
    await using server = startDeno(["-N"], "examples/server.ts", ["0"]);
    await expectLines(server);
  });
  await t.step("cli.ts serve", async () => {
    await using server = startCli(["serve", "--port", "0"]);
    await expectLines(server);
  });
});

Deno.test("C17: telnet localhost: ::1 is refused, 127.0.0.1 connects, and the greeting arrives", async (t) => {
  await using server = serve(
    { hostname: "127.0.0.1", backlog: 5 },
    (conn) => conn.sendAll(GREETING),
  );
  const port = String(server.addr.port);

  await t.step("the module's telnet prints the tutorial's trace", async () => {
    const result = await runCli(["telnet", "localhost", port]);
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stdout, GREETING);
    assert.equal(
      result.stderr,
      [
        "Trying ::1...",
        "telnet: connect to address ::1: Connection refused",
        "Trying 127.0.0.1...",
        "Connected to localhost.",
        "Escape character is '^]'.",
        "Connection closed by foreign host.",
        "",
      ].join("\n"),
    );
  });

  await t.step({
    name: "a real telnet gets the greeting from the module's server",
    ignore: missing("telnet", "C17: real telnet"),
    fn: async () => {
      // stdin stays open: at end of input, telnet quits at once.
      await using telnet = start("telnet", ["127.0.0.1", port], {
        stdin: true,
      });
      await telnet.waitForLine(new RegExp(GREETING));
      assert.match(telnet.stdout, /Connected to 127\.0\.0\.1\./);
      await telnet.closeStdin();
      await telnet.exit();
    },
  });
});

Deno.test("C18: recv(n) returns at most n bytes, and an empty result (null) at end of stream, without blocking", async (t) => {
  await using server = serve(
    { hostname: "127.0.0.1" },
    (conn) => conn.sendAll(GREETING),
  );

  await t.step("recv(n) returns at most n bytes", async () => {
    await using conn = await within(
      connect("127.0.0.1", server.addr.port),
      NET_MS,
      "the connect",
    );
    const parts: string[] = [];
    let chunk: Uint8Array | null;
    while (
      (chunk = await within(conn.recv(5), NET_MS, "recv(5)")) !== null
    ) {
      assert.ok(chunk.length >= 1 && chunk.length <= 5);
      parts.push(decoder.decode(chunk));
    }
    assert.equal(parts.join(""), GREETING);
    // Never blocks past end of stream: a recv after it returns at once.
    // Idle, it takes well under 1 ms; 100 ms leaves a loaded machine room
    // and still fails a recv that waits on anything (a timer, the peer).
    for (let i = 0; i < 3; i++) {
      const started = performance.now();
      assert.equal(
        await within(conn.recv(1024), NET_MS, "a recv past the end"),
        null,
        "still end of stream",
      );
      const waited = performance.now() - started;
      assert.ok(waited < 100, `a recv past the end took ${waited} ms`);
    }
  });

  await t.step(
    "recv(1024) as the tutorial's client: the whole short greeting",
    async () => {
      await using conn = await within(
        connect("127.0.0.1", server.addr.port),
        NET_MS,
        "the connect",
      );
      // The tutorial's one recv(1024) gets the greeting because one small
      // write usually arrives as one segment; TCP does not promise it, so
      // read until the greeting's length, and check each read's bound.
      const parts: Uint8Array[] = [];
      let got = 0;
      while (got < GREETING.length) {
        const chunk = await within(conn.recv(1024), NET_MS, "recv(1024)");
        assert.ok(chunk !== null, `end of stream after ${got} bytes`);
        assert.ok(chunk.length <= 1024);
        parts.push(chunk);
        got += chunk.length;
      }
      assert.equal(parts.map((p) => decoder.decode(p)).join(""), GREETING);
      assert.equal(
        await within(conn.recv(1024), NET_MS, "the end of stream"),
        null,
      );
    },
  );

  await t.step(
    "a bad size is EINVAL; using a closed connection is EBADF",
    async () => {
      const conn = await within(
        connect("127.0.0.1", server.addr.port),
        NET_MS,
        "the connect",
      );
      await rejectsWith(conn.recv(0), InvalidArgumentError, "EINVAL");
      conn.close();
      await rejectsWith(conn.recv(), mod.SocketClosedError, "EBADF");
      await rejectsWith(conn.sendAll("x"), mod.SocketClosedError, "EBADF");
    },
  );
  await t.step("the example client prints the greeting", async () => {
    const result = await run(Deno.execPath(), [
      "run",
      "-N",
      "examples/client.ts",
      String(server.addr.port),
    ]);
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stdout, `${GREETING}\n`);
  });
});

Deno.test("C19: text is sent as UTF-8, so the tutorial's Python 3 slip (send of a str) has no counterpart", async () => {
  const text = "감사합니다 — Thank you for connecting ✓";
  await using server = serve(
    { hostname: "127.0.0.1" },
    (conn) => conn.sendAll(text),
  );
  await using conn = await within(
    connect("127.0.0.1", server.addr.port),
    NET_MS,
    "the connect",
  );
  const bytes = await within(conn.recvAll(), NET_MS, "the text");
  assert.deepEqual(bytes, new TextEncoder().encode(text));
  assert.equal(decoder.decode(bytes), text);
});

Deno.test("C19: run the server, then the client, as two processes, as a reader would", async () => {
  await using server = startDeno(["-N"], "examples/server.ts", ["0"]);
  const [, port] = await server.waitForLine(/^socket binded to (\d+)$/);
  const client = await run(Deno.execPath(), [
    "run",
    "-N",
    "examples/client.ts",
    port,
  ]);
  assert.equal(client.code, 0, client.stderr);
  assert.equal(client.stdout, `${GREETING}\n`);
  await server.waitForLine(/^Got connection from \('127\.0\.0\.1', \d+\)$/);
  server.kill("SIGINT");
  assert.equal((await server.exit()).code, 0, server.report());
});
