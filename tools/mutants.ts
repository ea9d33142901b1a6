/**
 * Mutation testing, the habit that keeps the suite honest: applies, one at
 * a time, a small regression a real change could make to lib/ or the CLI,
 * runs the suite against it, and reports whether a test failed (killed),
 * none did (survived), or the suite ran past its deadline (hung).
 *
 * Each mutant runs in a fresh copy of the checkout in a temporary folder,
 * so the working tree is never left mutated, whatever happens.
 *
 * Usage: `deno task mutants [--only id,id] [--timeout ms] [--list]`
 *
 * @module
 */

import { parseArgs } from "node:util";

/** One mutation: in `file`, `search` (exactly once) becomes `replace`. */
interface Mutant {
  id: string;
  /** The regression, in words. */
  what: string;
  file: string;
  search: string;
  replace: string;
}

/**
 * The mutants. Anchors are small, core lines; when the code changes so
 * that one is no longer found exactly once, the run fails loudly before
 * anything runs: re-anchor it, do not drop it.
 */
const MUTANTS: Mutant[] = [
  // lib/connection.ts: the read and write loops, the timers, the half-close.
  {
    id: "sendall-writes-once",
    what: "sendAll() writes once: a partial write is taken for a full one",
    file: "lib/connection.ts",
    search: "    while (sent < bytes.length) {\n      sent += await this.#io(",
    replace: "    if (sent < bytes.length) {\n      sent += await this.#io(",
  },
  {
    id: "eof-as-empty-read",
    what: "recv() reports end of stream as an empty read, not null",
    file: "lib/connection.ts",
    search: "n === null ? null : buffer.subarray(0, n)",
    replace: "n === null ? new Uint8Array(0) : buffer.subarray(0, n)",
  },
  {
    id: "recvall-limit-off-by-one",
    what: "recvAll() lets one byte past maxBytes through",
    file: "lib/connection.ts",
    search: "if (total > limit) {",
    replace: "if (total > limit + 1) {",
  },
  {
    id: "idle-timer-never-armed",
    what: "idleTimeout is accepted but its timer is never armed",
    file: "lib/connection.ts",
    search:
      "if (this.#idleTimeout !== undefined) return this.#timedIo(action, op);",
    replace: "if (this.#idleTimeout === -1) return this.#timedIo(action, op);",
  },
  {
    id: "idle-deadlines-shared",
    what:
      "the shared idle timer expires every pending call at the first deadline",
    file: "lib/_idle.ts",
    search: "while (head !== undefined && head.deadline <= now) {",
    replace:
      "while (head !== undefined && head.deadline <= now + this.#timeout) {",
  },
  {
    id: "closewrite-does-nothing",
    what: "closeWrite() resolves without shutting the sending side",
    file: "lib/connection.ts",
    search: "() => this.#conn.closeWrite()",
    replace: "() => Promise.resolve()",
  },
  // lib/server.ts: admission, counting, closing, shutdown.
  {
    id: "backlog-off-by-one",
    what: "admission: backlog + 1 connections may wait",
    file: "lib/server.ts",
    search: "!refusal && this.#waiting.length < this.#backlog",
    replace: "!refusal && this.#waiting.length <= this.#backlog",
  },
  {
    id: "concurrency-off-by-one",
    what: "admission: concurrency + 1 handlers run at once",
    file: "lib/server.ts",
    search: "!refusal && this.#running.size < this.#concurrency",
    replace: "!refusal && this.#running.size <= this.#concurrency",
  },
  {
    id: "admit-ignored",
    what: "the admit hook is asked, and its answer ignored: everyone is let in",
    file: "lib/server.ts",
    search: 'return admit(entry.info) ? undefined : "admit";',
    replace: "return admit(entry.info) ? undefined : undefined;",
  },
  {
    id: "refused-left-open",
    what: "a refused connection (no refusal message) is left open",
    file: "lib/server.ts",
    search: "if (message === undefined) {\n      conn.close();\n      return;",
    replace: "if (message === undefined) {\n      return;",
  },
  {
    id: "served-counted-twice",
    what: "a served connection bumps the counter twice",
    file: "lib/server.ts",
    search: "      this.#counts.served++;",
    replace: "      this.#counts.served += 2;",
  },
  {
    id: "failed-not-counted",
    what: "a handler that throws is not counted as failed",
    file: "lib/server.ts",
    search: "      this.#counts.failed++;",
    replace: "      this.#counts.failed += 0;",
  },
  {
    id: "handler-conn-left-open",
    what: "the server does not close a connection once its handler is done",
    file: "lib/server.ts",
    search: "    entry.conn.close();\n    this.#running.delete(entry);",
    replace: "    this.#running.delete(entry);",
  },
  {
    id: "deadline-aborts-all",
    what:
      "handlerTimeout's one timer aborts every running handler at the first deadline",
    file: "lib/server.ts",
    search: "      if (left > 0) {\n        this.#deadlineTimer = setTimeout(",
    replace:
      "      if (left > Infinity) {\n        this.#deadlineTimer = setTimeout(",
  },
  {
    id: "accept-loop-never-turns",
    what:
      "the accept loop takes a whole queued burst before the event loop turns",
    file: "lib/server.ts",
    search: "const ACCEPTS_PER_TURN = 8;",
    replace: "const ACCEPTS_PER_TURN = 1e9;",
  },
  {
    id: "handler-shutdown-waits-for-itself",
    what:
      "shutdown() called by a handler waits for every handler, its caller too",
    file: "lib/server.ts",
    search:
      "return serverContext.getStore() === this ? this.#loop : this.finished;",
    replace: "return this.finished;",
  },
  {
    id: "shutdown-forgets-waiting",
    what: "shutdown never starts the connections still waiting",
    file: "lib/server.ts",
    search:
      "      this.#idle = Promise.withResolvers();\n      this.#startWaiting();",
    replace: "      this.#idle = Promise.withResolvers();",
  },
  {
    id: "unix-live-socket-removed",
    what: "removeStaleSocket() removes the socket even when a server answers",
    file: "lib/server.ts",
    search:
      '  conn.close();\n  throw inUse("Address already in use (a server answers there)");',
    replace: "  conn.close();\n  await Deno.remove(path);\n  return true;",
  },
  // Names and the connection race.
  {
    id: "eyeballs-order-flipped",
    what: "Happy Eyeballs: IPv4 is tried before IPv6",
    file: "lib/resolve.ts",
    search:
      "    if (i < v6.length) out.push(v6[i]);\n    if (i < v4.length) out.push(v4[i]);",
    replace:
      "    if (i < v4.length) out.push(v4[i]);\n    if (i < v6.length) out.push(v6[i]);",
  },
  {
    id: "refused-waits-for-delay",
    what: "a refused attempt waits for attemptDelay instead of going on",
    file: "lib/_happy_eyeballs.ts",
    search: "      if (next < addresses.length) start();\n",
    replace: "      if (next < addresses.length) void 0;\n",
  },
  {
    id: "nxdomain-as-servfail",
    what: "no such name is reported as a server failure",
    file: "lib/resolve.ts",
    search: 'return notFound(host, "no such name", errors[0]);',
    replace: 'return serverFailed(host, "no such name", errors[0]);',
  },
  {
    id: "resolve-timeout-as-servfail",
    what: "a resolve that times out is reported as a server failure",
    file: "lib/resolve.ts",
    search:
      '      new TimeoutError({\n        op: "resolve",\n        host,\n' +
      "        reason: `no answer from DNS in",
    replace:
      '      new ResolveError({\n        code: "ESERVFAIL",\n        op: "resolve",\n' +
      "        host,\n        reason: `no answer from DNS in",
  },
  // Errors as data: the runtime's errors mapped by a table.
  {
    id: "refused-mapped-to-timeout",
    what: "a refusal is mapped to ETIMEDOUT",
    file: "lib/_error_mapping.ts",
    search: '[Deno.errors.ConnectionRefused, "ECONNREFUSED",',
    replace: '[Deno.errors.ConnectionRefused, "ETIMEDOUT",',
  },
  {
    id: "reset-mapped-to-epipe",
    what: "a reset is mapped to EPIPE",
    file: "lib/_error_mapping.ts",
    search: '[Deno.errors.ConnectionReset, "ECONNRESET",',
    replace: '[Deno.errors.ConnectionReset, "EPIPE",',
  },
  {
    id: "unknown-ca-as-invalid",
    what: "a certificate from an unknown authority is mapped to ECERTINVALID",
    file: "lib/_error_mapping.ts",
    search:
      'return ["EUNKNOWNCA", "certificate signed by an unknown authority"];',
    replace:
      'return ["ECERTINVALID", "certificate signed by an unknown authority"];',
  },
  // TLS.
  {
    id: "handshake-timeout-never-armed",
    what: "the server's TLS handshake timeout is never armed",
    file: "lib/tls.ts",
    search: "  }, timeout);\n  try {\n    const info = await conn.handshake();",
    replace:
      "  }, 2 ** 31 - 1);\n  try {\n    const info = await conn.handshake();",
  },
  // Addresses.
  {
    id: "port-range-off-by-one",
    what: "port 65536 is accepted",
    file: "lib/address.ts",
    search: "    port > MAX_PORT",
    replace: "    port > MAX_PORT + 1",
  },
  {
    id: "port-zero-everywhere",
    what: "port 0 is accepted where a real port is needed (connect)",
    file: "lib/address.ts",
    search: "const low = options.allowZero ? 0 : 1;",
    replace: "const low = 0;",
  },
  // scan, listen, the pipe.
  {
    id: "scan-refused-as-open",
    what: "scan reports a refused port as open",
    file: "lib/scan.ts",
    search: 'const REFUSED = {\n  state: "closed",',
    replace: 'const REFUSED = {\n  state: "open",',
  },
  {
    id: "broker-echoes-sender",
    what: "listen's broker echoes a client's bytes back to that client",
    file: "lib/listen.ts",
    search: "[...this.#peers].filter((peer) => peer !== from),",
    replace: "[...this.#peers],",
  },
  {
    id: "broker-not-to-others",
    what: "listen's broker sends a client's bytes to no other client",
    file: "lib/listen.ts",
    search: "[...this.#peers].filter((peer) => peer !== from),",
    replace: "[...this.#peers].filter(() => false),",
  },
  {
    id: "pipe-drops-last-chunk",
    what: "the pipe half-closes before sending what stdin's last read left",
    file: "lib/_pipe.ts",
    search: "    if (bytes.length > 0) {\n      let n: number;",
    replace:
      "    if (bytes.length > 0 && producer !== Ring.DONE) {\n      let n: number;",
  },
  // The CLI.
  {
    id: "cli-timeout-zero-at-once",
    what: "--timeout 0 means at once, not never",
    file: "cli/_common.ts",
    search: "return ms === 0 ? undefined : ms;",
    replace: "return ms;",
  },
  {
    id: "cli-usage-exit-1",
    what: "the CLI exits 1, not 2, on a usage error",
    file: "cli/_common.ts",
    search: "return isUsage ? 2 : 1;",
    replace: "return isUsage ? 1 : 1;",
  },
  {
    id: "cli-summary-served-is-accepted",
    what: "the CLI server's summary prints accepted as served",
    file: "cli/serve.ts",
    search: "served ${stats.served}",
    replace: "served ${stats.accepted}",
  },
  {
    id: "cli-first-sigint-ignored",
    what: "the CLI server ignores the first Ctrl-C",
    file: "cli/serve.ts",
    search: "if (++signals === 1) {",
    replace: "if (++signals === 2) {",
  },
];

