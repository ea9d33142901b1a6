/**
 * Unit tests of lib/connection.ts, on a real loopback pair: a Connection on
 * one end, Deno's raw connection on the other.
 */

import assert from "node:assert/strict";
import { Connection, type ConnectionOptions } from "../lib/connection.ts";
import {
  ConnectionResetError,
  InvalidArgumentError,
  MessageTooLargeError,
  SocketClosedError,
  TimeoutError,
} from "../lib/errors.ts";
import { pattern, readBytes, readExactly } from "./fixtures/net.ts";
import { boundedTest } from "./fixtures/bounded.ts";
import { within } from "./fixtures/deadline.ts";

/**
 * One wait on a loopback pair: at most a few ms idle (16 MiB ~300 ms);
 * 10 s is room for a loaded machine, and a hang fails in seconds.
 */
const NET_MS = 10_000;
import { rejectsWith } from "./fixtures/assertions.ts";

const decoder = new TextDecoder();

interface Pair extends AsyncDisposable {
  /** The end under test. */
  conn: Connection;
  /** The other end, raw. */
  peer: Deno.TcpConn;
}

/** A connected loopback pair; disposing closes both ends. */
async function pair(
  options?: ConnectionOptions,
  hostname = "127.0.0.1",
): Promise<Pair> {
  using listener = Deno.listen({ hostname, port: 0 });
  const [raw, peer] = await within(
    Promise.all([
      Deno.connect({ hostname, port: listener.addr.port }),
      listener.accept(),
    ]),
    NET_MS,
    "a loopback pair",
  );
  const conn = new Connection(raw, options);
  return {
    conn,
    peer,
    [Symbol.asyncDispose]() {
      conn.close();
      try {
        peer.close();
      } catch {
        // Closed by the test already.
      }
      return Promise.resolve();
    },
  };
}

/** Writes all of `bytes` on a raw connection. */
function writeAll(conn: Deno.Conn, bytes: Uint8Array): Promise<void> {
  return within(
    (async () => {
      let written = 0;
      while (written < bytes.length) {
        written += await conn.write(bytes.subarray(written));
      }
    })(),
    NET_MS,
    `the peer to take ${bytes.length} bytes`,
  );
}

boundedTest(
  "Connection: localAddr and remoteAddr are the two ends",
  async () => {
    await using p = await pair();
    assert.equal(p.conn.localAddr.address, "127.0.0.1");
    assert.equal(p.conn.localAddr.family, 4);
    assert.equal(
      p.conn.localAddr.port,
      (p.peer.remoteAddr as Deno.NetAddr).port,
    );
    assert.equal(
      p.conn.remoteAddr.port,
      (p.peer.localAddr as Deno.NetAddr).port,
    );
    assert.equal(p.conn.closed, false);
  },
);

boundedTest(
  "Connection: IPv6 addresses on ::1 are bare, family 6",
  async () => {
    await using p = await pair({}, "::1");
    assert.equal(p.conn.remoteAddr.address, "::1");
    assert.equal(p.conn.remoteAddr.family, 6);
    await p.conn.sendAll("v6");
    assert.equal(decoder.decode(await readExactly(p.peer, 2)), "v6");
  },
);

boundedTest("Connection: bad options are EINVAL", async () => {
  const cases: [unknown, RegExp][] = [
    [null, /invalid options null/],
    [{ idleTimeout: -1 }, /invalid idleTimeout -1/],
    [{ idleTimeout: "5" }, /invalid idleTimeout "5"/],
  ];
  for (const [options, message] of cases) {
    using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const [raw, peer] = await Promise.all([
      Deno.connect({ hostname: "127.0.0.1", port: listener.addr.port }),
      listener.accept(),
    ]);
    try {
      assert.throws(
        () => new Connection(raw, options as ConnectionOptions),
        (error: unknown) =>
          error instanceof InvalidArgumentError && message.test(error.message),
      );
    } finally {
      raw.close();
      peer.close();
    }
  }
});

