/**
 * `listen`: the other end of `telnet`, as `nc -l`, `ncat -l -k` and
 * `ncat --broker` (and `nc -lU` with `--unix`): clients' bytes on stdout,
 * stdin to the clients, the trace on stderr.
 *
 * @module
 */

import {
  formatAddress,
  isUnixAddress,
  type SocketAddress,
} from "../lib/address.ts";
import { isReset } from "../lib/_pipe.ts";
import type { SocketError } from "../lib/errors.ts";
import {
  listen,
  type ListenClient,
  type Listener,
  type ListenEvent,
  type ListenOutput,
  type ListenResult,
} from "../lib/listen.ts";
import { removeStaleSocket } from "../lib/server.ts";
import {
  addressJson,
  type Command,
  hostArg,
  integerArg,
  type ParsedArgs,
  pipeExitCode,
  portArg,
  printError,
  printJson,
  stringOption,
  timeoutArg,
  traceOption,
  UNIX_PERMISSIONS,
  unixOption,
  UsageError,
} from "./_common.ts";
import {
  checkNoTlsOnUnix,
  SERVER_TLS_HELP,
  SERVER_TLS_OPTIONS,
  serverTlsFlags,
} from "./_tls.ts";
import type { ServeTlsOptions } from "../lib/tls.ts";

/** The help text of `listen`. */
const LISTEN_HELP =
  `Usage: deno run -N cli.ts listen [PORT | --port P] [options]
       deno run -R -W -N cli.ts listen --unix PATH [options]

Waits for a connection, as "nc -l" does, then copies the client's bytes to
stdout and stdin to the client, both at once and at full speed. End of
stdin closes the sending side only (the client reads end of stream); the
command exits 0 once the client has closed and every byte is written out.
A second client arriving meanwhile is refused at once (closed). The trace
goes to stderr, so stdout carries only the client's bytes:

  cli.ts listen -p 9000 > file          receive a file (nc -N HOST 9000 < file)
  cli.ts listen -k --broker -p 9000     a chat room (ncat HOST 9000 to join)
  deno run -N -R cli.ts listen --tls --cert srv.pem --key srv.key -p 9000 > file
                                        receive over TLS (ncat --ssl HOST 9000)
  deno run -R -W -N cli.ts listen --unix /tmp/nc.sock > file
                                        receive on a Unix socket
                                        (nc -NU /tmp/nc.sock < file)

With --unix PATH it listens on a Unix socket instead, as "nc -lU" does,
printing "Listening on PATH" and "Connection on PATH (client #N)."
(clients of a Unix socket have no address; N counts them).
${UNIX_PERMISSIONS}
An existing file at PATH: if it is a socket and connecting to it is
refused, a server that crashed left it, and it is removed (one line on
stderr says so) before listening; if a server answers there, or the file
is not a socket, the command fails with "Address already in use" and
leaves the file alone. The socket file is removed when listen ends, and
Ctrl-C (SIGINT) or SIGTERM ends it cleanly, with or without --keep-open.
--allow, --deny and --tls need TCP: they cannot be used with --unix.

Options:
  -p, --port P        the port to listen on; 0 (the default) for any free
                      one, read it from the "Listening on" line
  --hostname H        the address to bind (default "": every IPv4
                      interface, as nc -l; 127.0.0.1 for this machine only,
                      :: for IPv6 and IPv4)
  --unix PATH         a Unix socket in place of --hostname and --port
  -k, --keep-open     serve many clients, at once and one after another,
                      until stopped (Ctrl-C): stdin goes to every client
                      connected when it is read (and waits for the first
                      one), every client's bytes go to stdout; as ncat -k.
                      End of stdin is not passed on: a client ends when it
                      closes, or when listen stops
  --broker            with --keep-open (implied): each client's bytes go to
                      every other client too, and still to stdout
  --max-conns N       with --keep-open: clients served at once (default
                      100); the next one is refused at once (closed)
  --allow RANGE       only clients in RANGE may connect: an IPv4 or IPv6
                      address or CIDR block (10.0.0.0/8, ::1, fe80::/10);
                      repeat it, or separate ranges with commas
  --deny RANGE        clients in RANGE are refused (wins over --allow)
  --send-only         discard what clients send (nothing on stdout)
  --recv-only         never send: stdin is not read, no client is
                      half-closed
  --idle-timeout MS   close a client when one read or write of its
                      connection waits MS with no progress (ncat -i;
                      0, the default, means never)
  --queue-bytes N     with --keep-open: bytes that may wait for one client
                      (default 4194304); past that the sender waits for it,
                      and a client still that far behind after 1 s is
                      dropped (one line on stderr), so it never stalls the
                      others for longer
  --json              one JSON object per line on stdout instead of the
                      bytes: "listening", "connected", "data" (with the
                      exact bytes in "base64" next to "text"), "closed",
                      "refused", "denied", "failed", "dropped", "stopped"
  -v, --verbose       the trace on stderr (the default; for nc's habit)
  -q, --quiet         no trace: only errors and dropped clients (not
                      with -v)
  --debug             print the stack of an error
  -h, --help          this help

${SERVER_TLS_HELP}
  A client whose handshake fails or stalls (a wrong CA on its side, no
  TLS at all) is counted as failed with one line on stderr and gives its
  place back; listen goes on waiting, with or without --keep-open. A
  client's close without TLS close_notify (ncat --ssl does that) is its
  end, as with nc: everything it sent before is written out.

With --keep-open, Ctrl-C (SIGINT) or SIGTERM closes every client, prints
one line of counters and exits 0. A second signal, while that clean stop
waits (on a stdout nobody reads, say), ends listen at once: 130 or 143.

Exit status: 0 the client closed the connection (or reset it, as nc exits
0 then), stdout's reader left, or stopped by a signal with --keep-open;
1 could not listen, the connection timed out, or reading stdin or writing
stdout failed; 2 usage error; with --unix and without --keep-open, 130
(SIGINT) or 143 (SIGTERM) when a signal stopped it, as for a killed nc.
`;

