/**
 * The command line as a user runs it: `deno run -N cli.ts <command>`, each
 * command and flag, its output and exit code, and bad input.
 */

import assert from "node:assert/strict";
import { within } from "./fixtures/deadline.ts";
import { serve } from "../mod.ts";
import { startDnsServer } from "./fixtures/dns_server.ts";
import { CLI, DENO, missing, run, runCli, start } from "./fixtures/process.ts";

const GREETING = "Thank you for connecting";

/** A server in this process that greets and closes, as the tutorial's. */
function greeter(message = GREETING) {
  return serve(
    { hostname: "127.0.0.1" },
    (conn) => conn.sendAll(message),
  );
}

function oneLine(text: string): string {
  const lines = text.split("\n").filter((l) => l !== "");
  assert.equal(lines.length, 1, `expected one line, got:\n${text}`);
  return lines[0];
}

Deno.test("cli: --help for the program and every command", async (t) => {
  const top = await runCli(["--help"]);
  assert.equal(top.code, 0);
  assert.match(top.stdout, /^Usage: deno run -N cli\.ts COMMAND/);
  for (const command of ["resolve", "connect", "serve", "client", "telnet"]) {
    await t.step(command, async () => {
      const result = await runCli([command, "--help"]);
      assert.equal(result.code, 0, result.stderr);
      assert.match(
        result.stdout,
        new RegExp(`^Usage: deno run -N cli\\.ts ${command}`),
      );
      assert.equal(result.stderr, "");
    });
  }
  await t.step("serve --help states the CLI's idle timeout", async () => {
    const result = await runCli(["serve", "--help"]);
    assert.match(result.stdout, /default 30000/);
  });
});

Deno.test("cli: no command or an unknown one is a usage error", async () => {
  for (const args of [[], ["frobnicate"]]) {
    const result = await runCli(args);
    assert.equal(result.code, 2);
    oneLine(result.stderr);
    assert.equal(result.stdout, "");
  }
});

