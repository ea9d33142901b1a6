/**
 * The CLI against programs no one here wrote: the tutorial's own Python
 * server and client (fixed for Python 3 only where Python 3 requires it),
 * telnet, nc (netcat-openbsd) and socat. A test whose peer is missing is
 * skipped with the reason printed.
 */

import assert from "node:assert/strict";
import { sameBytes } from "./fixtures/net.ts";
import {
  missing,
  type Proc,
  run,
  runCli,
  start,
  startCli,
} from "./fixtures/process.ts";

const GREETING = "Thank you for connecting";

/**
 * The tutorial's server. Python 3 changes: `send(b"...")` (a `str` is a
 * TypeError there), and, for the test, the port from argv, printed as bound
 * (so that 0 works), on 127.0.0.1 only.
 */
const PYTHON_SERVER = `
import socket
import sys

s = socket.socket()
print("Socket successfully created")

port = int(sys.argv[1])

s.bind(('127.0.0.1', port))
print("socket binded to %s" %(s.getsockname()[1]))

s.listen(5)
print("socket is listening")

while True:
    c, addr = s.accept()
    print("Got connection from", addr)
    c.send(b"Thank you for connecting")
    c.close()
`;

/** The tutorial's client, with the port from argv. */
const PYTHON_CLIENT = `
import socket
import sys

s = socket.socket()

port = int(sys.argv[1])

s.connect(('127.0.0.1', port))

print(s.recv(1024))
s.close()
`;

/** Starts the CLI's server on 127.0.0.1, a free port; returns the port. */
async function startServe(extra: string[] = []): Promise<[Proc, string]> {
  const proc = startCli([
    "serve",
    "--hostname",
    "127.0.0.1",
    "--port",
    "0",
    ...extra,
  ]);
  const [, port] = await proc.waitForLine(/^socket binded to (\d+)$/);
  return [proc, port];
}

/** Starts `nc -l` on 127.0.0.1, a free port; returns the port. */
async function startNcListener(
  flags: string,
  options: { stdin?: boolean; binary?: boolean } = {},
): Promise<[Proc, string]> {
  const proc = start("nc", [`-lv${flags}`, "127.0.0.1", "0"], options);
  await proc.waitForStderr(/Listening on \S+ \d+/);
  const port = proc.stderr.match(/Listening on \S+ (\d+)/)?.[1];
  assert.ok(port, proc.report());
  return [proc, port];
}

async function stopServe(proc: Proc, served: number): Promise<void> {
  await proc.waitForLines(/^Got connection from/, served);
  proc.kill("SIGINT");
  const exit = await proc.exit();
  assert.equal(exit.code, 0, proc.report());
  assert.match(
    proc.stdout,
    new RegExp(`server stopped: accepted ${served}, served ${served}, `),
  );
}

/** 10 MiB that no shift or repeat of a shorter pattern matches. */
function payload(seed: number): Uint8Array {
  const bytes = new Uint8Array(10 * 1024 * 1024);
  let x = seed;
  for (let i = 0; i < bytes.length; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    bytes[i] = x >>> 24;
  }
  return bytes;
}

const noPython = missing("python3", "interop: Python's tutorial scripts");
const noTelnet = missing("telnet", "interop: telnet");
const noNc = missing("nc", "interop: nc");
const noSocat = missing("socat", "interop: socat");

Deno.test({
  name: "interop: the CLI's server and the tutorial's Python client",
  ignore: noPython,
  async fn() {
    const [server, port] = await startServe();
    await using _ = server;
    const result = await run("python3", ["-c", PYTHON_CLIENT, port]);
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stdout, `b'${GREETING}'\n`);
    await server.waitForLine(/^Got connection from \('127\.0\.0\.1', \d+\)$/);
    await stopServe(server, 1);
  },
});

Deno.test({
  name: "interop: the CLI's server and a real telnet (C17's transcript)",
  ignore: noTelnet,
  async fn() {
    const [server, port] = await startServe();
    await using _ = server;
    // telnet leaves when the server closes; its stdin must stay open until
    // then, or it may leave first.
    await using telnet = start("telnet", ["localhost", port], { stdin: true });
    const exit = await telnet.exit();
    assert.equal(exit.code, 0, telnet.report());
    // Which addresses it tries, and in what order, is the system's resolver's
    // choice (gai.conf, /etc/hosts); the connection and greeting are not.
    assert.match(telnet.stdout, /^Trying (::1|127\.0\.0\.1)\.\.\.\n/);
    assert.match(
      telnet.stdout,
      new RegExp(
        `Connected to localhost\\.\nEscape character is '\\^]'\\.\n${GREETING}`,
      ),
    );
    assert.match(
      telnet.stdout + telnet.stderr,
      /Connection closed by foreign host\.\n/,
    );
    await stopServe(server, 1);
  },
});

Deno.test({
  name: "interop: the CLI's server and nc, socat",
  ignore: noNc || noSocat,
  async fn() {
    const [server, port] = await startServe();
    await using _ = server;
    const nc = await run("nc", ["-d", "127.0.0.1", port]);
    assert.equal(nc.code, 0, nc.stderr);
    assert.equal(nc.stdout, GREETING);
    const socat = await run("socat", ["-u", `TCP:127.0.0.1:${port}`, "STDOUT"]);
    assert.equal(socat.code, 0, socat.stderr);
    assert.equal(socat.stdout, GREETING);
    await stopServe(server, 2);
  },
});