boundedTest(
  "Connection: noDelay and keepAlive options set the socket options",
  async () => {
    using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const calls: string[] = [];
    const open = async () => {
      const [raw, peer] = await Promise.all([
        Deno.connect({ hostname: "127.0.0.1", port: listener.addr.port }),
        listener.accept(),
      ]);
      // Watch the calls, and still make them on the real socket.
      const setNoDelay = raw.setNoDelay.bind(raw);
      const setKeepAlive = raw.setKeepAlive.bind(raw);
      raw.setNoDelay = (on?: boolean) => {
        calls.push(`noDelay ${on}`);
        setNoDelay(on);
      };
      raw.setKeepAlive = (on?: boolean) => {
        calls.push(`keepAlive ${on}`);
        setKeepAlive(on);
      };
      return { raw, peer };
    };

    const plain = await open();
    new Connection(plain.raw).close();
    plain.peer.close();
    assert.deepEqual(calls, [], "defaults: Deno's no-delay, no keep-alive");

    const tuned = await open();
    const conn = new Connection(tuned.raw, { noDelay: false, keepAlive: true });
    try {
      assert.deepEqual(calls, ["noDelay false", "keepAlive true"]);
      await conn.sendAll("still works");
      assert.equal(
        decoder.decode(await readExactly(tuned.peer, 11)),
        "still works",
      );
    } finally {
      conn.close();
      tuned.peer.close();
    }

    calls.length = 0;
    const explicit = await open();
    new Connection(explicit.raw, { noDelay: true, keepAlive: false }).close();
    explicit.peer.close();
    assert.deepEqual(calls, []);
  },
);

boundedTest(
  "Connection.send(): writes once and returns how much was written",
  async () => {
    await using p = await pair();
    assert.equal(await p.conn.send("héllo"), 6);
    assert.deepEqual(
      await readExactly(p.peer, 6),
      new TextEncoder().encode("héllo"),
    );
    assert.equal(await p.conn.send(new Uint8Array([1, 2, 3])), 3);
    assert.deepEqual(await readExactly(p.peer, 3), new Uint8Array([1, 2, 3]));
  },
);

boundedTest(
  "Connection.send(): to a peer that does not read, writes only part",
  async () => {
    await using p = await pair();
    const big = pattern(32 * 1024 * 1024);
    const sent = await p.conn.send(big);
    assert.ok(sent > 0 && sent < big.length, `sent ${sent} of ${big.length}`);
    assert.deepEqual(await readExactly(p.peer, sent), big.subarray(0, sent));
  },
);

boundedTest(
  "Connection.send(): data that is neither bytes nor text is EINVAL",
  async () => {
    await using p = await pair();
    for (const data of [42, null, [1, 2], new ArrayBuffer(2)]) {
      await assert.rejects(
        async () => await p.conn.send(data as unknown as Uint8Array),
        (error: unknown) =>
          error instanceof InvalidArgumentError &&
          /expected a Uint8Array or a string/.test(error.message),
      );
    }
    await assert.rejects(
      () => p.conn.sendAll(7 as unknown as string),
      /invalid data 7/,
    );
  },
);

boundedTest(
  "Connection.sendAll(): sends every byte of a large buffer",
  async () => {
    await using p = await pair();
    const big = pattern(8 * 1024 * 1024 + 3);
    const [, received] = await Promise.all([
      p.conn.sendAll(big).then(() => p.conn.closeWrite()),
      readBytes(p.peer),
    ]);
    assert.equal(received.length, big.length);
    assert.deepEqual(received, big);
  },
);

boundedTest("Connection.sendAll(): text is sent as UTF-8", async () => {
  await using p = await pair();
  await p.conn.sendAll("Thank you for connecting — ✓");
  await p.conn.closeWrite();
  assert.equal(
    decoder.decode(await readBytes(p.peer)),
    "Thank you for connecting — ✓",
  );
});

boundedTest(
  "Connection.sendAll(): an empty message sends nothing, but only while open",
  async () => {
    await using p = await pair();
    await p.conn.sendAll("");
    await p.conn.sendAll(new Uint8Array(0));
    await p.conn.closeWrite();
    assert.equal((await readBytes(p.peer)).length, 0);
    p.conn.close();
    const error = await rejectsWith(
      p.conn.sendAll(""),
      SocketClosedError,
      "EBADF",
    );
    assert.match(
      error.message,
      /^send to 127\.0\.0\.1 port \d+: the connection is closed$/,
    );
  },
);

