/**
 * `serve`: the tutorial's server, printing its lines, with the backlog rule
 * made visible (`--busy`) and a graceful stop on Ctrl-C.
 *
 * @module
 */

import {
  isUnixAddress,
  pythonAddress,
  type SocketAddress,
} from "../lib/address.ts";
import type { Connection } from "../lib/connection.ts";
import {
  type ConnectionInfo,
  removeStaleSocket,
  serve,
  type ServerStats,
} from "../lib/server.ts";
import {
  addressJson,
  type Command,
  hostArg,
  integerArg,
  MAX_MS,
  msArg,
  type ParsedArgs,
  portArg,
  printError,
  stringOption,
  unescapeArg,
  UNIX_PERMISSIONS,
  unixOption,
} from "./_common.ts";
import { LineWriter } from "./_output.ts";
import {
  checkNoTlsOnUnix,
  SERVER_TLS_HELP,
  SERVER_TLS_OPTIONS,
  serverTlsFlags,
} from "./_tls.ts";
import type { ServeTlsOptions } from "../lib/tls.ts";

/** The help text of `serve`. */
const SERVE_HELP = `Usage: deno run -N cli.ts serve [options]
       deno run -R -W -N cli.ts serve --unix PATH [options]

The tutorial's server: binds, listens, greets each connection and closes it.
Prints "Socket successfully created", "socket binded to PORT", "socket is
listening", then "Got connection from (ADDRESS, PORT)" as each connection is
served and "Refused connection from (ADDRESS, PORT): backlog full" for each
one turned away (these lines are buffered and written every few
milliseconds, at once on a terminal, so that printing never slows the
server). A refused client gets the refusal message, then end of stream.

Ctrl-C (SIGINT), SIGTERM or SIGHUP stops it gracefully: no new
connections, one line "stopping: N connections to finish", the waiting
ones are served, then one line of counters. A second signal cuts --busy
short and skips the greetings still to send: those connections are closed
without a greeting and counted as failed (and as skipped).

With --unix PATH it serves on a Unix socket instead, printing "socket
binded to PATH" and "Got connection on PATH (client #N)" (clients of a Unix
socket have no address; N counts them). ${UNIX_PERMISSIONS}
An existing file at PATH: if it is a socket and connecting to it is
refused, a server that crashed left it, and it is removed (one line on
stderr says so) before binding; if a server answers there, or the file is
not a socket, the command fails with "Address already in use" and leaves
the file alone. The socket file is removed when the server stops.

Options:
  --hostname H        address to bind (default "": every IPv4 interface, as
                      the tutorial's ''; 127.0.0.1 for this machine only)
  -p, --port N        port to bind, 0 for any free one (default 12345)
  --unix PATH         a Unix socket in place of --hostname and --port
  --backlog N         connections that may wait while busy (default 5)
  --concurrency N     connections served at once (default 1)
  --kernel-backlog N  the kernel's accept queue (listen(2)'s backlog), which
                      only absorbs bursts between two accepts (default: as
                      deep as the system allows, net.core.somaxconn)
  --message TEXT      the greeting (default "Thank you for connecting")
  --refusal-message TEXT
                      sent to a refused client before closing (default
                      "server busy, try again later\\n"); "" for none;
                      takes the escapes \\n, \\r, \\t and \\\\
  --busy MS           wait MS before greeting, to watch the backlog fill
  --idle-timeout MS   drop a connection when one write makes no progress
                      for MS (default 30000; 0 for never); a client that
                      reads a little more often than that is not dropped
  --max-time MS       the longest a connection is served, --busy included:
                      this ends a client that reads a byte at a time
                      (default 60000; 0 for never)
  --json              one JSON object per line instead of the text
  --debug             print the stack of an error
  -h, --help          this help

${SERVER_TLS_HELP}
  A failed or stalled handshake prints "connection from (ADDRESS, PORT)
  failed: TLS handshake with …" and counts as failed.

Exit status: 0 stopped by a signal, 1 could not bind, 2 usage error.
`;

/** What a refused client is told by default. */
const DEFAULT_REFUSAL = "server busy, try again later\n";

/** A greeting skipped by the second signal: failed, and not an error. */
class Skipped extends Error {
  constructor() {
    super("skipped by the second signal");
    this.name = "Skipped";
  }
}

