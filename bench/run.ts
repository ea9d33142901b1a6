/**
 * The side-by-side benchmarks: the module against raw Deno, Node, Python,
 * C and the kernel, each as a ratio against its baseline in the same run.
 *
 *   deno run -A bench/run.ts [--quick] [--out DIR]
 *
 * Writes DIR/latest.md (the table) and DIR/latest.svg (the ratios as a bar
 * chart), DIR defaulting to bench/results, and prints the table.
 * Everything runs on loopback, on ports from the system.
 *
 * @module
 */

import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { markdown, type Row, svg } from "./lib/report.ts";
import { Peer, run, runPipeline, which } from "./lib/process.ts";
import { type Certs, makeCerts } from "../tests/fixtures/certs.ts";

const GREETING = "Thank you for connecting";
const HERE = fileURLToPath(new URL(".", import.meta.url));
const ROOT = join(HERE, "..");
const PEERS = join(HERE, "peers");
const DENO = Deno.execPath();
const GIB = 1024 ** 3;
const MIB = 1024 ** 2;

interface Settings {
  quick: boolean;
  out: string;
  /** Rounds per measure; the median round is reported. */
  rounds: number;
  greetMillis: number;
  loadProcs: number;
  bulkBytes: number;
  holdCount: number;
  pipeBytes: number;
  burstCount: number;
  busyMillis: number;
  /** Seconds of handshakes per server (openssl s_time -time). */
  tlsSeconds: number;
  tlsBytes: number;
}

