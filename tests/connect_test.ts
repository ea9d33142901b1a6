/**
 * Unit tests of lib/connect.ts on loopback: names come from temporary hosts
 * files, and an address that never answers is a listener whose kernel
 * queue is full.
 */

import assert from "node:assert/strict";
import { type AttemptEvent, connect } from "../lib/connect.ts";
import {
  CancelledError,
  ConnectionRefusedError,
  InvalidArgumentError,
  ResolveError,
  TimeoutError,
} from "../lib/errors.ts";
import { startDnsServer } from "./fixtures/dns_server.ts";
import { unheardAddress } from "./fixtures/net.ts";
import { boundedTest } from "./fixtures/bounded.ts";
import { rejectsWith } from "./fixtures/assertions.ts";
import { within } from "./fixtures/deadline.ts";
import { DENO, ROOT, run } from "./fixtures/process.ts";
import { serve } from "../lib/server.ts";

const decoder = new TextDecoder();

/** A temporary hosts file; removed on dispose. */
async function hostsFile(
  lines: string[],
): Promise<AsyncDisposable & { path: string }> {
  const dir = await Deno.makeTempDir({ prefix: "connect_test_" });
  const path = `${dir}/hosts`;
  await Deno.writeTextFile(path, lines.join("\n") + "\n");
  return {
    path,
    [Symbol.asyncDispose]: () => Deno.remove(dir, { recursive: true }),
  };
}

/**
 * A server on 127.0.0.1 that accepts and keeps each connection, and on the
 * same port of 127.0.0.3 a listener that never accepts, its queue full: a
 * connect there gets no answer at all.
 */
async function eyeballs(): Promise<
  AsyncDisposable & { port: number; accepted: Deno.TcpConn[] }
> {
  const server = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = server.addr;
  const silent = Deno.listen({ hostname: "127.0.0.3", port, tcpBacklog: 0 });
  // With a backlog of 0 the kernel queues one connection; the next SYNs are
  // dropped.
  const filler = await Deno.connect({ hostname: "127.0.0.3", port });
  const accepted: Deno.TcpConn[] = [];
  const accepting = (async () => {
    try {
      for await (const conn of server) accepted.push(conn);
    } catch {
      // Closed.
    }
  })();
  return {
    port,
    accepted,
    async [Symbol.asyncDispose]() {
      server.close();
      await accepting;
      for (const conn of accepted) conn.close();
      filler.close();
      silent.close();
    },
  };
}

/** Records onAttempt events as "state address" lines. */
function recorder(): {
  events: string[];
  onAttempt: (event: AttemptEvent) => void;
  seen: AttemptEvent[];
} {
  const events: string[] = [];
  const seen: AttemptEvent[] = [];
  return {
    events,
    seen,
    onAttempt: (event) => {
      seen.push(event);
      events.push(`${event.state} ${event.address}`);
    },
  };
}

boundedTest(
  "connect(): to an IP literal, with the addresses of both ends",
  async () => {
    using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const accepting = listener.accept();
    await using conn = await within(
      connect("127.0.0.1", listener.addr.port),
      10_000,
      "connect",
    );
    using peer = await accepting;
    assert.equal(conn.remoteAddr.address, "127.0.0.1");
    assert.equal(conn.remoteAddr.port, listener.addr.port);
    assert.equal(conn.localAddr.port, (peer.remoteAddr as Deno.NetAddr).port);
    await within(conn.sendAll("hello"), 10_000, "conn.sendAll");
    const buffer = new Uint8Array(5);
    assert.equal(await peer.read(buffer), 5);
    assert.equal(decoder.decode(buffer), "hello");
  },
);

boundedTest("connect(): to IPv6 loopback, bracketed or not", async () => {
  using listener = Deno.listen({ hostname: "::1", port: 0 });
  for (const host of ["::1", "[::1]"]) {
    const accepting = listener.accept();
    await using conn = await within(
      connect(host, listener.addr.port),
      10_000,
      "connect",
    );
    using _peer = await accepting;
    assert.equal(conn.remoteAddr.address, "::1");
    assert.equal(conn.remoteAddr.family, 6);
  }
});