Deno.test("cli resolve: addresses, families, JSON and DNS", async (t) => {
  await t.step("localhost: ::1 then 127.0.0.1, no permission", async () => {
    const result = await runCli(["resolve", "localhost"]);
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stdout, "::1\n127.0.0.1\n");
  });
  await t.step("-4 and -6", async () => {
    assert.equal(
      (await runCli(["resolve", "localhost", "-4"])).stdout,
      "127.0.0.1\n",
    );
    assert.equal(
      (await runCli(["resolve", "localhost", "-6"])).stdout,
      "::1\n",
    );
  });
  await t.step("--json: one object per line", async () => {
    const result = await runCli(["resolve", "localhost", "--json"]);
    assert.equal(
      result.stdout,
      '{"address":"::1","family":6}\n{"address":"127.0.0.1","family":4}\n',
    );
  });
  await t.step("IP literals pass through", async () => {
    assert.equal(
      (await runCli(["resolve", "127.0.0.1"])).stdout,
      "127.0.0.1\n",
    );
    assert.equal((await runCli(["resolve", "[::1]"])).stdout, "::1\n");
  });
  await t.step(
    "--nameserver: a name from a DNS server on loopback",
    async () => {
      await using dns = await startDnsServer({
        records: { "www.example.test": { A: ["127.0.0.7"], AAAA: ["::7"] } },
      });
      const server = `${dns.hostname}:${dns.port}`;
      const both = await runCli([
        "resolve",
        "www.example.test",
        "--nameserver",
        server,
      ]);
      assert.equal(both.code, 0, both.stderr);
      assert.equal(both.stdout, "::7\n127.0.0.7\n");
      const v4 = await runCli([
        "resolve",
        "www.example.test",
        "-4",
        "--nameserver",
        server,
        "--json",
      ]);
      assert.equal(v4.stdout, '{"address":"127.0.0.7","family":4}\n');
    },
  );
  await t.step("unresolvable: the gaierror line, exit 1", async () => {
    await using dns = await startDnsServer({ records: {} });
    // With the hosts file readable, as the README runs it: without, the
    // line says it was not read (see "point at the fix" below).
    const result = await run(DENO, [
      "run",
      "-N",
      "--allow-read=/etc/hosts",
      CLI,
      "resolve",
      "nowhere.example.test",
      "--nameserver",
      `${dns.hostname}:${dns.port}`,
    ]);
    assert.equal(result.code, 1);
    assert.equal(result.stdout, "");
    assert.equal(
      result.stderr,
      "there was an error resolving the host: nowhere.example.test (no such name)\n",
    );
  });
  await t.step("server failure and silence: exit 1, one line", async () => {
    await using dns = await startDnsServer({
      faults: { "broken.test": "servfail", "quiet.test": "silent" },
    });
    const at = `${dns.hostname}:${dns.port}`;
    const broken = await runCli(["resolve", "broken.test", "--nameserver", at]);
    assert.equal(broken.code, 1);
    assert.match(
      oneLine(broken.stderr),
      /^there was an error resolving the host: broken\.test \(/,
    );
    const quiet = await runCli([
      "resolve",
      "quiet.test",
      "--nameserver",
      at,
      "--timeout",
      "300",
    ]);
    assert.equal(quiet.code, 1);
    assert.match(
      oneLine(quiet.stderr),
      /^there was an error resolving the host: quiet\.test \(/,
    );
  });
  // Any name of the machine's hosts file other than localhost will do.
  const entry = Deno.readTextFileSync("/etc/hosts").split("\n")
    .map((line) => line.replace(/#.*/, "").trim().split(/\s+/))
    .find(([address, ...names]) =>
      /^[\d.]+$/.test(address ?? "") &&
      names.some((n) => n !== "" && !/localhost/i.test(n))
    );
  if (entry === undefined) {
    console.log(
      "skipping the hosts file step: /etc/hosts names only localhost",
    );
  }
  await t.step({
    name: "a name in /etc/hosts, with --allow-read=/etc/hosts",
    ignore: entry === undefined,
    fn: async () => {
      const [address, ...names] = entry ?? [];
      const name = names.find((n) => !/localhost/i.test(n)) ?? "";
      const result = await run(DENO, [
        "run",
        "-N",
        "--allow-read=/etc/hosts",
        CLI,
        "resolve",
        name,
        "-4",
      ]);
      assert.equal(result.code, 0, result.stderr);
      assert.match(
        result.stdout,
        new RegExp(`^${address.replaceAll(".", "\\.")}\n`),
      );
    },
  });
  await t.step("-4 and -6 together is a usage error", async () => {
    const result = await runCli(["resolve", "localhost", "-4", "-6"]);
    assert.equal(result.code, 2);
    oneLine(result.stderr);
  });
});

Deno.test("cli connect: the tutorial's lines, --send, --timeout", async (t) => {
  await using server = greeter();
  const port = String(server.addr.port);
  await t.step("by IP", async () => {
    const result = await runCli(["connect", "127.0.0.1", port]);
    assert.equal(result.code, 0, result.stderr);
    assert.equal(
      result.stdout,
      "Socket successfully created\n" +
        `the socket has successfully connected to 127.0.0.1 on port ${port} (127.0.0.1)\n`,
    );
  });
  await t.step(
    "by name: localhost is ::1 (refused) then 127.0.0.1",
    async () => {
      const result = await runCli(["connect", "localhost", port]);
      assert.equal(result.code, 0, result.stderr);
      assert.match(
        result.stdout,
        new RegExp(
          `connected to localhost on port ${port} \\(127\\.0\\.0\\.1\\)\n$`,
        ),
      );
    },
  );
  // In a network namespace of its own nothing listens on port 80, so the
  // outcome is one: refused, on port 80 (the machine's port 80 may be
  // anything, and binding it would break "port 0 always").
  const noNetns = missing("unshare", "cli connect: PORT defaults to 80") ||
    missing("ip", "cli connect: PORT defaults to 80");
  await t.step({
    name: "PORT defaults to 80 (in an empty network namespace: refused)",
    ignore: noNetns,
    fn: async () => {
      const result = await run("unshare", [
        "-rn",
        "sh",
        "-c",
        'ip link set lo up && exec "$0" run -N "$1" connect 127.0.0.1',
        DENO,
        CLI,
      ]);
      assert.equal(result.code, 1, result.stderr);
      assert.equal(
        oneLine(result.stderr),
        "connect to 127.0.0.1 port 80: Connection refused",
      );
    },
  });
  await t.step("--json", async () => {
    const result = await runCli(["connect", "127.0.0.1", port, "--json"]);
    const events = result.stdout.trim().split("\n").map((l) => JSON.parse(l));
    assert.deepEqual(events, [
      { event: "created" },
      {
        event: "connected",
        host: "127.0.0.1",
        port: Number(port),
        address: "127.0.0.1",
        family: 4,
      },
    ]);
  });
  await t.step("--send with escapes, and the reply until close", async () => {
    const got = Promise.withResolvers<string>();
    await using echo = serve({ hostname: "127.0.0.1" }, async (conn) => {
      const request = await within(conn.recv(), 10_000, "conn.recv");
      got.resolve(new TextDecoder().decode(request ?? new Uint8Array()));
      await within(
        conn.sendAll("HTTP/1.0 200 OK\r\n\r\nhello"),
        10_000,
        "conn.sendAll",
      );
    });
    const result = await runCli([
      "connect",
      "127.0.0.1",
      String(echo.addr.port),
      "--send",
      "GET / HTTP/1.0\\r\\n\\tx\\\\\\r\\n\\r\\n",
    ]);
    assert.equal(result.code, 0, result.stderr);
    assert.equal(
      await within(got.promise, 10_000, "got"),
      "GET / HTTP/1.0\r\n\tx\\\r\n\r\n",
    );
    assert.match(
      result.stdout,
      /connected to .*\nHTTP\/1\.0 200 OK\r\n\r\nhello$/,
    );
  });
  await t.step("--send --timeout: a peer that never closes", async () => {
    const release = Promise.withResolvers<void>();
    await using slow = serve({ hostname: "127.0.0.1" }, async (conn) => {
      await within(conn.sendAll("partial"), 10_000, "conn.sendAll");
      await within(release.promise, 10_000, "release");
    });
    const started = performance.now();
    const result = await runCli([
      "connect",
      "127.0.0.1",
      String(slow.addr.port),
      "--send",
      "x",
      "--timeout",
      "400",
    ]);
    release.resolve();
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, /\npartial$/);
    assert.ok(performance.now() - started >= 400);
  });
  await t.step(
    "refused: one line, exit 1; --debug adds the stack",
    async () => {
      const closed = serve({ hostname: "127.0.0.1" }, () => {});
      const freePort = String(closed.addr.port);
      await closed.shutdown();
      const result = await runCli(["connect", "127.0.0.1", freePort]);
      assert.equal(result.code, 1);
      assert.equal(
        oneLine(result.stderr),
        `connect to 127.0.0.1 port ${freePort}: Connection refused`,
      );
      const debug = await runCli(["connect", "127.0.0.1", freePort, "--debug"]);
      assert.equal(debug.code, 1);
      assert.match(debug.stderr, /\n\s+at /);
    },
  );
});

Deno.test("cli client: recv(bufsize), text or raw", async (t) => {
  await using server = greeter("Thank you for connecting ✓");
  const port = String(server.addr.port);
  await t.step("prints the greeting", async () => {
    const result = await runCli(["client", "--port", port]);
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stdout, "Thank you for connecting ✓\n");
  });
  await t.step("--bufsize 5 gets at most 5 bytes", async () => {
    const result = await runCli(["client", "--port", port, "--bufsize", "5"]);
    assert.equal(result.stdout, "Thank\n");
  });
  await t.step("--raw writes the bytes as they came", async () => {
    const result = await runCli([
      "client",
      "--hostname",
      "localhost",
      "--port",
      port,
      "--raw",
    ]);
    assert.deepEqual(
      result.stdoutBytes,
      new TextEncoder().encode("Thank you for connecting ✓"),
    );
  });
  await t.step("refused: exit 1", async () => {
    const closed = serve({ hostname: "127.0.0.1" }, () => {});
    const freePort = String(closed.addr.port);
    await closed.shutdown();
    const result = await runCli(["client", "--port", freePort]);
    assert.equal(result.code, 1);
    assert.match(oneLine(result.stderr), /Connection refused/);
  });
});

/** Bytes a hostile peer may send: terminal title, clear screen, DEL, C1 CSI. */
const HOSTILE = new Uint8Array([
  ...new TextEncoder().encode("\x1b]0;pwned\x07\x1b[2Jhi"),
  0x7f,
  0xc2,
  0x9b,
  0x21, // "!"
]);
/** HOSTILE as a terminal should show it (cat -v's notation). */
const HOSTILE_SHOWN = "^[]0;pwned^G^[[2Jhi^?M-^[!";

/** A server that reads the request (if any is expected), answers, closes. */
function answering(reply: Uint8Array | string, readFirst: boolean) {
  return serve({ hostname: "127.0.0.1", onError: () => {} }, async (conn) => {
    if (readFirst) await within(conn.recv(), 10_000, "conn.recv");
    await within(conn.sendAll(reply), 10_000, "conn.sendAll");
  });
}

/**
 * A Python peer that greets and then resets the connection while our big
 * --send is still being written: a small MSS and receive buffer make sure
 * the kernel cannot take all of it first. It waits for our first bytes, so
 * the reset comes mid-send every time.
 */
const RESETTING_PEER = `
import select, socket, struct
s = socket.socket()
s.setsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG, 536)
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 2048)
s.bind(("127.0.0.1", 0)); s.listen(1)
print(s.getsockname()[1], flush=True)
c, _ = s.accept()
select.select([c], [], [])
c.sendall(b"Thank you for connecting")
c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
c.close(); s.close()
`;

Deno.test(
  "cli connect --send: every byte received is printed, even when the peer resets",
  {
    ignore: missing("python3", "cli connect --send: a peer that resets"),
  },
  async () => {
    await using peer = start("python3", ["-c", RESETTING_PEER]);
    const [port] = await peer.waitForLine(/^\d+$/);
    // 120 KB: under the 128 KiB a single argument may have, far over what
    // the kernel buffers when the peer's MSS is 536.
    const result = await runCli([
      "connect",
      "127.0.0.1",
      port,
      "--send",
      "x".repeat(120_000),
    ]);
    assert.match(result.stdout, /\(127\.0\.0\.1\)\nThank you for connecting$/);
    const lines = result.stderr.trim().split("\n");
    assert.equal(lines.length, 1, result.stderr);
    // The kernel picks which side sees ECONNRESET and which EPIPE.
    assert.match(
      lines[0],
      /^127\.0\.0\.1 port \d+: sending failed \((Connection reset by peer|Broken pipe)\)(, receiving failed after 24 bytes \(Connection reset by peer\))?$/,
    );
    // The peer's reply arrived: exit 0, as nc, with the reset on stderr.
    assert.equal(result.code, 0);
    assert.equal((await peer.exit()).code, 0);
  },
);

Deno.test("cli client: a close without a byte is not an empty greeting", async (t) => {
  await t.step("closed at once: one line on stderr, exit 1", async () => {
    await using silent = serve({ hostname: "127.0.0.1" }, () => {});
    const result = await runCli(["client", "--port", String(silent.addr.port)]);
    assert.equal(result.code, 1);
    assert.equal(result.stdout, "");
    assert.equal(
      oneLine(result.stderr),
      `127.0.0.1 port ${silent.addr.port}: the server closed the connection ` +
        "without sending anything",
    );
  });
  await t.step("a busy refusal message is printed as it came", async () => {
    await using busy = answering("busy: try again later\n", false);
    const result = await runCli(["client", "--port", String(busy.addr.port)]);
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stdout, "busy: try again later\n\n");
  });
  await t.step("--timeout 0 means never, not at once", async () => {
    await using server = greeter();
    const result = await runCli([
      "client",
      "--port",
      String(server.addr.port),
      "--timeout",
      "0",
    ]);
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stdout, `${GREETING}\n`);
  });
});