function settings(args: string[]): Settings {
  let quick = false;
  let out = join(HERE, "results");
  for (let i = 0; i < args.length; i++) {
    if (args[i] === "--quick") quick = true;
    else if (args[i] === "--out" && args[i + 1]) out = args[++i];
    else if (args[i].startsWith("--out=")) out = args[i].slice(6);
    else {
      console.error(`usage: deno run -A bench/run.ts [--quick] [--out DIR]`);
      Deno.exit(2);
    }
  }
  return quick
    ? {
      quick,
      out,
      rounds: 1,
      greetMillis: 250,
      loadProcs: 2,
      bulkBytes: 64 * MIB,
      holdCount: 200,
      pipeBytes: 32 * MIB,
      burstCount: 100,
      busyMillis: 100,
      tlsSeconds: 1,
      tlsBytes: 32 * MIB,
    }
    : {
      quick,
      out,
      rounds: 3,
      greetMillis: 2000,
      loadProcs: 4,
      bulkBytes: 2 * GIB,
      holdCount: 5_000,
      pipeBytes: GIB,
      burstCount: 1000,
      busyMillis: 300,
      tlsSeconds: 3,
      tlsBytes: 256 * MIB,
    };
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

/** "median (min–max)" of the rounds, for the note. */
function spread(values: number[], digits = 2): string {
  if (values.length < 2) return "";
  return `rounds ${values.map((v) => v.toFixed(digits)).join(", ")}`;
}

function int(n: number): string {
  return Math.round(n).toLocaleString("en-US");
}

function ms(us: number): string {
  return `${(us / 1000).toFixed(2)} ms`;
}

function gibps(bytes: number, seconds: number): number {
  return bytes / seconds / GIB;
}

/** The tools the rows need, found or not, with the reason when not. */
interface Tools {
  cc?: string;
  node?: string;
  python?: string;
  iperf3?: string;
  nc?: string;
  socat?: string;
  openssl?: string;
  ncat?: string;
  bin?: { loadgen: string; greet: string; bulk: string };
  ccError?: string;
  telnet?: boolean;
  telnetReason?: string;
  /** Clock ticks per second of /proc's CPU times, where there is a /proc. */
  clockTicks?: number;
}

async function findTools(tmp: string): Promise<Tools> {
  const tools: Tools = {
    cc: await which("cc"),
    node: await which("node"),
    python: await which("python3"),
    iperf3: await which("iperf3"),
    nc: await which("nc"),
    socat: await which("socat"),
    openssl: await which("openssl"),
    ncat: await which("ncat"),
    clockTicks: await clockTicks(),
  };
  if (tools.cc) {
    try {
      const bin = {
        loadgen: join(tmp, "loadgen"),
        greet: join(tmp, "greet_server"),
        bulk: join(tmp, "bulk"),
      };
      for (const [name, path] of Object.entries(bin)) {
        const source = join(
          PEERS,
          name === "greet" ? "greet_server.c" : `${name}.c`,
        );
        await run(tools.cc, ["-O2", "-o", path, source]);
      }
      tools.bin = bin;
    } catch (error) {
      tools.ccError = (error as Error).message.split("\n")[0];
    }
  }
  try {
    const help = await new Deno.Command(DENO, {
      args: ["run", "-A", join(ROOT, "cli.ts"), "telnet", "--help"],
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).output();
    tools.telnet = help.success &&
      new TextDecoder().decode(help.stdout).includes("telnet");
    if (!help.success) {
      tools.telnetReason =
        "`cli.ts telnet --help` fails: no telnet command yet";
    }
  } catch (error) {
    tools.telnet = false;
    tools.telnetReason = `cli.ts telnet: ${(error as Error).message}`;
  }
  return tools;
}

/** `getconf CLK_TCK`, where there is a /proc to read CPU times from. */
async function clockTicks(): Promise<number | undefined> {
  try {
    await Deno.stat("/proc/self/stat");
    return Number((await run("getconf", ["CLK_TCK"])).trim()) || undefined;
  } catch {
    return undefined;
  }
}

/**
 * CPU time a process has used so far, every thread, user and system, in
 * µs; undefined without /proc.
 */
async function cpuMicros(
  pid: number,
  ticks: number | undefined,
): Promise<number | undefined> {
  if (ticks === undefined) return undefined;
  try {
    const stat = await Deno.readTextFile(`/proc/${pid}/stat`);
    // The fields after the command's name, which may hold spaces: utime and
    // stime are the 14th and 15th of the line.
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return (Number(fields[11]) + Number(fields[12])) * 1e6 / ticks;
  } catch {
    return undefined;
  }
}

function noCompiler(tools: Tools): string {
  return tools.cc
    ? `cc failed: ${tools.ccError}`
    : "no C compiler (cc) for the load generator and peers";
}

function denoServer(args: string[]): [string, string[]] {
  return [DENO, ["run", "-A", join(PEERS, "deno_server.ts"), ...args]];
}

/** Runs a command with the descriptor limit raised to the hard limit. */
function withFdLimit(command: string, args: string[]): [string, string[]] {
  return [
    "sh",
    [
      "-c",
      'ulimit -n "$(ulimit -Hn)" 2>/dev/null; exec "$@"',
      "sh",
      command,
      ...args,
    ],
  ];
}

async function listening(peer: Peer): Promise<number> {
  const [, port] = await peer.waitFor(/^listening (\d+)$/);
  return Number(port);
}

// 1. Accept rate -----------------------------------------------------------

interface GreetResult {
  rate: number;
  p50: number;
  p99: number;
  errors: number;
  /** The server's CPU time per connection, µs; undefined without /proc. */
  cpuPerConnection: number | undefined;
}

async function greetOnce(
  s: Settings,
  tools: Tools,
  [command, args]: [string, string[]],
  ready = /^listening (\d+)$/,
): Promise<GreetResult> {
  await using server = new Peer(command, args, {});
  const [, portText] = await server.waitFor(ready);
  const port = Number(portText);
  // The CLI prints a line per connection: its output is read as it comes,
  // as a terminal or a log would take it, so that a full pipe never stalls
  // it (undecoded: see LineReader). `stop()` waits for the reading to end.
  server.drain().catch(() => {});
  const cpuBefore = await cpuMicros(server.pid, tools.clockTicks);
  const out = await run(tools.bin!.loadgen, [
    "greet",
    "127.0.0.1",
    String(port),
    String(s.greetMillis),
    String(s.loadProcs),
    GREETING,
  ]);
  const cpuAfter = await cpuMicros(server.pid, tools.clockTicks);
  const r = JSON.parse(out);
  await server.stop();
  return {
    rate: r.connections / r.seconds,
    p50: r.p50,
    p99: r.p99,
    errors: r.errors,
    cpuPerConnection: cpuBefore === undefined || cpuAfter === undefined
      ? undefined
      : (cpuAfter - cpuBefore) / r.connections,
  };
}

/** ", 66 µs of CPU a connection": the server's, the median of the rounds. */
function cpuText(rs: GreetResult[]): string {
  const cpus = rs.flatMap((r) =>
    r.cpuPerConnection === undefined ? [] : [r.cpuPerConnection]
  );
  if (cpus.length === 0) return "";
  return `, ${median(cpus).toFixed(0)} µs of CPU a connection`;
}

async function acceptRate(s: Settings, tools: Tools): Promise<Row[]> {
  const servers: {
    id: string;
    name: string;
    command?: [string, string[]];
    ready?: RegExp;
    skipped?: string;
  }[] = [
    { id: "", name: "serve()", command: denoServer(["greet", "serve"]) },
    { id: "", name: "cli.ts serve", command: cliServe(), ready: CLI_READY },
    {
      id: "1a",
      name: "raw Deno.listen loop",
      command: denoServer(["greet", "raw"]),
    },
    tools.node
      ? {
        id: "1b",
        name: "Node net.createServer",
        command: [tools.node, [join(PEERS, "node_server.mjs"), "greet"]],
      }
      : { id: "1b", name: "Node net.createServer", skipped: "node not found" },
    tools.python
      ? {
        id: "1c",
        name: "the tutorial's Python server",
        command: [tools.python, [join(PEERS, "greet_server.py"), GREETING]],
      }
      : {
        id: "1c",
        name: "the tutorial's Python server",
        skipped: "python3 not found",
      },
    tools.bin
      ? {
        id: "1d",
        name: "C accept loop",
        command: [tools.bin.greet, [GREETING]],
      }
      : { id: "1d", name: "C accept loop", skipped: noCompiler(tools) },
  ];
  const baselines = servers.slice(2);
  if (!tools.bin) {
    return [
      ...baselines.map((b) => ({
        id: b.id,
        measure: `Accept rate: serve() vs ${b.name}`,
        skipped: noCompiler(tools),
      })),
      ...CLI_ROWS.map(([id, name]) => ({
        id,
        measure: `Accept rate: cli.ts serve (a line per connection) vs ${name}`,
        skipped: noCompiler(tools),
      })),
    ];
  }
  const results = new Map<string, GreetResult[]>();
  for (let round = 0; round < s.rounds; round++) {
    for (const server of servers) {
      if (!server.command) continue;
      const r = await greetOnce(s, tools, server.command, server.ready);
      results.set(server.name, [...(results.get(server.name) ?? []), r]);
    }
  }
  const summary = (name: string) => {
    const rs = results.get(name)!;
    const rate = median(rs.map((r) => r.rate));
    return {
      rate,
      rates: rs.map((r) => r.rate),
      text: `${int(rate)} conn/s, p50 ${
        ms(median(rs.map((r) => r.p50)))
      }, p99 ${ms(median(rs.map((r) => r.p99)))}, ${
        rs.reduce((a, r) => a + r.errors, 0)
      } errors${cpuText(rs)}`,
    };
  };
  const compare = (
    id: string,
    who: string,
    b: (typeof servers)[number],
    target?: number,
    extra?: string,
  ): Row => {
    const measure = `Accept rate: ${who} vs ${b.name}`;
    if (b.skipped) return { id, measure, skipped: b.skipped };
    const mine = summary(who === "serve()" ? "serve()" : "cli.ts serve");
    const theirs = summary(b.name);
    const ratios = mine.rates.map((r, i) => r / theirs.rates[i]);
    return {
      id,
      measure,
      figure: mine.text,
      baseline: theirs.text,
      ratio: mine.rate / theirs.rate,
      target,
      note: [
        `${s.loadProcs} closed-loop C clients, ${s.greetMillis} ms a round`,
        extra,
        spread(ratios),
      ].filter(Boolean).join("; "),
    };
  };
  const byName = (name: string) => baselines.find((b) => b.name === name)!;
  return [
    ...baselines.map((b) =>
      compare(b.id, "serve()", b, b.id === "1a" ? 0.97 : undefined)
    ),
    ...CLI_ROWS.map(([id, name, target]) =>
      compare(
        id,
        "cli.ts serve (a line per connection)",
        byName(name),
        target,
        "cli.ts serve --concurrency 64 --backlog 128, its output read as it comes, undecoded",
      )
    ),
  ];
}

/** The CLI's accept rate rows: id, the baseline's name, the goal. */
const CLI_ROWS: [string, string, number | undefined][] = [
  ["1e", "raw Deno.listen loop", 0.97],
  ["1f", "the tutorial's Python server", undefined],
  ["1g", "C accept loop", undefined],
];

const CLI_READY = /^socket binded to (\d+)$/;

/**
 * `cli.ts serve` as a user runs it, printing "Got connection from" for
 * each one (with its default timeouts), as concurrent as serve()'s row.
 */
function cliServe(): [string, string[]] {
  return [DENO, [
    "run",
    "-N",
    join(ROOT, "cli.ts"),
    "serve",
    ...["--hostname", "127.0.0.1", "--port", "0"],
    ...["--concurrency", "64", "--backlog", "128", "--message", GREETING],
  ]];
}

// 2. Bulk transfer ---------------------------------------------------------

function parseBytesSeconds(out: string): { bytes: number; seconds: number } {
  const match = out.match(/bytes (\d+) seconds ([\d.]+)/);
  if (!match) throw new Error(`no "bytes N seconds S" in: ${out.trim()}`);
  return { bytes: Number(match[1]), seconds: Number(match[2]) };
}

async function bulkOnce(
  s: Settings,
  tools: Tools,
  direction: "send" | "recv",
  mode: "module" | "into" | "raw" | "c",
): Promise<number> {
  const peerArgs = direction === "send"
    ? ["sink"]
    : ["source", String(s.bulkBytes)];
  await using peer = new Peer(tools.bin!.bulk, peerArgs, {});
  const port = String(await listening(peer));
  const out = mode === "c"
    ? await run(
      tools.bin!.bulk,
      direction === "send"
        ? ["send", port, String(s.bulkBytes)]
        : ["recv", port],
    )
    : await run(DENO, [
      "run",
      "-A",
      join(PEERS, "deno_bulk.ts"),
      direction,
      mode,
      port,
      ...(direction === "send" ? [String(s.bulkBytes)] : []),
    ]);
  const { bytes, seconds } = parseBytesSeconds(out);
  if (bytes !== s.bulkBytes) {
    throw new Error(
      `${mode} ${direction}: moved ${bytes} of ${s.bulkBytes} bytes`,
    );
  }
  await peer.exited();
  return gibps(bytes, seconds);
}

function freePort(): number {
  using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  return listener.addr.port;
}

async function iperfOnce(
  s: Settings,
  tools: Tools,
  direction: "send" | "recv",
): Promise<number> {
  const port = String(freePort());
  await using server = new Peer(
    tools.iperf3!,
    ["-s", "-1", "--forceflush", "-B", "127.0.0.1", "-p", port],
    {},
  );
  await server.waitFor(/Server listening on/);
  const out = await run(tools.iperf3!, [
    "-c",
    "127.0.0.1",
    "-p",
    port,
    "-n",
    String(s.bulkBytes),
    "-l",
    String(MIB),
    "-J",
    ...(direction === "recv" ? ["-R"] : []),
  ]);
  await server.exited();
  const bits = JSON.parse(out).end.sum_received.bits_per_second;
  return bits / 8 / GIB;
}

async function bulk(s: Settings, tools: Tools): Promise<Row[]> {
  const size = s.bulkBytes >= GIB
    ? `${s.bulkBytes / GIB} GiB`
    : `${s.bulkBytes / MIB} MiB`;
  const rows: Row[] = [];
  const measures = [
    {
      id: "2a",
      measure: "Bulk send: sendAll vs raw TcpConn.write loop",
      dir: "send",
    },
    {
      id: "2b",
      measure: "Bulk receive: recv vs raw TcpConn.read loop",
      dir: "recv",
    },
  ] as const;
  if (!tools.bin) {
    for (const m of measures) rows.push({ ...m, skipped: noCompiler(tools) });
    rows.push(
      {
        id: "2c",
        measure: "Bulk send: sendAll vs the kernel",
        skipped: noCompiler(tools),
      },
      {
        id: "2d",
        measure: "Bulk receive: recv vs the kernel",
        skipped: noCompiler(tools),
      },
      {
        id: "2e",
        measure: "Bulk receive: recvInto vs raw TcpConn.read loop",
        skipped: noCompiler(tools),
      },
    );
    return rows;
  }
  const kernel = tools.iperf3 ? "iperf3" : "C pair, 1 MiB buffers";
  const figures: Record<string, number[]> = {};
  const add = (key: string, v: number) => (figures[key] ??= []).push(v);
  for (let round = 0; round < s.rounds; round++) {
    for (const dir of ["send", "recv"] as const) {
      add(`${dir} module`, await bulkOnce(s, tools, dir, "module"));
      add(`${dir} raw`, await bulkOnce(s, tools, dir, "raw"));
      if (dir === "recv") {
        add("recv into", await bulkOnce(s, tools, dir, "into"));
      }
      add(
        `${dir} kernel`,
        tools.iperf3
          ? await iperfOnce(s, tools, dir)
          : await bulkOnce(s, tools, dir, "c"),
      );
    }
  }
  const gib = (v: number) => `${v.toFixed(2)} GiB/s`;
  for (const m of measures) {
    const mine = figures[`${m.dir} module`];
    const raw = figures[`${m.dir} raw`];
    const k = figures[`${m.dir} kernel`];
    rows.push({
      id: m.id,
      measure: m.measure,
      figure: gib(median(mine)),
      baseline: gib(median(raw)),
      ratio: median(mine) / median(raw),
      target: 0.95,
      note: [
        `${size} each way, 1 MiB chunks, C peer`,
        spread(mine.map((v, i) => v / raw[i])),
      ].filter(Boolean).join("; "),
    });
    rows.push({
      id: m.id === "2a" ? "2c" : "2d",
      measure: `Bulk ${
        m.dir === "send" ? "send: sendAll" : "receive: recv"
      } vs the kernel (${kernel})`,
      figure: gib(median(mine)),
      baseline: gib(median(k)),
      ratio: median(mine) / median(k),
      note: `kernel figure from ${kernel}, same ${size}`,
    });
  }
  const into = figures["recv into"];
  const raw = figures["recv raw"];
  rows.push({
    id: "2e",
    measure: "Bulk receive: recvInto (one buffer) vs raw TcpConn.read loop",
    figure: gib(median(into)),
    baseline: gib(median(raw)),
    ratio: median(into) / median(raw),
    target: 0.95,
    note: [
      `${size}, 1 MiB buffer reused, as Python's recv_into`,
      spread(into.map((v, i) => v / raw[i])),
    ].filter(Boolean).join("; "),
  });
  return rows.sort((a, b) => a.id.localeCompare(b.id));
}

// 3. Many connections ------------------------------------------------------

async function rssKiB(pid: number): Promise<number> {
  const status = await Deno.readTextFile(`/proc/${pid}/status`);
  const match = status.match(/VmRSS:\s+(\d+) kB/);
  if (!match) throw new Error(`no VmRSS for process ${pid}`);
  return Number(match[1]);
}

async function holdOnce(
  s: Settings,
  tools: Tools,
  [command, args]: [string, string[]],
): Promise<number> {
  await using server = new Peer(...withFdLimit(command, args), {});
  const port = await listening(server);
  const idle = await rssKiB(server.pid);
  await using clients = new Peer(
    ...withFdLimit(tools.bin!.loadgen, [
      "hold",
      "127.0.0.1",
      String(port),
      String(s.holdCount),
    ]),
    { stdin: true },
  );
  await clients.waitFor(/^ready \d+$/);
  await server.waitFor(/^held \d+$/);
  const held = await rssKiB(server.pid);
  await clients.closeStdin();
  await clients.exited();
  return (held - idle) / s.holdCount;
}

async function manyConnections(s: Settings, tools: Tools): Promise<Row[]> {
  const measures = [
    { id: "3a", name: "raw Deno.listen loop" },
    { id: "3b", name: "Node net.createServer" },
  ];
  const reason = Deno.build.os !== "linux"
    ? "reads resident memory from /proc (Linux only)"
    : !tools.bin
    ? noCompiler(tools)
    : undefined;
  if (reason) {
    return measures.map((m) => ({
      id: m.id,
      measure: `Memory per idle connection: serve() vs ${m.name}`,
      skipped: reason,
    }));
  }
  const count = String(s.holdCount);
  const mine: number[] = [];
  const mineAsync: number[] = [];
  const raw: number[] = [];
  const node: number[] = [];
  for (let round = 0; round < Math.min(s.rounds, 2); round++) {
    mine.push(await holdOnce(s, tools, denoServer(["hold", "serve", count])));
    mineAsync.push(
      await holdOnce(s, tools, denoServer(["hold", "serve-async", count])),
    );
    raw.push(await holdOnce(s, tools, denoServer(["hold", "raw", count])));
    if (tools.node) {
      node.push(
        await holdOnce(s, tools, [tools.node, [
          join(PEERS, "node_server.mjs"),
          "hold",
          count,
        ]]),
      );
    }
  }
  const kib = (v: number) => `${v.toFixed(2)} KiB/conn`;
  const note = `${
    int(s.holdCount)
  } connections held open, resident memory (VmRSS) growth`;
  const rows: Row[] = [{
    id: "3a",
    measure: "Memory per idle connection: serve() vs raw Deno.listen loop",
    figure: kib(median(mine)),
    baseline: kib(median(raw)),
    ratio: median(mine) / median(raw),
    target: 1.2,
    lowerIsBetter: true,
    note: [
      `${note}; each with one pending 1 KiB read: the handler returns recv's promise as the raw loop keeps read's`,
      `a handler awaiting it in an async function (its own frame): ${
        kib(median(mineAsync))
      }, ${(median(mineAsync) / median(raw)).toFixed(2)}×`,
      spread(mine.map((v, i) => v / raw[i])),
    ].filter(Boolean).join("; "),
  }];
  rows.push(
    tools.node
      ? {
        id: "3b",
        measure: "Memory per idle connection: serve() vs Node net.createServer",
        figure: kib(median(mine)),
        baseline: kib(median(node)),
        ratio: median(mine) / median(node),
        lowerIsBetter: true,
        note,
      }
      : {
        id: "3b",
        measure: "Memory per idle connection: serve() vs Node net.createServer",
        skipped: "node not found",
      },
  );
  return rows;
}

// 4. The CLI as a pipe -----------------------------------------------------

/**
 * Pipes `head -c BYTES /dev/zero` through `client` to a C sink or echo, or
 * (source) reads BYTES from a C source through `client` to /dev/null.
 */
async function pipeOnce(
  s: Settings,
  tools: Tools,
  mode: "sink" | "echo" | "source",
  client: (port: number) => string,
): Promise<number> {
  const args = mode === "source" ? [mode, String(s.pipeBytes)] : [mode];
  await using peer = new Peer(tools.bin!.bulk, args, {});
  const port = await listening(peer);
  await runPipeline(
    mode === "source"
      ? `${client(port)} < /dev/null > /dev/null`
      : `head -c ${s.pipeBytes} /dev/zero | ${client(port)} > /dev/null`,
  );
  const done = await peer.waitFor(/^bytes (\d+) seconds ([\d.]+)$/);
  const { bytes, seconds } = parseBytesSeconds(done[0]);
  if (bytes !== s.pipeBytes) {
    throw new Error(`${mode}: moved ${bytes} of ${s.pipeBytes} bytes`);
  }
  await peer.exited();
  return gibps(bytes, seconds);
}

/** `head -c BYTES /dev/zero | cat`: what the pipe alone allows. */
async function pipeBound(s: Settings): Promise<number> {
  const start = performance.now();
  await runPipeline(`head -c ${s.pipeBytes} /dev/zero | cat > /dev/null`);
  return gibps(s.pipeBytes, (performance.now() - start) / 1000);
}

async function cliPipe(s: Settings, tools: Tools): Promise<Row[]> {
  const ids = [
    ["4a", "CLI pipe, stdin → socket: cli.ts telnet vs nc -N"],
    ["4b", "CLI pipe, stdin → socket: cli.ts telnet vs socat"],
    ["4c", "CLI pipe, stdin → echo → stdout (both at once): telnet vs nc -N"],
    ["4d", "The pipe alone (head | cat) vs nc, stdin → socket"],
    ["4e", "CLI pipe, socket → stdout: cli.ts telnet vs nc -d"],
  ];
  const reason = !tools.telnet
    ? tools.telnetReason
    : !tools.bin
    ? noCompiler(tools)
    : undefined;
  if (reason) {
    return ids.map(([id, measure]) => ({ id, measure, skipped: reason }));
  }
  const telnet = (port: number) =>
    `"${DENO}" run -A "${
      join(ROOT, "cli.ts")
    }" telnet 127.0.0.1 ${port} 2>/dev/null`;
  const nc = (port: number) => `nc -N 127.0.0.1 ${port}`;
  const socat = (port: number) => `socat -u STDIN TCP:127.0.0.1:${port}`;
  // -d: nc does not read stdin, only the network.
  const ncRecv = (port: number) => `nc -d 127.0.0.1 ${port}`;
  const f: Record<string, number[]> = {};
  const add = (key: string, v: number) => (f[key] ??= []).push(v);
  for (let round = 0; round < s.rounds; round++) {
    add("telnet", await pipeOnce(s, tools, "sink", telnet));
    if (tools.nc) add("nc", await pipeOnce(s, tools, "sink", nc));
    if (tools.socat) add("socat", await pipeOnce(s, tools, "sink", socat));
    add("telnet echo", await pipeOnce(s, tools, "echo", telnet));
    if (tools.nc) add("nc echo", await pipeOnce(s, tools, "echo", nc));
    add("telnet recv", await pipeOnce(s, tools, "source", telnet));
    if (tools.nc) add("nc recv", await pipeOnce(s, tools, "source", ncRecv));
    add("cat", await pipeBound(s));
  }
  const size = s.pipeBytes >= GIB
    ? `${s.pipeBytes / GIB} GiB`
    : `${s.pipeBytes / MIB} MiB`;
  const gib = (v: number) => `${v.toFixed(2)} GiB/s`;
  const row = (
    id: string,
    measure: string,
    mine: string,
    theirs: string,
    missing: string | undefined,
    target?: number,
    extra = "",
    source = "zeros from head -c",
  ): Row => {
    if (missing) return { id, measure, skipped: missing };
    const a = f[mine];
    const b = f[theirs];
    return {
      id,
      measure,
      figure: gib(median(a)),
      baseline: gib(median(b)),
      ratio: median(a) / median(b),
      target,
      note: [
        `${size} of ${source}${extra}`,
        spread(a.map((v, i) => v / b[i])),
      ]
        .filter(Boolean).join("; "),
    };
  };
  return [
    row(
      ids[0][0],
      ids[0][1],
      "telnet",
      "nc",
      tools.nc ? undefined : "nc not found",
      1.0,
      "; goal ≥ 1.0×, stretch 1.3× (issue 11)",
    ),
    row(
      ids[1][0],
      ids[1][1],
      "telnet",
      "socat",
      tools.socat ? undefined : "socat not found",
    ),
    row(
      ids[2][0],
      ids[2][1],
      "telnet echo",
      "nc echo",
      tools.nc ? undefined : "nc not found",
      1.0,
      " through a C echo peer, both directions at once; goal ≥ 1.0× (issue 11)",
    ),
    row(
      ids[3][0],
      ids[3][1],
      "cat",
      "nc",
      tools.nc ? undefined : "nc not found",
      undefined,
      "; wall time of the whole pipeline",
    ),
    row(
      ids[4][0],
      ids[4][1],
      "telnet recv",
      "nc recv",
      tools.nc ? undefined : "nc not found",
      1.0,
      " to /dev/null, stdin /dev/null; goal ≥ 1.0×, stretch 1.5× (issue 11)",
      "zeros from a C source",
    ),
  ];
}

// 5. Admission under overload ----------------------------------------------

async function admission(s: Settings, tools: Tools): Promise<Row[]> {
  const measure = `Admission: backlog 5, busy handler, ${
    int(s.burstCount)
  } clients at once`;
  if (!tools.bin) {
    return [
      { id: "5", measure, skipped: noCompiler(tools) },
      ...await refusalBursts(s, tools),
    ];
  }
  await using server = new Peer(
    ...denoServer(["admit", "5", String(s.busyMillis)]),
    { stdin: true },
  );
  const r = await burst(
    tools.bin.loadgen,
    await listening(server),
    s.burstCount,
  );
  await server.closeStdin();
  const [, statsText] = await server.waitFor(/^stats (.*)$/);
  const stats = JSON.parse(statsText);
  await server.exited();
  const balanced = r.served + r.refused === r.attempted && r.errors === 0;
  const serverBalanced = stats.accepted === stats.served + stats.refused;
  const note = `served + refused = attempted: ${
    balanced ? "yes" : "NO"
  } (${r.served} + ${r.refused} = ${r.attempted}, ${r.errors} errors); server counts ${stats.accepted} accepted = ${stats.served} served + ${stats.refused} refused: ${
    serverBalanced ? "yes" : "NO"
  }; handler busy ${s.busyMillis} ms`;
  const cliRows = await refusalBursts(s, tools);
  return [{
    id: "5",
    measure,
    figure: `refused clients told in p50 ${ms(r.p50)}, p99 ${ms(r.p99)}`,
    baseline:
      `kernel listen(5) alone: no answer, SYN retried from 1 s until timeout`,
    note,
    ...(balanced && serverBalanced
      ? {}
      : { error: `counts do not add up: ${note}` }),
  }, ...cliRows];
}

/** What both servers of rows 5b and 5c tell a client they refuse. */
const REFUSAL = "server busy, try again later\n";

/** One burst's answer from the load generator. */
interface Burst {
  attempted: number;
  served: number;
  refused: number;
  errors: number;
  p50: number;
  p99: number;
  /** µs the load generator took to start every connection. */
  connect_us: number;
}

/**
 * `cli.ts serve --backlog 5 --concurrency 1 --busy 5` under 2,000 clients
 * at once, with its default kernel queue: the refusal p99 against issue
 * 9's goal of 100 ms (a dropped SYN would show as ≥ 1 s). Row 5c, for
 * reference: a raw Deno loop that only refuses (accept, the same message,
 * close), in the same rounds, the bursts alternating.
 */
async function refusalBursts(s: Settings, tools: Tools): Promise<Row[]> {
  const count = s.quick ? s.burstCount : 2000;
  const cliMeasure = `Admission: cli.ts serve --backlog 5 --busy 5, ${
    int(count)
  } clients at once, refusal p99 vs the 100 ms goal`;
  const rawMeasure = `Admission: raw Deno.listen loop refusing all, ${
    int(count)
  } clients at once, refusal p99 vs the 100 ms goal`;
  if (!tools.bin) {
    return [
      { id: "5b", measure: cliMeasure, skipped: noCompiler(tools) },
      { id: "5c", measure: rawMeasure, skipped: noCompiler(tools) },
    ];
  }
  const loadgen = tools.bin.loadgen;
  // One burst is one sample: as the other rows, the median of the rounds,
  // each against a server of its own.
  const cli: Burst[] = [];
  const raw: Burst[] = [];
  for (let round = 0; round < s.rounds; round++) {
    // Each goes first in every other round.
    if (round % 2 === 0) raw.push(await rawBurst(loadgen, count));
    cli.push(await cliBurst(loadgen, count));
    if (round % 2 === 1) raw.push(await rawBurst(loadgen, count));
  }
  return [
    burstRow("5b", cliMeasure, cli, count, 1),
    burstRow(
      "5c",
      rawMeasure,
      raw,
      count,
      undefined,
      "; accept, one write, close, and a turn of the event loop every 8 accepts as serve() does: a reference for 5b, not the module",
    ),
  ];
}

/**
 * A row of refusal bursts: the median p99 as a ratio of the 100 ms goal,
 * met when at most `target` (none for a reference row).
 */
function burstRow(
  id: string,
  measure: string,
  bursts: Burst[],
  count: number,
  target: number | undefined,
  extra = "",
): Row {
  const failed = bursts.find((b) =>
    b.served + b.refused !== b.attempted || b.errors !== 0
  );
  const counts = bursts.map((b) =>
    `${b.served} + ${b.refused}, ${b.errors} errors`
  );
  const p99 = median(bursts.map((b) => b.p99));
  const note = `served + refused of ${count} each burst: ${
    counts.join("; ")
  }; p50 ${ms(median(bursts.map((b) => b.p50)))}; bursts' p99 ${
    bursts.map((b) => ms(b.p99)).join(", ")
  }; the load generator took ${
    bursts.map((b) => ms(b.connect_us)).join(", ")
  } to start each burst's connections, reading answers as it went${extra}`;
  return {
    id,
    measure,
    figure: `refusal p99 ${ms(p99)}`,
    baseline: "goal: 100 ms",
    ratio: p99 / 1000 / 100,
    target,
    lowerIsBetter: true,
    note,
    ...(failed
      ? {
        error:
          `counts do not add up: ${failed.served} + ${failed.refused}, ${failed.errors} errors of ${failed.attempted}`,
      }
      : {}),
  };
}

/** One burst of `count` clients at a fresh `cli.ts serve --busy 5`. */
async function cliBurst(loadgen: string, count: number): Promise<Burst> {
  await using cli = new Peer(DENO, [
    "run",
    "-N",
    join(ROOT, "cli.ts"),
    "serve",
    ...["--hostname", "127.0.0.1", "--port", "0", "--backlog", "5"],
    ...["--concurrency", "1", "--busy", "5", "--refusal-message", REFUSAL],
  ], {});
  const [, port] = await cli.waitFor(/^socket binded to (\d+)$/);
  // Awaited here: the server is disposed of when this returns.
  return await burst(loadgen, Number(port), count);
}

/** One burst of `count` clients at a fresh raw refusing loop. */
async function rawBurst(loadgen: string, count: number): Promise<Burst> {
  await using server = new Peer(
    ...denoServer(["refuse", "raw", REFUSAL]),
    {},
  );
  // Awaited here: the server is disposed of when this returns.
  return await burst(loadgen, await listening(server), count);
}

/** `count` clients at once at `port`, from the load generator. */
async function burst(
  loadgen: string,
  port: number,
  count: number,
): Promise<Burst> {
  return JSON.parse(
    await run(loadgen, [
      "burst",
      "127.0.0.1",
      String(port),
      String(count),
      GREETING,
    ]),
  );
}

// 6. TLS ----------------------------------------------------------------------

/**
 * Full handshakes per second, one after another, by `openssl s_time -new`
 * (a new session each time, no resumption) against a server: the count it
 * reports over the wall time of its run.
 */
async function handshakeRate(
  s: Settings,
  tools: Tools,
  certs: Certs,
  [command, args]: [string, string[]],
  ready: RegExp,
): Promise<number> {
  // s_server ends at the end of its stdin: a pipe kept open.
  await using server = new Peer(command, args, { stdin: true });
  const [, port] = await server.waitFor(ready);
  server.drain().catch(() => {});
  const start = performance.now();
  const out = await run(tools.openssl!, [
    "s_time",
    "-connect",
    `127.0.0.1:${port}`,
    "-new",
    "-time",
    String(s.tlsSeconds),
    "-CAfile",
    join(certs.dir, "ca.pem"),
  ]);
  const seconds = (performance.now() - start) / 1000;
  await server.stop();
  const count = Number(out.match(/(\d+) connections in [\d.]+s/)?.[1]);
  if (!(count > 0)) throw new Error(`s_time: no connections: ${out.trim()}`);
  return count / seconds;
}

/** BYTES of zeros through `client` over TLS to a Deno TLS sink. */
async function tlsPipeOnce(
  s: Settings,
  certs: Certs,
  client: (port: number) => string,
): Promise<number> {
  await using sink = new Peer(DENO, [
    "run",
    "-A",
    join(PEERS, "tls_sink.ts"),
    join(certs.dir, "srv.pem"),
    join(certs.dir, "srv.key"),
  ], {});
  const port = await listening(sink);
  await runPipeline(
    `head -c ${s.tlsBytes} /dev/zero | ${client(port)} > /dev/null`,
  );
  const done = await sink.waitFor(/^bytes (\d+) seconds ([\d.]+)$/);
  const { bytes, seconds } = parseBytesSeconds(done[0]);
  if (bytes !== s.tlsBytes) {
    throw new Error(`TLS pipe: moved ${bytes} of ${s.tlsBytes} bytes`);
  }
  await sink.exited();
  return gibps(bytes, seconds);
}

async function tls(s: Settings, tools: Tools): Promise<Row[]> {
  const hsMeasure =
    "TLS handshakes/s, one at a time: cli.ts serve --tls vs openssl s_server";
  const bulkMeasure =
    "TLS bulk, stdin → socket: cli.ts telnet --tls vs ncat --ssl";
  if (!tools.openssl) {
    const skipped = "openssl not found (certificates and s_time)";
    return [
      { id: "6a", measure: hsMeasure, skipped },
      { id: "6b", measure: bulkMeasure, skipped },
    ];
  }
  const certs = await makeCerts();
  try {
    return [
      await handshakeRow(s, tools, certs, hsMeasure),
      await tlsBulkRow(s, tools, certs, bulkMeasure),
    ];
  } finally {
    await Deno.remove(certs.dir, { recursive: true });
  }
}

async function handshakeRow(
  s: Settings,
  tools: Tools,
  certs: Certs,
  measure: string,
): Promise<Row> {
  const cert = join(certs.dir, "srv.pem");
  const key = join(certs.dir, "srv.key");
  const cli: [string, string[]] = [DENO, [
    "run",
    "-A",
    join(ROOT, "cli.ts"),
    "serve",
    ...["--tls", "--cert", cert, "--key", key],
    ...["--hostname", "127.0.0.1", "--port", "0"],
  ]];
  const sServer: [string, string[]] = [tools.openssl!, [
    "s_server",
    ...["-accept", "127.0.0.1:0", "-cert", cert, "-key", key, "-www"],
  ]];
  const mine: number[] = [];
  const theirs: number[] = [];
  for (let round = 0; round < s.rounds; round++) {
    mine.push(await handshakeRate(s, tools, certs, cli, CLI_READY));
    theirs.push(
      await handshakeRate(s, tools, certs, sServer, /^ACCEPT .*:(\d+)$/),
    );
  }
  const rate = (v: number) => `${int(v)} handshakes/s`;
  return {
    id: "6a",
    measure,
    figure: rate(median(mine)),
    baseline: rate(median(theirs)),
    ratio: median(mine) / median(theirs),
    note: [
      `openssl s_time -new for ${s.tlsSeconds} s against each, TLS 1.3, ` +
      `P-256 certificate; serve greets and closes, s_server -www waits ` +
      `for a request that never comes; no goal set (issue 13)`,
      spread(mine.map((v, i) => v / theirs[i])),
    ].filter(Boolean).join("; "),
  };
}

async function tlsBulkRow(
  s: Settings,
  tools: Tools,
  certs: Certs,
  measure: string,
): Promise<Row> {
  if (!tools.ncat) return { id: "6b", measure, skipped: "ncat not found" };
  const ca = join(certs.dir, "ca.pem");
  const telnet = (port: number) =>
    `"${DENO}" run -A "${
      join(ROOT, "cli.ts")
    }" telnet --tls --ca "${ca}" localhost ${port} 2>/dev/null`;
  const ncat = (port: number) =>
    `ncat --ssl --ssl-verify --ssl-trustfile "${ca}" localhost ${port}`;
  const mine: number[] = [];
  const theirs: number[] = [];
  for (let round = 0; round < s.rounds; round++) {
    mine.push(await tlsPipeOnce(s, certs, telnet));
    theirs.push(await tlsPipeOnce(s, certs, ncat));
  }
  const gib = (v: number) => `${v.toFixed(2)} GiB/s`;
  const size = `${s.tlsBytes / MIB} MiB`;
  return {
    id: "6b",
    measure,
    figure: gib(median(mine)),
    baseline: gib(median(theirs)),
    ratio: median(mine) / median(theirs),
    note: [
      `${size} of zeros from head -c to a Deno TLS sink (the same for ` +
      `both, its decryption on the same 2 cores); no goal set (issue 13)`,
      spread(mine.map((v, i) => v / theirs[i])),
    ].filter(Boolean).join("; "),
  };
}

// The run -------------------------------------------------------------------

async function machine(tools: Tools, s: Settings): Promise<string[]> {
  const cpu = await Deno.readTextFile("/proc/cpuinfo")
    .then((t) => t.match(/model name\s*:\s*(.*)/)?.[1] ?? "unknown")
    .catch(() => "unknown");
  const version = async (cmd: string | undefined, args: string[]) =>
    cmd
      ? (await run(cmd, args).catch(() => "?")).split("\n")[0].trim()
      : "not found";
  return [
    `${Deno.build.os} ${Deno.osRelease()} ${Deno.build.arch}, ${navigator.hardwareConcurrency} cores (${cpu}), load average ${
      Deno.loadavg().map((v) => v.toFixed(2)).join(" ")
    } at the start`,
    `Deno ${Deno.version.deno} (V8 ${Deno.version.v8}); Node ${await version(
      tools.node,
      ["--version"],
    )}; ${await version(tools.python, ["--version"])}; cc ${await version(
      tools.cc,
      ["-dumpversion"],
    )}; ${await version(tools.iperf3, ["--version"])}`,
    `mode: ${
      s.quick ? "quick (smoke test: figures mean little)" : "full"
    }, ${s.rounds} round(s) per measure, the median round reported`,
  ];
}

async function main(): Promise<void> {
  const s = settings(Deno.args);
  const started = performance.now();
  const tmp = await Deno.makeTempDir({ prefix: "socket-bench-" });
  const rows: Row[] = [];
  let lines: string[] = [];
  try {
    const tools = await findTools(tmp);
    lines = await machine(tools, s);
    const sections: [string, (s: Settings, t: Tools) => Promise<Row[]>][] = [
      ["1", acceptRate],
      ["2", bulk],
      ["3", manyConnections],
      ["4", cliPipe],
      ["5", admission],
      ["6", tls],
    ];
    for (const [id, section] of sections) {
      const t0 = performance.now();
      try {
        rows.push(...await section(s, tools));
      } catch (error) {
        rows.push({
          id,
          measure: `section ${id}`,
          error: (error as Error).message.split("\n")[0],
        });
      }
      console.error(
        `section ${id} done in ${
          ((performance.now() - t0) / 1000).toFixed(1)
        } s`,
      );
    }
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
  const total = (performance.now() - started) / 1000;
  lines.push(
    `whole run: ${total.toFixed(1)} s; load average ${
      Deno.loadavg().map((v) => v.toFixed(2)).join(" ")
    } at the end; ${new Date().toISOString()}`,
  );
  const title = "Benchmarks: the module against its baselines, same run";
  const table = markdown(rows, { lines }, title);
  await Deno.mkdir(s.out, { recursive: true });
  await Deno.writeTextFile(join(s.out, "latest.md"), table);
  await Deno.writeTextFile(join(s.out, "latest.svg"), svg(rows, title));
  await Deno.writeTextFile(
    join(s.out, "latest.json"),
    JSON.stringify({ rows, machine: lines }, null, 2) + "\n",
  );
  console.log(table);
  if (rows.some((r) => r.error)) Deno.exitCode = 1;
}

if (import.meta.main) await main();
