/**
 * scan() and parsePorts(), and `cli.ts scan`, on loopback ports this test
 * holds: open ones (listeners on port 0), closed ones (refused), and ones
 * that never answer (a listener whose kernel queue is full). Results are
 * compared with nmap's connect scan of the same ports.
 */

import assert from "node:assert/strict";
import {
  CancelledError,
  InvalidArgumentError,
  parsePorts,
  type PortResult,
  scan,
} from "../mod.ts";
import { within } from "./fixtures/deadline.ts";
import { rejectsWith } from "./fixtures/assertions.ts";
import { missing, run, runCli } from "./fixtures/process.ts";

const LOOPBACK = "127.0.0.1";

/** Listeners on port 0, held open until disposed. */
function listeners(n: number): Deno.TcpListener[] & Disposable {
  const list = Array.from(
    { length: n },
    () => Deno.listen({ hostname: LOOPBACK, port: 0 }),
  );
  return Object.assign(list, {
    [Symbol.dispose]: () => list.forEach((l) => l.close()),
  });
}

/**
 * A port that never answers: a listener with a kernel queue of 1 holds 2
 * connections (Linux keeps backlog + 1), and then drops new SYNs, so the
 * next connect waits until its timeout, as behind a firewall.
 */
async function silentPort(): Promise<{ port: number } & AsyncDisposable> {
  const listener = Deno.listen({ hostname: LOOPBACK, port: 0, tcpBacklog: 1 });
  const port = listener.addr.port;
  const held: Deno.Conn[] = [];
  for (let i = 0; i < 2; i++) {
    held.push(
      await within(
        Deno.connect({ hostname: LOOPBACK, port }),
        5000,
        "a connect to fill the queue",
      ),
    );
  }
  return {
    port,
    [Symbol.asyncDispose]: () => {
      held.forEach((c) => c.close());
      listener.close();
      return Promise.resolve();
    },
  };
}

/** Ports from `low` to `high`, as a list. */
function range(low: number, high: number): number[] {
  return Array.from({ length: high - low + 1 }, (_, i) => low + i);
}

function openPorts(results: PortResult[]): number[] {
  return results.filter((r) => r.state === "open").map((r) => r.port);
}

function assertAscending(ports: number[]): void {
  for (let i = 1; i < ports.length; i++) {
    assert.ok(ports[i - 1] < ports[i], `not ascending at ${ports[i]}`);
  }
}

Deno.test("parsePorts(): ports and ranges, ascending, merged", () => {
  assert.deepEqual(parsePorts("80"), [80]);
  assert.deepEqual(parsePorts("20-25,80"), [20, 21, 22, 23, 24, 25, 80]);
  assert.deepEqual(parsePorts("81,80-82,80"), [80, 81, 82]);
  assert.deepEqual(parsePorts("1,65535"), [1, 65535]);
  assert.equal(parsePorts("1-65535").length, 65535);
  assert.deepEqual(parsePorts("8000-8000"), [8000]);
});

Deno.test("parsePorts(): a bad list is EINVAL naming the part", () => {
  const cases: [string, RegExp][] = [
    ["", /expected ports and ranges/],
    ["0", /"0" has port 0, outside 1–65535/],
    ["65536", /port 65536, outside/],
    ["25-20", /"25-20" is not ascending/],
    ["80,,81", /"" is not a port or a range/],
    ["http", /"http" is not a port/],
    ["1-", /"1-" is not a port/],
    ["-5", /"-5" is not a port/],
    [" 80", /" 80" is not a port/],
    ["1-2-3", /"1-2-3" is not a port/],
    ["123456", /"123456" is not a port/],
  ];
  for (const [text, message] of cases) {
    assert.throws(
      () => parsePorts(text),
      (e: unknown) =>
        e instanceof InvalidArgumentError && e.code === "EINVAL" &&
        message.test(e.message),
      `parsePorts(${JSON.stringify(text)})`,
    );
  }
});

Deno.test("scan(): bad arguments are EINVAL before any socket", async () => {
  const bad: [string, unknown, unknown][] = [
    ["not a host!", [80], {}],
    [LOOPBACK, [], {}],
    [LOOPBACK, [0], {}],
    [LOOPBACK, [1.5], {}],
    [LOOPBACK, [65536], {}],
    [LOOPBACK, "25-20", {}],
    [LOOPBACK, 80, {}],
    [LOOPBACK, [80], null],
    [LOOPBACK, [80], { timeout: 0 }],
    [LOOPBACK, [80], { timeout: -1 }],
    [LOOPBACK, [80], { timeout: 2 ** 31 }],
    [LOOPBACK, [80], { concurrency: 0 }],
    [LOOPBACK, [80], { concurrency: 1.5 }],
    [LOOPBACK, [80], { family: 5 }],
    [LOOPBACK, [80], { signal: "stop" }],
    [LOOPBACK, [80], { onResult: "print" }],
  ];
  for (const [host, ports, options] of bad) {
    await rejectsWith(
      // @ts-expect-error: the wrong types are the point
      scan(host, ports, options),
      InvalidArgumentError,
      "EINVAL",
    );
  }
});