boundedTest(
  "connect(): localhost tries ::1 first; refused, it goes on to 127.0.0.1",
  async () => {
    using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const accepting = listener.accept();
    const trace = recorder();
    const started = performance.now();
    await using conn = await within(
      connect("localhost", listener.addr.port, {
        attemptDelay: 10_000,
        onAttempt: trace.onAttempt,
      }),
      10_000,
      "connect",
    );
    using _peer = await accepting;
    // A refusal starts the next attempt at once, not after attemptDelay.
    assert.ok(performance.now() - started < 5000);
    assert.equal(conn.remoteAddr.address, "127.0.0.1");
    assert.deepEqual(trace.events, [
      "trying ::1",
      "failed ::1",
      "trying 127.0.0.1",
      "connected 127.0.0.1",
    ]);
    const failed = trace.seen[1];
    assert.equal(failed.error?.code, "ECONNREFUSED");
    assert.equal(failed.port, listener.addr.port);
    assert.equal(failed.family, 6);
  },
);

boundedTest(
  "connect(): attemptDelay starts the next address while the first hangs; the loser is cancelled",
  async () => {
    await using net = await eyeballs();
    await using hosts = await hostsFile([
      "127.0.0.3 eyeballs.test",
      "127.0.0.1 eyeballs.test",
    ]);
    const trace = recorder();
    const started = performance.now();
    await using conn = await within(
      connect("eyeballs.test", net.port, {
        hostsFile: hosts.path,
        attemptDelay: 50,
        onAttempt: trace.onAttempt,
      }),
      10_000,
      "connect",
    );
    const elapsed = performance.now() - started;
    assert.equal(conn.remoteAddr.address, "127.0.0.1");
    assert.ok(elapsed >= 45, `the second attempt started after ${elapsed} ms`);
    assert.ok(elapsed < 5000, `took ${elapsed} ms`);
    // The hanging attempt was cancelled, not reported as failed.
    assert.deepEqual(trace.events, [
      "trying 127.0.0.3",
      "trying 127.0.0.1",
      "connected 127.0.0.1",
    ]);
    await within(conn.sendAll("over the winner"), 10_000, "conn.sendAll");
    await conn.closeWrite();
  },
);

boundedTest(
  "connect(): a timeout while the only address hangs is ETIMEDOUT naming host and port",
  async () => {
    await using net = await eyeballs();
    await using hosts = await hostsFile(["127.0.0.3 silent.test"]);
    const trace = recorder();
    const started = performance.now();
    const error = await within(
      rejectsWith(
        connect("silent.test", net.port, {
          hostsFile: hosts.path,
          timeout: 100,
          attemptDelay: 10,
          onAttempt: trace.onAttempt,
        }),
        TimeoutError,
        "ETIMEDOUT",
      ),
      10_000,
      "rejectsWith",
    );
    const elapsed = performance.now() - started;
    assert.ok(elapsed >= 90 && elapsed < 5000, `took ${elapsed} ms`);
    assert.equal(
      error.message,
      `connect to silent.test port ${net.port}: timed out after 100 ms`,
    );
    assert.equal(error.host, "silent.test");
    assert.equal(error.port, net.port);
    assert.deepEqual(trace.events, ["trying 127.0.0.3"]);
  },
);

boundedTest(
  "connect(): a timeout with two hanging attempts cancels both",
  async () => {
    await using net = await eyeballs();
    // ::ffff:127.0.0.3 reaches the same full queue over IPv6.
    await using hosts = await hostsFile([
      "127.0.0.3 twice.test",
      "::ffff:127.0.0.3 twice.test",
    ]);
    const trace = recorder();
    const error = await within(
      rejectsWith(
        connect("twice.test", net.port, {
          hostsFile: hosts.path,
          timeout: 150,
          attemptDelay: 20,
          onAttempt: trace.onAttempt,
        }),
        TimeoutError,
        "ETIMEDOUT",
      ),
      10_000,
      "rejectsWith",
    );
    assert.match(error.message, /timed out after 150 ms/);
    assert.deepEqual(trace.events.filter((e) => e.startsWith("trying")), [
      "trying ::ffff:127.0.0.3",
      "trying 127.0.0.3",
    ]);
    assert.ok(!trace.events.some((e) => e.startsWith("connected")));
  },
);

