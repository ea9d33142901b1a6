/**
 * The executable specification: the tutorial's claims C1–C19, in order, on
 * real loopback sockets. Where the tutorial is wrong on a real system, the
 * test name says so and the steps pin down the truth.
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
import { startDnsmasq } from "./fixtures/dnsmasq.ts";
import {
  gate,
  pattern,
  rawConnect,
  readText,
  releasedPort,
} from "./fixtures/net.ts";
import { rejectsWith } from "./fixtures/assertions.ts";

const GREETING = "Thank you for connecting";
const decoder = new TextDecoder();

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
  await using server = serve({ hostname: "127.0.0.1" }, async (conn) => {
    const question = await conn.recv(1024);
    assert.equal(decoder.decode(question!), "ping");
    await conn.sendAll("pong");
  });
  assert.ok(server.addr.port > 0, "an ephemeral port was chosen");
  await using client = await connect("127.0.0.1", server.addr.port);
  await client.sendAll("ping");
  assert.equal(decoder.decode(await client.recvAll()), "pong");
});

Deno.test("C2: everything the tutorial does is imported from mod.ts alone, and closing leaks nothing", async (t) => {
  await t.step("the public API is reachable from mod.ts", () => {
    for (
      const name of [
        "resolve",
        "gethostbyname",
        "connect",
        "serve",
        "Connection",
        "SocketError",
        "ResolveError",
      ] as const
    ) {
      assert.equal(typeof mod[name], "function", name);
    }
  });
  await t.step("a listener and a connection are made and closed", async () => {
    const server = serve({ hostname: "127.0.0.1" }, () => {});
    const client = await connect("127.0.0.1", server.addr.port);
    client.close();
    client.close(); // a second close is harmless
    await server.shutdown();
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
      const { stdout } = await new Deno.Command(Deno.execPath(), {
        args: ["run", "--no-prompt", "--allow-read", script],
        stdout: "piped",
        stderr: "inherit",
      }).output();
      assert.equal(
        decoder.decode(stdout).trim(),
        `${PermissionDeniedError.name} EACCES`,
      );
    } finally {
      await Deno.remove(script);
    }
  });

  await t.step(
    "connection refused: ECONNREFUSED, naming host and port",
    async () => {
      const port = releasedPort();
      const error = await rejectsWith(
        connect("127.0.0.1", port),
        ConnectionRefusedError,
        "ECONNREFUSED",
      );
      assert.equal(
        error.message,
        `connect to 127.0.0.1 port ${port}: Connection refused`,
      );
      assert.ok(error.cause instanceof Deno.errors.ConnectionRefused);
    },
  );

  await t.step("timeout: ETIMEDOUT", async () => {
    await using server = serve(
      { hostname: "127.0.0.1" },
      async (conn, info) => {
        // Silent until the client gives up.
        await conn.recv().catch(() => {});
        assert.ok(info.id > 0);
      },
    );
    await using client = await connect("127.0.0.1", server.addr.port, {
      idleTimeout: 50,
    });
    await rejectsWith(client.recv(), TimeoutError, "ETIMEDOUT");
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
    const { stdout, stderr } = await new Deno.Command("setpriv", {
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
    }).output();
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

  await t.step("…and against dnsmasq, where it is installed", async () => {
    const dnsmasq = await startDnsmasq({ "masq.example.test": ["127.0.0.11"] });
    if ("skipped" in dnsmasq) {
      console.log(`  (skipped: ${dnsmasq.skipped})`);
      return;
    }
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

  await t.step("server failure: ESERVFAIL", async () => {
    const error = await rejectsWith(
      resolve("broken.test", options),
      ResolveError,
      "ESERVFAIL",
    );
    assert.match(error.message, /broken\.test/);
  });

  // Every ETIMEDOUT is a TimeoutError, a DNS timeout included: its op is
  // "resolve", and its message is the same gaierror line.
  await t.step(
    "no answer: ETIMEDOUT (a TimeoutError, op resolve), within the timeout",
    async () => {
      const started = performance.now();
      const error = await rejectsWith(
        resolve("silent.test", { ...options, timeout: 200 }),
        TimeoutError,
        "ETIMEDOUT",
      );
      assert.ok(performance.now() - started < 2000);
      assert.equal(error.op, "resolve");
      assert.equal(error.host, "silent.test");
      assert.match(
        error.message,
        /^there was an error resolving the host: silent\.test \(/,
      );
    },
  );
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
    await using conn = await connect("127.0.0.1", port);
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
      await using conn = await connect("localhost", port, {
        onAttempt: (e) => trace.push(`${e.state} ${e.address}`),
      });
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
      await using server = serve({ hostname: "127.0.0.1" }, async (conn) => {
        await opened; // not reading yet, so the buffers fill up
        const received = await conn.recvAll({ maxBytes: size });
        assert.equal(received.length, size);
      });
      await using client = await connect("127.0.0.1", server.addr.port);
      const written = await client.send(payload);
      assert.ok(
        written > 0 && written < size,
        `send wrote ${written} of ${size}`,
      );
      open();
      await client.sendAll(payload.subarray(written));
      await client.closeWrite();
      assert.equal(await client.recv(), null);
    },
  );

  await t.step("client to server, the server reading slowly", async () => {
    const { promise: received, resolve: done } = Promise.withResolvers<
      Uint8Array
    >();
    await using server = serve({ hostname: "127.0.0.1" }, async (conn) => {
      done(await slowRead(conn, size));
    });
    await using client = await connect("127.0.0.1", server.addr.port);
    await client.sendAll(payload);
    await client.closeWrite();
    assert.deepEqual(await received, payload);
  });

  await t.step("server to client, the client reading slowly", async () => {
    await using server = serve(
      { hostname: "127.0.0.1" },
      (conn) => conn.sendAll(payload),
    );
    await using client = await connect("127.0.0.1", server.addr.port);
    assert.deepEqual(await slowRead(client, size), payload);
  });
});

/** Reads in 4 KiB steps, yielding to the event loop now and then. */
async function slowRead(
  conn: mod.Connection,
  expected: number,
): Promise<Uint8Array> {
  const out = new Uint8Array(expected);
  let offset = 0;
  let reads = 0;
  while (true) {
    const chunk = await conn.recv(4096);
    if (chunk === null) break;
    assert.ok(chunk.length <= 4096);
    out.set(chunk, offset);
    offset += chunk.length;
    if (++reads % 64 === 0) await new Promise((r) => setTimeout(r, 0));
  }
  assert.equal(offset, expected);
  return out;
}