/** The settings of `listen`, from its command line. */
interface Settings {
  /** The Unix socket's path (--unix), in place of hostname and port. */
  path: string | undefined;
  hostname: string;
  port: number;
  keepOpen: boolean;
  broker: boolean;
  maxConns: number | undefined;
  allow: string[];
  deny: string[];
  sendOnly: boolean;
  recvOnly: boolean;
  idleTimeout: number | undefined;
  queueBytes: number | undefined;
  json: boolean;
  trace: boolean;
  tls: ServeTlsOptions | undefined;
}

/** A client with either kind of address. */
type AnyClient = ListenClient<SocketAddress>;

const STOP_SIGNALS: Deno.Signal[] = Deno.build.os === "windows"
  ? ["SIGINT"]
  : ["SIGINT", "SIGTERM"];

/** The exit status of a program killed by a stop signal: 128 + its number. */
function signalStatus(name: Deno.Signal): number {
  return 128 + (name === "SIGTERM" ? 15 : 2);
}

/** The `listen` command. */
export const listenCommand: Command = {
  help: LISTEN_HELP,
  options: {
    hostname: { type: "string" },
    port: { type: "string", short: "p" },
    unix: { type: "string" },
    "keep-open": { type: "boolean", short: "k" },
    broker: { type: "boolean" },
    "max-conns": { type: "string" },
    allow: { type: "string", multiple: true },
    deny: { type: "string", multiple: true },
    "send-only": { type: "boolean" },
    "recv-only": { type: "boolean" },
    "idle-timeout": { type: "string" },
    "queue-bytes": { type: "string" },
    json: { type: "boolean" },
    verbose: { type: "boolean", short: "v" },
    quiet: { type: "boolean", short: "q" },
    ...SERVER_TLS_OPTIONS,
  },
  positionals: 1,
  run: async ({ values, positionals }) =>
    run(await settings(values, positionals)),
};

/** `--allow 10.0.0.0/8,::1 --allow …`: every range given, in order. */
function ranges(value: ParsedArgs["values"][string]): string[] {
  const given = Array.isArray(value) ? value : [];
  return given.flatMap((v) => v.split(",")).filter((v) => v !== "");
}