boundedTest(
  "connect(): an abort mid-connect is ECANCELED with the reason as cause",
  async () => {
    await using net = await eyeballs();
    const controller = new AbortController();
    const reason = new Error("user gave up");
    let timer: ReturnType<typeof setTimeout> | undefined;
    const started = performance.now();
    try {
      const error = await within(
        rejectsWith(
          connect("127.0.0.3", net.port, {
            signal: controller.signal,
            onAttempt: (event) => {
              if (event.state === "trying") {
                timer = setTimeout(() => controller.abort(reason), 20);
              }
            },
          }),
          CancelledError,
          "ECANCELED",
        ),
        10_000,
        "rejectsWith",
      );
      assert.ok(performance.now() - started < 5000);
      assert.equal(error.cause, reason);
      assert.equal(
        error.message,
        `connect to 127.0.0.3 port ${net.port}: cancelled`,
      );
      assert.equal(error.host, "127.0.0.3");
      assert.equal(error.port, net.port);
    } finally {
      clearTimeout(timer);
    }
  },
);

boundedTest(
  "connect(): an already-aborted signal is ECANCELED before any attempt",
  async () => {
    const trace = recorder();
    const reason = new Error("early");
    const error = await within(
      rejectsWith(
        connect("127.0.0.1", 9, {
          signal: AbortSignal.abort(reason),
          onAttempt: trace.onAttempt,
        }),
        CancelledError,
        "ECANCELED",
      ),
      10_000,
      "rejectsWith",
    );
    assert.equal(error.cause, reason);
    assert.equal(error.message, "connect to 127.0.0.1 port 9: cancelled");
    assert.deepEqual(trace.events, []);
  },
);

boundedTest(
  "connect(): one address refused is its own ECONNREFUSED",
  async () => {
    using nobody = unheardAddress();
    const { port } = nobody;
    const error = await within(
      rejectsWith(
        connect("127.0.0.2", port),
        ConnectionRefusedError,
        "ECONNREFUSED",
      ),
      10_000,
      "rejectsWith",
    );
    assert.equal(
      error.message,
      `connect to 127.0.0.2 port ${port}: Connection refused`,
    );
    assert.equal(error.host, "127.0.0.2");
    assert.equal(error.port, port);
    assert.equal(error.attempts, undefined);
    assert.ok(error.cause instanceof Deno.errors.ConnectionRefused);
  },
);

boundedTest(
  "connect(): every address failed: the message and attempts list each address",
  async () => {
    // Held on 127.0.0.9, the port is kept from every other program's
    // ephemeral ports and wildcard binds, and nobody listens on the addresses
    // tried: no port is released and bound again.
    using holder = Deno.listen({ hostname: "127.0.0.9", port: 0 });
    const { port } = holder.addr;
    await using hosts = await hostsFile([
      "127.0.0.1 nobody.test",
      "127.0.0.2 nobody.test",
      "::1 nobody.test",
    ]);
    const trace = recorder();
    const error = await within(
      rejectsWith(
        connect("nobody.test", port, {
          hostsFile: hosts.path,
          onAttempt: trace.onAttempt,
        }),
        ConnectionRefusedError,
        "ECONNREFUSED",
      ),
      10_000,
      "rejectsWith",
    );
    assert.equal(
      error.message,
      `connect to nobody.test port ${port} failed for every address: ` +
        "::1: Connection refused; 127.0.0.1: Connection refused; " +
        "127.0.0.2: Connection refused",
    );
    assert.equal(error.host, "nobody.test");
    assert.equal(error.port, port);
    assert.ok(error.cause instanceof Deno.errors.ConnectionRefused);
    assert.ok(error.attempts);
    assert.deepEqual(
      error.attempts.map((a) => [a.address, a.port, a.error.code]),
      [
        ["::1", port, "ECONNREFUSED"],
        ["127.0.0.1", port, "ECONNREFUSED"],
        ["127.0.0.2", port, "ECONNREFUSED"],
      ],
    );
    assert.equal(
      error.attempts[1].error.message,
      `connect to 127.0.0.1 port ${port}: Connection refused`,
    );
    assert.deepEqual(trace.events, [
      "trying ::1",
      "failed ::1",
      "trying 127.0.0.1",
      "failed 127.0.0.1",
      "trying 127.0.0.2",
      "failed 127.0.0.2",
    ]);
  },
);