Deno.test("scan(): open and closed loopback ports, ascending", async () => {
  using held = listeners(3);
  const mine = held.map((l) => l.addr.port).sort((a, b) => a - b);
  // Around each listener; other ports there belong to no one we know of,
  // so only ours are asserted open, and every other must be answered.
  const text = mine.map((p) => `${p - 20}-${Math.min(p + 20, 65535)}`)
    .join(",");
  const expected = parsePorts(text);
  const seen: PortResult[] = [];
  const results = await within(
    scan(LOOPBACK, text, { onResult: (r) => seen.push(r) }),
    10_000,
    "a scan of ~120 loopback ports",
  );
  assert.deepEqual(results.map((r) => r.port), expected);
  assertAscending(results.map((r) => r.port));
  assert.deepEqual(seen, results, "onResult sees each, in order");
  for (const port of mine) {
    const result = results.find((r) => r.port === port);
    assert.deepEqual({ ...result, ms: 0 }, {
      port,
      address: LOOPBACK,
      state: "open",
      ms: 0,
    });
  }
  for (const result of results) {
    assert.ok(
      result.state === "open" || result.state === "closed",
      `${result.port}: ${result.state} ${result.reason}`,
    );
    assert.ok(result.ms >= 0);
    if (result.state === "closed") {
      assert.equal(result.code, "ECONNREFUSED");
      assert.ok(result.reason);
    }
  }
});

Deno.test("scan(): a port that never answers is timeout", async () => {
  await using silent = await silentPort();
  using held = listeners(1);
  const results = await within(
    scan(LOOPBACK, [held[0].addr.port, silent.port], { timeout: 200 }),
    5000,
    "a scan with one silent port",
  );
  const result = results.find((r) => r.port === silent.port);
  assert.equal(result?.state, "timeout");
  assert.equal(result?.code, "ETIMEDOUT");
  assert.equal(result?.reason, "no answer in 200 ms");
  // Timers never fire early; a late one is load, not a failure.
  assert.ok(result.ms >= 199, `${result.ms} ms`);
  assert.equal(
    results.find((r) => r.port === held[0].addr.port)?.state,
    "open",
  );
});

Deno.test("scan(): at most `concurrency` ports at once", async (t) => {
  // Four silent ports of 200 ms each: one at a time they take 800 ms, two
  // at a time 400 ms, four at a time 200 ms. A bound that is not kept
  // finishes early, which no load can cause: only lower bounds are
  // asserted.
  await using a = await silentPort();
  await using b = await silentPort();
  await using c = await silentPort();
  await using d = await silentPort();
  const ports = [a.port, b.port, c.port, d.port];
  const timeout = 200;
  for (const concurrency of [1, 2, 4]) {
    await t.step(`concurrency ${concurrency}`, async () => {
      const started = performance.now();
      const results = await within(
        scan(LOOPBACK, ports, { timeout, concurrency }),
        10_000,
        "a scan of four silent ports",
      );
      const ms = performance.now() - started;
      assert.ok(results.every((r) => r.state === "timeout"));
      const rounds = ports.length / concurrency;
      // 2 ms of slack for the timer's rounding to whole milliseconds.
      assert.ok(ms >= rounds * timeout - 2, `${ms} ms, ${rounds} rounds`);
    });
  }
});

Deno.test("scan(): many ports, concurrency 1 or more than the ports", async () => {
  using held = listeners(1);
  const port = held[0].addr.port;
  const ports = range(Math.max(1, port - 100), Math.min(65535, port + 100));
  for (const concurrency of [1, 10_000]) {
    const results = await within(
      scan(LOOPBACK, ports, { concurrency }),
      10_000,
      `a scan of ${ports.length} ports at ${concurrency}`,
    );
    assert.deepEqual(results.map((r) => r.port), ports);
    assert.equal(results.find((r) => r.port === port)?.state, "open");
  }
});