async function settings(
  values: ParsedArgs["values"],
  positionals: string[],
): Promise<Settings> {
  const option = (name: string) => stringOption(values, name);
  const path = unixOption(values, ["hostname", "port"]);
  if (path !== undefined) checkUnix(values, positionals, path);
  const hostnameText = option("hostname") ?? "";
  // "listen 9000", as "nc -l 9000".
  if (positionals[0] !== undefined && option("port") !== undefined) {
    throw new UsageError("give the port once: PORT or --port");
  }
  const portText = option("port") ?? positionals[0] ?? "0";
  const broker = values.broker === true;
  const keepOpen = values["keep-open"] === true || broker;
  const maxText = option("max-conns");
  if (maxText !== undefined && !keepOpen) {
    throw new UsageError("--max-conns needs --keep-open");
  }
  if (values["send-only"] && values["recv-only"]) {
    throw new UsageError("--send-only and --recv-only exclude each other");
  }
  const idleText = option("idle-timeout");
  const queueText = option("queue-bytes");
  const tls = await serverTlsFlags(values);
  return {
    path,
    hostname: hostnameText === "" ? "" : hostArg(hostnameText),
    port: portArg(portText, true),
    keepOpen,
    broker,
    maxConns: maxText === undefined
      ? undefined
      : integerArg(maxText, "max-conns", 1),
    allow: ranges(values.allow),
    deny: ranges(values.deny),
    sendOnly: values["send-only"] === true,
    recvOnly: values["recv-only"] === true,
    idleTimeout: idleText === undefined
      ? undefined
      : timeoutArg(idleText, "idle-timeout"),
    queueBytes: queueText === undefined
      ? undefined
      : integerArg(queueText, "queue-bytes", 1),
    json: values.json === true,
    trace: traceOption(values) && values.json !== true,
    tls,
  };
}

/**
 * What needs TCP is refused with --unix: a PORT argument, the address
 * rules (clients of a Unix socket have no address) and TLS.
 */
function checkUnix(
  values: ParsedArgs["values"],
  positionals: string[],
  path: string,
): void {
  if (positionals[0] !== undefined) {
    throw new UsageError("--unix replaces PORT: give one or the other");
  }
  checkNoTlsOnUnix(values, path);
  for (const name of ["allow", "deny"]) {
    if (values[name] !== undefined) {
      throw new UsageError(
        `--${name} matches IP addresses, which clients of a Unix socket ` +
          "do not have: it cannot be used with --unix",
      );
    }
  }
}

async function run(s: Settings): Promise<number> {
  // As serve --unix: a file a crashed server left is removed, said once.
  if (s.path !== undefined && await removeStaleSocket(s.path)) {
    printError(`removed ${s.path}: a stale socket nobody listened on`);
  }
  const listener = start(s);
  // --keep-open runs until stopped; a signal then ends it cleanly. On a
  // Unix socket a signal always does, so that the file is removed. The
  // handlers are in place before the "Listening" line: a signal sent as
  // soon as it is read must find them.
  const stoppable = s.keepOpen || s.path !== undefined;
  let caught: Deno.Signal | undefined;
  const handlers = stoppable
    ? STOP_SIGNALS.map((name) => {
      const onSignal = () => {
        // A second signal: the clean stop is stuck (a stdout nobody reads,
        // say); end now, as a killed nc would. A Unix socket's file left
        // behind is removed by the next listen on the path.
        if (caught !== undefined) Deno.exit(signalStatus(name));
        caught = name;
        listener.shutdown();
      };
      return [name, onSignal] as const;
    })
    : [];
  for (const [name, onSignal] of handlers) {
    Deno.addSignalListener(name, onSignal);
  }
  const addr: SocketAddress = listener.addr;
  if (s.json) printJson({ event: "listening", ...addressJson(addr) });
  if (s.trace) printError(`Listening on ${addressText(addr)}`);
  let result: ListenResult;
  try {
    result = await listener.finished;
  } finally {
    for (const [name, onSignal] of handlers) {
      Deno.removeSignalListener(name, onSignal);
    }
  }
  if (s.keepOpen) stopped(result, s);
  // Without --keep-open a signal cut the session short: say so in the
  // status, as a killed nc's shell would see it.
  else if (caught !== undefined) return signalStatus(caught);
  // cli.ts exits with the code returned, ending a read of stdin still
  // pending (in a worker, only an exit ends it).
  // The connection's end was said by its "closed" event already.
  return pipeExitCode(result, isPeerEnd);
}

