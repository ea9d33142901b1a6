/**
 * Buffered lines for the CLI's stdout, so that printing never slows what
 * prints: `serve`'s accept loop appends a line per connection and goes on;
 * the lines are written together on a short timer, at once when stdout is
 * a terminal (a person watching sees each line as it happens), and all of
 * them at the end.
 *
 * @module
 */

const encoder = new TextEncoder();

/** Options of {@linkcode LineWriter}. */
export interface LineWriterOptions {
  /**
   * Milliseconds lines may wait to be written with the next ones.
   *
   * @default {20}
   */
  interval?: number;
  /**
   * Write each line at once (still without waiting for it).
   *
   * @default {Deno.stdout.isTerminal()}
   */
  lineByLine?: boolean;
  /**
   * Milliseconds `close()` waits for a stdout that takes nothing at all
   * (a reader that stopped reading) before it gives up on the lines left,
   * so that such a stdout cannot keep the program from exiting.
   *
   * @default {2000}
   */
  stallTimeout?: number;
  /**
   * Bytes that may wait while stdout does not keep up; past that, lines
   * are dropped and counted, and a line saying how many is written in
   * their place, so that a stuck stdout cannot grow memory without bound.
   *
   * @default {1048576}
   */
  maxBuffered?: number;
}

/**
 * Lines for stdout that never make the caller wait. `line()` appends;
 * writes happen in the background, one at a time. A stdout that is closed
 * or broken (`serve … | head -1`) ends the writing quietly: later lines
 * are dropped, the program goes on.
 *
 * @example
 * ```ts
 * import { LineWriter } from "./_output.ts";
 *
 * const out = new LineWriter();
 * out.line("socket is listening");
 * await out.close(); // written, and the timer cleared
 * ```
 */
export class LineWriter {
  readonly #interval: number;
  readonly #lineByLine: boolean;
  readonly #maxBuffered: number;
  readonly #stallTimeout: number;
  #progressAt = 0;
  #pending: string[] = [];
  #pendingBytes = 0;
  #dropped = 0;
  #broken = false;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #writing: Promise<void> | undefined;

  /** @param options Timer, line-by-line mode and the buffer's limit. */
  constructor(options: LineWriterOptions = {}) {
    this.#interval = options.interval ?? 20;
    this.#lineByLine = options.lineByLine ?? Deno.stdout.isTerminal();
    this.#maxBuffered = options.maxBuffered ?? 1024 * 1024;
    this.#stallTimeout = options.stallTimeout ?? 2000;
  }

  /** Appends one line (a newline is added); returns at once. */
  line(text: string): void {
    if (this.#broken) return;
    if (this.#pendingBytes + text.length + 1 > this.#maxBuffered) {
      this.#dropped++;
    } else {
      this.#pending.push(text + "\n");
      this.#pendingBytes += text.length + 1;
    }
    if (this.#writing !== undefined) return; // The write in flight goes on.
    if (this.#lineByLine) {
      this.#start();
    } else if (this.#timer === undefined) {
      this.#timer = setTimeout(() => this.#start(), this.#interval);
    }
  }

  /** Writes every line appended so far and waits until they are written. */
  async flush(): Promise<void> {
    this.#start();
    // Lines appended meanwhile are taken by the same write loop.
    while (this.#writing !== undefined) await this.#writing;
  }

  /**
   * Flushes and clears the timer: the last call, before the exit. Gives
   * up once stdout has taken nothing for `stallTimeout` (the write still
   * pending then ends with the process).
   */
  async close(): Promise<void> {
    const flushed = this.flush().then(() => true);
    this.#progressAt = performance.now();
    while (true) {
      let timer: ReturnType<typeof setTimeout> | undefined;
      const tick = new Promise<false>((resolve) => {
        timer = setTimeout(() => resolve(false), this.#stallTimeout / 4);
      });
      const done = await Promise.race([flushed, tick]);
      clearTimeout(timer);
      if (done) break;
      if (performance.now() - this.#progressAt >= this.#stallTimeout) break;
    }
    clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  #start(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    if (this.#writing !== undefined) return;
    if (this.#pending.length === 0 && this.#dropped === 0) return;
    this.#writing = this.#writeAll().finally(() => {
      this.#writing = undefined;
      // A line appended after the loop's last look but before this ran (a
      // signal's callback can run between the two) would wait for the next
      // line for ever: write it now.
      this.#start();
    });
  }

  /** Writes until nothing is pending; the lines that came meanwhile too. */
  async #writeAll(): Promise<void> {
    while (!this.#broken && (this.#pending.length > 0 || this.#dropped > 0)) {
      if (this.#dropped > 0) {
        this.#pending.push(
          `(${this.#dropped} lines dropped: stdout did not keep up)\n`,
        );
        this.#dropped = 0;
      }
      const bytes = encoder.encode(this.#pending.join(""));
      this.#pending = [];
      this.#pendingBytes = 0;
      try {
        let written = 0;
        while (written < bytes.length) {
          written += await Deno.stdout.write(bytes.subarray(written));
          this.#progressAt = performance.now();
        }
      } catch {
        // Closed or broken (EPIPE): nobody reads any more; drop quietly.
        this.#broken = true;
        this.#pending = [];
        this.#pendingBytes = 0;
      }
    }
  }
}
