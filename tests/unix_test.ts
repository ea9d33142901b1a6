/**
 * Unix domain sockets: the module's `connect({ path })` and
 * `serve({ path })`, a crashed server's stale socket file, ENOENT against
 * ECONNREFUSED, the CLI's `--unix`, and socat at the other end.
 *
 * @module
 */

import assert from "node:assert/strict";
import {
  AddressInUseError,
  connect,
  ConnectionRefusedError,
  InvalidArgumentError,
  NotFoundError,
  removeStaleSocket,
  serve,
} from "../mod.ts";
import { within } from "./fixtures/deadline.ts";
import { gate } from "./fixtures/net.ts";
import { CLI, DENO, missing, run, start } from "./fixtures/process.ts";

const decoder = new TextDecoder();

/** A fresh directory for one test's sockets, removed at the end. */
async function tempDir(): Promise<AsyncDisposable & { path: string }> {
  const path = await Deno.makeTempDir({ prefix: "unix_test" });
  return {
    path,
    [Symbol.asyncDispose]: () => Deno.remove(path, { recursive: true }),
  };
}

/**
 * A socket file nobody listens on, as a crashed server leaves it: python3
 * binds it and exits without unlinking (Deno's listener removes its file
 * on close, so it cannot make one).
 */
async function staleSocket(path: string): Promise<void> {
  const result = await run("python3", [
    "-c",
    "import socket,sys; s=socket.socket(socket.AF_UNIX); s.bind(sys.argv[1])",
    path,
  ]);
  assert.equal(result.code, 0, result.stderr);
  assert.ok((await Deno.lstat(path)).isSocket);
}

Deno.test("serve({ path }) and connect({ path }): the greeting over a Unix socket", async () => {
  await using dir = await tempDir();
  const path = `${dir.path}/greeter.sock`;
  const seen: string[] = [];
  const server = serve({
    path,
    onConnection: (info) => seen.push(`${info.id} ${info.localAddr.path}`),
  }, (conn) => conn.sendAll("Thank you for connecting"));
  assert.deepEqual(server.addr, { transport: "unix", path });
  {
    await using conn = await within(connect({ path }), 5000, "connect");
    assert.deepEqual(conn.remoteAddr, { transport: "unix", path });
    assert.deepEqual(conn.localAddr, { transport: "unix", path: "" });
    const reply = await within(conn.recvAll(), 5000, "the greeting");
    assert.equal(decoder.decode(reply), "Thank you for connecting");
    // Both ways and a half-close work as over TCP.
  }
  await within(server.shutdown(), 5000, "shutdown");
  assert.deepEqual(seen, [`1 ${path}`]);
  assert.equal(server.stats.served, 1);
  await assert.rejects(Deno.lstat(path), Deno.errors.NotFound);
});

Deno.test("serve({ path }): past the backlog a client is refused with refusalMessage over a Unix socket", async () => {
  await using dir = await tempDir();
  const path = `${dir.path}/busy.sock`;
  const entered = gate();
  const held = gate();
  const server = serve({
    path,
    backlog: 0,
    idleTimeout: 5_000,
    refusalMessage: "server busy, try again later\n",
    onConnection: entered.open,
  }, () => held.opened);
  try {
    await using _running = await within(connect({ path }), 5000, "connect");
    await within(entered.opened, 5000, "the running handler");
    await using refused = await within(connect({ path }), 5000, "connect");
    const reply = await within(refused.recvAll(), 5000, "the refusal");
    assert.equal(decoder.decode(reply), "server busy, try again later\n");
  } finally {
    held.open();
    await within(server.shutdown(), 5000, "shutdown");
  }
  assert.equal(server.stats.refused, 1);
});

Deno.test("connect({ path }): echo both ways, closeWrite, idle timeout", async () => {
  await using dir = await tempDir();
  const path = `${dir.path}/echo.sock`;
  await using _server = serve({ path }, async (conn) => {
    await conn.sendAll(await conn.recvAll());
  });
  await using conn = await within(
    connect({ path }, { idleTimeout: 5000 }),
    5000,
    "connect",
  );
  await conn.sendAll("ping over AF_UNIX");
  await conn.closeWrite();
  const echo = await within(conn.recvAll(), 5000, "the echo");
  assert.equal(decoder.decode(echo), "ping over AF_UNIX");
});