boundedTest(
  'connect(): many failed addresses: the first three, then "and N more"; attempts has all',
  async () => {
    // Held on 127.0.0.9, the port is kept from every other program's
    // ephemeral ports and wildcard binds, and nobody listens on the addresses
    // tried: no port is released and bound again.
    using holder = Deno.listen({ hostname: "127.0.0.9", port: 0 });
    const { port } = holder.addr;
    const addresses = Array.from({ length: 8 }, (_, i) => `127.0.0.${i + 1}`);
    await using hosts = await hostsFile(
      addresses.map((address) => `${address} many.test`),
    );
    const error = await within(
      rejectsWith(
        connect("many.test", port, { hostsFile: hosts.path }),
        ConnectionRefusedError,
        "ECONNREFUSED",
      ),
      5000,
      "eight refusals",
    );
    assert.equal(
      error.message,
      `connect to many.test port ${port} failed for every address: ` +
        "127.0.0.1: Connection refused; 127.0.0.2: Connection refused; " +
        "127.0.0.3: Connection refused; and 5 more",
    );
    assert.deepEqual(error.attempts?.map((a) => a.address), addresses);
  },
);

boundedTest(
  "connect(): --allow-net=NAME is enough: a name permitted, its addresses not, is dialled by name",
  async () => {
    await using server = serve(
      { hostname: "127.0.0.1" },
      (conn) => conn.sendAll("hi"),
    );
    const port = server.addr.port;
    const script = `import { connect } from "${ROOT}mod.ts";
try {
  await using conn = await connect("localhost", ${port});
  console.log("connected", conn.remoteAddr.address);
} catch (error) { console.log(error.code, error.message); }`;
    const path = await Deno.makeTempFile({ suffix: ".ts" });
    try {
      await Deno.writeTextFile(path, script);
      const byName = await run(DENO, ["run", "--allow-net=localhost", path]);
      assert.equal(byName.stdout, "connected 127.0.0.1\n", byName.stderr);
      // Without it, the error names the flag that would have worked.
      const none = await run(DENO, ["run", "--no-prompt", path]);
      assert.equal(
        none.stdout,
        `EACCES connect to localhost port ${port}: Deno needs the network ` +
          `permission (run with -N or --allow-net=localhost:${port})\n`,
      );
    } finally {
      await Deno.remove(path);
    }
  },
);

boundedTest("connect(): family narrows the addresses tried", async () => {
  using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const trace = recorder();
  const accepting = listener.accept();
  await using conn = await within(
    connect("localhost", listener.addr.port, {
      family: 4,
      onAttempt: trace.onAttempt,
    }),
    10_000,
    "connect",
  );
  using _peer = await accepting;
  assert.equal(conn.remoteAddr.address, "127.0.0.1");
  assert.deepEqual(trace.events, ["trying 127.0.0.1", "connected 127.0.0.1"]);
  await within(
    rejectsWith(
      connect("127.0.0.1", listener.addr.port, { family: 6 }),
      ResolveError,
      "ENOTFOUND",
    ),
    10_000,
    "rejectsWith",
  );
});

boundedTest(
  "connect(): a name that does not resolve is ENOTFOUND",
  async () => {
    await using dns = await startDnsServer({ records: {} });
    const error = await within(
      rejectsWith(
        connect("nowhere.test", 80, {
          hostsFile: false,
          nameServer: { ipAddr: dns.hostname, port: dns.port },
        }),
        ResolveError,
        "ENOTFOUND",
      ),
      10_000,
      "rejectsWith",
    );
    assert.equal(error.host, "nowhere.test");
  },
);

boundedTest("connect(): the timeout covers the name lookup", async () => {
  await using dns = await startDnsServer({
    records: {},
    faults: { "slowdns.test": "silent" },
  });
  const started = performance.now();
  const error = await within(
    rejectsWith(
      connect("slowdns.test", 80, {
        hostsFile: false,
        nameServer: { ipAddr: dns.hostname, port: dns.port },
        timeout: 100,
      }),
      TimeoutError,
      "ETIMEDOUT",
    ),
    10_000,
    "rejectsWith",
  );
  assert.ok(performance.now() - started < 3000);
  assert.equal(
    error.message,
    "connect to slowdns.test port 80: timed out after 100 ms",
  );
});