Deno.test("cli connect --json: each data event has the exact bytes; the cut UTF-8 tail comes last", async () => {
  const bytes = new Uint8Array([
    0x61,
    0x62,
    0x63,
    0xff,
    0x00,
    0xfe,
    0xe2,
    0x82,
  ]);
  await using peer = answering(bytes, true);
  const result = await runCli([
    "connect",
    "127.0.0.1",
    String(peer.addr.port),
    "--send",
    "x",
    "--json",
  ]);
  assert.equal(result.code, 0, result.stderr);
  const events = result.stdout.trim().split("\n").map((l) => JSON.parse(l));
  const data = events.filter((e) => e.event === "data");
  const got = data.flatMap((e) =>
    Array.from(atob(e.base64), (c) => c.charCodeAt(0))
  );
  assert.deepEqual(new Uint8Array(got), bytes);
  assert.equal(data.map((e) => e.text).join(""), "abc\ufffd\u0000\ufffd\ufffd");
  // The incomplete character is in a final event of its own.
  assert.deepEqual(data.at(-1), { event: "data", text: "\ufffd", base64: "" });
  assert.deepEqual(events.at(-1), {
    event: "closed",
    bytes: 8,
    timedOut: false,
  });
  assert.ok(events.some((e) => e.event === "sent" && e.bytes === 1));
});