Deno.test("connect({ path }): ENOENT for no file, ECONNREFUSED for a file nobody listens on", async (t) => {
  await using dir = await tempDir();
  await t.step("no file: NotFoundError", async () => {
    const path = `${dir.path}/none.sock`;
    const error = await within(
      connect({ path }).then(() => undefined, (e) => e),
      5000,
      "the failure",
    );
    assert.ok(error instanceof NotFoundError, String(error));
    assert.equal(error.code, "ENOENT");
    assert.equal(error.op, "connect");
    assert.equal(error.host, path);
    assert.equal(error.port, undefined);
    assert.equal(
      error.message,
      `connect to ${path}: No such file or directory`,
    );
  });
  await t.step({
    name: "a stale socket file: ConnectionRefusedError",
    ignore: missing("python3", "stale socket"),
    fn: async () => {
      const path = `${dir.path}/stale.sock`;
      await staleSocket(path);
      const error = await within(
        connect({ path }).then(() => undefined, (e) => e),
        5000,
        "the failure",
      );
      assert.ok(error instanceof ConnectionRefusedError, String(error));
      assert.equal(error.message, `connect to ${path}: Connection refused`);
    },
  });
  await t.step("a regular file: ConnectionRefusedError", async () => {
    const path = `${dir.path}/regular`;
    await Deno.writeTextFile(path, "not a socket");
    await assert.rejects(connect({ path }), ConnectionRefusedError);
  });
  await t.step("bad paths: EINVAL before any socket", async () => {
    await assert.rejects(connect({ path: "" }), InvalidArgumentError);
    await assert.rejects(
      connect({ path: `/tmp/${"x".repeat(120)}` }),
      /past the 107 a Unix socket path holds/,
    );
    assert.throws(
      () => serve({ path: "a\0b" }, () => {}),
      InvalidArgumentError,
    );
    assert.throws(
      // @ts-expect-error: port does not go with path
      () => serve({ path: `${dir.path}/x.sock`, port: 1 }, () => {}),
      /a Unix socket's path replaces hostname, port/,
    );
  });
  await t.step("tls with a path: EINVAL (Deno's TLS is TCP only)", async () => {
    const tls = { cert: "x", key: "y" };
    assert.throws(
      // @ts-expect-error: tls does not go with path
      () => serve({ path: `${dir.path}/tls.sock`, tls }, () => {}),
      /TLS is served over TCP only/,
    );
    await assert.rejects(
      // @ts-expect-error: tls does not go with path
      connect({ path: `${dir.path}/tls.sock` }, { tls: true }),
      /TLS runs over TCP only/,
    );
  });
});

Deno.test({
  name:
    "serve({ path }): a stale file is refused; removeStaleSocket() clears it, never a live one or a non-socket",
  ignore: missing("python3", "stale socket"),
  fn: async (t) => {
    await using dir = await tempDir();
    const path = `${dir.path}/app.sock`;
    await t.step("nothing there: false", async () => {
      assert.equal(await removeStaleSocket(path), false);
    });
    await t.step(
      "a crashed server's file: serve refuses, the helper removes it",
      async () => {
        await staleSocket(path);
        assert.throws(() => serve({ path }, () => {}), AddressInUseError);
        assert.equal(
          await within(removeStaleSocket(path), 5000, "probe"),
          true,
        );
        await using server = serve({ path }, (conn) => conn.sendAll("new"));
        await using conn = await within(connect({ path }), 5000, "connect");
        assert.equal(decoder.decode(await conn.recvAll()), "new");
        assert.equal(server.stats.accepted, 1);
      },
    );
    await t.step("a live server: EADDRINUSE, its file stays", async () => {
      await using server = serve({ path }, () => {});
      await assert.rejects(removeStaleSocket(path), AddressInUseError);
      assert.throws(() => serve({ path }, () => {}), AddressInUseError);
      assert.ok((await Deno.lstat(path)).isSocket);
      await server.shutdown();
      await assert.rejects(Deno.lstat(path), Deno.errors.NotFound);
    });
    await t.step("not a socket: EADDRINUSE, left alone", async () => {
      await Deno.writeTextFile(path, "data");
      await assert.rejects(removeStaleSocket(path), /not a socket/);
      assert.throws(() => serve({ path }, () => {}), AddressInUseError);
      assert.equal(await Deno.readTextFile(path), "data");
    });
  },
});

Deno.test("Unix sockets without permission: one error naming the flags", async () => {
  await using dir = await tempDir();
  const path = `${dir.path}/p.sock`;
  const code = `
    import { connect, serve } from ${
    JSON.stringify(new URL("../mod.ts", import.meta.url).href)
  };
    for (const f of [() => serve({ path: Deno.args[0] }, () => {}), () => connect({ path: Deno.args[0] })]) {
      try { await f(); } catch (e) { console.log(e.code, e.constructor.name, e.message); }
    }`;
  const script = `${dir.path}/probe.ts`;
  await Deno.writeTextFile(script, code);
  const result = await run(DENO, [
    "run",
    `--allow-read=${script}`,
    "-N",
    script,
    path,
  ]);
  const lines = result.stdout.trim().split("\n");
  assert.equal(lines.length, 2, result.stdout + result.stderr);
  for (const line of lines) {
    assert.match(line, /^EACCES PermissionDeniedError /);
    assert.ok(line.includes(`--allow-write=${path}`), line);
    assert.ok(line.includes(`--allow-net=unix:${path}`), line);
  }
});

