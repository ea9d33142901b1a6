/**
 * The pipe behind `telnet` (lib/_pipe.ts): lossless both ways, across the
 * handoff to workers at 1 MiB, live with stdin open and idle, and a reset
 * one way never losing what arrived the other way (issue 9 §2, issue 11).
 *
 * The worker path serves only the process's own stdin and stdout, so the
 * CLI runs as a real subprocess; the peer is a raw socket in this process.
 */

import assert from "node:assert/strict";
import { within } from "./fixtures/deadline.ts";
import { readBytes, readExactly, sameBytes } from "./fixtures/net.ts";
import {
  CLI,
  DENO,
  type Proc,
  run,
  runCli,
  type RunResult,
  start,
  startCli,
} from "./fixtures/process.ts";
import { connect } from "../lib/connect.ts";
import { HANDOFF_BYTES, pipe, type PipeInput } from "../lib/_pipe.ts";

const MIB = 1024 * 1024;
const encoder = new TextEncoder();
const decoder = new TextDecoder();
/** The sizes that cross the handoff, or just reach it, or stay before. */
const SIZES = [0, 100, HANDOFF_BYTES, 3 * MIB + 17];
/**
 * A CLI run moving a few MiB takes well under a second here; 30 s leaves
 * room for a loaded 2-core machine while a hang still fails.
 */
const RUN_MS = 30_000;
/**
 * Bytes reach the other side in milliseconds (about 1 ms measured); a
 * bound of seconds stays clear of a loaded machine, and a pipe that holds
 * bytes until stdin closes never meets it.
 */
const PROMPT_MS = 5_000;

/** `n` random bytes: a dropped, doubled or moved byte shows. */
function randomBytes(n: number): Uint8Array {
  const bytes = new Uint8Array(n);
  for (let i = 0; i < n; i += 65536) {
    crypto.getRandomValues(bytes.subarray(i, Math.min(n, i + 65536)));
  }
  return bytes;
}

/** One connection on a fresh listener, handled by `handler`. */
function peer<T>(
  handler: (conn: Deno.TcpConn) => Promise<T>,
): { port: string; result: Promise<T> } & AsyncDisposable {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const result = (async () => {
    const conn = await listener.accept();
    try {
      return await handler(conn);
    } finally {
      conn.close();
    }
  })();
  // Awaited by the test or at disposal; never unhandled meanwhile.
  result.catch(() => {});
  return {
    port: String(listener.addr.port),
    result,
    async [Symbol.asyncDispose]() {
      listener.close();
      await within(result, RUN_MS, "the peer to finish").catch(() => {});
    },
  };
}

async function writeAll(conn: Deno.Conn, data: Uint8Array): Promise<void> {
  let written = 0;
  while (written < data.length) {
    written += await conn.write(data.subarray(written));
  }
}

/**
 * Kills `proc`, then disposes of it: Proc's own disposal closes stdin
 * first, which waits for a write stuck in a full pipe, so a telnet that
 * hung would hang the test instead of failing it.
 */
function killing(proc: Proc): AsyncDisposable {
  return {
    async [Symbol.asyncDispose]() {
      proc.kill("SIGKILL");
      await proc[Symbol.asyncDispose]();
    },
  };
}

/**
 * Runs `cli.ts` with `input` on stdin to its end, as runCli does, but
 * with the deadline running from the start: runCli writes all its input
 * before its deadline starts, and a telnet that stopped reading would
 * hang that write. Here the deadline kills telnet, which ends the write.
 */
async function runWith(args: string[], input: Uint8Array): Promise<RunResult> {
  const proc = startCli(args, { stdin: true, binary: true });
  await using _ = killing(proc);
  const exited = proc.exit(RUN_MS);
  exited.catch(() => {});
  // Fails once telnet has exited (or was killed) with input unread.
  await proc.write(input).catch(() => {});
  await proc.closeStdin();
  const exit = await exited;
  return {
    ...exit,
    stdout: proc.stdout,
    stderr: proc.stderr,
    stdoutBytes: proc.stdoutBytes,
  };
}

function lastLine(text: string): string {
  return text.trimEnd().split("\n").at(-1) ?? "";
}

