/**
 * `serve`: the tutorial's server, printing its lines, with the backlog rule
 * made visible (`--busy`) and a graceful stop on Ctrl-C.
 *
 * @module
 */

import { pythonAddress } from "./address.ts";
import { type ConnectionInfo, serve, type ServerStats } from "./server.ts";
import {
  hostArg,
  integerArg,
  msArg,
  parseCommandArgs,
  portArg,
  printError,
  printJson,
  stringOption,
} from "./cli_common.ts";

/** The help text of `serve`. */
export const SERVE_HELP = `Usage: deno run -N cli.ts serve [options]

The tutorial's server: binds, listens, greets each connection and closes it.
Prints "Socket successfully created", "socket binded to PORT", "socket is
listening", then "Got connection from (ADDRESS, PORT)" as each connection is
served and "Refused connection from (ADDRESS, PORT): backlog full" for each
one turned away. Ctrl-C (SIGINT) or SIGTERM stops it gracefully: no new
connections, the waiting ones are served, then one line of counters; a
second signal cuts --busy short and skips the greetings still to send.

Options:
  --hostname H        address to bind (default "": every IPv4 interface, as
                      the tutorial's ''; 127.0.0.1 for this machine only)
  --port N            port to bind, 0 for any free one (default 12345)
  --backlog N         connections that may wait while busy (default 5)
  --concurrency N     connections served at once (default 1)
  --message TEXT      the greeting (default "Thank you for connecting")
  --busy MS           wait MS before greeting, to watch the backlog fill
  --idle-timeout MS   drop a connection that makes no progress for MS
                      (default 30000; 0 for never)
  --json              one JSON object per line instead of the text
  --debug             print the stack of an error
  -h, --help          this help

Exit status: 0 stopped by a signal, 1 could not bind, 2 usage error.
`;

/** Runs `serve` until SIGINT or SIGTERM and returns the exit code. */
export async function serveCommand(args: string[]): Promise<number> {
  const { values } = parseCommandArgs(args, {
    hostname: { type: "string" },
    port: { type: "string" },
    backlog: { type: "string" },
    concurrency: { type: "string" },
    message: { type: "string" },
    busy: { type: "string" },
    "idle-timeout": { type: "string" },
    json: { type: "boolean" },
  }, 0);
  if (values.help) {
    console.log(SERVE_HELP);
    return 0;
  }
  const option = (name: string) => stringOption(values, name);
  const hostnameText = option("hostname") ?? "";
  const hostname = hostnameText === "" ? "" : hostArg(hostnameText);
  const port = portArg(option("port") ?? "12345", true);
  const backlog = integerArg(option("backlog") ?? "5", "backlog", 0);
  const concurrency = integerArg(
    option("concurrency") ?? "1",
    "concurrency",
    1,
  );
  const message = option("message") ?? "Thank you for connecting";
  const busyText = option("busy");
  const busy = busyText === undefined ? 0 : msArg(busyText, "busy");
  const idle = msArg(option("idle-timeout") ?? "30000", "idle-timeout");
  const json = values.json === true;

  // A second signal cuts the busy waits short and skips unsent greetings.
  const hurry = new AbortController();
  const print = (line: string, event: Record<string, unknown>) =>
    json ? printJson(event) : console.log(line);
  const peer = (info: ConnectionInfo) => ({
    id: info.id,
    address: info.remoteAddr.address,
    port: info.remoteAddr.port,
    family: info.remoteAddr.family,
  });

  print("Socket successfully created", { event: "created" });
  const server = serve({
    hostname,
    port,
    backlog,
    concurrency,
    idleTimeout: idle === 0 ? undefined : idle,
    onConnection: (info) =>
      print(`Got connection from ${pythonAddress(info.remoteAddr)}`, {
        event: "connection",
        ...peer(info),
      }),
    onRefused: (info) =>
      print(
        `Refused connection from ${
          pythonAddress(info.remoteAddr)
        }: backlog full`,
        { event: "refused", ...peer(info) },
      ),
    onError: (error, info) =>
      printError(
        `connection from ${pythonAddress(info.remoteAddr)} failed: ${
          error instanceof Error ? error.message : String(error)
        }`,
      ),
  }, async (conn, info) => {
    const signal = AbortSignal.any([info.signal, hurry.signal]);
    if (busy > 0) await sleep(busy, signal);
    if (signal.aborted) return;
    await conn.sendAll(message);
  });
  const { address, family } = server.addr;
  print(`socket binded to ${server.addr.port}`, {
    event: "bound",
    address,
    port: server.addr.port,
    family,
  });
  print("socket is listening", { event: "listening" });

  const stopped = Promise.withResolvers<void>();
  let signals = 0;
  const onSignal = () => {
    if (++signals === 1) stopped.resolve();
    else hurry.abort();
  };
  Deno.addSignalListener("SIGINT", onSignal);
  Deno.addSignalListener("SIGTERM", onSignal);
  try {
    await Promise.race([stopped.promise, server.finished]);
    await server.shutdown();
  } finally {
    Deno.removeSignalListener("SIGINT", onSignal);
    Deno.removeSignalListener("SIGTERM", onSignal);
  }
  print(summary(server.stats), { event: "stopped", ...server.stats });
  return 0;
}

function summary(stats: ServerStats): string {
  return `server stopped: accepted ${stats.accepted}, served ${stats.served}, failed ${stats.failed}, refused ${stats.refused}`;
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
