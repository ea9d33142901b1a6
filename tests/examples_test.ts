/**
 * Each example run as a process, with the permissions its header names,
 * against local servers; its output checked.
 */

import assert from "node:assert/strict";
import { connect, serve } from "../mod.ts";
import { DENO, ROOT, run, startDeno } from "./fixtures/process.ts";

const GREETING = "Thank you for connecting";
const decoder = new TextDecoder();

function example(name: string): string {
  return `${ROOT}examples/${name}`;
}

/** A free port that nothing listens on (as free as it gets on loopback). */
async function closedPort(): Promise<number> {
  const server = serve({ hostname: "127.0.0.1" }, () => {});
  const port = server.addr.port;
  await server.shutdown();
  return port;
}

Deno.test("examples/gethostbyname.ts: the IPv4 of a host", async (t) => {
  await t.step("localhost, with no permission", async () => {
    const result = await run(DENO, ["run", example("gethostbyname.ts")]);
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stdout, "127.0.0.1\n");
  });
  await t.step("an IPv4 literal passes through", async () => {
    const result = await run(DENO, [
      "run",
      example("gethostbyname.ts"),
      "127.0.0.9",
    ]);
    assert.equal(result.stdout, "127.0.0.9\n");
  });
  await t.step("an IPv6-only host: the gaierror line, exit 1", async () => {
    const result = await run(DENO, ["run", example("gethostbyname.ts"), "::1"]);
    assert.equal(result.code, 1);
    assert.match(
      result.stdout,
      /^there was an error resolving the host: ::1 \(/,
    );
  });
});

Deno.test("examples/connect_to_google.ts: offline, against a local server", async (t) => {
  await using server = serve({ hostname: "127.0.0.1" }, () => {});
  const port = String(server.addr.port);
  await t.step("by name and port", async () => {
    const result = await run(DENO, [
      "run",
      "-N",
      example("connect_to_google.ts"),
      "localhost",
      port,
    ]);
    assert.equal(result.code, 0, result.stderr);
    // gethostbyname gives the IPv4 address, as in the tutorial.
    assert.match(
      result.stdout,
      new RegExp(
        `^Socket successfully created\nthe socket has successfully connected to localhost on port ${port} \\(127\\.0\\.0\\.1\\)\n$`,
      ),
    );
  });
  await t.step("by IP", async () => {
    const result = await run(DENO, [
      "run",
      "-N",
      example("connect_to_google.ts"),
      "127.0.0.1",
      port,
    ]);
    assert.equal(
      result.stdout,
      `Socket successfully created\nthe socket has successfully connected to 127.0.0.1 on port ${port} (127.0.0.1)\n`,
    );
  });
  await t.step("refused: the reason, exit 1", async () => {
    const free = String(await closedPort());
    const result = await run(DENO, [
      "run",
      "-N",
      example("connect_to_google.ts"),
      "127.0.0.1",
      free,
    ]);
    assert.equal(result.code, 1);
    assert.match(result.stdout, /Connection refused\n$/);
  });
});

Deno.test("examples/server.ts and client.ts: the tutorial's last step", async (t) => {
  await using server = startDeno(["-N"], example("server.ts"), ["0"]);
  const [, port] = await server.waitForLine(/^socket binded to (\d+)$/);
  await server.waitForLine(/^socket is listening$/);

  await t.step("client.ts prints the greeting", async () => {
    const result = await run(DENO, ["run", "-N", example("client.ts"), port]);
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stdout, `${GREETING}\n`);
    await server.waitForLines(
      /^Got connection from \('127\.0\.0\.1', \d+\)$/,
      1,
    );
  });
  await t.step("bound to '': reached at 127.0.0.2 too", async () => {
    await using conn = await connect("127.0.0.2", Number(port));
    assert.equal(decoder.decode(await conn.recvAll()), GREETING);
    // The kernel picks 127.0.0.1 as the source address.
    await server.waitForLines(/^Got connection from/, 2);
  });
  await t.step("--port N works as well as the bare port", async () => {
    const result = await run(DENO, [
      "run",
      "-N",
      example("client.ts"),
      "--port",
      port,
    ]);
    assert.equal(result.stdout, `${GREETING}\n`);
  });
  await t.step("SIGINT stops it, exit 0, the four kinds of line", async () => {
    await server.waitForLines(/^Got connection from/, 3);
    server.kill("SIGINT");
    const exit = await server.exit();
    assert.equal(exit.code, 0, server.report());
    const lines = server.stdout.trim().split("\n");
    assert.deepEqual(lines.slice(0, 3), [
      "Socket successfully created",
      `socket binded to ${port}`,
      "socket is listening",
    ]);
    assert.equal(lines.length, 6);
    for (const line of lines.slice(3)) {
      assert.match(line, /^Got connection from \('127\.0\.0\.[12]', \d+\)$/);
    }
  });
});