Deno.test("pipe: stdin → socket, byte for byte, across the handoff", async (t) => {
  for (const size of SIZES) {
    await t.step(`${size} bytes`, async () => {
      const data = randomBytes(size);
      await using server = peer((conn) => readBytes(conn));
      const result = await runWith(["telnet", "127.0.0.1", server.port], data);
      assert.equal(result.code, 0, result.stderr);
      sameBytes(await within(server.result, RUN_MS, "the bytes"), data);
      assert.equal(
        lastLine(result.stderr),
        "Connection closed by foreign host.",
      );
    });
  }
});

Deno.test("pipe: socket → stdout, byte for byte, across the handoff", async (t) => {
  for (const size of SIZES) {
    await t.step(`${size} bytes`, async () => {
      const data = randomBytes(size);
      await using server = peer((conn) => writeAll(conn, data));
      const result = await runCli(["telnet", "127.0.0.1", server.port], {
        binary: true,
        timeout: RUN_MS,
      });
      assert.equal(result.code, 0, result.stderr);
      sameBytes(result.stdoutBytes, data);
    });
  }
});

Deno.test("pipe: both ways at once through an echo peer", async (t) => {
  for (const size of [100, 3 * MIB + 17, 9 * MIB + 5]) {
    await t.step(`${size} bytes`, async () => {
      const data = randomBytes(size);
      // The peer echoes as it reads: it never waits for the end, so both
      // directions run at once and past the handoff together.
      await using server = peer(async (conn) => {
        const buffer = new Uint8Array(65536);
        let n: number | null;
        while ((n = await conn.read(buffer)) !== null) {
          await writeAll(conn, buffer.subarray(0, n));
        }
      });
      const result = await runWith(
        ["telnet", "--debug", "127.0.0.1", server.port],
        data,
      );
      assert.equal(result.code, 0, result.stderr);
      sameBytes(result.stdoutBytes, data);
    });
  }
});

Deno.test("pipe: live both ways with stdin open and idle, before and after the handoff", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  try {
    const telnet = startCli(
      ["telnet", "--debug", "127.0.0.1", String(listener.addr.port)],
      { stdin: true },
    );
    await using _ = killing(telnet);
    const conn = await within(listener.accept(), RUN_MS, "telnet's connect");
    try {
      const exchange = async (label: string) => {
        await within(
          writeAll(conn, encoder.encode(`${label} from the peer\n`)),
          PROMPT_MS,
          `"${label} from the peer" sent`,
        );
        await telnet.waitForLine(
          new RegExp(`^${label} from the peer$`),
          PROMPT_MS,
        );
        const line = encoder.encode(`${label} typed\n`);
        await within(telnet.write(line), PROMPT_MS, `"${label} typed" typed`);
        const got = await within(
          readExactly(conn, line.length),
          PROMPT_MS,
          `"${label} typed" at the peer`,
        );
        assert.equal(decoder.decode(got), `${label} typed\n`);
      };
      await exchange("before");

      // Each side keeps moving 64 KiB lines until telnet says its worker
      // took over (a pending async read ends at its next bytes).
      const line = encoder.encode("x".repeat(65535) + "\n");
      const handedOff = (what: string) => {
        let done = false;
        const seen = telnet.waitForStderr(
          new RegExp(`${what} handed to a worker`),
          RUN_MS,
        )
          .then(() => done = true);
        return { seen, done: () => done };
      };
      const stdin = handedOff("stdin → socket");
      const stdout = handedOff("socket → stdout");
      const toPeer = (async () => {
        let sent = 0;
        while (!stdin.done()) {
          await telnet.write(line);
          sent += line.length;
        }
        return sent;
      })();
      // The peer reads as telnet sends, or telnet's sending would stall.
      const drained = (async () => {
        const buffer = new Uint8Array(65536);
        let got = 0;
        let sent: number | undefined;
        toPeer.then((n) => sent = n, () => {});
        while (sent === undefined || got < sent) {
          const n = await conn.read(buffer);
          if (n === null) throw new Error(`end of stream after ${got}`);
          got += n;
        }
      })();
      const fromPeer = (async () => {
        while (!stdout.done()) await writeAll(conn, line);
      })();
      // Every loop above is in here: a telnet that stops reading or
      // writing fails the test instead of hanging it.
      await within(
        Promise.all([stdin.seen, stdout.seen, toPeer, drained, fromPeer]),
        RUN_MS,
        "both handoffs",
      );

      // Now stdin is open and idle, read by a worker, and stdout is
      // written by another.
      await exchange("after");
      await exchange("again");

      await within(telnet.closeStdin(), PROMPT_MS, "stdin's close");
      const end = await within(
        conn.read(new Uint8Array(1)),
        PROMPT_MS,
        "the half-close",
      );
      assert.equal(end, null);
    } finally {
      conn.close();
    }
    const exit = await telnet.exit(RUN_MS);
    assert.equal(exit.code, 0, telnet.stderr);
  } finally {
    listener.close();
  }
});