Deno.test("scan(): the signal cancels at once, leaving nothing open", async (t) => {
  await t.step("aborted before: no socket at all", async () => {
    await rejectsWith(
      scan(LOOPBACK, [80], { signal: AbortSignal.abort() }),
      CancelledError,
      "ECANCELED",
    );
  });
  await t.step("aborted mid-scan, with connects waiting", async () => {
    await using silent = await silentPort();
    const controller = new AbortController();
    const started = performance.now();
    // The silent port would wait a minute; the abort comes after 100 ms,
    // when its connect is under way (or, on a slow machine, even before:
    // a cancel at any point must end the scan at once).
    const timer = setTimeout(() => controller.abort(new Error("enough")), 100);
    try {
      const error = await rejectsWith(
        within(
          scan(LOOPBACK, [silent.port], {
            timeout: 60_000,
            signal: controller.signal,
          }),
          5000,
          "the cancelled scan",
        ),
        CancelledError,
        "ECANCELED",
      );
      assert.equal((error.cause as Error).message, "enough");
      assert.ok(performance.now() - started < 5000);
    } finally {
      clearTimeout(timer);
    }
  });
});

Deno.test("scan(): what onResult throws stops the scan", async () => {
  using held = listeners(1);
  const port = held[0].addr.port;
  const thrown = new Error("stop here");
  const error = await within(
    scan(LOOPBACK, [port, port + 1], {
      onResult: () => {
        throw thrown;
      },
    }).catch((e) => e),
    5000,
    "the scan",
  );
  assert.equal(error, thrown);
});

Deno.test("scan(): a name tries each address; family picks one", async () => {
  using held = listeners(1);
  const port = held[0].addr.port;
  // localhost is ::1 then 127.0.0.1: ::1 refuses, 127.0.0.1 accepts.
  const [both] = await within(scan("localhost", [port]), 5000, "scan");
  assert.equal(both.state, "open");
  assert.equal(both.address, LOOPBACK);
  const [v6] = await within(
    scan("localhost", [port], { family: 6 }),
    5000,
    "scan",
  );
  assert.deepEqual([v6.address, v6.state, v6.code], [
    "::1",
    "closed",
    "ECONNREFUSED",
  ]);
  const [v4] = await within(
    scan("localhost", [port], { family: 4 }),
    5000,
    "scan",
  );
  assert.equal(v4.state, "open");
});

Deno.test("scan(): out of file descriptors, it slows down, never mislabels", async () => {
  // A process allowed few open files, asked for 1,000 connects at once:
  // the scan lowers its concurrency instead of reporting EMFILE per port.
  using held = listeners(1);
  const port = held[0].addr.port;
  const ports = `${Math.max(1, port - 300)}-${Math.min(65535, port + 300)}`;
  const result = await run("sh", [
    "-c",
    `ulimit -n 64 && exec "$0" run -N cli.ts scan ${LOOPBACK} ${ports} ` +
    `--concurrency 1000 --all --json`,
    Deno.execPath(),
  ], { timeout: 20_000 });
  assert.equal(result.code, 0, result.stderr);
  const lines = result.stdout.trim().split("\n").map((l) => JSON.parse(l));
  assert.equal(lines.length, parsePorts(ports).length);
  assert.ok(
    lines.every((r) => r.state === "open" || r.state === "closed"),
    result.stdout,
  );
  assert.ok(lines.some((r) => r.port === port && r.state === "open"));
});