/** What the copy of the checkout leaves out. */
const SKIP = new Set([".git", ".coverage", "node_modules"]);
const SKIP_PATHS = new Set(["bench/results"]);

type Outcome = "killed" | "survived" | "hung" | "invalid";

interface Result {
  mutant: Mutant;
  outcome: Outcome;
  seconds: number;
  /** The tests that failed (killed), or the output's tail otherwise. */
  detail: string;
}

const ROOT = new URL("../", import.meta.url).pathname;

async function copyTree(from: string, to: string, rel = ""): Promise<void> {
  await Deno.mkdir(to, { recursive: true });
  for await (const entry of Deno.readDir(from)) {
    const path = rel ? `${rel}/${entry.name}` : entry.name;
    if (SKIP.has(entry.name) || SKIP_PATHS.has(path)) continue;
    const source = `${from}/${entry.name}`;
    const target = `${to}/${entry.name}`;
    if (entry.isDirectory) await copyTree(source, target, path);
    else if (entry.isFile) await Deno.copyFile(source, target);
  }
}

function count(text: string, search: string): number {
  let n = 0;
  for (let at = text.indexOf(search); at !== -1;) {
    n++;
    at = text.indexOf(search, at + search.length);
  }
  return n;
}

/** Checks every anchor before anything runs; throws naming the stale ones. */
async function checkAnchors(mutants: Mutant[]): Promise<void> {
  const stale: string[] = [];
  const ids = new Set<string>();
  for (const m of mutants) {
    if (ids.has(m.id)) stale.push(`${m.id}: the id is used twice`);
    ids.add(m.id);
    const text = await Deno.readTextFile(`${ROOT}${m.file}`);
    const n = count(text, m.search);
    if (n !== 1) stale.push(`${m.id}: found ${n} times in ${m.file}`);
  }
  if (stale.length > 0) {
    throw new Error(`stale mutants (re-anchor them):\n  ${stale.join("\n  ")}`);
  }
}