/**
 * Bytes that the writer follows with a pause reach the peer at once: the
 * stdin worker may hold its wake back, but only while the main thread
 * sleeps on its 1 ms timer (lib/_pipe.ts, Ring.TIMED). Observed from the
 * last write to the last byte at the peer: 0.2–6 ms for this test's own
 * writes, 7–30 ms with `dd` (its start included). Half a second leaves a
 * loaded 2-core machine room for scheduling delays, while a wake held
 * until the writer's next write (which never comes while the test waits)
 * fails it: checked by breaking the timer on purpose.
 */
const PAUSE_MS = 500;

/** Telnet, with a way to write to its stdin. */
interface Writer {
  telnet: Proc;
  /** What `write` sends after the handoff, in order. */
  data: Uint8Array;
  /**
   * Writes `n` bytes (a multiple of 64 KiB) to telnet's stdin: zeros as
   * `filler`, or else the next `n` bytes of `data`.
   */
  write(n: number, filler: boolean): Promise<void>;
}

/**
 * Sends 64 KiB of filler at a time until telnet's stdin worker takes over
 * (however long its start takes: under coverage, seconds), then exact
 * multiples of 64 KiB of `data`, each followed by a pause with stdin
 * open: the peer must have every byte during the pause.
 */
async function pausesAfterHandoff(
  conn: Deno.Conn,
  writer: Writer,
): Promise<void> {
  const { telnet, data } = writer;
  // The peer reads all along, keeps what comes after the filler, and says
  // when `n` bytes in all have come.
  const got = new Uint8Array(data.length);
  let have = 0;
  // How much filler came first: known (≥ 0) once the handoff is seen.
  let fillerBytes = -1;
  const waiters = new Set<() => void>();
  const reading = (async () => {
    const buffer = new Uint8Array(1024 * 1024);
    while (true) {
      const n = await conn.read(buffer);
      if (n === null) break;
      // No data is written before the filler is all through (below).
      if (fillerBytes >= 0) {
        got.set(buffer.subarray(0, n), have - fillerBytes);
      }
      have += n;
      for (const waiter of waiters) waiter();
    }
  })();
  // Awaited below; a failure before that closes conn under it.
  reading.catch(() => {});
  const reached = (n: number): Promise<void> =>
    new Promise((resolve) => {
      const check = () => {
        if (have < n) return;
        waiters.delete(check);
        resolve();
      };
      waiters.add(check);
      check();
    });

  let written = 0;
  // A pending async read ends at its next bytes: keep them coming, each
  // 64 KiB once the last is through (a writer may run ahead otherwise).
  let handedOff = false;
  const handoff = telnet.waitForStderr(
    /stdin → socket handed to a worker/,
    RUN_MS,
  ).then(() => handedOff = true);
  // Awaited below, unless the loop failed first.
  handoff.catch(() => {});
  await within(
    (async () => {
      while (!handedOff) {
        await writer.write(65536, true);
        written += 65536;
        await reached(written);
      }
    })(),
    RUN_MS,
    "the stdin handoff",
  );
  await handoff;
  fillerBytes = written;
  // Many pauses: whether the worker's last read before one waited for the
  // writer (then it wakes the main thread at once) is up to timing; with
  // the timer broken on purpose, about one in six such pauses failed.
  const sizes = [65536, 4 * 65536, 2 * MIB];
  for (let i = 0; i < 12; i++) sizes.push(i % 2 ? 4 * 65536 : MIB);
  let sent = 0;
  for (const n of sizes) {
    await within(writer.write(n, false), RUN_MS, `${n} bytes written`);
    written += n;
    sent += n;
    await within(
      reached(written),
      PAUSE_MS,
      `all ${written} bytes at the peer during a pause`,
    );
    sameBytes(got.subarray(0, have - fillerBytes), data.subarray(0, sent));
  }

  await within(telnet.closeStdin(), PROMPT_MS, "stdin's close");
  await within(reading, PROMPT_MS, "the half-close");
  assert.equal(have, written);
}

