/**
 * What every command of the command line shares: argument parsing with
 * usage errors, value checks, output, and the exit-code rule (0 success,
 * 1 runtime failure, 2 usage error).
 *
 * @module
 */

import { parseArgs } from "node:util";
import { describe } from "../lib/_describe.ts";
import {
  isUnixAddress,
  parsePort,
  type SocketAddress,
  validateHost,
  validatePath,
} from "../lib/address.ts";
import { InvalidArgumentError, type SocketError } from "../lib/errors.ts";
import type { PipeResult } from "../lib/_pipe.ts";

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
  /** May be given more than once: the value is then a list. */
  multiple?: boolean;
}

/** The options every command takes. */
const COMMON_OPTIONS: Record<string, OptionSpec> = {
  help: { type: "boolean", short: "h" },
  debug: { type: "boolean" },
};

/** A parsed command line. */
export interface ParsedArgs {
  values: Record<string, string | boolean | string[] | undefined>;
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
    // Node's messages add hints on further lines or sentences; keep the
    // first, and no more of a quoted argument than any other message shows.
    throw new UsageError(
      text.split("\n")[0].replace(/\. To specify .*$/, "").replace(/\.$/, "")
        .replace(/'([^']{81,})'/g, (_, quoted: string) => describe(quoted)),
    );
  }
  const values = parsed.values as ParsedArgs["values"];
  if (!values.help && parsed.positionals.length > maxPositionals) {
    throw new UsageError(
      `unexpected argument ${describe(parsed.positionals[maxPositionals])}`,
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
      throw new UsageError(error.reason);
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

/**
 * A host from the command line: an IP literal or a host name. `HOST:PORT`
 * is what people type after URLs and ssh: say how to write it here.
 */
export function hostArg(value: string): string {
  const joined = /^(\[[^\]]+\]|[^:\s]+):(\d{1,5})$/.exec(value);
  if (joined) {
    throw new UsageError(
      `invalid host ${describe(value)}: give the port as its own ` +
        `argument, HOST PORT (${joined[1]} ${joined[2]})`,
    );
  }
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
      `invalid --${name} ${describe(value)}: expected an integer ${range}`,
    );
  }
  return n;
}

/** The longest timer the runtime keeps, in milliseconds. */
export const MAX_MS = 2 ** 31 - 1;

/** Milliseconds from the command line, checked before any output. */
export function msArg(value: string, name: string): number {
  return integerArg(value, name, 0, MAX_MS);
}

/**
 * A `--timeout` from the command line: 0 means never, as for `nc -w 0`
 * users expect and as a 0 ms timeout could mean nothing useful.
 *
 * @returns The milliseconds, or `undefined` for 0 (no limit).
 */
export function timeoutArg(
  value: string,
  name = "timeout",
): number | undefined {
  const ms = msArg(value, name);
  return ms === 0 ? undefined : ms;
}

/** The longest wait a timer allows: "never", where a limit is required. */
export const NEVER_MS: number = MAX_MS;

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
      `invalid name server ${describe(value)}: expected IP[:PORT]`,
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

/**
 * Whether stdout is a terminal: then a peer's control bytes are shown
 * escaped, so that it cannot retitle, clear or reprogram the user's
 * terminal.
 */
export function stdoutIsTerminal(): boolean {
  return Deno.stdout.isTerminal();
}

/**
 * Makes bytes safe to print on a terminal, as `cat -v` does: C0 controls
 * other than `\n`, `\r` and `\t` become `^@`…`^_`, DEL becomes `^?`, and
 * the C1 controls (U+0080–U+009F, which some terminals obey) become
 * `M-^@`…`M-^_`. Everything else, UTF-8 text included, passes unchanged.
 * A C1 control cut between two chunks is still caught.
 */
export class ControlEscaper {
  /** A 0xC2 byte held back until the next byte says if it starts C1. */
  #held = false;

  /** Escapes one chunk. */
  push(chunk: Uint8Array): Uint8Array {
    const out: number[] = [];
    for (const byte of chunk) {
      if (this.#held) {
        this.#held = false;
        if (byte >= 0x80 && byte <= 0x9f) {
          out.push(0x4d, 0x2d, 0x5e, byte - 0x80 + 0x40); // M-^X
          continue;
        }
        out.push(0xc2);
      }
      if (byte === 0xc2) this.#held = true;
      else if (byte === 0x7f) out.push(0x5e, 0x3f); // ^?
      else if (byte < 0x20 && byte !== 0x09 && byte !== 0x0a && byte !== 0x0d) {
        out.push(0x5e, byte + 0x40); // ^@ … ^_
      } else out.push(byte);
    }
    return new Uint8Array(out);
  }

  /** The byte held back at the end, if any. */
  flush(): Uint8Array {
    const out = this.#held ? new Uint8Array([0xc2]) : new Uint8Array();
    this.#held = false;
    return out;
  }
}