Deno.test("C8: bind ties the server to an address and port, and a taken port fails with EADDRINUSE", async () => {
  await using server = serve({ hostname: "127.0.0.1", port: 0 }, () => {});
  assert.equal(server.addr.address, "127.0.0.1");
  assert.equal(server.addr.family, 4);
  assert.ok(server.addr.port > 0);
  const error = throwsWith(
    () => serve({ hostname: "127.0.0.1", port: server.addr.port }, () => {}),
    "EADDRINUSE",
  );
  assert.ok(error instanceof AddressInUseError);
});

Deno.test("C9: before listen a connect is refused; once listening it succeeds", async () => {
  for (let tries = 0;; tries++) {
    const port = releasedPort();
    await rejectsWith(
      connect("127.0.0.1", port),
      ConnectionRefusedError,
      "ECONNREFUSED",
    );
    let server: mod.Server;
    try {
      server = serve(
        { hostname: "127.0.0.1", port },
        (conn) => conn.sendAll(GREETING),
      );
    } catch (error) {
      // Another program took the port in between: try another.
      if (error instanceof AddressInUseError && tries < 5) continue;
      throw error;
    }
    await using _ = server;
    await using conn = await connect("127.0.0.1", port);
    assert.equal(decoder.decode(await conn.recvAll()), GREETING);
    return;
  }
});

Deno.test("C10: accept gives the handler the client's address; close ends the connection", async () => {
  const { promise: seen, resolve: see } = Promise.withResolvers<
    mod.NetAddress
  >();
  await using server = serve(
    { hostname: "127.0.0.1" },
    (_conn, info) => see(info.remoteAddr),
  );
  await using client = await connect("127.0.0.1", server.addr.port);
  assert.deepEqual(await seen, client.localAddr);
  assert.equal(await client.recv(), null, "the client reads end of stream");
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
    const port = releasedPort();
    await using server = serve({ hostname: "127.0.0.1", port }, () => {});
    assert.equal(server.addr.port, port);
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
    await using conn = await connect(hostname, server.addr.port);
    assert.equal(decoder.decode(await conn.recvAll()), GREETING);
  }
});