/** A listener, a telnet started by `start` connected to it, and `test`. */
async function withTelnet(
  start: (port: string) => Writer,
  test: (conn: Deno.Conn, writer: Writer) => Promise<void>,
): Promise<void> {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  try {
    const writer = start(String(listener.addr.port));
    await using _ = killing(writer.telnet);
    const conn = await within(listener.accept(), RUN_MS, "telnet's connect");
    try {
      await test(conn, writer);
    } finally {
      conn.close();
    }
    const exit = await writer.telnet.exit(RUN_MS);
    assert.equal(exit.code, 0, writer.telnet.stderr);
  } finally {
    listener.close();
  }
}

Deno.test("pipe: 64 KiB multiples past the handoff, then a pause with stdin open: every byte at the peer at once", async (t) => {
  // What the pauses send: 65536 + 4 × 64 KiB + 2 MiB + 6 × (1 MiB + 256 KiB).
  const data = randomBytes(10 * MIB);

  await t.step("written by this test (slower than telnet reads)", async () => {
    await withTelnet((port) => {
      const telnet = startCli(["telnet", "--debug", "127.0.0.1", port], {
        stdin: true,
      });
      const zeros = new Uint8Array(65536);
      let offset = 0;
      return {
        telnet,
        data,
        async write(n, filler) {
          for (let i = 0; i < n; i += 65536) {
            if (filler) await telnet.write(zeros);
            else {
              await telnet.write(data.subarray(offset, offset + 65536));
              offset += 65536;
            }
          }
        },
      };
    }, pausesAfterHandoff);
  });

  await t.step("written by dd (faster than telnet reads)", async () => {
    // Each line on bash's stdin makes `dd` copy that many more bytes of
    // the file (or of zeros) to telnet's stdin in one write, so the pipe
    // stays full and the worker's last read before the pause need not
    // wait for the writer: its wake may be held, and only the main
    // thread's timer sends them.
    const file = await Deno.makeTempFile({ prefix: "pipe_test" });
    try {
      await Deno.writeFile(file, data);
      await withTelnet((port) => {
        // `timeout` bounds telnet itself if the test fails with bash gone.
        const script = `exec 3<"${file}"; while read -r n from; do ` +
          `if [ "$from" = file ]; then ` +
          `dd bs="$n" count=1 iflag=fullblock status=none <&3; ` +
          `else head -c "$n" /dev/zero; fi || exit 1; ` +
          `done | timeout -s KILL ` +
          `${RUN_MS / 1000} "${DENO}" run -N "${CLI}" telnet --debug ` +
          `127.0.0.1 ${port}`;
        const telnet = start("bash", ["-c", script], { stdin: true });
        return {
          telnet,
          data,
          write: (n, filler) =>
            telnet.write(`${n} ${filler ? "zero" : "file"}\n`),
        };
      }, pausesAfterHandoff);
    } finally {
      await Deno.remove(file);
    }
  });
});

Deno.test("pipe: a peer that greets and resets (issue 9 §2): the greeting, every time", async (t) => {
  // `cli.ts serve` never reads: its close, with 5 MiB unread, resets the
  // connection. The greeting is in telnet's receive queue by then.
  await using serve = startCli([
    "serve",
    "--hostname",
    "127.0.0.1",
    "--port",
    "0",
  ]);
  const [, port] = await serve.waitForLine(/^socket binded to (\d+)$/);
  const input = new Uint8Array(5 * MIB);
  for (let i = 1; i <= 5; i++) {
    await t.step(`run ${i}`, async () => {
      const result = await runWith(["telnet", "127.0.0.1", port], input);
      assert.equal(result.stdout, "Thank you for connecting", result.stderr);
      assert.equal(result.code, 0, result.stderr);
      // One line on how it ended: closed, or reset (named as such).
      assert.match(
        lastLine(result.stderr),
        /^(Connection closed by foreign host\.|(send to|recv from) 127\.0\.0\.1 port \d+: (Connection reset by peer|Broken pipe))$/,
      );
    });
  }
});