boundedTest(
  "Connection.recv(): what has arrived, at most maxBytes",
  async () => {
    await using p = await pair();
    await writeAll(p.peer, new TextEncoder().encode("abcdef"));
    assert.equal(decoder.decode((await p.conn.recv(2))!), "ab");
    const rest = await p.conn.recv();
    assert.ok(rest !== null);
    // What is left, possibly in more than one read.
    let text = decoder.decode(rest);
    while (text.length < 4) text += decoder.decode((await p.conn.recv())!);
    assert.equal(text, "cdef");
  },
);

boundedTest(
  "Connection.recv(): waits for data that is not there yet",
  async () => {
    await using p = await pair();
    const pending = p.conn.recv(100);
    await writeAll(p.peer, new Uint8Array([9, 8, 7]));
    assert.deepEqual(await pending, new Uint8Array([9, 8, 7]));
  },
);

boundedTest(
  "Connection.recv(): null at end of stream, and again after",
  async () => {
    await using p = await pair();
    await writeAll(p.peer, new Uint8Array([1]));
    await p.peer.closeWrite();
    assert.deepEqual(await p.conn.recv(), new Uint8Array([1]));
    assert.equal(await p.conn.recv(), null);
    assert.equal(await p.conn.recv(), null);
    assert.equal(await p.conn.recv(1), null);
    // Our side can still send after the peer's end of stream.
    await p.conn.sendAll("bye");
    assert.equal(decoder.decode(await readExactly(p.peer, 3)), "bye");
  },
);

boundedTest(
  "Connection.recv(): a bad maxBytes is EINVAL; a huge one is capped",
  async () => {
    await using p = await pair();
    for (const maxBytes of [0, -1, 1.5, NaN]) {
      await rejectsWith(p.conn.recv(maxBytes), InvalidArgumentError, "EINVAL");
    }
    await writeAll(p.peer, new Uint8Array([5, 6]));
    // 2^40 bytes could not be allocated; the read buffer is capped.
    assert.deepEqual(await p.conn.recv(2 ** 40), new Uint8Array([5, 6]));
  },
);

Deno.test("Connection.recv(): the caller owns what it gets: later reads never overwrite it", async () => {
  await using p = await pair();
  const got: Uint8Array[] = [];
  const copies: Uint8Array[] = [];
  // Many small reads and a few large ones, each a different byte, so that
  // any reuse of an earlier result's memory would show in the copies.
  for (let i = 0; i < 64; i++) {
    const size = i % 8 === 7 ? 70_000 : 1 + (i % 5);
    const bytes = new Uint8Array(size).fill(i + 1);
    const wrote = writeAll(p.peer, bytes);
    let received = 0;
    while (received < size) {
      const chunk = await p.conn.recv(i % 2 ? 65536 : 3);
      assert.ok(chunk !== null);
      got.push(chunk);
      copies.push(chunk.slice());
      received += chunk.length;
    }
    await wrote;
  }
  assert.equal(got.length, copies.length);
  for (let i = 0; i < got.length; i++) {
    assert.deepEqual(got[i], copies[i], `result ${i} was overwritten`);
  }
  // No two results share memory.
  for (let i = 1; i < got.length; i++) {
    assert.notEqual(got[i].buffer, got[i - 1].buffer);
  }
});

/** Sends until the write fails, as it does once the peer has closed. */
async function sendUntilError(conn: Connection): Promise<unknown> {
  for (let i = 0; i < 1000; i++) {
    try {
      await conn.sendAll("more");
    } catch (error) {
      return error;
    }
  }
  assert.fail("no write failed after the peer closed");
}