boundedTest("connect(): a name from DNS connects", async () => {
  using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  await using dns = await startDnsServer({
    records: { "served.test": { A: ["127.0.0.1"] } },
  });
  const accepting = listener.accept();
  await using conn = await within(
    connect("served.test", listener.addr.port, {
      hostsFile: false,
      nameServer: { ipAddr: dns.hostname, port: dns.port },
      family: 4,
    }),
    10_000,
    "connect",
  );
  using _peer = await accepting;
  assert.equal(conn.remoteAddr.address, "127.0.0.1");
});

boundedTest(
  "connect(): connection options reach the Connection (idleTimeout)",
  async () => {
    using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const accepting = listener.accept();
    await using conn = await within(
      connect("127.0.0.1", listener.addr.port, {
        idleTimeout: 50,
        noDelay: false,
        keepAlive: true,
      }),
      10_000,
      "connect",
    );
    using _peer = await accepting;
    const error = await within(
      rejectsWith(conn.recv(), TimeoutError, "ETIMEDOUT"),
      10_000,
      "rejectsWith",
    );
    assert.match(error.message, /no progress in 50 ms/);
    assert.equal(conn.closed, true);
  },
);

boundedTest(
  "connect(): bad arguments are EINVAL, naming the value",
  async () => {
    const cases: [Promise<unknown>, RegExp][] = [
      [connect("", 80), /invalid host ""/],
      [connect("256.0.0.1", 80), /IPv4 parts must be 0–255/],
      [connect("[::1", 80), /not an IPv6 address/],
      [connect(null as unknown as string, 80), /invalid host null/],
      [connect("127.0.0.1", 0), /invalid port 0/],
      [connect("127.0.0.1", 65536), /invalid port 65536/],
      [connect("127.0.0.1", "80" as unknown as number), /invalid port "80"/],
      [
        connect("127.0.0.1", 80, null as unknown as object),
        /invalid options null/,
      ],
      [connect("127.0.0.1", 80, { timeout: -5 }), /invalid timeout -5/],
      [
        connect("127.0.0.1", 80, { attemptDelay: NaN }),
        /invalid attemptDelay NaN/,
      ],
      [
        connect("127.0.0.1", 80, {
          onAttempt: "log" as unknown as () => void,
        }),
        /invalid onAttempt "log"/,
      ],
      [connect("127.0.0.1", 80, { idleTimeout: -1 }), /invalid idleTimeout -1/],
      [
        connect("127.0.0.1", 80, { signal: {} as AbortSignal }),
        /invalid signal/,
      ],
      [
        connect("127.0.0.1", 80, { family: 5 as unknown as 4 }),
        /invalid family 5/,
      ],
      [
        connect("127.0.0.1", 80, { nameServer: { ipAddr: "x" } }),
        /invalid nameServer/,
      ],
    ];
    for (const [promise, message] of cases) {
      const error = await within(
        rejectsWith(promise, InvalidArgumentError, "EINVAL"),
        10_000,
        "rejectsWith",
      );
      assert.match(error.message, message);
    }
  },
);

boundedTest(
  "connect(): an onAttempt that throws does not break the race",
  async () => {
    const server = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    try {
      const accepted = server.accept();
      // localhost tries ::1 (refused) and then 127.0.0.1: every kind of event.
      const conn = await within(
        connect("localhost", server.addr.port, {
          onAttempt: () => {
            throw new Error("hook bug");
          },
        }),
        10_000,
        "connect",
      );
      conn.close();
      (await accepted).close();
    } finally {
      server.close();
    }
  },
);

boundedTest(
  "connect(): an abort during the hosts-file lookup is kept",
  async () => {
    await using hosts = await hostsFile(["127.0.0.1 web.test"]);
    const server = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    try {
      const controller = new AbortController();
      const connecting = connect("web.test", server.addr.port, {
        hostsFile: hosts.path,
        signal: controller.signal,
      });
      await Promise.resolve();
      controller.abort();
      await within(
        rejectsWith(connecting, CancelledError, "ECANCELED"),
        10_000,
        "rejectsWith",
      );
    } finally {
      server.close();
    }
  },
);