/** The signals that stop the server: SIGHUP too, where it exists. */
const STOP_SIGNALS: Deno.Signal[] = Deno.build.os === "windows"
  ? ["SIGINT"]
  : ["SIGINT", "SIGTERM", "SIGHUP"];

/** The settings of `serve`, from its command line. */
interface ServeSettings {
  path: string | undefined;
  hostname: string;
  port: number;
  backlog: number;
  concurrency: number;
  kernelBacklog: number | undefined;
  /** The greeting, encoded once: it is sent on every connection. */
  message: Uint8Array;
  refusal: string;
  busy: number;
  idle: number;
  maxTime: number;
  json: boolean;
  tls: ServeTlsOptions | undefined;
}

async function settings(
  values: ParsedArgs["values"],
): Promise<ServeSettings> {
  const option = (name: string) => stringOption(values, name);
  const path = unixOption(values, ["hostname", "port", "kernel-backlog"]);
  checkNoTlsOnUnix(values, path);
  const hostnameText = option("hostname") ?? "";
  const kernelText = option("kernel-backlog");
  const busyText = option("busy");
  const tls = await serverTlsFlags(values);
  return {
    path,
    hostname: hostnameText === "" ? "" : hostArg(hostnameText),
    port: portArg(option("port") ?? "12345", true),
    backlog: integerArg(option("backlog") ?? "5", "backlog", 0),
    concurrency: integerArg(option("concurrency") ?? "1", "concurrency", 1),
    kernelBacklog: kernelText === undefined
      ? undefined
      : integerArg(kernelText, "kernel-backlog", 1, MAX_MS),
    message: new TextEncoder().encode(
      option("message") ?? "Thank you for connecting",
    ),
    refusal: unescapeArg(
      option("refusal-message") ?? DEFAULT_REFUSAL,
      "--refusal-message",
    ),
    busy: busyText === undefined ? 0 : msArg(busyText, "busy"),
    idle: msArg(option("idle-timeout") ?? "30000", "idle-timeout"),
    maxTime: msArg(option("max-time") ?? "60000", "max-time"),
    json: values.json === true,
    tls,
  };
}

/** The `serve` command. */
export const serveCommand: Command = {
  help: SERVE_HELP,
  options: {
    hostname: { type: "string" },
    port: { type: "string", short: "p" },
    unix: { type: "string" },
    backlog: { type: "string" },
    concurrency: { type: "string" },
    "kernel-backlog": { type: "string" },
    message: { type: "string" },
    "refusal-message": { type: "string" },
    busy: { type: "string" },
    "idle-timeout": { type: "string" },
    "max-time": { type: "string" },
    json: { type: "boolean" },
    ...SERVER_TLS_OPTIONS,
  },
  positionals: 0,
  run: runServe,
};

/** Runs `serve` until SIGINT, SIGTERM or SIGHUP; returns the exit code. */
async function runServe({ values }: ParsedArgs): Promise<number> {
  const s = await settings(values);
  // Every line goes through one buffer, in order, and the accept loop
  // never waits for stdout.
  const out = new LineWriter();
  try {
    return await run(s, out);
  } finally {
    await out.close();
  }
}

