/**
 * A scan of 1,000 closed loopback ports (20000–20999, below Linux's
 * ephemeral range, so that no test's listener lands there): scan() in
 * this process at several concurrencies, and `cli.ts scan` next to
 * `nmap -sT` (a connect scan, as ours) as a user runs them, process start
 * included. deno bench prints each as a ratio to its group's baseline.
 *
 *   deno bench -A bench/scan_bench.ts
 *
 * @module
 */

import { scan } from "../mod.ts";

const HOST = "127.0.0.1";
const PORTS = "20000-20999";
const CLI = new URL("../cli.ts", import.meta.url).pathname;

async function scanClosed(concurrency: number): Promise<void> {
  const results = await scan(HOST, PORTS, { concurrency });
  if (results.length !== 1000) throw new Error("expected 1000 results");
}

async function runQuietly(program: string, args: string[]): Promise<void> {
  const { code, stderr } = await new Deno.Command(program, {
    args,
    stdout: "null",
    stderr: "piped",
  }).output();
  // scan exits 1 when nothing is open, as nc -z; nmap exits 0.
  if (code > 1) throw new Error(new TextDecoder().decode(stderr));
}

// In this process: the concurrency that DEFAULT_SCAN_CONCURRENCY is
// chosen from.
for (const concurrency of [16, 64, 256, 1000]) {
  Deno.bench(`scan() 1000 closed ports, concurrency ${concurrency}`, {
    group: "concurrency",
    baseline: concurrency === 256,
  }, async () => await scanClosed(concurrency));
}

function installed(program: string): boolean {
  try {
    new Deno.Command(program, { args: ["--version"], stdout: "null" })
      .outputSync();
    return true;
  } catch {
    console.log(`skipping the ${program} row: ${program} is not installed`);
    return false;
  }
}

const hasNmap = installed("nmap");

Deno.bench(
  "nmap -sT 1000 closed ports",
  {
    group: "vs nmap",
    baseline: true,
    ignore: !hasNmap,
  },
  async () => await runQuietly("nmap", ["-Pn", "-sT", "-n", "-p", PORTS, HOST]),
);

Deno.bench(
  "cli.ts scan 1000 closed ports",
  {
    group: "vs nmap",
  },
  async () =>
    await runQuietly(Deno.execPath(), ["run", "-N", CLI, "scan", HOST, PORTS]),
);

// What of the above is Deno starting and loading cli.ts, not scanning.
Deno.bench("cli.ts --help (start-up alone)", {
  group: "vs nmap",
}, async () => await runQuietly(Deno.execPath(), ["run", "-N", CLI, "--help"]));