Deno.test("examples/client.ts: nobody listening is an error", async () => {
  const result = await run(DENO, [
    "run",
    "-N",
    example("client.ts"),
    String(await closedPort()),
  ]);
  assert.notEqual(result.code, 0);
  assert.match(result.stderr, /Connection refused/);
});

Deno.test("examples/echo_server.ts: every byte comes back", async () => {
  await using server = startDeno(["-N"], example("echo_server.ts"), ["0"]);
  const [, port] = await server.waitForLine(/^socket binded to (\d+)$/);
  const payload = new Uint8Array(1 << 20).map((_, i) => (i * 31) & 0xff);
  const clients = [0, 1, 2].map(async () => {
    await using conn = await connect("127.0.0.1", Number(port));
    const received = conn.recvAll();
    await conn.sendAll(payload);
    await conn.closeWrite();
    assert.deepEqual(await received, payload);
  });
  await Promise.all(clients);
  await server.waitForLines(/^Got connection from/, 3);
  server.kill("SIGINT");
  assert.equal((await server.exit()).code, 0, server.report());
});

Deno.test("examples/chat_server.ts: each line goes to the others", async () => {
  await using server = startDeno(["-N"], example("chat_server.ts"), ["0"]);
  const [, port] = await server.waitForLine(/^socket binded to (\d+)$/);
  await using alice = await connect("127.0.0.1", Number(port));
  await using bob = await connect("127.0.0.1", Number(port));
  await using carol = await connect("127.0.0.1", Number(port));
  // Each client is in the room once the server has printed its line.
  await server.waitForLines(/^Got connection from/, 3);
  // A line split across two sends is still one line.
  await alice.sendAll("hello ");
  await alice.sendAll("everyone\r\n");
  const from = `127.0.0.1:${alice.localAddr.port}`;
  const expected = `${from}: hello everyone\n`;
  for (const peer of [bob, carol]) {
    let text = "";
    while (text.length < expected.length) {
      const chunk = await peer.recv();
      assert.ok(chunk, "closed before the line arrived");
      text += decoder.decode(chunk);
    }
    assert.equal(text, expected);
  }
  // Nothing came back to the sender: its next read sees the server close.
  await alice.closeWrite();
  await bob.closeWrite();
  await carol.closeWrite();
  assert.equal(await alice.recv(), null);
  server.kill("SIGINT");
  assert.equal((await server.exit()).code, 0, server.report());
});

Deno.test("examples/http_get.ts: GET over sendAll, recvAll", async () => {
  const requests: string[] = [];
  const controller = new AbortController();
  const listening = Promise.withResolvers<number>();
  const http = Deno.serve({
    hostname: "127.0.0.1",
    port: 0,
    signal: controller.signal,
    onListen: ({ port }) => listening.resolve(port),
  }, (request) => {
    requests.push(`${request.method} ${new URL(request.url).pathname}`);
    return new Response("hello from Deno.serve\n", {
      headers: { "content-type": "text/plain" },
    });
  });
  try {
    const port = await listening.promise;
    const result = await run(DENO, [
      "run",
      "-N",
      example("http_get.ts"),
      `http://127.0.0.1:${port}/greeting?x=1`,
    ]);
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, /^HTTP\/1\.[01] 200 OK\r\n/);
    assert.match(result.stdout, /\r\n\r\nhello from Deno\.serve\n$/);
    assert.deepEqual(requests, ["GET /greeting"]);
  } finally {
    controller.abort();
    await http.finished;
  }
});

Deno.test("examples/demo.ts: server and client as two processes", async () => {
  const result = await run(DENO, ["run", "-A", example("demo.ts")], {
    timeout: 30_000,
  });
  assert.equal(result.code, 0, result.stderr);
  const lines = result.stdout.trim().split("\n");
  const server = lines.filter((l) => l.startsWith("[server] "));
  const client = lines.filter((l) => l.startsWith("[client] "));
  assert.equal(server[0], "[server] Socket successfully created");
  assert.match(server[1], /^\[server\] socket binded to \d+$/);
  assert.equal(server[2], "[server] socket is listening");
  assert.match(
    server[3],
    /^\[server\] Got connection from \('127\.0\.0\.1', \d+\)$/,
  );
  assert.deepEqual(client, [`[client] ${GREETING}`]);
  assert.match(result.stdout, /\[demo\] the server exited with code 0\n$/);
});