Deno.test({
  name: "interop: the CLI's server with --busy, and nc waiting in the backlog",
  ignore: noNc,
  async fn() {
    // A busy time far longer than the test, so that nothing races it: the
    // first nc is held, the next waits in the backlog, the third is refused
    // at once. Two Ctrl-Cs then end it without the greetings (the order in
    // which waiting clients are served is server_test's and C14's).
    const [server, port] = await startServe([
      "--busy",
      "60000",
      "--backlog",
      "1",
    ]);
    await using _ = server;
    await using first = start("nc", ["-d", "127.0.0.1", port]);
    await server.waitForLine(/^Got connection from/);
    await using second = start("nc", ["-d", "127.0.0.1", port]);
    await using third = start("nc", ["-d", "127.0.0.1", port]);
    await server.waitForLine(/^Refused connection from .*: backlog full$/);
    // The refused nc has its answer and has ended while the others wait.
    const refused = await Promise.race([
      second.exit().then(() => second.stdout),
      third.exit().then(() => third.stdout),
    ]);
    assert.equal(refused, "server busy, try again later\n");
    server.kill("SIGINT");
    await server.waitForLine(/^stopping: 2 connections to finish/);
    server.kill("SIGINT");
    assert.equal((await server.exit()).code, 0, server.report());
    assert.match(
      server.stdout,
      /accepted 3, served 0, failed 2, refused 1 \(2 skipped\)\n$/,
    );
    // The two that were held read end of stream, without a greeting.
    const outputs = await Promise.all(
      [first, second, third].map(async (p) => (await p.exit(), p.stdout)),
    );
    assert.deepEqual(outputs.sort(), [
      "",
      "",
      "server busy, try again later\n",
    ]);
  },
});

Deno.test({
  name:
    "interop: the CLI's client and telnet against the tutorial's Python server",
  ignore: noPython,
  async fn(t) {
    await using python = start("python3", ["-u", "-c", PYTHON_SERVER, "0"]);
    const [, port] = await python.waitForLine(/^socket binded to (\d+)$/);
    await python.waitForLine(/^socket is listening$/);
    await t.step("client", async () => {
      const result = await runCli(["client", "--port", port]);
      assert.equal(result.code, 0, result.stderr);
      assert.equal(result.stdout, `${GREETING}\n`);
    });
    await t.step("telnet localhost: the tutorial's trace", async () => {
      const result = await runCli(["telnet", "localhost", port]);
      assert.equal(result.code, 0, result.stderr);
      assert.equal(result.stdout, GREETING);
      assert.equal(
        result.stderr,
        "Trying ::1...\ntelnet: connect to address ::1: Connection refused\n" +
          "Trying 127.0.0.1...\nConnected to localhost.\n" +
          "Escape character is '^]'.\nConnection closed by foreign host.\n",
      );
    });
    await t.step("connect", async () => {
      const result = await runCli(["connect", "localhost", port]);
      assert.equal(result.code, 0, result.stderr);
      assert.match(
        result.stdout,
        new RegExp(`on port ${port} \\(127\\.0\\.0\\.1\\)\n$`),
      );
    });
    await python.waitForLines(
      /^Got connection from \('127\.0\.0\.1', \d+\)$/,
      3,
    );
  },
});

Deno.test({
  name: "interop: the CLI's client and telnet against nc -l",
  ignore: noNc,
  async fn(t) {
    await t.step("client receives what nc sends", async () => {
      const [nc, port] = await startNcListener("N", { stdin: true });
      await using _ = nc;
      await nc.write("hello from nc\n");
      await nc.closeStdin();
      const result = await runCli(["client", "--port", port, "--raw"]);
      assert.equal(result.code, 0, result.stderr);
      assert.equal(result.stdout, "hello from nc\n");
      await nc.exit();
    });
    await t.step("telnet: a conversation, both ways", async () => {
      const [nc, port] = await startNcListener("N", { stdin: true });
      await using _ = nc;
      await using telnet = startCli(["telnet", "127.0.0.1", port], {
        stdin: true,
      });
      await nc.waitForStderr(/Connection received/);
      await telnet.write("ping\n");
      await nc.waitForLine(/^ping$/);
      await nc.write("pong\n");
      await telnet.waitForLine(/^pong$/);
      await nc.closeStdin(); // nc -N: shuts its sending side; we see the end
      const exit = await telnet.exit();
      assert.equal(exit.code, 0, telnet.report());
      assert.match(telnet.stderr, /Connection closed by foreign host\.\n$/);
      await telnet.closeStdin();
      await nc.exit();
    });
  },
});

Deno.test({
  name: "interop: 10 MiB through the CLI's telnet and nc, both ways",
  ignore: noNc,
  async fn(t) {
    await t.step("telnet's stdin to nc's stdout", async () => {
      const data = payload(1);
      // -d: nc reads only the network, and leaves at its end.
      const [nc, port] = await startNcListener("d", { binary: true });
      await using _ = nc;
      const result = await runCli(["telnet", "127.0.0.1", port], {
        input: data,
        binary: true,
        timeout: 30_000,
      });
      assert.equal(result.code, 0, result.stderr);
      assert.equal(result.stdoutBytes.length, 0);
      await nc.exit();
      sameBytes(nc.stdoutBytes, data);
    });
    await t.step("nc's stdin to telnet's stdout", async () => {
      const data = payload(2);
      const [nc, port] = await startNcListener("N", { stdin: true });
      await using _ = nc;
      await using telnet = startCli(["telnet", "127.0.0.1", port], {
        stdin: true,
        binary: true,
      });
      await nc.waitForStderr(/Connection received/);
      await nc.write(data);
      await nc.closeStdin();
      const exit = await telnet.exit(30_000);
      assert.equal(exit.code, 0, telnet.stderr);
      sameBytes(telnet.stdoutBytes, data);
      await telnet.closeStdin();
      await nc.exit();
    });
  },
});