Deno.test("cli client and connect: a terminal gets control bytes escaped; pipes and --raw get them untouched", async (t) => {
  const withNewline = new Uint8Array([...HOSTILE, 0x0a]);
  await t.step("client to a pipe: the bytes untouched", async () => {
    await using peer = answering(HOSTILE, false);
    const result = await runCli(["client", "--port", String(peer.addr.port)]);
    assert.equal(result.code, 0, result.stderr);
    assert.deepEqual(result.stdoutBytes, withNewline);
  });
  await t.step("connect --send to a pipe: the bytes untouched", async () => {
    await using peer = answering(HOSTILE, true);
    const result = await runCli([
      "connect",
      "127.0.0.1",
      String(peer.addr.port),
      "--send",
      "x",
    ]);
    assert.equal(result.code, 0, result.stderr);
    const tail = result.stdoutBytes.subarray(-HOSTILE.length);
    assert.deepEqual(tail, HOSTILE);
  });
  const noScript = missing("script", "cli: control bytes on a terminal");
  // script(1) runs the command on a real pseudo-terminal.
  const onTerminal = async (args: string[]) => {
    await using proc = start("script", [
      "-qec",
      `${DENO} run -N ${CLI} ${args.join(" ")}`,
      "/dev/null",
    ], { stdin: true, binary: true });
    const exit = await proc.exit();
    assert.equal(exit.code, 0, proc.report());
    return proc.stdoutBytes;
  };
  const text = (bytes: Uint8Array) => new TextDecoder().decode(bytes);
  for (const command of ["client", "connect"]) {
    await t.step({
      name: `${command} on a terminal: shown as cat -v shows them`,
      ignore: noScript,
      fn: async () => {
        await using peer = answering(HOSTILE, command === "connect");
        const port = String(peer.addr.port);
        const out = await onTerminal(
          command === "client"
            ? ["client", "--port", port]
            : ["connect", "127.0.0.1", port, "--send", "x"],
        );
        assert.ok(
          !out.includes(0x1b),
          `ESC reached the terminal: ${text(out)}`,
        );
        assert.ok(!out.includes(0x07), "BEL reached the terminal");
        assert.ok(text(out).includes(HOSTILE_SHOWN), text(out));
      },
    });
  }
  await t.step({
    name: "client --raw on a terminal: the bytes as they came",
    ignore: noScript,
    fn: async () => {
      await using peer = answering(HOSTILE, false);
      const out = await onTerminal([
        "client",
        "--port",
        String(peer.addr.port),
        "--raw",
      ]);
      assert.ok(text(out).includes("\x1b]0;pwned\x07"), text(out));
    },
  });
});