/** The listener the settings ask for: on a TCP port or a Unix socket. */
function start(s: Settings): Listener<SocketAddress> {
  const common = {
    keepOpen: s.keepOpen,
    broker: s.broker,
    maxConns: s.maxConns,
    sendOnly: s.sendOnly,
    recvOnly: s.recvOnly,
    idleTimeout: s.idleTimeout,
    queueBytes: s.queueBytes,
    stdout: s.json ? jsonOutput : Deno.stdout,
    onEvent: (event: ListenEvent<SocketAddress>) => report(event, s),
  };
  if (s.path !== undefined) return listen({ ...common, path: s.path });
  return listen({
    ...common,
    hostname: s.hostname,
    port: s.port,
    allow: s.allow,
    deny: s.deny,
    tls: s.tls,
  });
}

/**
 * The peer ended the connection in a way nc users call an end: a reset
 * (nc exits 0 then), or over TLS a close without close_notify, which
 * `ncat --ssl` clients do at the end of their input (ncat -l takes it as
 * the end too; everything received before was written out).
 */
function isPeerEnd(error: SocketError): boolean {
  return isReset(error) || error.cause instanceof Deno.errors.UnexpectedEof;
}

function stopped(result: ListenResult, s: Settings): void {
  const { accepted, served, failed, refused, denied, dropped } = result.stats;
  if (s.json) printJson({ event: "stopped", ...result.stats });
  else if (s.trace) {
    printError(
      `listen stopped: accepted ${accepted}, served ${served}, failed ${failed}, refused ${refused}, denied ${denied}, dropped ${dropped}`,
    );
  }
}

/** "127.0.0.1:9000", or the Unix socket's path. */
function addressText(addr: SocketAddress): string {
  return isUnixAddress(addr) ? addr.path : formatAddress(addr);
}

/** A client's fields in a JSON event; on a Unix socket, the path. */
function peer(client: AnyClient, s: Settings): Record<string, unknown> {
  return { id: client.id, ...addressJson(client.remoteAddr, s.path) };
}

/**
 * A client in a line: "127.0.0.1:5000", or on a Unix socket "PATH (client
 * #N)" (clients there have no address; serve --unix names them so).
 */
function who(client: AnyClient, s: Settings): string {
  return isUnixAddress(client.remoteAddr)
    ? `${s.path} (client #${client.id})`
    : formatAddress(client.remoteAddr);
}

/** Prints an event: JSON on stdout, or a line of trace on stderr. */
function report(event: ListenEvent<SocketAddress>, s: Settings): void {
  if (s.json) {
    const { event: name, client, ...rest } = event;
    const error = "error" in rest ? rest.error : undefined;
    printJson({
      event: name,
      ...peer(client, s),
      ...rest,
      ...(error ? { error: errorJson(error) } : {}),
    });
    return;
  }
  const name = who(event.client, s);
  // "Connection from 127.0.0.1:5000", "Connection on PATH (client #1)".
  const from = `${
    isUnixAddress(event.client.remoteAddr) ? "on" : "from"
  } ${name}`;
  switch (event.event) {
    case "connected":
      if (s.trace) printError(`Connection ${from}.`);
      return;
    case "refused":
      if (s.trace) {
        printError(
          `Refused connection ${from}: too many connections (max ${event.maxConns})`,
        );
      }
      return;
    case "denied":
      if (s.trace) printError(`Denied connection ${from}: not allowed`);
      return;
    case "failed":
      // Always said, as serve says it: a client could not be served.
      printError(`Failed connection ${from}: ${event.error.message}`);
      return;
    case "dropped":
      // Always said: the client lost bytes.
      printError(
        `Dropped ${name}: ${event.queued} bytes behind for 1 s, past --queue-bytes`,
      );
      return;
    case "closed":
      if (event.error && !isPeerEnd(event.error)) {
        printError(event.error.message);
      } else if (s.trace && s.keepOpen) {
        printError(`Connection ${from} closed.`);
      }
      return;
  }
}

function errorJson(error: Error): Record<string, unknown> {
  const code = "code" in error ? error.code : undefined;
  return { code, message: error.message };
}

/** For --json: each client's bytes as "data" events. */
function jsonOutput(client: AnyClient): ListenOutput {
  const decoder = new TextDecoder();
  return {
    write(p: Uint8Array): Promise<number> {
      printJson({
        event: "data",
        id: client.id,
        text: decoder.decode(p, { stream: true }),
        base64: toBase64(p),
      });
      return Promise.resolve(p.length);
    },
  };
}

function toBase64(bytes: Uint8Array): string {
  let binary = "";
  for (let i = 0; i < bytes.length; i += 0x8000) {
    binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  }
  return btoa(binary);
}
