/**
 * Child processes for the benchmark harness: start a peer, wait for the
 * line it prints, stop it, and never leave one running.
 *
 * @module
 */

/**
 * A child's stdout: lines while the harness waits for one, then read to the
 * end undecoded, so that the harness's own work on a chatty peer (the CLI
 * server's line per connection) takes as little as it can of the two cores
 * the measure runs on.
 */
export class LineReader {
  readonly #reader: ReadableStreamDefaultReader<Uint8Array>;
  readonly #decoder = new TextDecoder();
  #text = "";
  /** A line being read that a timed-out wait left for the next one. */
  #next: Promise<string | undefined> | undefined;
  readonly seen: string[] = [];

  constructor(stream: ReadableStream<Uint8Array>) {
    this.#reader = stream.getReader();
  }

  /** Waits for a line that matches, up to `ms`; returns its match. */
  async waitFor(pattern: RegExp, ms = 60_000): Promise<RegExpMatchArray> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const late = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new Error(`no line matching ${pattern} in ${ms} ms`)),
        ms,
      );
    });
    try {
      while (true) {
        this.#next ??= this.#nextLine();
        const line = await Promise.race([this.#next, late]);
        this.#next = undefined;
        if (line === undefined) {
          throw new Error(
            `output ended before a line matching ${pattern}: ${
              this.seen.slice(-3).join(" | ")
            }`,
          );
        }
        this.seen.push(line);
        const match = line.match(pattern);
        if (match) return match;
      }
    } finally {
      clearTimeout(timer);
    }
  }

  /** Reads the rest, so the child never blocks on a full pipe. */
  async drain(): Promise<void> {
    await this.#next;
    while (!(await this.#reader.read()).done) {
      // Discard, undecoded.
    }
  }

  /** The next whole line, or the unterminated rest; undefined at the end. */
  async #nextLine(): Promise<string | undefined> {
    while (true) {
      const newline = this.#text.indexOf("\n");
      if (newline >= 0) {
        const line = this.#text.slice(0, newline);
        this.#text = this.#text.slice(newline + 1);
        return line;
      }
      const { done, value } = await this.#reader.read();
      if (done) {
        const rest = this.#text + this.#decoder.decode();
        this.#text = "";
        return rest === "" ? undefined : rest;
      }
      this.#text += this.#decoder.decode(value, { stream: true });
    }
  }
}

/** A running peer; `stop()` (or `await using`) kills it and waits. */
export class Peer implements AsyncDisposable {
  readonly out: LineReader;
  readonly #child: Deno.ChildProcess;
  readonly #stderr: Promise<string>;
  #drained: Promise<void> | undefined;
  #status: Promise<Deno.CommandStatus>;

  constructor(command: string, args: string[], options: { stdin?: boolean }) {
    this.#child = new Deno.Command(command, {
      args,
      stdin: options.stdin ? "piped" : "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    this.out = new LineReader(this.#child.stdout);
    this.#stderr = new Response(this.#child.stderr).text();
    this.#status = this.#child.status;
  }

  get pid(): number {
    return this.#child.pid;
  }

  get stdin(): WritableStream<Uint8Array> {
    return this.#child.stdin;
  }

  /** Waits for a line, with the child's stderr in the error if it dies. */
  async waitFor(pattern: RegExp, ms?: number): Promise<RegExpMatchArray> {
    try {
      return await this.out.waitFor(pattern, ms);
    } catch (error) {
      const stderr = await Promise.race([
        this.#stderr,
        new Promise<string>((resolve) => setTimeout(resolve, 100, "")),
      ]);
      throw new Error(
        `${(error as Error).message}${
          stderr ? `; stderr: ${stderr.trim()}` : ""
        }`,
      );
    }
  }

  /** Closes the child's stdin: the peers here take that as "stop". */
  async closeStdin(): Promise<void> {
    await this.#child.stdin.close();
  }

  /**
   * Reads the child's stdout to the end (once, however many ask), so that
   * it never blocks on a full pipe.
   */
  drain(): Promise<void> {
    this.#drained ??= this.out.drain();
    return this.#drained;
  }

  /** Waits for the child to exit on its own; its stdout is read to the end. */
  async exited(): Promise<{ code: number; stderr: string }> {
    await this.drain();
    const status = await this.#status;
    return { code: status.code, stderr: await this.#stderr };
  }

  /** Kills the child if it still runs, and waits for it. */
  async stop(): Promise<void> {
    try {
      this.#child.kill("SIGKILL");
    } catch {
      // Exited already.
    }
    try {
      await this.#child.stdin?.close();
    } catch {
      // Not piped, or closed already.
    }
    await this.drain().catch(() => {});
    await this.#status;
    await this.#stderr;
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.stop();
  }
}

/** Runs a command to its end; throws with its stderr when it fails. */
export async function run(
  command: string,
  args: string[],
): Promise<string> {
  const output = await new Deno.Command(command, {
    args,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const decoder = new TextDecoder();
  if (!output.success) {
    throw new Error(
      `${command} ${args.join(" ")} failed (${output.code}): ${
        decoder.decode(output.stderr).trim()
      }`,
    );
  }
  return decoder.decode(output.stdout);
}

/** The path of a program on PATH, or undefined. */
export async function which(program: string): Promise<string | undefined> {
  try {
    const out = await new Deno.Command("sh", {
      args: ["-c", `command -v "$1"`, "sh", program],
      stdout: "piped",
      stderr: "null",
    }).output();
    const path = new TextDecoder().decode(out.stdout).trim();
    return out.success && path ? path : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Runs a shell pipeline in its own process group, so that on a timeout the
 * whole pipeline is killed (its id is the group's), never left running.
 */
export async function runPipeline(
  script: string,
  timeoutMs = 120_000,
): Promise<void> {
  const child = new Deno.Command("setsid", {
    args: ["sh", "-c", script],
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).spawn();
  const stderr = new Response(child.stderr).text();
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    // setsid execs sh, so the child's pid is the new group's id.
    new Deno.Command("kill", { args: ["-KILL", "--", `-${child.pid}`] })
      .output().catch(() => {});
  }, timeoutMs);
  try {
    const status = await child.status;
    const text = (await stderr).trim();
    if (timedOut) throw new Error(`pipeline timed out after ${timeoutMs} ms`);
    if (!status.success) {
      throw new Error(`pipeline failed (${status.code}): ${text}`);
    }
  } finally {
    clearTimeout(timer);
  }
}