Deno.test("cli connect: small errors that point at the fix", async (t) => {
  await t.step(
    "--timeout 0 means never: connected, the reply read",
    async () => {
      await using peer = answering("late but here", true);
      const result = await runCli([
        "connect",
        "127.0.0.1",
        String(peer.addr.port),
        "--send",
        "x",
        "--timeout",
        "0",
      ]);
      assert.equal(result.code, 0, result.stderr);
      assert.match(result.stdout, /\nlate but here$/);
    },
  );
  await t.step("HOST:PORT suggests HOST PORT", async () => {
    const result = await runCli(["connect", "127.0.0.1:8080"]);
    assert.equal(result.code, 2);
    assert.match(oneLine(result.stderr), /HOST PORT \(127\.0\.0\.1 8080\)/);
    const v6 = await runCli(["connect", "[::1]:8080"]);
    assert.match(oneLine(v6.stderr), /\(\[::1\] 8080\)/);
  });
  await t.step(
    "usage errors quote at most 80 characters of a value",
    async () => {
      const long = "9".repeat(300);
      for (
        const args of [
          ["connect", "127.0.0.1", long],
          ["connect", "127.0.0.1", "80", "--timeout", long],
          ["connect", "a b".repeat(100)],
          ["connect", "127.0.0.1", "80", "extra".repeat(60)],
          ["connect", "127.0.0.1", "80", `--${"x".repeat(300)}`],
          ["resolve", "localhost", "--nameserver", long],
        ]
      ) {
        const result = await runCli(args);
        assert.equal(result.code, 2, result.stderr);
        const line = oneLine(result.stderr);
        assert.ok(line.length < 200, `${line.length} characters: ${line}`);
      }
    },
  );
  await t.step("| head -c 10 ends quietly, exit 0", async () => {
    await using peer = answering("y".repeat(1 << 20), true);
    const result = await run("bash", [
      "-c",
      '"$0" run -N "$1" connect 127.0.0.1 "$2" --send x | head -c 10 ' +
      '>/dev/null; echo "status ${PIPESTATUS[0]}"',
      DENO,
      CLI,
      String(peer.addr.port),
    ]);
    assert.equal(result.stdout, "status 0\n");
    assert.equal(result.stderr, "");
  });
  await t.step("resolve without --allow-read=/etc/hosts says so", async () => {
    await using dns = await startDnsServer({ records: {} });
    const result = await runCli([
      "resolve",
      "only-in-hosts.test",
      "--nameserver",
      `${dns.hostname}:${dns.port}`,
    ]);
    assert.equal(result.code, 1);
    assert.equal(
      oneLine(result.stderr),
      "there was an error resolving the host: only-in-hosts.test (no such " +
        "name; /etc/hosts was not read: run with --allow-read=/etc/hosts if " +
        "the name is there)",
    );
  });
  await t.step("resolve --timeout 0 means never", async () => {
    await using dns = await startDnsServer({
      records: { "slowish.test": { A: ["127.0.0.5"] } },
    });
    const result = await runCli([
      "resolve",
      "slowish.test",
      "-4",
      "--timeout",
      "0",
      "--nameserver",
      `${dns.hostname}:${dns.port}`,
    ]);
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stdout, "127.0.0.5\n");
  });
});

