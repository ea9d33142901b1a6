/**
 * What every command of the command line shares: argument parsing with
 * usage errors, value checks, output, and the exit-code rule (0 success,
 * 1 runtime failure, 2 usage error).
 *
 * @module
 */

import { parseArgs } from "node:util";
import { parsePort, validateHost } from "./address.ts";
import { InvalidArgumentError } from "./errors.ts";

/** A bad command line: one line on stderr, exit 2. */
export class UsageError extends Error {
  /** @param message What is wrong with the command line. */
  constructor(message: string) {
    super(message);
    this.name = "UsageError";
  }
}

/** One option of a command, as `node:util`'s `parseArgs` takes it. */
export interface OptionSpec {
  type: "string" | "boolean";
  short?: string;
}

/** The options every command takes. */
const COMMON_OPTIONS: Record<string, OptionSpec> = {
  help: { type: "boolean", short: "h" },
  debug: { type: "boolean" },
};

/** A parsed command line. */
export interface ParsedArgs {
  values: Record<string, string | boolean | undefined>;
  positionals: string[];
}

/**
 * Parses a command's arguments strictly: an unknown option, a missing
 * value or an extra argument is a {@linkcode UsageError}.
 */
export function parseCommandArgs(
  args: string[],
  options: Record<string, OptionSpec>,
  maxPositionals: number,
): ParsedArgs {
  const all = { ...COMMON_OPTIONS, ...options };
  let parsed;
  try {
    parsed = parseArgs({
      args: joinNegativeValues(args, all),
      options: all,
      allowPositionals: true,
      strict: true,
    });
  } catch (error) {
    const text = error instanceof Error ? error.message : String(error);
    // Node's messages add hints on further lines or sentences; keep the first.
    throw new UsageError(
      text.split("\n")[0].replace(/\. To specify .*$/, "").replace(/\.$/, ""),
    );
  }
  const values = parsed.values as ParsedArgs["values"];
  if (!values.help && parsed.positionals.length > maxPositionals) {
    throw new UsageError(
      `unexpected argument ${
        JSON.stringify(parsed.positionals[maxPositionals])
      }`,
    );
  }
  return { values, positionals: parsed.positionals };
}

/**
 * `--port -1` is an option with a negative value, not two options: pass it
 * as `--port=-1` so that the value's own check names it.
 */
function joinNegativeValues(
  args: string[],
  options: Record<string, OptionSpec>,
): string[] {
  const out: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const name = args[i].startsWith("--") ? args[i].slice(2) : undefined;
    const next = args[i + 1];
    if (
      name !== undefined && options[name]?.type === "string" &&
      next !== undefined && /^-\d/.test(next)
    ) {
      out.push(`${args[i]}=${next}`);
      i++;
    } else {
      out.push(args[i]);
    }
  }
  return out;
}

/** Runs a check from the module, turning its argument error into usage. */
function usage<T>(check: () => T): T {
  try {
    return check();
  } catch (error) {
    if (error instanceof InvalidArgumentError) {
      throw new UsageError(error.message);
    }
    throw error;
  }
}

/** A required positional argument. */
export function required(
  value: string | undefined,
  name: string,
): string {
  if (value === undefined) throw new UsageError(`missing ${name}`);
  return value;
}

/** A host from the command line: an IP literal or a host name. */
export function hostArg(value: string): string {
  usage(() => validateHost(value));
  return value;
}

/** A port from the command line; 0 only where `allowZero`. */
export function portArg(value: string, allowZero = false): number {
  return usage(() => parsePort(value, { allowZero }));
}

/** A whole number from the command line, from `min` to `max`. */
export function integerArg(
  value: string,
  name: string,
  min: number,
  max = Number.MAX_SAFE_INTEGER,
): number {
  const n = /^\d{1,16}$/.test(value) ? Number(value) : NaN;
  if (!(n >= min && n <= max)) {
    const range = max === Number.MAX_SAFE_INTEGER
      ? `≥ ${min}`
      : `from ${min} to ${max}`;
    throw new UsageError(
      `invalid --${name} ${
        JSON.stringify(value)
      }: expected an integer ${range}`,
    );
  }
  return n;
}

