/**
 * `client`: the tutorial's client: connect, `recv(1024)`, print, close.
 *
 * @module
 */

import { hostPort } from "../lib/_describe.ts";
import { connect } from "../lib/connect.ts";
import {
  type Command,
  ControlEscaper,
  hostArg,
  integerArg,
  type ParsedArgs,
  portArg,
  printError,
  stdoutIsTerminal,
  stringOption,
  timeoutArg,
  unixOption,
  writeStdout,
} from "./_common.ts";
import type { Connection } from "../lib/connection.ts";
import type { SocketAddress } from "../lib/address.ts";
import {
  checkNoTlsOnUnix,
  CLIENT_TLS_HELP,
  CLIENT_TLS_OPTIONS,
  clientTlsFlags,
} from "./_tls.ts";

/** The help text of `client`. */
const CLIENT_HELP = `Usage: deno run -N cli.ts client [options]
       deno run -R -W -N cli.ts client --unix PATH [options]

The tutorial's client: connects, receives once (at most --bufsize bytes),
prints what came followed by a newline, and closes.

Options:
  --hostname H    the server (default 127.0.0.1)
  -p, --port N    its port (default 12345)
  --unix PATH     a Unix socket in place of --hostname and --port;
                  Deno needs -R -W -N, or at least --allow-read=PATH
                  --allow-write=PATH --allow-net=unix:PATH
  --bufsize N     the most bytes to receive, as recv(1024) (default 1024)
  --raw           write the bytes as they came, with no newline added, even
                  on a terminal
  --timeout MS    limit for the connect and for the receive; 0 means never
  --debug         print the stack of an error
  -h, --help      this help

${CLIENT_TLS_HELP}

On a terminal, control characters other than \\n \\r \\t are shown escaped,
as cat -v does, so that a server cannot drive the terminal; a pipe or a
file gets the bytes untouched.

A server that closes without sending anything (as a busy server may,
refusing us) is not an empty greeting: "the server closed the connection
without sending anything" goes to stderr and the exit status is 1. A busy
refusal message is printed like any reply, so it can be read.

Exit status: 0 received at least one byte, 1 refused, timed out, reset, or
closed without sending anything, 2 usage error.
`;

/** The `client` command. */
export const clientCommand: Command = {
  help: CLIENT_HELP,
  options: {
    hostname: { type: "string" },
    port: { type: "string", short: "p" },
    unix: { type: "string" },
    bufsize: { type: "string" },
    raw: { type: "boolean" },
    timeout: { type: "string" },
    ...CLIENT_TLS_OPTIONS,
  },
  positionals: 0,
  run: runClient,
};

/** Runs `client` and returns the exit code. */
async function runClient({ values }: ParsedArgs): Promise<number> {
  const option = (name: string) => stringOption(values, name);
  const path = unixOption(values, ["hostname", "port"]);
  checkNoTlsOnUnix(values, path);
  const host = path ?? hostArg(option("hostname") ?? "127.0.0.1");
  const port = portArg(option("port") ?? "12345");
  const bufsize = integerArg(option("bufsize") ?? "1024", "bufsize", 1);
  const timeoutText = option("timeout");
  const timeout = timeoutText === undefined
    ? undefined
    : timeoutArg(timeoutText);

  const tls = await clientTlsFlags(values);
  await using conn: Connection<SocketAddress> = path === undefined
    ? await connect(host, port, { tls, timeout, idleTimeout: timeout })
    : await connect({ path }, { timeout, idleTimeout: timeout });
  const data = await conn.recv(bufsize);
  if (data === null) {
    printError(
      `${
        path ?? hostPort(host, port)
      }: the server closed the connection without ` +
        `sending anything`,
    );
    return 1;
  }
  if (values.raw) {
    await writeStdout(data);
    return 0;
  }
  if (stdoutIsTerminal()) {
    const escaper = new ControlEscaper();
    await writeStdout(escaper.push(data));
    await writeStdout(escaper.flush());
  } else await writeStdout(data);
  await writeStdout("\n");
  return 0;
}