Deno.test("cli telnet: the tutorial's trace, then both ways", async (t) => {
  await t.step(
    "a greeting server on 127.0.0.1, reached as localhost",
    async () => {
      await using server = greeter();
      const result = await runCli([
        "telnet",
        "localhost",
        String(server.addr.port),
      ]);
      assert.equal(result.code, 0);
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
    },
  );
  await t.step("stdin to the peer, end of stdin half-closes", async () => {
    await using echo = serve({ hostname: "127.0.0.1" }, async (conn) => {
      const all = await within(conn.recvAll(), 10_000, "conn.recvAll");
      await within(
        conn.sendAll(new TextDecoder().decode(all).toUpperCase()),
        10_000,
        "conn.sendAll",
      );
    });
    const result = await runCli(
      ["telnet", "127.0.0.1", String(echo.addr.port)],
      {
        input: "hello\nworld\n",
      },
    );
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stdout, "HELLO\nWORLD\n");
    assert.match(
      result.stderr,
      /^Trying 127\.0\.0\.1\.\.\.\nConnected to 127\.0\.0\.1\./,
    );
  });
  const noScript = missing("script", "cli telnet: Ctrl-] on a terminal");
  await t.step({
    name: "on a terminal, Ctrl-], Enter, then an empty line half-closes",
    ignore: noScript,
    fn: async () => {
      const received = Promise.withResolvers<string>();
      await using upper = serve({ hostname: "127.0.0.1" }, async (conn) => {
        const text = new TextDecoder().decode(
          await within(conn.recvAll(), 10_000, "conn.recvAll"),
        );
        received.resolve(text);
        await within(
          conn.sendAll(`${text.toUpperCase()}<end>`),
          10_000,
          "conn.sendAll",
        );
      });
      // script(1) runs the command on a pseudo-terminal, in canonical mode.
      await using proc = start("script", [
        "-qec",
        `${DENO} run -N ${CLI} telnet 127.0.0.1 ${upper.addr.port}`,
        "/dev/null",
      ], { stdin: true });
      await proc.waitForLine(/^Escape character is '\^]'\.\r?$/);
      // Ctrl-] then Enter shows telnet's prompt; an empty line half-closes.
      await proc.write("hello\n\x1d\n");
      await proc.waitForLine(/telnet> $/);
      await proc.write("\n");
      const exit = await proc.exit();
      assert.equal(exit.code, 0, proc.report());
      assert.equal(
        await within(received.promise, 10_000, "received"),
        "hello\n",
      );
      assert.match(
        proc.stdout,
        /HELLO\r?\n<end>Connection closed by foreign host\./,
      );
    },
  });
  await t.step(
    "nobody listens: the trace, one error line, exit 1",
    async () => {
      const closed = serve({ hostname: "127.0.0.1" }, () => {});
      const freePort = String(closed.addr.port);
      await closed.shutdown();
      const result = await runCli(["telnet", "127.0.0.1", freePort]);
      assert.equal(result.code, 1);
      assert.equal(
        result.stderr,
        `Trying 127.0.0.1...\ntelnet: connect to address 127.0.0.1: Connection refused\nconnect to 127.0.0.1 port ${freePort}: Connection refused\n`,
      );
    },
  );
});

