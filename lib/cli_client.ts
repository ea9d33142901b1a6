/**
 * `client`: the tutorial's client: connect, `recv(1024)`, print, close.
 *
 * @module
 */

import { connect } from "./connect.ts";
import {
  hostArg,
  integerArg,
  msArg,
  parseCommandArgs,
  portArg,
  stringOption,
  writeStdout,
} from "./cli_common.ts";

/** The help text of `client`. */
export const CLIENT_HELP = `Usage: deno run -N cli.ts client [options]

The tutorial's client: connects, receives once (at most --bufsize bytes),
prints what came as UTF-8 text, and closes.

Options:
  --hostname H    the server (default 127.0.0.1)
  --port N        its port (default 12345)
  --bufsize N     the most bytes to receive, as recv(1024) (default 1024)
  --raw           write the bytes as they came, with no newline added
  --timeout MS    limit for the connect and for the receive
  --debug         print the stack of an error
  -h, --help      this help

Exit status: 0 received (or the server closed at once), 1 refused or timed
out, 2 usage error.
`;

/** Runs `client` and returns the exit code. */
export async function clientCommand(args: string[]): Promise<number> {
  const { values } = parseCommandArgs(args, {
    hostname: { type: "string" },
    port: { type: "string" },
    bufsize: { type: "string" },
    raw: { type: "boolean" },
    timeout: { type: "string" },
  }, 0);
  if (values.help) {
    console.log(CLIENT_HELP);
    return 0;
  }
  const option = (name: string) => stringOption(values, name);
  const host = hostArg(option("hostname") ?? "127.0.0.1");
  const port = portArg(option("port") ?? "12345");
  const bufsize = integerArg(option("bufsize") ?? "1024", "bufsize", 1);
  const timeoutText = option("timeout");
  const timeout = timeoutText === undefined
    ? undefined
    : msArg(timeoutText, "timeout");

  await using conn = await connect(host, port, {
    timeout,
    idleTimeout: timeout,
  });
  const data = await conn.recv(bufsize) ?? new Uint8Array();
  if (values.raw) await writeStdout(data);
  else console.log(new TextDecoder().decode(data));
  return 0;
}
