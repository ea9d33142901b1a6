/**
 * `telnet HOST PORT`: the tutorial's check with telnet, as a pipe-friendly
 * client: the trace on stderr, the peer's bytes alone on stdout.
 *
 * @module
 */

import { type AttemptEvent, connect } from "../lib/connect.ts";
import { isReset, pipe, type PipeResult, type Role } from "../lib/_pipe.ts";
import {
  type Command,
  hostArg,
  type ParsedArgs,
  portArg,
  printError,
  required,
} from "./_common.ts";
import {
  CLIENT_TLS_HELP,
  CLIENT_TLS_OPTIONS,
  clientTlsFlags,
  handshakeLine,
} from "./_tls.ts";
import type { HandshakeEvent } from "../lib/tls.ts";

/** The help text of `telnet`. */
export const TELNET_HELP = `Usage: deno run -N cli.ts telnet HOST PORT

Connects as "telnet HOST PORT" does, printing telnet's trace ("Trying ::1...",
"Connected to HOST.", …) on stderr, then copies stdin to the connection and
the connection to stdout, both at once and at full speed. The trace goes to
stderr (telnet prints it on stdout) so that stdout carries only the peer's
bytes, and the command works in a pipe as nc does. Bytes go as they are:
no telnet protocol, no line-ending translation.

End of stdin (Ctrl-D), or Ctrl-] then Enter on a terminal, closes the
sending side; the command goes on printing until the peer closes, then
prints "Connection closed by foreign host." and exits. A failure one way
never cuts the other short: if the peer resets the connection (say, it
closed without reading all we sent), every byte that arrived before is
printed, then one line on stderr says so ("send to HOST port PORT:
Connection reset by peer"). When stdout's reader leaves (| head), the
command ends quietly.

Options:
  --debug      print the stack of an error, and when each direction is
               handed to a worker thread (past its first MiB)
  -h, --help   this help

${CLIENT_TLS_HELP}
  The trace adds the handshake: "TLS handshake with NAME: ok, ALPN h2".

Exit status: 0 the peer closed the connection, or reset it (as nc and
telnet exit 0 then), or stdout's reader left; 1 could not connect, or
reading stdin or writing stdout failed; 2 usage error.
`;

/** Ctrl-], telnet's escape character. */
const ESCAPE = 0x1d;

/** The `telnet` command. */
export const telnetCommand: Command = {
  help: TELNET_HELP,
  options: { ...CLIENT_TLS_OPTIONS },
  positionals: 2,
  run: runTelnet,
};

/** Runs `telnet` and returns the exit code. */
async function runTelnet({ values, positionals }: ParsedArgs): Promise<number> {
  const host = hostArg(required(positionals[0], "HOST"));
  const port = portArg(required(positionals[1], "PORT"));

  const tls = await clientTlsFlags(values);
  const conn = await connect(host, port, {
    onAttempt: trace,
    tls,
    onHandshake: traceHandshake,
  });
  printError(`Connected to ${host}.`);
  printError("Escape character is '^]'.");
  let result: PipeResult;
  try {
    result = await pipe(conn, {
      escape: ESCAPE,
      onHandoff: values.debug ? traceHandoff : undefined,
    });
  } finally {
    conn.close();
  }
  // cli.ts exits with the code returned, ending a read of stdin still
  // pending (in a worker, only an exit ends it).
  return outcome(result);
}

/** The last lines and the exit code, from how the pipe ended. */
function outcome(result: PipeResult): number {
  // Stdout's reader has gone (as in "| head"): quietly, as nc ends.
  if (result.stdoutClosed) return 0;
  if (result.stdinError) {
    printError(`read from stdin: ${result.stdinError.message}`);
  }
  if (result.stdoutError) {
    printError(`write to stdout: ${result.stdoutError.message}`);
    return 1;
  }
  const error = result.connectionError;
  if (error === undefined) {
    printError("Connection closed by foreign host.");
    return result.stdinError ? 1 : 0;
  }
  // Everything that arrived was printed; then one line on how it ended.
  printError(error.message);
  return isReset(error) && !result.stdinError ? 0 : 1;
}

function traceHandshake(event: HandshakeEvent): void {
  if (event.state === "done") {
    printError(handshakeLine(event.serverName, event.alpnProtocol));
  }
}

function traceHandoff(direction: Role, bytes: number): void {
  const what = direction === "stdin" ? "stdin → socket" : "socket → stdout";
  printError(`telnet: ${what} handed to a worker after ${bytes} bytes`);
}

function trace(event: AttemptEvent): void {
  if (event.state === "trying") printError(`Trying ${event.address}...`);
  if (event.state === "failed") {
    const reason = event.error?.reason ?? "failed";
    printError(`telnet: connect to address ${event.address}: ${reason}`);
  }
}