Deno.test("cli: bad input is one line, exit 2, and nothing on the wire", async (t) => {
  let accepted = 0;
  await using sentinel = serve({
    hostname: "127.0.0.1",
    onAccept: () => accepted++,
  }, () => {});
  const port = String(sentinel.addr.port);
  const cases: string[][] = [
    ["resolve"],
    ["resolve", "bad host"],
    ["resolve", "localhost", "extra"],
    ["resolve", "localhost", "--nameserver", "nowhere"],
    ["resolve", "localhost", "--timeout", "soon"],
    ["resolve", "localhost", "--bogus"],
    ["connect"],
    ["connect", "127.0.0.1", "-1"],
    ["connect", "127.0.0.1", "0"],
    ["connect", "127.0.0.1", "65536"],
    ["connect", "127.0.0.1", "abc"],
    ["connect", "127.0.0.1", ""],
    ["connect", "bad host", port],
    ["connect", "127.0.0.1", port, "--send", "bad \\q escape"],
    ["connect", "127.0.0.1", port, "--timeout", "-5"],
    ["connect", "127.0.0.1", port, "--bogus"],
    ["serve", "--port", "-1"],
    ["serve", "--port", "65536"],
    ["serve", "--port", "abc"],
    ["serve", "--port", ""],
    ["serve", "--port"],
    ["serve", "--hostname", "bad host"],
    ["serve", "--backlog", "-1"],
    ["serve", "--concurrency", "0"],
    ["serve", "--busy", "1.5"],
    ["serve", "--idle-timeout", "x"],
    ["serve", "extra"],
    ["client", "--port", "0"],
    ["client", "--port", "-1"],
    ["client", "--port", "65536"],
    ["client", "--port", "abc"],
    ["client", "--port", ""],
    ["client", "--hostname", "bad host", "--port", port],
    ["client", "--port", port, "--bufsize", "0"],
    ["telnet"],
    // (telnet HOST alone is telnet's port 23 now: tests/cli_habits_test.ts)
    ["telnet", "127.0.0.1", "0"],
    ["telnet", "127.0.0.1", "65536"],
    ["telnet", "bad host", port],
    ["telnet", "127.0.0.1", port, "--bogus"],
  ];
  for (const args of cases) {
    await t.step(JSON.stringify(args), async () => {
      const result = await runCli(args);
      assert.equal(result.code, 2, `${result.stdout}${result.stderr}`);
      assert.equal(result.stdout, "");
      const line = oneLine(result.stderr);
      assert.doesNotMatch(line, /^\s+at /);
    });
  }
  assert.equal(accepted, 0);
});