/** The failing tests' names, from deno test's FAILURES list (no colour). */
function failedTests(output: string): string[] {
  const at = output.lastIndexOf(" FAILURES ");
  if (at === -1) return [];
  return output.slice(at).split("\n")
    .filter((line) => line.includes(" => ./"))
    .map((line) => line.replace(/ => .*$/, "").trim());
}

async function runMutant(mutant: Mutant, timeout: number): Promise<Result> {
  const dir = await Deno.makeTempDir({ prefix: `mutant-${mutant.id}-` });
  const started = performance.now();
  try {
    await copyTree(ROOT.replace(/\/$/, ""), dir);
    const path = `${dir}/${mutant.file}`;
    const text = await Deno.readTextFile(path);
    await Deno.writeTextFile(path, text.replace(mutant.search, mutant.replace));
    // A mutant that does not type-check would be "killed" by deno test's
    // type check, not by a test: that proves nothing, so it is invalid.
    const check = await new Deno.Command(Deno.execPath(), {
      args: ["check", mutant.file],
      cwd: dir,
      env: { NO_COLOR: "1" },
      stdin: "null",
    }).output();
    if (!check.success) {
      const seconds = (performance.now() - started) / 1000;
      const errors = new TextDecoder().decode(check.stderr);
      return { mutant, outcome: "invalid", seconds, detail: tail(errors) };
    }
    // setsid: the suite leads its own process group, so that on the
    // deadline it dies with every server and client it started.
    const child = new Deno.Command("setsid", {
      // The bench smoke test measures the harness, not lib/, and takes a
      // minute: left out. --fail-fast: a killed mutant stops at once.
      args: [
        Deno.execPath(),
        "test",
        "-A",
        "--fail-fast",
        "--ignore=tests/bench_smoke_test.ts",
        "tests/",
      ],
      cwd: dir,
      env: { NO_COLOR: "1" },
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const output = Promise.all([
      new Response(child.stdout).text(),
      new Response(child.stderr).text(),
    ]).then(([out, err]) => `${err}\n${out}`);
    let timer: ReturnType<typeof setTimeout> | undefined;
    const late = new Promise<"late">((resolve) => {
      timer = setTimeout(() => resolve("late"), timeout);
    });
    const status = await Promise.race([child.status, late]);
    clearTimeout(timer);
    if (status === "late") {
      try {
        Deno.kill(-child.pid, "SIGKILL");
      } catch {
        // Gone already.
      }
      await child.status;
    }
    const text_ = await output;
    const seconds = (performance.now() - started) / 1000;
    if (status === "late") {
      return { mutant, outcome: "hung", seconds, detail: tail(text_) };
    }
    if (status.success) {
      return { mutant, outcome: "survived", seconds, detail: "" };
    }
    const failed = failedTests(text_);
    return {
      mutant,
      outcome: "killed",
      seconds,
      detail: failed.length > 0 ? failed.join("; ") : tail(text_),
    };
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** The last lines of stdout: for a hang, the test that was running. */
function tail(text: string): string {
  return text.trim().split("\n").filter((l) => l.trim() !== "").slice(-3)
    .join(" | ");
}

async function main(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      only: { type: "string" },
      timeout: { type: "string", default: "240000" },
      list: { type: "boolean" },
    },
  });
  const only = values.only?.split(",");
  const mutants = only ? MUTANTS.filter((m) => only.includes(m.id)) : MUTANTS;
  if (only && mutants.length !== only.length) {
    console.error(`unknown mutant in --only: ${values.only}`);
    return 2;
  }
  await checkAnchors(MUTANTS);
  if (values.list) {
    for (const m of mutants) console.log(`${m.id}\t${m.file}\t${m.what}`);
    return 0;
  }
  const timeout = Number(values.timeout);
  const results: Result[] = [];
  for (const [i, mutant] of mutants.entries()) {
    const result = await runMutant(mutant, timeout);
    results.push(result);
    console.log(
      `[${i + 1}/${mutants.length}] ${result.outcome.padEnd(8)} ` +
        `${mutant.id} (${result.seconds.toFixed(0)} s)` +
        (result.detail ? `\n    ${result.detail}` : ""),
    );
  }
  const tally = (o: Outcome) => results.filter((r) => r.outcome === o).length;
  console.log(
    `\n${results.length} mutants: ${tally("killed")} killed, ` +
      `${tally("survived")} survived, ${tally("hung")} hung, ` +
      `${tally("invalid")} invalid`,
  );
  for (const r of results.filter((r) => r.outcome !== "killed")) {
    console.log(`  ${r.outcome}: ${r.mutant.id} — ${r.mutant.what}`);
  }
  return tally("killed") === results.length ? 0 : 1;
}

if (import.meta.main) Deno.exit(await main(Deno.args));
