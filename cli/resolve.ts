/**
 * `resolve HOST`: the tutorial's `gethostbyname` step, every address.
 *
 * @module
 */

import { resolve } from "../lib/resolve.ts";
import {
  type Command,
  FAMILY_OPTIONS,
  familyOption,
  hostArg,
  nameServerArg,
  NEVER_MS,
  type ParsedArgs,
  printJson,
  required,
  stringOption,
  timeoutArg,
} from "./_common.ts";

/** The help text of `resolve`. */
const RESOLVE_HELP = `Usage: deno run -N cli.ts resolve HOST [options]

Prints the IP addresses of HOST, one per line, IPv6 first (the order a
connect tries them). IP literals print as they are; localhost is ::1 and
127.0.0.1 without any lookup. Names are looked up in /etc/hosts (when run
with --allow-read=/etc/hosts; without it, a failed lookup says so), then
in DNS.

Options:
  -4                     IPv4 addresses only
  -6                     IPv6 addresses only
  --nameserver IP[:PORT] ask this DNS server instead of the system's
  --timeout MS           give up on DNS after MS milliseconds (default
                         5000; 0 means never)
  --json                 one JSON object per line: {"address":…,"family":…}
  --debug                print the stack of an error
  -h, --help             this help

Exit status: 0 resolved, 1 the host does not resolve, 2 usage error.
`;

/** The `resolve` command. */
export const resolveCommand: Command = {
  help: RESOLVE_HELP,
  options: {
    ...FAMILY_OPTIONS,
    nameserver: { type: "string" },
    timeout: { type: "string" },
    json: { type: "boolean" },
  },
  positionals: 1,
  run: runResolve,
};

/** Runs `resolve` and returns the exit code. */
async function runResolve(
  { values, positionals }: ParsedArgs,
): Promise<number> {
  const host = hostArg(required(positionals[0], "HOST"));
  const family = familyOption(values);
  const server = stringOption(values, "nameserver");
  const timeout = stringOption(values, "timeout");
  const addresses = await resolve(host, {
    family,
    nameServer: server === undefined ? undefined : nameServerArg(server),
    // 0 is "never", as on every command.
    timeout: timeout === undefined
      ? undefined
      : timeoutArg(timeout) ?? NEVER_MS,
  });
  for (const { address, family } of addresses) {
    if (values.json) printJson({ address, family });
    else console.log(address);
  }
  return 0;
}