boundedTest(
  "Connection.sendAll(): to a peer that has closed is EPIPE naming it",
  async () => {
    await using p = await pair();
    p.peer.close();
    assert.equal(await p.conn.recv(), null);
    const error = await sendUntilError(p.conn);
    assert.ok(error instanceof ConnectionResetError, `got ${error}`);
    assert.ok(["EPIPE", "ECONNRESET"].includes(error.code), error.code);
    assert.equal(error.host, "127.0.0.1");
    assert.equal(error.port, p.conn.remoteAddr.port);
    assert.match(
      error.message,
      /^send to 127\.0\.0\.1 port \d+: (Broken pipe|Connection reset by peer)$/,
    );
    assert.ok(error.cause instanceof Error);
    assert.equal(p.conn.closed, false);
  },
);

boundedTest(
  "Connection.recvInto(): fills the given buffer from its start, null at the end",
  async () => {
    await using p = await pair();
    const buffer = new Uint8Array(4);
    await writeAll(p.peer, new TextEncoder().encode("abcdef"));
    await p.peer.closeWrite();
    let text = "";
    let n: number | null;
    const sizes: number[] = [];
    while ((n = await p.conn.recvInto(buffer)) !== null) {
      sizes.push(n);
      text += decoder.decode(buffer.subarray(0, n));
    }
    assert.equal(text, "abcdef");
    assert.ok(sizes.every((size) => size >= 1 && size <= 4), `${sizes}`);
    assert.equal(await p.conn.recvInto(buffer), null);
  },
);

boundedTest(
  "Connection.recvInto(): an empty or non-byte buffer is EINVAL; closed is EBADF",
  async () => {
    await using p = await pair();
    for (const buffer of [new Uint8Array(0), [1, 2], "abc", null]) {
      const error = await rejectsWith(
        p.conn.recvInto(buffer as Uint8Array),
        InvalidArgumentError,
        "EINVAL",
      );
      assert.match(error.message, /expected a non-empty Uint8Array/);
    }
    p.conn.close();
    await rejectsWith(
      p.conn.recvInto(new Uint8Array(8)),
      SocketClosedError,
      "EBADF",
    );
  },
);

boundedTest(
  "Connection.recvAll(): everything until the peer closes, across many reads",
  async () => {
    await using p = await pair();
    const big = pattern(300_000);
    const sending = writeAll(p.peer, big).then(() => p.peer.closeWrite());
    const got = await p.conn.recvAll();
    await sending;
    assert.deepEqual(got, big);
  },
);

boundedTest(
  "Connection.recvAll(): one read's worth, and nothing at all",
  async () => {
    await using p = await pair();
    await writeAll(p.peer, new Uint8Array([1, 2, 3]));
    await p.peer.closeWrite();
    assert.deepEqual(await p.conn.recvAll(), new Uint8Array([1, 2, 3]));
    assert.deepEqual(await p.conn.recvAll(), new Uint8Array(0));
    assert.equal(p.conn.closed, false);
  },
);

boundedTest("Connection.recvAll(): exactly maxBytes is fine", async () => {
  await using p = await pair();
  await writeAll(p.peer, pattern(1000));
  await p.peer.closeWrite();
  assert.deepEqual(await p.conn.recvAll({ maxBytes: 1000 }), pattern(1000));
});

boundedTest(
  "Connection.recvAll(): past maxBytes is EMSGSIZE and the connection is closed",
  async () => {
    await using p = await pair();
    await writeAll(p.peer, pattern(1001));
    await p.peer.closeWrite();
    const error = await rejectsWith(
      p.conn.recvAll({ maxBytes: 1000 }),
      MessageTooLargeError,
      "EMSGSIZE",
    );
    assert.match(
      error.message,
      /^recv from 127\.0\.0\.1 port \d+: more than 1000 bytes$/,
    );
    assert.equal(error.op, "recv");
    assert.equal(error.reason, "more than 1000 bytes");
    assert.equal(error.host, "127.0.0.1");
    assert.equal(error.port, p.conn.remoteAddr.port);
    assert.equal(p.conn.closed, true);
    await rejectsWith(p.conn.recv(), SocketClosedError, "EBADF");
    // The peer sees the close as end of stream (or a reset).
    const seen = await p.peer.read(new Uint8Array(10)).catch(() => null);
    assert.equal(seen, null);
  },
);