Deno.test("CLI --unix: serve, client, connect, telnet; the stale file", async (t) => {
  await using dir = await tempDir();
  const path = `${dir.path}/cli.sock`;
  const flags = ["run", "-R", "-W", "-N", CLI];
  // A crashed server's file first: serve removes it and says so.
  const stale = !missing("python3", "CLI stale socket");
  if (stale) await staleSocket(path);
  await using server = start(DENO, [...flags, "serve", "--unix", path]);
  await server.waitForLine(/^socket is listening$/);
  assert.match(server.stdout, new RegExp(`^socket binded to ${path}$`, "m"));
  if (stale) {
    await server.waitForStderr(/removed .*: a stale socket nobody listened on/);
  }
  await t.step("client --unix", async () => {
    const r = await run(DENO, [...flags, "client", "--unix", path]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, "Thank you for connecting\n");
    await server.waitForLine(/^Got connection on .* \(client #1\)$/);
  });
  await t.step("connect --unix", async () => {
    const r = await run(DENO, [...flags, "connect", "--unix", path, "--json"]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, new RegExp(`"event":"connected","path":"${path}"`));
  });
  await t.step("telnet --unix", async () => {
    const r = await run(DENO, [...flags, "telnet", "--unix", path]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, "Thank you for connecting");
    assert.match(
      r.stderr,
      new RegExp(`^Trying ${path}\\.\\.\\.\\nConnected to ${path}\\.`),
    );
  });
  await t.step(
    "a second serve on the live path: exit 1, the file stays",
    async () => {
      const r = await run(DENO, [...flags, "serve", "--unix", path]);
      assert.equal(r.code, 1);
      assert.match(
        r.stderr,
        /Address already in use \(a server answers there\)/,
      );
      assert.ok((await Deno.lstat(path)).isSocket);
    },
  );
  server.kill("SIGINT");
  assert.equal((await server.exit()).code, 0);
  await assert.rejects(Deno.lstat(path), Deno.errors.NotFound);
  await t.step(
    "ENOENT and refused, exit 1; --unix with HOST is a usage error",
    async () => {
      const none = await run(DENO, [
        ...flags,
        "connect",
        "--unix",
        `${dir.path}/no.sock`,
      ]);
      assert.equal(none.code, 1);
      assert.match(none.stderr, /No such file or directory/);
      const usage = await run(DENO, [
        ...flags,
        "telnet",
        "--unix",
        path,
        "localhost",
      ]);
      assert.equal(usage.code, 2);
      const both = await run(DENO, [
        ...flags,
        "client",
        "--unix",
        path,
        "-p",
        "5",
      ]);
      assert.equal(both.code, 2);
      // Deno's TLS is TCP only: --tls with --unix is refused at once.
      for (const command of ["connect", "telnet", "client", "serve"]) {
        const tls = await run(DENO, [
          ...flags,
          command,
          "--unix",
          path,
          "--tls",
        ]);
        assert.equal(tls.code, 2, command);
        assert.match(tls.stderr, /--tls runs over TCP only/, command);
      }
    },
  );
});

Deno.test({
  name: "interop: socat UNIX-LISTEN and UNIX-CONNECT",
  ignore: missing("socat", "Unix socket interop"),
  fn: async (t) => {
    await using dir = await tempDir();
    await t.step("connect() to socat UNIX-LISTEN", async () => {
      const path = `${dir.path}/socat-listen.sock`;
      await using socat = start("socat", [
        "-d",
        "-d",
        `UNIX-LISTEN:${path}`,
        "SYSTEM:echo from-socat; cat",
      ]);
      await socat.waitForStderr(/listening on/);
      await using conn = await within(connect({ path }), 5000, "connect");
      await conn.sendAll("from-deno\n");
      await conn.closeWrite();
      const got = decoder.decode(await within(conn.recvAll(), 5000, "reply"));
      assert.equal(got, "from-socat\nfrom-deno\n");
      conn.close();
      await socat.exit();
    });
    await t.step("socat UNIX-CONNECT to serve()", async () => {
      const path = `${dir.path}/serve.sock`;
      await using _server = serve({ path }, async (conn) => {
        const got = await conn.recvAll();
        await conn.sendAll(`got ${got.length} bytes`);
      });
      const r = await run("socat", ["-", `UNIX-CONNECT:${path}`], {
        input: "0123456789",
        timeout: 10_000,
      });
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout, "got 10 bytes");
    });
  },
});
