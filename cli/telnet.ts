/**
 * `telnet HOST [PORT]`: the tutorial's check with telnet, as a
 * pipe-friendly client: the trace on stderr, the peer's bytes alone on
 * stdout.
 *
 * @module
 */

import { type AttemptEvent, connect } from "../lib/connect.ts";
import type { Connection } from "../lib/connection.ts";
import {
  isUnixAddress,
  peerFields,
  type SocketAddress,
} from "../lib/address.ts";
import { hostPort } from "../lib/_describe.ts";
import {
  type EscapeAction,
  type EscapeContext,
  isReset,
  pipe,
  type PipeResult,
  type Role,
} from "../lib/_pipe.ts";
import {
  type Command,
  FAMILY_OPTIONS,
  familyOption,
  hostArg,
  type ParsedArgs,
  pipeExitCode,
  portArg,
  printError,
  required,
  stringOption,
  timeoutArg,
  traceOption,
  UNIX_PERMISSIONS,
  unixOption,
  UsageError,
} from "./_common.ts";
import {
  checkNoTlsOnUnix,
  CLIENT_TLS_HELP,
  CLIENT_TLS_OPTIONS,
  clientTlsFlags,
  handshakeLine,
} from "./_tls.ts";
import type { HandshakeEvent } from "../lib/tls.ts";

/** The help text of `telnet`. */
const TELNET_HELP = `Usage: deno run -N cli.ts telnet HOST [PORT] [options]
       deno run -R -W -N cli.ts telnet --unix PATH [options]

Connects as "telnet HOST PORT" does (PORT 23 when not given, as telnet's),
printing telnet's trace ("Trying ::1...", "Connected to HOST.", …) on
stderr, then copies stdin to the connection and the connection to stdout,
both at once and at full speed. The trace goes to stderr (telnet prints it
on stdout) so that stdout carries only the peer's bytes, and the command
works in a pipe as nc does. Bytes go as they are: no telnet protocol, no
line-ending translation.

End of stdin (Ctrl-D) closes the sending side; the command goes on
printing until the peer closes, then prints "Connection closed by foreign
host." and exits. A failure one way never cuts the other short: if the
peer resets the connection (say, it closed without reading all we sent),
every byte that arrived before is printed, then one line on stderr says so
("send to HOST port PORT: Connection reset by peer"). When stdout's reader
leaves (| head), the command ends quietly.

On a terminal, Ctrl-] then Enter shows a "telnet>" prompt on stderr for
one command (or type it on the same line, as Ctrl-] status):
  (empty line)  close the sending side, as Ctrl-D
  status        the peer, bytes sent and received, time connected
  close         close the connection and exit
  quit          the same, as telnet's quit
Anything else lists these and goes back to the session.

With --unix PATH it connects to the Unix socket at PATH (nc -U). ${UNIX_PERMISSIONS}

Options:
  --unix PATH   a Unix socket in place of HOST and PORT
  -4, -6        IPv4 or IPv6 addresses only
  --timeout MS  limit for the connect (nc -w); 0 means never (the default)
  -q, --quiet   no trace: only errors on stderr
  -v, --verbose the trace (the default; for nc's habit)
  --debug       print the stack of an error, and when each direction is
                handed to a worker thread (past its first MiB)
  -h, --help    this help

${CLIENT_TLS_HELP}
  The trace adds the handshake: "TLS handshake with NAME: ok, ALPN h2".

Exit status: 0 the peer closed the connection, or reset it (as nc and
telnet exit 0 then), or stdout's reader left, or close/quit was typed;
1 could not connect, or reading stdin or writing stdout failed; 2 usage
error.
`;

/** Ctrl-], telnet's escape character. */
const ESCAPE = 0x1d;

/** The `telnet` command. */
export const telnetCommand: Command = {
  help: TELNET_HELP,
  options: {
    unix: { type: "string" },
    timeout: { type: "string" },
    quiet: { type: "boolean", short: "q" },
    verbose: { type: "boolean", short: "v" },
    ...FAMILY_OPTIONS,
    ...CLIENT_TLS_OPTIONS,
  },
  positionals: 2,
  run: runTelnet,
};

