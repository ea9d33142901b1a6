/**
 * `scan HOST PORTS`: the tutorial's "is anything listening?" over a port
 * list, as `nc -z` answers it.
 *
 * @module
 */

import { formatAddress } from "../lib/address.ts";
import {
  DEFAULT_SCAN_CONCURRENCY,
  DEFAULT_SCAN_TIMEOUT,
  type PortResult,
  scan,
} from "../lib/scan.ts";
import {
  type Command,
  FAMILY_OPTIONS,
  familyOption,
  hostArg,
  integerArg,
  NEVER_MS,
  type ParsedArgs,
  printError,
  printJson,
  required,
  stringOption,
  timeoutArg,
} from "./_common.ts";

/** The help text of `scan`. */
const SCAN_HELP = `Usage: deno run -N cli.ts scan HOST PORTS [options]

Tries a TCP connect to each port of PORTS on HOST, many at once, and prints
the open ones in ascending order, one per line ("127.0.0.1:22 open"), as
"nc -z" and "nmap -sT" find them. Nothing is sent; each connection is
closed as soon as it is made. HOST is resolved once; a port is open when
any of its addresses (IPv6 first) accepts.

PORTS: ports and ranges, comma-separated, such as 22 or 20-25,80,8000-8100
(each 1–65535, ranges ascending, repeats merged).

Options:
  --timeout MS       wait at most MS ms for each port (default ${DEFAULT_SCAN_TIMEOUT};
                     0 means never, as on every command); a port with no
                     answer is "timeout" (nmap's "filtered")
  --concurrency N    at most N connects at once (default ${DEFAULT_SCAN_CONCURRENCY}; lowered by
                     itself if the process runs out of open files)
  --all              print every port: closed and timed-out ones too, with
                     the reason ("127.0.0.1:23 closed (Connection refused)")
  --json             one JSON object per line:
                     {"port":…,"address":…,"state":…,"code":…,"reason":…,"ms":…}
  -4                 IPv4 addresses only
  -6                 IPv6 addresses only
  --debug            print the stack of an error
  -h, --help         this help

Exit status: 0 at least one port is open, 1 none is (as "nc -z"), or the
host does not resolve, 2 usage error.
`;

/** The `scan` command. */
export const scanCommand: Command = {
  help: SCAN_HELP,
  options: {
    ...FAMILY_OPTIONS,
    timeout: { type: "string" },
    concurrency: { type: "string" },
    all: { type: "boolean" },
    json: { type: "boolean" },
  },
  positionals: 2,
  run: runScan,
};

/** Runs `scan` and returns the exit code. */
async function runScan({ values, positionals }: ParsedArgs): Promise<number> {
  const host = hostArg(required(positionals[0], "HOST"));
  const ports = required(positionals[1], "PORTS");
  const timeoutText = stringOption(values, "timeout");
  const concurrencyText = stringOption(values, "concurrency");
  const all = values.all === true;
  const json = values.json === true;

  const counts = { open: 0, closed: 0, timeout: 0, error: 0 };
  const results = await scan(host, ports, {
    family: familyOption(values),
    // 0 is "never", as on every command: the longest timer still lets a
    // scan end, on the ports that never answer.
    timeout: timeoutText === undefined
      ? undefined
      : timeoutArg(timeoutText) ?? NEVER_MS,
    concurrency: concurrencyText === undefined
      ? undefined
      : integerArg(concurrencyText, "concurrency", 1, 65535),
    // Printed as the scan goes, still in ascending order.
    onResult: (result) => {
      counts[result.state]++;
      if (all || result.state === "open") print(result, json);
    },
  });
  if (counts.open > 0) return 0;
  if (!json) printError(noneOpen(host, results.length, counts));
  return 1;
}

function print(result: PortResult, json: boolean): void {
  if (json) {
    printJson(result);
    return;
  }
  const where = formatAddress(result);
  console.log(
    result.state === "open"
      ? `${where} open`
      : `${where} ${result.state} (${result.reason})`,
  );
}

/** The one line on stderr when nothing is open: why the exit is 1. */
function noneOpen(
  host: string,
  total: number,
  counts: Record<string, number>,
): string {
  const parts = Object.entries(counts)
    .filter(([, n]) => n > 0)
    .map(([state, n]) => `${n} ${state}`);
  const ports = total === 1 ? "1 port" : `${total} ports`;
  return `scan ${host}: no open port among ${ports} (${parts.join(", ")})`;
}