Deno.test("cli scan: output, exit codes, --json, --all", async (t) => {
  using held = listeners(2);
  const [low, high] = held.map((l) => l.addr.port).sort((a, b) => a - b);
  await t.step("open ports: one line each, ascending, exit 0", async () => {
    const result = await runCli(["scan", LOOPBACK, `${high},${low}`]);
    assert.equal(result.code, 0, result.stderr);
    assert.equal(
      result.stdout,
      `${LOOPBACK}:${low} open\n${LOOPBACK}:${high} open\n`,
    );
    assert.equal(result.stderr, "");
  });
  await t.step("--timeout 0 is never, as on every command", async () => {
    const result = await runCli(["scan", LOOPBACK, `${low}`, "--timeout", "0"]);
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stdout, `${LOOPBACK}:${low} open\n`);
  });
  await t.step("--all adds closed ports with the reason", async () => {
    await using silent = await silentPort();
    const list = `${low},${silent.port}`;
    const result = await runCli([
      "scan",
      LOOPBACK,
      list,
      "--all",
      "--timeout",
      "200",
    ]);
    assert.equal(result.code, 0, result.stderr);
    const lines = result.stdout.trim().split("\n");
    assertAscending(lines.map((l) => Number(l.split(/[: ]/)[1])));
    assert.deepEqual(
      lines.toSorted(),
      [
        `${LOOPBACK}:${low} open`,
        `${LOOPBACK}:${silent.port} timeout (no answer in 200 ms)`,
      ].toSorted(),
    );
  });
  await t.step("none open: exit 1, one line on stderr", async () => {
    await using silent = await silentPort();
    const result = await runCli([
      "scan",
      LOOPBACK,
      String(silent.port),
      "--timeout",
      "100",
    ]);
    assert.equal(result.code, 1);
    assert.equal(result.stdout, "");
    assert.equal(
      result.stderr,
      `scan ${LOOPBACK}: no open port among 1 port (1 timeout)\n`,
    );
  });
  await t.step("--json: one object per port", async () => {
    const result = await runCli([
      "scan",
      LOOPBACK,
      `${low}`,
      "--json",
      "-4",
    ]);
    assert.equal(result.code, 0, result.stderr);
    const [line] = result.stdout.trim().split("\n").map((l) => JSON.parse(l));
    assert.deepEqual({ ...line, ms: 0 }, {
      port: low,
      address: LOOPBACK,
      state: "open",
      ms: 0,
    });
    assert.equal(typeof line.ms, "number");
  });
  await t.step("--json --all: closed ports carry code and reason", async () => {
    const result = await runCli([
      "scan",
      "localhost",
      `${low}`,
      "--json",
      "--all",
      "-6",
    ]);
    assert.equal(result.code, 1, result.stderr);
    assert.equal(result.stderr, "");
    const line = JSON.parse(result.stdout);
    assert.deepEqual(
      [line.address, line.state, line.code, line.reason],
      ["::1", "closed", "ECONNREFUSED", "Connection refused"],
    );
  });
  await t.step("usage errors: exit 2, one line", async () => {
    const cases = [
      ["scan"],
      ["scan", LOOPBACK],
      ["scan", LOOPBACK, "25-20"],
      ["scan", LOOPBACK, "0"],
      ["scan", "bad host!", "80"],
      ["scan", LOOPBACK, "80", "--timeout", "-1"],
      ["scan", LOOPBACK, "80", "--concurrency", "0"],
      ["scan", LOOPBACK, "80", "-4", "-6"],
      ["scan", LOOPBACK, "80", "--frobnicate"],
      ["scan", LOOPBACK, "80", "81"],
    ];
    for (const args of cases) {
      const result = await runCli(args);
      assert.equal(result.code, 2, `${args.join(" ")}: ${result.stderr}`);
      assert.equal(result.stdout, "");
      assert.match(result.stderr, /^scan: .* \(see --help\)\n$/);
    }
  });
  await t.step("--help", async () => {
    const result = await runCli(["scan", "--help"]);
    assert.equal(result.code, 0);
    assert.match(result.stdout, /^Usage: deno run -N cli\.ts scan HOST PORTS/);
    assert.match(result.stdout, /default 1000/);
    assert.match(result.stdout, /default 256/);
  });
});

/** The open ports in nmap's grepable output (`-oG -`). */
function nmapOpen(output: string): number[] {
  const ports = /Ports: (.*?)(?:\t|$)/m.exec(output)?.[1] ?? "";
  return ports.split(",").map((p) => p.trim().split("/"))
    .filter((fields) => fields[1] === "open")
    .map((fields) => Number(fields[0]))
    .sort((a, b) => a - b);
}

Deno.test({
  name: "scan(): the same open ports as nmap's connect scan",
  ignore: missing("nmap", "scan(): the same open ports as nmap"),
  async fn() {
    using held = listeners(5);
    const mine = held.map((l) => l.addr.port).sort((a, b) => a - b);
    // Around our listeners, and the well-known ports (whatever listens on
    // this machine there): the same list for both, scanned back to back.
    const text = [
      "1-1024",
      ...mine.map((p) => `${p - 50}-${Math.min(p + 50, 65535)}`),
    ].join(",");
    const nmap = async () => {
      // -sT: a connect scan, as ours (as root nmap would send raw SYNs).
      const result = await run("nmap", [
        "-Pn",
        "-sT",
        "-n",
        "-p",
        text,
        LOOPBACK,
        "-oG",
        "-",
      ], { timeout: 60_000 });
      assert.equal(result.code, 0, result.stderr);
      return nmapOpen(result.stdout);
    };
    const ours = async () =>
      openPorts(
        await within(scan(LOOPBACK, text), 30_000, "a scan of ~1,500 ports"),
      );
    const before = await ours();
    const theirs = await nmap();
    const after = await ours();
    for (const port of mine) {
      assert.ok(theirs.includes(port), `nmap missed ${port}`);
      assert.ok(before.includes(port), `scan missed ${port}`);
    }
    // Other programs may open or close a port in the range meanwhile:
    // nmap's answer must equal one of ours, taken just before and after.
    assert.ok(
      String(theirs) === String(before) || String(theirs) === String(after),
      `nmap: ${theirs}\nscan before: ${before}\nscan after: ${after}`,
    );
  },
});