/** Prints one line on stderr. */
export function printError(line: string): void {
  console.error(line);
}

/**
 * The exit code of a command that pipes a connection to stdin and stdout
 * (telnet, listen), with a line on stderr for each of stdin's and stdout's
 * failures. Stdout's reader leaving (`| head`) is 0, quietly, as nc ends;
 * a connection that ended as `isPeerEnd` says a peer may end it (a reset:
 * nc exits 0 then) is 0 too, unless stdin failed.
 *
 * @param onEnd Called with how the connection ended (`undefined`: closed)
 *   when stdout took everything, for the command's own last line.
 */
export function pipeExitCode(
  result: Omit<PipeResult, "sent" | "received">,
  isPeerEnd: (error: SocketError) => boolean,
  onEnd?: (error: SocketError | undefined) => void,
): number {
  if (result.stdoutClosed) return 0;
  if (result.stdinError) {
    printError(`read from stdin: ${result.stdinError.message}`);
  }
  if (result.stdoutError) {
    printError(`write to stdout: ${result.stdoutError.message}`);
    return 1;
  }
  const error = result.connectionError;
  onEnd?.(error);
  if (error === undefined) return result.stdinError ? 1 : 0;
  return isPeerEnd(error) && !result.stdinError ? 0 : 1;
}

/** `-q` / `-v`: whether to print the trace (the default); both is usage. */
export function traceOption(values: ParsedArgs["values"]): boolean {
  if (values.quiet && values.verbose) {
    throw new UsageError("-q and -v exclude each other: give one");
  }
  return values.quiet !== true;
}

/**
 * An address in a JSON event: address, port and family, or on a Unix
 * socket the path (`unixPath` in place of the address's own, which is
 * empty on a client's end).
 */
export function addressJson(
  addr: SocketAddress,
  unixPath?: string,
): Record<string, unknown> {
  if (isUnixAddress(addr)) return { path: unixPath ?? addr.path };
  const { address, port, family } = addr;
  return { address, port, family };
}

/** One JSON object on one line of stdout. */
export function printJson(value: unknown): void {
  console.log(JSON.stringify(value));
}

/**
 * A command of the command line: its help, its options, how many
 * positional arguments it takes, and what it does with them.
 */
export interface Command {
  /** Printed for `--help`. */
  help: string;
  /** Its own options; `--help` and `--debug` are every command's. */
  options: Record<string, OptionSpec>;
  /** The most positional arguments it takes. */
  positionals: number;
  /** Runs on the parsed arguments and returns the exit code. */
  run(args: ParsedArgs): Promise<number>;
}

/**
 * Parses a command's arguments, prints its help when asked, runs it, and
 * maps what it throws to the exit code and one line on stderr; `--debug`
 * adds the stack.
 */
export async function runCommand(
  command: Command,
  args: string[],
  name: string,
): Promise<number> {
  const debug = args.includes("--debug");
  try {
    const parsed = parseCommandArgs(args, command.options, command.positionals);
    if (parsed.values.help) {
      console.log(command.help);
      return 0;
    }
    return await command.run(parsed);
  } catch (error) {
    // Only stdout and stderr raise the runtime's BrokenPipe (the socket's is
    // mapped to EPIPE): the reader (`| head -c 10`) has all it wanted, and
    // ending quietly with 0 is what cat and telnet do.
    if (error instanceof Deno.errors.BrokenPipe) return 0;
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

/** A Unix socket's path from the command line (`--unix PATH`). */
export function pathArg(value: string): string {
  return usage(() => validatePath(value));
}

/**
 * `--unix PATH` in place of a host and port: the path, or `undefined`
 * when not given. HOST or PORT given with it is a usage error.
 */
export function unixOption(
  values: ParsedArgs["values"],
  conflicts: string[] = [],
): string | undefined {
  const path = stringOption(values, "unix");
  if (path === undefined) return undefined;
  const extra = conflicts.find((name) => values[name] !== undefined);
  if (extra !== undefined) {
    throw new UsageError(`--unix replaces --${extra}: give one or the other`);
  }
  return pathArg(path);
}

/** `-4` / `-6`: the address family to use; both is a usage error. */
export function familyOption(values: ParsedArgs["values"]): 4 | 6 | undefined {
  if (values.ipv4 && values.ipv6) {
    throw new UsageError("-4 and -6 exclude each other: give one");
  }
  return values.ipv4 ? 4 : values.ipv6 ? 6 : undefined;
}

/** The options of `-4` / `-6`, as nc spells them. */
export const FAMILY_OPTIONS: Record<string, OptionSpec> = {
  ipv4: { type: "boolean", short: "4" },
  ipv6: { type: "boolean", short: "6" },
};

/** Permission flags a Unix socket needs, for the helps. */
export const UNIX_PERMISSIONS =
  "Deno 2 needs read, write and net permission for the socket's path:\n" +
  "--allow-read=PATH --allow-write=PATH --allow-net=unix:PATH (or -R -W -N).";
