/**
 * `telnet HOST PORT`: the tutorial's check with telnet, as a pipe-friendly
 * client: the trace on stderr, the peer's bytes alone on stdout.
 *
 * @module
 */

import { type AttemptEvent, connect } from "./connect.ts";
import type { Connection } from "./connection.ts";
import { fromRuntimeError } from "./_error_mapping.ts";
import {
  hostArg,
  parseCommandArgs,
  portArg,
  printError,
  required,
} from "./cli_common.ts";

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
prints "Connection closed by foreign host." and exits.

Options:
  --debug      print the stack of an error
  -h, --help   this help

Exit status: 0 the peer closed, 1 could not connect, 2 usage error.
`;

/** Ctrl-], telnet's escape character. */
const ESCAPE = 0x1d;

/** Runs `telnet` and returns the exit code. */
export async function telnetCommand(args: string[]): Promise<number> {
  const { values, positionals } = parseCommandArgs(args, {}, 2);
  if (values.help) {
    console.log(TELNET_HELP);
    return 0;
  }
  const host = hostArg(required(positionals[0], "HOST"));
  const port = portArg(required(positionals[1], "PORT"));

  const conn = await connect(host, port, { onAttempt: trace });
  printError(`Connected to ${host}.`);
  printError("Escape character is '^]'.");
  try {
    // Sending may fail once the peer is gone; what matters is its close.
    copyStdin(conn).catch(() => {});
    await conn.readable.pipeTo(Deno.stdout.writable, { preventClose: true });
  } catch (error) {
    // Only a write fails with a broken pipe: stdout's reader has gone (as
    // in "| head"), which ends the command quietly, as it ends nc.
    if (error instanceof Deno.errors.BrokenPipe) return 0;
    throw fromRuntimeError(error, { op: "recv", host, port });
  } finally {
    conn.close();
  }
  printError("Connection closed by foreign host.");
  // cli.ts exits with this code, ending a read of stdin still pending.
  return 0;
}

function trace(event: AttemptEvent): void {
  if (event.state === "trying") printError(`Trying ${event.address}...`);
  if (event.state === "failed") {
    const reason = event.error?.reason ?? "failed";
    printError(`telnet: connect to address ${event.address}: ${reason}`);
  }
}

/** Copies stdin to the peer, then closes the sending side. */
async function copyStdin(conn: Connection): Promise<void> {
  if (Deno.stdin.isTerminal()) await copyTerminal(conn);
  else {
    await Deno.stdin.readable.pipeTo(conn.writable, { preventClose: true });
  }
  await conn.closeWrite();
}

/** Line by line from a terminal, stopping at Ctrl-]. */
async function copyTerminal(conn: Connection): Promise<void> {
  for await (const chunk of Deno.stdin.readable) {
    const escape = chunk.indexOf(ESCAPE);
    const data = escape === -1 ? chunk : chunk.subarray(0, escape);
    if (data.length > 0) await conn.sendAll(data);
    if (escape !== -1) return;
  }
}