async function run(s: ServeSettings, out: LineWriter): Promise<number> {
  // A second signal cuts the busy waits short and skips unsent greetings.
  const hurry = new AbortController();
  let skipped = 0;
  // The JSON event is built only for --json.
  const print = (line: string, event: () => Record<string, unknown>) =>
    out.line(s.json ? JSON.stringify(event()) : line);
  // A hook per connection, on the accept path: the text or the JSON form,
  // chosen once, so that a connection builds only the one it prints.
  const connectionLine = (event: string, line: (who: string) => string) =>
    s.json
      ? (info: Info) =>
        out.line(JSON.stringify({ event, ...peer(info, s.path) }))
      : (info: Info) => out.line(line(from(info, s.path)));
  const common = {
    backlog: s.backlog,
    concurrency: s.concurrency,
    refusalMessage: s.refusal,
    idleTimeout: s.idle === 0 ? undefined : s.idle,
    handlerTimeout: s.maxTime === 0 ? undefined : s.maxTime,
    onConnection: connectionLine(
      "connection",
      (who) => `Got connection ${who}`,
    ),
    onRefused: connectionLine(
      "refused",
      (who) => `Refused connection ${who}: backlog full`,
    ),
    onError: (error: unknown, info: Info) => {
      if (error instanceof Skipped) {
        skipped++;
        return;
      }
      printError(
        `connection ${from(info, s.path)} failed: ${
          error instanceof Error ? error.message : String(error)
        }`,
      );
    },
  };
  // Only --busy waits, and only a wait can outlast the handler's time:
  // without it, no signal is made per connection (reading info.signal
  // makes one), and no async frame either.
  const greet = (conn: Connection<SocketAddress>) =>
    hurry.signal.aborted
      ? Promise.reject(new Skipped())
      : conn.sendAll(s.message);
  const handler = s.busy === 0
    ? greet
    : async (conn: Connection<SocketAddress>, info: Info) => {
      await sleep(s.busy, AbortSignal.any([info.signal, hurry.signal]));
      if (info.signal.aborted && !hurry.signal.aborted) {
        throw info.signal.reason;
      }
      await greet(conn);
    };
  if (s.path !== undefined && await removeStaleSocket(s.path)) {
    printError(`removed ${s.path}: a stale socket nobody listened on`);
  }
  const server = s.path === undefined
    ? serve({
      ...common,
      hostname: s.hostname,
      port: s.port,
      kernelBacklog: s.kernelBacklog,
      tls: s.tls,
    }, handler)
    : serve({ ...common, path: s.path }, handler);
  // Only once a socket exists: a bind error prints none of the lines.
  print("Socket successfully created", () => ({ event: "created" }));
  const addr: SocketAddress = server.addr;
  print(
    `socket binded to ${isUnixAddress(addr) ? addr.path : addr.port}`,
    () => ({ event: "bound", ...addressJson(addr) }),
  );
  print("socket is listening", () => ({ event: "listening" }));

  const stopped = Promise.withResolvers<void>();
  let signals = 0;
  const onSignal = () => {
    if (++signals === 1) {
      stopping(server.stats, print);
      stopped.resolve();
    } else {
      hurry.abort();
    }
  };
  for (const name of STOP_SIGNALS) Deno.addSignalListener(name, onSignal);
  try {
    await Promise.race([stopped.promise, server.finished]);
    await server.shutdown();
  } finally {
    for (const name of STOP_SIGNALS) Deno.removeSignalListener(name, onSignal);
  }
  print(summary(server.stats, skipped), () => ({
    event: "stopped",
    ...server.stats,
    skipped,
  }));
  return 0;
}

type Info = ConnectionInfo<SocketAddress>;

/**
 * "from ('127.0.0.1', 5000)", or "on PATH (client #3)" on the Unix socket
 * at `path` (a client's end has no path of its own).
 */
function from(info: Info, path: string | undefined): string {
  const { remoteAddr } = info;
  if (isUnixAddress(remoteAddr)) return `on ${path} (client #${info.id})`;
  return `from ${pythonAddress(remoteAddr)}`;
}

/** A connection's fields in a JSON event (built only with --json). */
function peer(info: Info, path: string | undefined): Record<string, unknown> {
  return { id: info.id, ...addressJson(info.remoteAddr, path) };
}

/** The first signal's line: what is left to do, and how to skip it. */
function stopping(
  stats: ServerStats,
  print: (line: string, event: () => Record<string, unknown>) => void,
): void {
  const left = stats.active + stats.waiting;
  const line = left === 0
    ? "stopping: no connections to finish"
    : `stopping: ${left} connection${
      left === 1 ? "" : "s"
    } to finish, Ctrl-C again to skip ${left === 1 ? "it" : "them"}`;
  print(line, () => ({ event: "stopping", left }));
}

function summary(stats: ServerStats, skipped: number): string {
  const line =
    `server stopped: accepted ${stats.accepted}, served ${stats.served}, failed ${stats.failed}, refused ${stats.refused}`;
  return skipped === 0 ? line : `${line} (${skipped} skipped)`;
}

/** Waits `ms`, or less if the signal aborts. */
function sleep(ms: number, signal: AbortSignal): Promise<void> {
  if (signal.aborted) return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener("abort", done, { once: true });
  });
}
