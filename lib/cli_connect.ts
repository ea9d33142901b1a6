/**
 * `connect HOST [PORT]`: the tutorial's connect script, with `--send` for
 * its "now we need to send data" step.
 *
 * @module
 */

import { connect } from "./connect.ts";
import type { Connection } from "./connection.ts";
import {
  hostArg,
  msArg,
  parseCommandArgs,
  portArg,
  printJson,
  required,
  stringOption,
  unescapeArg,
  writeStdout,
} from "./cli_common.ts";

/** The help text of `connect`. */
export const CONNECT_HELP =
  `Usage: deno run -N cli.ts connect HOST [PORT] [options]

Connects to HOST on PORT (default 80, the HTTP port, as in the tutorial) and
prints the tutorial's lines:
  Socket successfully created
  the socket has successfully connected to HOST on port PORT (IP)
Names in /etc/hosts need --allow-read=/etc/hosts.

Options:
  --send TEXT   send TEXT (escapes: \\r \\n \\t \\\\), then print what comes
                back until the peer closes or the timeout
  --timeout MS  limit for the connect, and then for the reply to --send
  --json        one JSON object per line instead of the text
  --debug       print the stack of an error
  -h, --help    this help

Exit status: 0 connected, 1 refused, unresolvable or timed out, 2 usage error.
`;

const decoder = new TextDecoder();

/** Runs `connect` and returns the exit code. */
export async function connectCommand(args: string[]): Promise<number> {
  const { values, positionals } = parseCommandArgs(args, {
    send: { type: "string" },
    timeout: { type: "string" },
    json: { type: "boolean" },
  }, 2);
  if (values.help) {
    console.log(CONNECT_HELP);
    return 0;
  }
  const host = hostArg(required(positionals[0], "HOST"));
  const port = positionals[1] === undefined ? 80 : portArg(positionals[1]);
  const sendText = stringOption(values, "send");
  const payload = sendText === undefined
    ? undefined
    : unescapeArg(sendText, "--send");
  const timeoutText = stringOption(values, "timeout");
  const timeout = timeoutText === undefined
    ? undefined
    : msArg(timeoutText, "timeout");
  const json = values.json === true;

  if (json) printJson({ event: "created" });
  else console.log("Socket successfully created");
  await using conn = await connect(host, port, { timeout });
  const { address, family } = conn.remoteAddr;
  if (json) printJson({ event: "connected", host, port, address, family });
  else {
    console.log(
      `the socket has successfully connected to ${host} on port ${port} (${address})`,
    );
  }
  if (payload === undefined) return 0;
  await conn.sendAll(payload);
  if (json) {
    printJson({
      event: "sent",
      bytes: new TextEncoder().encode(payload).length,
    });
  }
  const received = await printReply(conn, timeout, json);
  if (json) {
    printJson({
      event: "closed",
      bytes: received.bytes,
      timedOut: received.timedOut,
    });
  }
  return 0;
}

/**
 * Prints what the peer sends until it closes, or until `timeout` ms have
 * passed: then the connection is closed, and that is not an error.
 */
async function printReply(
  conn: Connection,
  timeout: number | undefined,
  json: boolean,
): Promise<{ bytes: number; timedOut: boolean }> {
  let timedOut = false;
  const timer = timeout === undefined ? undefined : setTimeout(() => {
    timedOut = true;
    conn.close();
  }, timeout);
  let bytes = 0;
  try {
    while (true) {
      const chunk = await conn.recv();
      if (chunk === null) break;
      bytes += chunk.length;
      if (json) {
        printJson({
          event: "data",
          text: decoder.decode(chunk, { stream: true }),
        });
      } else await writeStdout(chunk);
    }
  } catch (error) {
    if (!timedOut) throw error;
  } finally {
    clearTimeout(timer);
  }
  return { bytes, timedOut };
}