boundedTest(
  "Connection.recvAll(): maxBytes 0 accepts only an empty stream",
  async () => {
    await using p = await pair();
    await writeAll(p.peer, new Uint8Array([1]));
    await rejectsWith(
      p.conn.recvAll({ maxBytes: 0 }),
      MessageTooLargeError,
      "EMSGSIZE",
    );
  },
);

boundedTest("Connection.recvAll(): bad options are EINVAL", async () => {
  await using p = await pair();
  await rejectsWith(
    p.conn.recvAll(null as unknown as object),
    InvalidArgumentError,
    "EINVAL",
  );
  const error = await rejectsWith(
    p.conn.recvAll({ maxBytes: -1 }),
    InvalidArgumentError,
    "EINVAL",
  );
  assert.match(error.message, /invalid maxBytes -1: expected an integer ≥ 0/);
  assert.equal(p.conn.closed, false);
});

boundedTest(
  "Connection.closeWrite(): the peer reads end of stream; this side still receives",
  async () => {
    await using p = await pair();
    await p.conn.sendAll("request");
    await p.conn.closeWrite();
    assert.equal(decoder.decode(await readBytes(p.peer)), "request");
    await writeAll(p.peer, new TextEncoder().encode("response"));
    await p.peer.closeWrite();
    assert.equal(decoder.decode(await p.conn.recvAll()), "response");
  },
);

boundedTest(
  "Connection: idleTimeout on a recv with no data is ETIMEDOUT, and closes",
  async () => {
    await using p = await pair({ idleTimeout: 50 });
    const started = performance.now();
    const error = await rejectsWith(p.conn.recv(), TimeoutError, "ETIMEDOUT");
    const elapsed = performance.now() - started;
    assert.ok(elapsed >= 40 && elapsed < 2000, `took ${elapsed} ms`);
    assert.match(
      error.message,
      /^recv from 127\.0\.0\.1 port \d+: no progress in 50 ms$/,
    );
    assert.equal(error.port, p.conn.remoteAddr.port);
    assert.equal(p.conn.closed, true);
    await rejectsWith(p.conn.recv(), SocketClosedError, "EBADF");
  },
);

boundedTest(
  "Connection: idleTimeout on a write to a peer that never reads is ETIMEDOUT",
  async () => {
    await using p = await pair({ idleTimeout: 100 });
    const error = await rejectsWith(
      p.conn.sendAll(new Uint8Array(64 * 1024 * 1024)),
      TimeoutError,
      "ETIMEDOUT",
    );
    assert.match(
      error.message,
      /^send to 127\.0\.0\.1 port \d+: no progress in 100 ms$/,
    );
    assert.equal(p.conn.closed, true);
  },
);

boundedTest(
  "Connection: idleTimeout is each call's own: one timer serves them all, yet a later call outlives an earlier one's deadline",
  async () => {
    const TIMEOUT = 300;
    await using early = await pair({ idleTimeout: TIMEOUT });
    await using late = await pair({ idleTimeout: TIMEOUT });
    const earlyRecv = rejectsWith(early.conn.recv(), TimeoutError, "ETIMEDOUT");
    // Staggered on purpose: the second call's deadline is half a timeout on.
    await new Promise((resolve) => setTimeout(resolve, TIMEOUT / 2));
    const lateStarted = performance.now();
    const lateRecv = rejectsWith(late.conn.recv(), TimeoutError, "ETIMEDOUT");
    await earlyRecv;
    assert.equal(late.conn.closed, false, "closed at the earlier deadline");
    await lateRecv;
    const lateElapsed = performance.now() - lateStarted;
    assert.ok(
      lateElapsed >= TIMEOUT - 10,
      `the later one took ${lateElapsed} ms`,
    );
  },
);

boundedTest(
  "Connection: idleTimeout does not fire while data comes in time",
  async () => {
    await using p = await pair({ idleTimeout: 1000 });
    await writeAll(p.peer, new Uint8Array([1, 2]));
    assert.deepEqual(await p.conn.recv(), new Uint8Array([1, 2]));
    await p.conn.sendAll("ok");
    assert.equal(decoder.decode(await readExactly(p.peer, 2)), "ok");
    await p.peer.closeWrite();
    assert.equal(await p.conn.recv(), null);
    assert.equal(p.conn.closed, false);
  },
);

