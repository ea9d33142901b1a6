/**
 * The command line as a user runs it: `deno run -N cli.ts <command>`, each
 * command and flag, its output and exit code, and bad input.
 */

import assert from "node:assert/strict";
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
    const result = await runCli([
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
  await t.step("PORT defaults to 80", async () => {
    const result = await runCli(["connect", "127.0.0.1", "--timeout", "2000"]);
    // Whether something listens on port 80 here or not, port 80 is named.
    if (result.code === 0) assert.match(result.stdout, / on port 80 /);
    else assert.match(oneLine(result.stderr), /127\.0\.0\.1 port 80: /);
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
      const request = await conn.recv();
      got.resolve(new TextDecoder().decode(request ?? new Uint8Array()));
      await conn.sendAll("HTTP/1.0 200 OK\r\n\r\nhello");
    });
    const result = await runCli([
      "connect",
      "127.0.0.1",
      String(echo.addr.port),
      "--send",
      "GET / HTTP/1.0\\r\\n\\tx\\\\\\r\\n\\r\\n",
    ]);
    assert.equal(result.code, 0, result.stderr);
    assert.equal(await got.promise, "GET / HTTP/1.0\r\n\tx\\\r\n\r\n");
    assert.match(
      result.stdout,
      /connected to .*\nHTTP\/1\.0 200 OK\r\n\r\nhello$/,
    );
  });
  await t.step("--send --timeout: a peer that never closes", async () => {
    const release = Promise.withResolvers<void>();
    await using slow = serve({ hostname: "127.0.0.1" }, async (conn) => {
      await conn.sendAll("partial");
      await release.promise;
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
      const all = await conn.recvAll();
      await conn.sendAll(new TextDecoder().decode(all).toUpperCase());
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
    name: "on a terminal, Ctrl-] then Enter half-closes",
    ignore: noScript,
    fn: async () => {
      const received = Promise.withResolvers<string>();
      await using upper = serve({ hostname: "127.0.0.1" }, async (conn) => {
        const text = new TextDecoder().decode(await conn.recvAll());
        received.resolve(text);
        await conn.sendAll(`${text.toUpperCase()}<end>`);
      });
      // script(1) runs the command on a pseudo-terminal, in canonical mode.
      await using proc = start("script", [
        "-qec",
        `${DENO} run -N ${CLI} telnet 127.0.0.1 ${upper.addr.port}`,
        "/dev/null",
      ], { stdin: true });
      await proc.waitForLine(/^Escape character is '\^]'\.\r?$/);
      await proc.write("hello\n\x1d\n");
      const exit = await proc.exit();
      assert.equal(exit.code, 0, proc.report());
      assert.equal(await received.promise, "hello\n");
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
    ["telnet", "127.0.0.1"],
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

Deno.test("cli: -N alone is enough for loopback; no -N is one line", async () => {
  const result = await new Deno.Command(DENO, {
    args: ["run", CLI, "connect", "127.0.0.1", "9"],
    stdin: "null",
  }).output();
  assert.equal(result.code, 1);
  const stderr = new TextDecoder().decode(result.stderr);
  assert.match(stderr, /network permission|-N|net/);
  oneLine(stderr);
});