Deno.test("cli: -N alone is enough for loopback; no -N is one line naming the flag", async (t) => {
  await using server = greeter();
  const port = String(server.addr.port);
  await t.step(
    "with -N and nothing else: connected, the reply printed",
    async () => {
      const result = await run(DENO, [
        "run",
        "-N",
        CLI,
        "connect",
        "127.0.0.1",
        port,
        "--send",
        "x",
      ]);
      assert.equal(result.code, 0, result.stderr);
      assert.match(
        result.stdout,
        /connected to 127\.0\.0\.1 .*\n.*connecting$/,
      );
      assert.equal(result.stderr, "");
    },
  );
  await t.step(
    "without -N: one line, the flags, nothing on stdout",
    async () => {
      const result = await run(DENO, [
        "run",
        "--no-prompt",
        CLI,
        "connect",
        "127.0.0.1",
        port,
      ]);
      assert.equal(result.code, 1);
      // No socket was made: "Socket successfully created" would be a lie.
      assert.equal(result.stdout, "");
      assert.equal(
        oneLine(result.stderr),
        `connect to 127.0.0.1 port ${port}: Deno needs the network ` +
          `permission (run with -N or --allow-net=127.0.0.1:${port})`,
      );
    },
  );
  await t.step(
    "--allow-net=localhost is enough for connect localhost",
    async () => {
      const result = await run(DENO, [
        "run",
        "--allow-net=localhost",
        CLI,
        "connect",
        "localhost",
        port,
      ]);
      assert.equal(result.code, 0, result.stderr);
      assert.equal(
        result.stdout,
        "Socket successfully created\n" +
          `the socket has successfully connected to localhost on port ${port} (127.0.0.1)\n`,
      );
    },
  );
  await t.step(
    "--allow-net=localhost is enough for telnet localhost",
    async () => {
      const result = await run(DENO, [
        "run",
        "--allow-net=localhost",
        CLI,
        "telnet",
        "localhost",
        port,
      ]);
      assert.equal(result.code, 0, result.stderr);
      assert.equal(result.stdout, GREETING);
    },
  );
});
