/**
 * The command line: one command per chapter of the tutorial.
 *
 * ```sh
 * deno run -N cli.ts resolve localhost
 * deno run -N cli.ts serve --port 12345
 * deno run -N cli.ts client --port 12345
 * deno run -N cli.ts telnet localhost 12345
 * deno run -N cli.ts connect localhost 12345
 * deno run -N cli.ts scan 127.0.0.1 20-25,80,8000-8100
 * deno run -N cli.ts listen -p 9000 > file
 * ```
 *
 * @module
 */

import { type Command, runCommand } from "./cli/_common.ts";
import { resolveCommand } from "./cli/resolve.ts";
import { connectCommand } from "./cli/connect.ts";
import { serveCommand } from "./cli/serve.ts";
import { clientCommand } from "./cli/client.ts";
import { telnetCommand } from "./cli/telnet.ts";
import { scanCommand } from "./cli/scan.ts";
import { listenCommand } from "./cli/listen.ts";

const COMMANDS: Record<string, Command> = {
  resolve: resolveCommand,
  connect: connectCommand,
  serve: serveCommand,
  client: clientCommand,
  telnet: telnetCommand,
  scan: scanCommand,
  listen: listenCommand,
};

const HELP = `Usage: deno run -N cli.ts COMMAND [options]

Socket programming from the terminal, one command per step of the tutorial.

Commands:
  resolve HOST        the addresses of a host (gethostbyname)
  connect HOST [PORT] connect, and optionally send and print the reply
  serve               the tutorial's server
  client              the tutorial's client: connect, recv(1024), print
  telnet HOST [PORT]  an interactive, pipe-friendly telnet (--unix PATH)
  scan HOST PORTS     which ports are open (nc -z): 20-25,80,8000-8100
  listen [PORT]       wait for clients, as nc -l (--unix PATH); -k,
                      --broker for many

Run "deno run -N cli.ts COMMAND --help" for a command's options.
Names in /etc/hosts need --allow-read=/etc/hosts as well.
Exit status: 0 success, 1 runtime failure, 2 usage error.
`;

/**
 * Runs the command line and returns the exit code.
 *
 * @param args The arguments, without the program.
 * @returns 0 on success, 1 on a runtime failure, 2 on a usage error.
 */
export async function main(args: string[]): Promise<number> {
  const [name, ...rest] = args;
  if (name === undefined) {
    console.error("missing COMMAND (see --help)");
    return 2;
  }
  if (name === "--help" || name === "-h" || name === "help") {
    console.log(HELP);
    return 0;
  }
  const command = COMMANDS[name];
  if (command === undefined) {
    console.error(`unknown command ${JSON.stringify(name)} (see --help)`);
    return 2;
  }
  return await runCommand(command, rest, name);
}

if (import.meta.main) Deno.exit(await main(Deno.args));