Deno.test("C13: binding 127.0.0.1 hears only this machine's calls to 127.0.0.1: 127.0.0.2 is refused", async () => {
  await using server = serve(
    { hostname: "127.0.0.1", port: 0 },
    (conn) => conn.sendAll(GREETING),
  );
  await rejectsWith(
    connect("127.0.0.2", server.addr.port),
    ConnectionRefusedError,
    "ECONNREFUSED",
  );
  await using conn = await connect("127.0.0.1", server.addr.port);
  assert.equal(decoder.decode(await conn.recvAll()), GREETING);
});

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
          conns.push(await rawConnect(listener.addr.port));
        }
        // The next SYN is dropped: no refusal, the client just waits.
        const error = await rejectsWith(
          connect("127.0.0.1", listener.addr.port, { timeout: 300 }),
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
      await using server = serve({
        hostname: "127.0.0.1",
        backlog: 5,
        concurrency: 1,
        refusalMessage: "busy\n",
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
          clients.push(await connect("127.0.0.1", server.addr.port));
          await accepted[i];
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
        await using seventh = await connect("127.0.0.1", server.addr.port);
        assert.equal(decoder.decode(await seventh.recvAll()), "busy\n");
        const waited = performance.now() - started;
        assert.ok(
          waited < 1000,
          `refused at once, not after a timeout (${waited} ms)`,
        );
        assert.deepEqual(refused, [7]);

        open();
        const greetings = await Promise.all(clients.map((c) => c.recvAll()));
        assert.deepEqual(
          greetings.map((g) => decoder.decode(g)),
          [1, 2, 3, 4, 5, 6].map((id) => `${GREETING} #${id}`),
        );
        assert.deepEqual(
          servedOrder,
          [1, 2, 3, 4, 5, 6],
          "served in arrival order",
        );
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
      await using conn = await connect("127.0.0.1", server.addr.port);
      assert.equal(decoder.decode(await conn.recvAll()), GREETING);
    }
    assert.equal(server.stats.served, 50);
  });

  await t.step("N concurrent clients each get the full greeting", async () => {
    await using server = serve({ hostname: "127.0.0.1", backlog: 100 }, greet);
    const replies = await Promise.all(
      Array.from({ length: 50 }, async () => {
        await using conn = await connect("127.0.0.1", server.addr.port);
        return decoder.decode(await conn.recvAll());
      }),
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
      const server = serve(
        { hostname: "127.0.0.1", signal: controller.signal },
        async (conn) => {
          isBusy();
          await opened;
          await conn.sendAll(GREETING);
        },
      );
      await using client = await connect("127.0.0.1", server.addr.port);
      await busy;
      controller.abort();
      // The listener's socket closes as the runtime lets go of it: a client
      // now is refused, or reset by the closing listener; never served.
      const late = await connect("127.0.0.1", server.addr.port)
        .then((conn) => conn.recvAll().finally(() => conn.close()))
        .catch((error: SocketError) => error.code);
      assert.ok(
        late === "ECONNREFUSED" || late === "ECONNRESET" ||
          (late instanceof Uint8Array && late.length === 0),
        `a client after the abort got ${late}`,
      );
      open();
      assert.equal(
        decoder.decode(await client.recvAll()),
        GREETING,
        "the handler in flight finished",
      );
      await server.finished;
      assert.equal(server.stats.served, 1);
      assert.equal(
        server.stats.accepted,
        1,
        "nothing accepted after the abort",
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
      const first = await rawConnect(server.addr.port);
      assert.equal(
        await readText(first),
        "",
        "the failed handler's connection is closed",
      );
      first.close();
      await using second = await connect("127.0.0.1", server.addr.port);
      assert.equal(decoder.decode(await second.recvAll()), GREETING);
      assert.equal(server.stats.failed, 1);
      assert.equal(server.stats.served, 1);
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
      await using conn = await connect("127.0.0.1", Number(port));
      assert.equal(decoder.decode(await conn.recvAll()), GREETING);
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
    await using conn = await connect("127.0.0.1", Number(port));
    const [line] = await server.waitForLine(/^Got connection from .*$/);
    assert.equal(
      line,
      `Got connection from ('127.0.0.1', ${conn.localAddr.port})`,
    );
    assert.equal(decoder.decode(await conn.recvAll()), GREETING);
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
    await using conn = await connect("127.0.0.1", server.addr.port);
    const parts: string[] = [];
    let chunk: Uint8Array | null;
    while ((chunk = await conn.recv(5)) !== null) {
      assert.ok(chunk.length >= 1 && chunk.length <= 5);
      parts.push(decoder.decode(chunk));
    }
    assert.equal(parts.join(""), GREETING);
    assert.equal(await conn.recv(1024), null, "still end of stream, at once");
  });

  await t.step(
    "recv(1024) as the tutorial's client: the whole short greeting",
    async () => {
      await using conn = await connect("127.0.0.1", server.addr.port);
      // One small write arrives as one segment on loopback.
      assert.equal(decoder.decode((await conn.recv(1024))!), GREETING);
    },
  );

  await t.step(
    "a bad size is EINVAL; using a closed connection is EBADF",
    async () => {
      const conn = await connect("127.0.0.1", server.addr.port);
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
  await using conn = await connect("127.0.0.1", server.addr.port);
  const bytes = await conn.recvAll();
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