boundedTest(
  "Connection: with idleTimeout, a closed peer is still EPIPE, not ETIMEDOUT",
  async () => {
    await using p = await pair({ idleTimeout: 5000 });
    p.peer.close();
    assert.equal(await p.conn.recv(), null);
    const error = await sendUntilError(p.conn);
    assert.ok(error instanceof ConnectionResetError, `got ${error}`);
    assert.ok(["EPIPE", "ECONNRESET"].includes(error.code), error.code);
  },
);

boundedTest(
  "Connection: every operation on a closed connection is EBADF",
  async () => {
    await using p = await pair();
    p.conn.close();
    p.conn.close(); // Closing again does nothing.
    assert.equal(p.conn.closed, true);
    const cases: [string, string, () => Promise<unknown>][] = [
      ["send", "send to", () => p.conn.send("x")],
      ["send", "send to", () => p.conn.sendAll("x")],
      ["recv", "recv from", () => p.conn.recv()],
      ["recv", "recv from", () => p.conn.recvAll()],
      ["shutdown", "closeWrite to", () => p.conn.closeWrite()],
    ];
    for (const [opName, action, op] of cases) {
      const error = await rejectsWith(op(), SocketClosedError, "EBADF");
      assert.equal(
        error.message,
        `${action} 127.0.0.1 port ${p.conn.remoteAddr.port}: the connection is closed`,
      );
      assert.equal(error.op, opName);
      assert.equal(error.address, "127.0.0.1");
      assert.equal(error.reason, "the connection is closed");
      assert.equal(error.host, "127.0.0.1");
      assert.equal(error.port, p.conn.remoteAddr.port);
    }
    // The peer saw the close.
    assert.equal(await p.peer.read(new Uint8Array(1)), null);
  },
);

boundedTest(
  "Connection: close() during a pending recv ends it with EBADF",
  async () => {
    await using p = await pair();
    const pending = p.conn.recv();
    p.conn.close();
    await rejectsWith(pending, SocketClosedError, "EBADF");
  },
);

boundedTest(
  "Connection.readable: the peer's bytes as a stream, to the end",
  async () => {
    await using p = await pair();
    await writeAll(p.peer, new TextEncoder().encode("streamed"));
    p.peer.close();
    const text = await new Response(p.conn.readable).text();
    assert.equal(text, "streamed");
    // Reading to the end closed the runtime's resource; close() is still fine.
    p.conn.close();
    assert.equal(p.conn.closed, true);
  },
);

boundedTest("Connection.writable: a stream of bytes to the peer", async () => {
  await using p = await pair();
  const writer = p.conn.writable.getWriter();
  await writer.write(new TextEncoder().encode("piped"));
  writer.releaseLock();
  await p.conn.closeWrite();
  assert.equal(decoder.decode(await readBytes(p.peer)), "piped");
});

boundedTest(
  "Connection[Symbol.dispose](): using closes the connection",
  async () => {
    await using p = await pair();
    {
      using conn = p.conn;
      assert.equal(conn.closed, false);
    }
    assert.equal(p.conn.closed, true);
    assert.equal(await p.peer.read(new Uint8Array(1)), null);
  },
);

boundedTest(
  "Connection[Symbol.asyncDispose](): await using closes the connection",
  async () => {
    await using p = await pair();
    {
      await using conn = p.conn;
      await conn.sendAll("last");
    }
    assert.equal(p.conn.closed, true);
    assert.equal(decoder.decode(await readBytes(p.peer)), "last");
    // Disposing again is harmless.
    await p.conn[Symbol.asyncDispose]();
    p.conn[Symbol.dispose]();
  },
);

boundedTest(
  "Connection.send(): bad data rejects, it does not throw",
  async () => {
    await using ends = await pair();
    const sending = ends.conn.send(123 as unknown as string);
    assert.ok(sending instanceof Promise);
    await assert.rejects(sending, InvalidArgumentError);
  },
);