Deno.test("pipe: | head ends quietly, before and after the handoff", async (t) => {
  for (const bytes of [10, 3 * MIB]) {
    await t.step(`head -c ${bytes}`, async () => {
      // An endless peer: only telnet's leaving stops it.
      await using server = peer(async (conn) => {
        const chunk = new Uint8Array(65536).fill(0x78);
        try {
          while (true) await writeAll(conn, chunk);
        } catch {
          // telnet has gone: what this test waits for.
        }
      });
      // `timeout` bounds telnet itself: killing bash on the deadline would
      // leave a hung telnet holding the output pipes open.
      const script = `timeout -s KILL ${RUN_MS / 1000} ` +
        `"${DENO}" run -N "${CLI}" telnet 127.0.0.1 ${server.port} ` +
        `</dev/null | head -c ${bytes} | wc -c; echo "telnet exit \${PIPESTATUS[0]}" >&2`;
      const result = await run("bash", ["-c", script], { timeout: RUN_MS });
      assert.equal(result.stdout.trim(), String(bytes));
      const lines = result.stderr.trimEnd().split("\n");
      assert.equal(lines.at(-1), "telnet exit 0", result.stderr);
      assert.equal(lines.at(-2), "Escape character is '^]'.", result.stderr);
    });
  }
});

/** A stand-in stdin over fixed bytes, in small reads. */
function inputOf(data: Uint8Array): PipeInput {
  let offset = 0;
  return {
    isTerminal: () => false,
    read(p) {
      if (offset >= data.length) return Promise.resolve(null);
      const n = Math.min(p.length, 1000, data.length - offset);
      p.set(data.subarray(offset, offset + n));
      offset += n;
      return Promise.resolve(n);
    },
  };
}

Deno.test("pipe(): stand-in stdin and stdout, both ways at once", async () => {
  const data = randomBytes(2 * MIB + 3);
  await using server = peer(async (conn) => {
    const buffer = new Uint8Array(65536);
    let n: number | null;
    while ((n = await conn.read(buffer)) !== null) {
      await writeAll(conn, buffer.subarray(0, n));
    }
  });
  await using conn = await within(
    connect("127.0.0.1", Number(server.port)),
    RUN_MS,
    "the connect",
  );
  const chunks: Uint8Array[] = [];
  const result = await within(
    pipe(conn, {
      stdin: inputOf(data),
      stdout: {
        write(p) {
          chunks.push(p.slice());
          return Promise.resolve(p.length);
        },
      },
    }),
    RUN_MS,
    "the echo",
  );
  assert.equal(result.connectionError, undefined);
  assert.equal(result.sent, data.length);
  assert.equal(result.received, data.length);
  const out = new Uint8Array(data.length);
  let offset = 0;
  for (const chunk of chunks) {
    out.set(chunk, offset);
    offset += chunk.length;
  }
  sameBytes(out, data);
});

Deno.test("pipe(): a stdout that fails for another reason than its reader leaving is reported", async () => {
  await using server = peer((conn) => writeAll(conn, encoder.encode("hi")));
  await using conn = await within(
    connect("127.0.0.1", Number(server.port)),
    RUN_MS,
    "the connect",
  );
  const result = await within(
    pipe(conn, {
      stdin: inputOf(new Uint8Array(0)),
      stdout: {
        write: () => Promise.reject(new Deno.errors.PermissionDenied("no")),
      },
    }),
    RUN_MS,
    "the pipe's end",
  );
  assert.equal(result.stdoutClosed, false);
  assert.ok(result.stdoutError instanceof Deno.errors.PermissionDenied);
  assert.equal(result.received, 0);
});