/** The longest timer the runtime keeps, in milliseconds. */
const MAX_MS = 2 ** 31 - 1;

/** Milliseconds from the command line, checked before any output. */
export function msArg(value: string, name: string): number {
  return integerArg(value, name, 0, MAX_MS);
}

/** A string option's value, or `undefined` when it was not given. */
export function stringOption(
  values: ParsedArgs["values"],
  name: string,
): string | undefined {
  const value = values[name];
  return typeof value === "string" ? value : undefined;
}

/**
 * A name server as `IP`, `IP:PORT`, `[IPv6]:PORT` or a bare IPv6 address.
 */
export function nameServerArg(
  value: string,
): { ipAddr: string; port: number } {
  const bracketed = /^\[([^\]]+)\](?::(.*))?$/.exec(value);
  let ip = value;
  let port: string | undefined;
  if (bracketed) {
    [, ip, port] = bracketed;
  } else if (value.split(":").length === 2) {
    [ip, port] = value.split(":");
  }
  const fail = () =>
    new UsageError(
      `invalid name server ${JSON.stringify(value)}: expected IP[:PORT]`,
    );
  let host: string;
  try {
    host = validateHost(ip);
  } catch {
    throw fail();
  }
  if (!/^[\d.]+$/.test(host) && !host.includes(":")) throw fail();
  return { ipAddr: host, port: port === undefined ? 53 : portArg(port) };
}

/** Text with `\r`, `\n`, `\t` and `\\` escapes turned into the characters. */
export function unescapeArg(value: string, name: string): string {
  return value.replace(/\\(.?)/g, (_, c: string) => {
    switch (c) {
      case "r":
        return "\r";
      case "n":
        return "\n";
      case "t":
        return "\t";
      case "\\":
        return "\\";
      default:
        throw new UsageError(
          `invalid escape "\\${c}" in ${name}: use \\r, \\n, \\t or \\\\`,
        );
    }
  });
}

const encoder = new TextEncoder();

/** Writes all of `data` to stdout. */
export async function writeStdout(data: Uint8Array | string): Promise<void> {
  const bytes = typeof data === "string" ? encoder.encode(data) : data;
  let written = 0;
  while (written < bytes.length) {
    written += await Deno.stdout.write(bytes.subarray(written));
  }
}

/** Prints one line on stderr. */
export function printError(line: string): void {
  console.error(line);
}

/** One JSON object on one line of stdout. */
export function printJson(value: unknown): void {
  console.log(JSON.stringify(value));
}

/** A command: parses its own arguments and returns the exit code. */
export type Command = (args: string[]) => Promise<number>;

/**
 * Runs a command and maps what it throws to the exit code and one line on
 * stderr; `--debug` adds the stack.
 */
export async function runCommand(
  command: Command,
  args: string[],
  name: string,
): Promise<number> {
  const debug = args.includes("--debug");
  try {
    return await command(args);
  } catch (error) {
    const isUsage = error instanceof UsageError ||
      error instanceof InvalidArgumentError;
    const message = error instanceof Error ? error.message : String(error);
    printError(
      isUsage
        ? `${name}: ${message} (see --help)`
        : message.replace(/\s*\n\s*/g, " "),
    );
    if (debug && error instanceof Error) printError(stackOf(error));
    // Anything else, ours or not (a runtime refusing a permission), is a
    // runtime failure.
    return isUsage ? 2 : 1;
  }
}

function stackOf(error: Error): string {
  let text = error.stack ?? String(error);
  let cause = error.cause;
  while (cause instanceof Error) {
    text += `\nCaused by: ${cause.stack ?? cause.message}`;
    cause = cause.cause;
  }
  return text;
}