/** Runs `telnet` and returns the exit code. */
async function runTelnet({ values, positionals }: ParsedArgs): Promise<number> {
  const path = unixOption(values, ["ipv4", "ipv6"]);
  checkNoTlsOnUnix(values, path);
  if (path !== undefined && positionals.length > 0) {
    throw new UsageError(
      "--unix replaces HOST and PORT: give one or the other",
    );
  }
  const say = traceOption(values) ? printError : () => {};
  const host = path ?? hostArg(required(positionals[0], "HOST"));
  const port = positionals[1] === undefined ? 23 : portArg(positionals[1]);
  const family = familyOption(values);
  const timeoutText = stringOption(values, "timeout");
  const timeout = timeoutText === undefined
    ? undefined
    : timeoutArg(timeoutText);

  const tls = await clientTlsFlags(values);
  let conn: Connection<SocketAddress>;
  if (path === undefined) {
    conn = await connect(host, port, {
      onAttempt: (event) => trace(event, say),
      family,
      timeout,
      tls,
      onHandshake: (event) => traceHandshake(event, say),
    });
  } else {
    say(`Trying ${path}...`);
    conn = await connect({ path }, { timeout });
  }
  say(`Connected to ${host}.`);
  say("Escape character is '^]'.");
  const session = { conn, started: Date.now(), closed: false };
  let result: PipeResult;
  try {
    result = await pipe(conn, {
      escape: ESCAPE,
      onEscape: (escape) => command(escape, session),
      onHandoff: values.debug ? traceHandoff : undefined,
    });
  } finally {
    conn.close();
  }
  // cli.ts exits with the code returned, ending a read of stdin still
  // pending (in a worker, only an exit ends it).
  if (session.closed) {
    say("Connection closed.");
    return 0;
  }
  return outcome(result, say);
}

interface Session {
  conn: Connection<SocketAddress>;
  started: number;
  /** `close` or `quit` was typed: the connection was closed on purpose. */
  closed: boolean;
}

/** Telnet's command mode: one command line after Ctrl-]. */
async function command(
  escape: EscapeContext,
  session: Session,
): Promise<EscapeAction> {
  let line = firstLine(escape.after);
  if (line === "") {
    await Deno.stderr.write(new TextEncoder().encode("telnet> "));
    const read = await escape.readLine();
    if (read === null) return "end";
    line = firstLine(read);
  }
  switch (line) {
    case "":
      return "end";
    case "status":
      printError(status(escape, session));
      return "resume";
    case "close":
    case "quit":
      session.closed = true;
      session.conn.close();
      return "end";
    default:
      printError(
        `?Invalid command "${line}": status, close, quit, or an empty ` +
          `line to close the sending side`,
      );
      return "resume";
  }
}

function firstLine(text: string): string {
  return text.split("\n")[0].trim();
}

/** The `status` line: the peer, bytes each way, time connected. */
function status(escape: EscapeContext, session: Session): string {
  const { remoteAddr, localAddr } = session.conn;
  const peer = isUnixAddress(remoteAddr)
    ? peerFields(remoteAddr, localAddr).host
    : hostPort(remoteAddr.address, remoteAddr.port);
  const seconds = ((Date.now() - session.started) / 1000).toFixed(1);
  return `Connected to ${peer}: sent ${escape.sent} bytes, received ` +
    `${escape.received} bytes, for ${seconds} s.`;
}

/** The last lines and the exit code, from how the pipe ended. */
function outcome(result: PipeResult, say: (line: string) => void): number {
  return pipeExitCode(result, isReset, (error) => {
    // Everything that arrived was printed; then one line on how it ended.
    if (error === undefined) say("Connection closed by foreign host.");
    else printError(error.message);
  });
}

function traceHandshake(
  event: HandshakeEvent,
  say: (line: string) => void,
): void {
  if (event.state === "done") {
    say(handshakeLine(event.serverName, event.alpnProtocol));
  }
}

function traceHandoff(direction: Role, bytes: number): void {
  const what = direction === "stdin" ? "stdin → socket" : "socket → stdout";
  printError(`telnet: ${what} handed to a worker after ${bytes} bytes`);
}

function trace(event: AttemptEvent, say: (line: string) => void): void {
  if (event.state === "trying") say(`Trying ${event.address}...`);
  if (event.state === "failed") {
    const reason = event.error?.reason ?? "failed";
    say(`telnet: connect to address ${event.address}: ${reason}`);
  }
}
