/**
 * The pipe behind `telnet` (and `listen`): stdin to a connection and the
 * connection to stdout, both at once, losing no byte either way.
 *
 * Each direction starts as an async loop, so that a short exchange costs
 * nothing extra. Once a direction has moved {@linkcode HANDOFF_BYTES}, its
 * blocking side (reading stdin, writing stdout) moves to a worker that
 * does blocking `readSync`/`writeSync` calls into or out of a ring of
 * shared memory, while the main thread moves the ring's bytes to or from
 * the socket: every async stdin read or stdout write goes through the
 * runtime's blocking thread pool, one hop per pipe-full, which is what
 * made the pure async loop slower than nc.
 *
 * A worker blocked in `readSync` keeps the process alive until stdin
 * closes, even once terminated: a program using {@linkcode pipe} with the
 * real stdin must end with `Deno.exit`, as cli.ts does, and nothing may
 * wait for that worker.
 *
 * @module
 */

import { peerFields, type SocketAddress } from "./address.ts";
import type { Connection } from "./connection.ts";
import { ConnectionResetError, type SocketError } from "./errors.ts";
import { fromRuntimeError } from "./_error_mapping.ts";

/** Where the bytes to send come from: `Deno.stdin` or a stand-in. */
export interface PipeInput {
  /** Reads into `p`; `null` at end of input. */
  read(p: Uint8Array): Promise<number | null>;
  /** Whether it is a terminal (read line by line, with the escape). */
  isTerminal(): boolean;
}

/** Where the received bytes go: `Deno.stdout` or a stand-in. */
export interface PipeOutput {
  /** Writes some of `p` (which is reused once this settles); how much. */
  write(p: Uint8Array): Promise<number>;
}

/** Options of {@linkcode pipe}. */
export interface PipeOptions {
  /** The input to send. @default {Deno.stdin} */
  stdin?: PipeInput;
  /** Where received bytes go. @default {Deno.stdout} */
  stdout?: PipeOutput;
  /**
   * A byte that, read from a terminal, ends sending as end of input does
   * (telnet's Ctrl-], 0x1d). Not looked for when stdin is not a terminal.
   */
  escape?: number;
  /**
   * Called when a direction hands its blocking side to a worker, with the
   * bytes it had moved (for a trace).
   */
  onHandoff?: (direction: Role, bytes: number) => void;
  /**
   * Called when the escape byte is read from a terminal (telnet's command
   * mode), after the bytes before it are sent; sending waits for it while
   * receiving goes on. `"resume"` reads stdin again; `"end"` ends sending
   * as end of input does. Without it, the escape ends sending.
   */
  onEscape?: (escape: EscapeContext) => Promise<EscapeAction>;
}

/** What {@linkcode PipeOptions.onEscape} is told. */
export interface EscapeContext {
  /** The text after the escape byte in the same read (the rest of the line). */
  after: string;
  /** Bytes sent so far. */
  sent: number;
  /** Bytes received so far. */
  received: number;
  /** Reads the next line of stdin (a command); `null` at end of input. */
  readLine(): Promise<string | null>;
}

/** What the pipe does after the escape: go on, or end sending. */
export type EscapeAction = "resume" | "end";

/** How a {@linkcode pipe} ended. */
export interface PipeResult {
  /** Bytes sent to the peer. */
  sent: number;
  /** Bytes received from the peer and written out. */
  received: number;
  /**
   * The first failure of the connection, in either direction (a reset
   * while sending, or while receiving); everything received before it was
   * written out all the same.
   */
  connectionError?: SocketError;
  /** Reading stdin failed (sending stopped there; receiving went on). */
  stdinError?: Error;
  /** Writing stdout failed for another reason than its reader leaving. */
  stdoutError?: Error;
  /** Stdout's reader left (as `| head` does): the pipe ended there. */
  stdoutClosed: boolean;
}

/** What a direction has moved before its blocking side goes to a worker. */
export const HANDOFF_BYTES = 1024 * 1024;
/** One async read or write, before the handoff. */
const CHUNK = 64 * 1024;
/** Each ring: a few MiB (256 KiB measured slower). A power of two. */
const RING_BYTES = 4 * 1024 * 1024;
/**
 * How long the main thread, finding the stdin ring empty, sleeps on a
 * timer before it asks the worker to wake it for every byte (ms): about
 * the longest that bytes read from stdin wait in the ring (see
 * `Ring.TIMED`). 2 ms measured no better.
 */
const TIMED_SLEEP_MS = 1;

/**
 * Copies `stdin` to `conn` and `conn` to `stdout`, both at once, until the
 * peer has closed (or reset) the connection and every byte it sent is
 * written out, or stdout's reader has left. End of stdin (or the escape
 * byte on a terminal) closes the sending side only. A failure in one
 * direction never cuts the other short: it is reported in the result.
 *
 * @example Against a peer that greets and closes
 * ```ts ignore
 * const result = await pipe(conn, { escape: 0x1d });
 * if (result.connectionError) console.error(result.connectionError.message);
 * Deno.exit(0); // a worker may still be blocked reading stdin
 * ```
 *
 * @param conn The connection; not closed here.
 * @param options Stdin, stdout and the escape byte.
 * @returns What moved and what failed.
 */
export async function pipe(
  conn: Connection<SocketAddress>,
  options: PipeOptions = {},
): Promise<PipeResult> {
  const state: PipeState = {
    conn,
    result: { sent: 0, received: 0, stdoutClosed: false },
    workers: [],
    onHandoff: options.onHandoff,
    onEscape: options.onEscape,
  };
  const input = options.stdin ?? Deno.stdin;
  const output = options.stdout ?? Deno.stdout;
  // Sending is not awaited: the pipe ends with the peer's side, and a
  // read of stdin may never return.
  sendAll(state, input, options.escape).catch((error) => {
    state.result.stdinError ??= asError(error);
  });
  try {
    await receiveAll(state, output);
  } finally {
    // The stdin worker may stay blocked in readSync: terminated, but not
    // waited for (the caller's exit ends it).
    for (const worker of state.workers) worker.terminate();
  }
  return { ...state.result };
}

interface PipeState {
  conn: Connection<SocketAddress>;
  result: PipeResult;
  workers: Worker[];
  onHandoff: PipeOptions["onHandoff"];
  onEscape: PipeOptions["onEscape"];
}

// Sending: stdin → socket -------------------------------------------------

async function sendAll(
  state: PipeState,
  input: PipeInput,
  escape: number | undefined,
): Promise<void> {
  const terminal = input.isTerminal();
  // A terminal stays on the async path: its escape is looked for line by
  // line, and a readSync blocked on it would hold the terminal's lock.
  const canHandOff = input === Deno.stdin && !terminal;
  const buffer = new Uint8Array(CHUNK);
  let handoff: Handoff | undefined;
  while (true) {
    if (canHandOff && !handoff && state.result.sent >= HANDOFF_BYTES) {
      handoff = startWorker("stdin", state);
    }
    if (handoff?.status === "ready") {
      if (!await sendFromRing(state, handoff)) return;
      break;
    }
    let n: number | null;
    try {
      n = await input.read(buffer);
    } catch (error) {
      state.result.stdinError ??= asError(error);
      break;
    }
    if (n === null) break;
    let data = buffer.subarray(0, n);
    const at = terminal && escape !== undefined ? data.indexOf(escape) : -1;
    if (at !== -1) data = data.subarray(0, at);
    if (!await send(state, data)) return;
    if (at !== -1 && await escaped(state, input, buffer.subarray(at + 1, n))) {
      continue;
    }
    if (at !== -1) break;
  }
  await closeWrite(state.conn);
}

/** Runs the escape's hook; true to go on reading stdin. */
async function escaped(
  state: PipeState,
  input: PipeInput,
  after: Uint8Array,
): Promise<boolean> {
  if (state.onEscape === undefined) return false;
  const decoder = new TextDecoder();
  const line = new Uint8Array(1024);
  const readLine = async () => {
    const n = await input.read(line);
    return n === null ? null : decoder.decode(line.subarray(0, n));
  };
  const { sent, received } = state.result;
  const text = decoder.decode(after);
  return await state.onEscape({ after: text, sent, received, readLine }) ===
    "resume";
}

/** Sends all of `data`; false when the connection failed. */
async function send(state: PipeState, data: Uint8Array): Promise<boolean> {
  try {
    let sent = 0;
    while (sent < data.length) {
      const n = await state.conn.send(data.subarray(sent));
      sent += n;
      state.result.sent += n;
    }
    return true;
  } catch (error) {
    connectionFailed(state, "send", error);
    return false;
  }
}

/**
 * Sends what the stdin worker puts in the ring, to its end; false when the
 * connection failed.
 */
async function sendFromRing(
  state: PipeState,
  handoff: Handoff,
): Promise<boolean> {
  const ring = handoff.go();
  state.onHandoff?.("stdin", state.result.sent);
  // The last sleep ended on its timer, not on a wake: if the ring is still
  // empty, the next sleep is untimed (see Ring.TIMED).
  let timedOut = false;
  while (true) {
    const seq = ring.producerSeq();
    const producer = ring.producerState();
    const bytes = ring.readable();
    if (bytes.length > 0) {
      let n: number;
      try {
        n = await state.conn.send(bytes);
      } catch (error) {
        connectionFailed(state, "send", error);
        ring.stopConsumer(Ring.FAILED);
        return false;
      }
      state.result.sent += n;
      ring.consumed(n);
      timedOut = false;
      continue;
    }
    if (producer === Ring.FAILED) {
      const end = await handoff.ended;
      state.result.stdinError ??= end.error;
      return true;
    }
    if (producer === Ring.DONE) return true;
    if (timedOut) {
      timedOut = false;
      if (ring.sleepsOnProducer(seq, false)) await handoff.woken();
    } else if (ring.sleepsOnProducer(seq, true)) {
      timedOut = await handoff.woken(TIMED_SLEEP_MS);
      // Awake either way: a held wake's flag need not post a message now.
      if (timedOut) ring.consumerAwake();
    }
  }
}

async function closeWrite(
  conn: Connection<SocketAddress>,
): Promise<void> {
  try {
    await conn.closeWrite();
  } catch {
    // The connection is gone already: the receiving side reports how.
  }
}

// Receiving: socket → stdout ----------------------------------------------

async function receiveAll(
  state: PipeState,
  output: PipeOutput,
): Promise<void> {
  const canHandOff = output === Deno.stdout;
  const buffer = new Uint8Array(CHUNK);
  let handoff: Handoff | undefined;
  while (true) {
    if (canHandOff && !handoff && state.result.received >= HANDOFF_BYTES) {
      handoff = startWorker("stdout", state);
    }
    if (handoff?.status === "ready") {
      return await receiveIntoRing(state, handoff);
    }
    let n: number | null;
    try {
      n = await state.conn.recvInto(buffer);
    } catch (error) {
      connectionFailed(state, "recv", error);
      return;
    }
    if (n === null) return;
    try {
      await writeAll(output, buffer.subarray(0, n));
    } catch (error) {
      stdoutFailed(state, asError(error));
      return;
    }
    state.result.received += n;
  }
}

async function writeAll(output: PipeOutput, data: Uint8Array): Promise<void> {
  let written = 0;
  while (written < data.length) {
    written += await output.write(data.subarray(written));
  }
}

/**
 * Receives into the ring that the stdout worker drains, until the peer's
 * end and the worker has written everything, or the worker failed.
 */
async function receiveIntoRing(
  state: PipeState,
  handoff: Handoff,
): Promise<void> {
  const ring = handoff.go();
  state.onHandoff?.("stdout", state.result.received);
  // Received, not yet counted as written: the ring's content.
  let pending = 0;
  let open = true;
  while (open && ring.consumerState() === Ring.RUNNING) {
    const seq = ring.consumerSeq();
    const space = ring.writable();
    if (space.length === 0) {
      if (ring.sleepsOnConsumer(seq)) await handoff.woken();
      continue;
    }
    // The worker failing (stdout closed) must end the wait for a peer that
    // may send nothing more.
    const n = await Promise.race([
      state.conn.recvInto(space),
      handoff.ended.then(() => undefined),
    ]).catch((error) => {
      connectionFailed(state, "recv", error);
      return null;
    });
    if (n === undefined) break;
    if (n === null) open = false;
    else {
      pending += n;
      ring.produced(n);
    }
  }
  ring.finish(Ring.DONE);
  const end = await handoff.ended;
  if (end.error) stdoutFailed(state, end.error);
  else state.result.received += pending;
}

function stdoutFailed(state: PipeState, error: Error): void {
  // The reader left (| head): that ends the pipe quietly, as it ends nc.
  if (error.name === "BrokenPipe") state.result.stdoutClosed = true;
  else state.result.stdoutError ??= error;
}

function connectionFailed(
  state: PipeState,
  op: "send" | "recv",
  error: unknown,
): void {
  const { remoteAddr, localAddr } = state.conn;
  state.result.connectionError ??= fromRuntimeError(error, {
    op,
    ...peerFields(remoteAddr, localAddr),
  });
}

function asError(error: unknown): Error {
  return error instanceof Error ? error : new Error(String(error));
}

/** Whether the failure is the peer resetting or leaving (exit 0 in nc). */
export function isReset(error: SocketError): boolean {
  return error instanceof ConnectionResetError;
}

// The ring ----------------------------------------------------------------

/**
 * A single-producer, single-consumer byte ring in shared memory. Counters
 * are 32-bit and wrap; the size is a power of two below 2^31, so
 * `written - read` is always the fill. Each side sleeps on the other's
 * event counter and is woken only when it said it sleeps: the worker with
 * `Atomics.wait` and `Atomics.notify`; the main thread by a message that
 * the worker posts (its `wake`), because `Atomics.waitAsync` resolves
 * outside Deno's event loop, which can stay parked in I/O polling with
 * nothing to wake it (denoland/deno#15358, #14786: seen here as a telnet
 * making no progress for 5 s, its timers included).
 *
 * The stdin worker batches its wakes (a wake is a message through the
 * main thread's event loop, ~3,000 of them per 256 MiB otherwise): see
 * {@linkcode Ring.TIMED}.
 *
 * Its source is also the worker's (see `workerSource`): it may use
 * nothing from outside the class.
 */
class Ring {
  static RUNNING = 0;
  static DONE = 1;
  static FAILED = 2;
  // Word indices in the control array.
  static WRITTEN = 0;
  static READ = 1;
  static PRODUCER_SEQ = 2;
  static CONSUMER_SEQ = 3;
  static PRODUCER_WAITS = 4;
  static CONSUMER_WAITS = 5;
  static PRODUCER_STATE = 6;
  static CONSUMER_STATE = 7;
  /**
   * 1 while the consumer (the main thread, stdin → socket) sleeps on a
   * timer: the producer may then hold its wake back, until the ring holds
   * {@linkcode Ring.BATCH} bytes or a read had to wait for the writer.
   *
   * Why not wake at a short read too, the pipe drained: from a writer
   * such as `head` (4 KiB writes) nearly every read is short, the worker
   * being the faster; that rule still woke the main thread ~7,000 times
   * per GiB (in one run, telnet's CPU per GiB: 1.96 s with it, 1.82 s
   * without batching, 1.47 s holding wakes until the timer or BATCH).
   *
   * The invariant: bytes are never in the ring with the consumer asleep
   * untimed and no wake on its way. The consumer, to sleep, stores
   * TIMED (1 for a timed sleep, 0 for an untimed one), then its WAITS
   * flag, then loads the producer's counter, and sleeps only if that has
   * not moved since it found the ring empty. The producer adds to WRITTEN
   * and its counter, then loads TIMED, and holds the wake back only if it
   * reads 1; otherwise it swaps WAITS to 0 and wakes the consumer if it
   * was set. All of these are sequentially consistent, so for an untimed
   * sleep (TIMED stored 0) either the producer's load of TIMED comes
   * after that store, reads 0 and wakes (or finds WAITS not yet set, and
   * then the consumer's later load sees the counter moved), or it comes
   * before, and then the counter moved before the consumer's load, which
   * sees it and does not sleep. A held wake costs at most the timer: the
   * consumer's timed sleep ends after TIMED_SLEEP_MS, it looks at the ring,
   * and sleeps untimed only after storing TIMED=0 as above. So bytes
   * that the writer follows with a pause (even after an exact multiple of
   * the pipe's 64 KiB) are sent a millisecond later at most, never held
   * until its next write; and a consumer idle past its timer sleeps
   * untimed, so a line typed (or a request) after a pause goes at once.
   */
  static TIMED = 8;
  static WORDS = 9;
  /**
   * The fill at which the stdin worker wakes a consumer in a timed sleep
   * without waiting for its timer: a millisecond of input at ~0.7 GiB/s,
   * so in a steady stream the timer mostly wakes it (with 256 KiB, the
   * main thread's CPU per GiB was 0.60 s against 0.41 s).
   */
  static BATCH = 1024 * 1024;
  /**
   * A read that waited this long (ms) for the writer follows a pause: its
   * bytes may be all there is for now, and wake the consumer at once, so
   * a request after a pause waits for no timer. In a stream from `head`,
   * 1–3 % of reads wait this long (~300 more wakes per GiB).
   */
  static PAUSED_MS = 0.2;
  /**
   * The worker's longest sleep, in ms: no wakeup is lost, but a worker
   * that was terminated while asleep then ends soon all the same.
   */
  static NAP = 100;

  ctl: Int32Array;
  data: Uint8Array;
  mask: number;
  /** Wakes the other side, asleep on the counter at `seq`. */
  wake: (seq: number) => void;

  /**
   * @param wake How this side wakes the other: by default (main thread
   * waking the worker) `Atomics.notify`; the worker posts a message.
   */
  constructor(
    control: SharedArrayBuffer,
    data: SharedArrayBuffer,
    wake?: (seq: number) => void,
  ) {
    this.ctl = new Int32Array(control);
    this.data = new Uint8Array(data);
    this.mask = data.byteLength - 1;
    this.wake = wake ?? ((seq) => Atomics.notify(this.ctl, seq));
  }

  static create(
    size: number,
  ): { control: SharedArrayBuffer; data: SharedArrayBuffer } {
    return {
      control: new SharedArrayBuffer(Ring.WORDS * 4),
      data: new SharedArrayBuffer(size),
    };
  }

  fill(): number {
    return (Atomics.load(this.ctl, Ring.WRITTEN) -
      Atomics.load(this.ctl, Ring.READ)) >>> 0;
  }

  /** The filled bytes up to the ring's end, for the consumer. */
  readable(): Uint8Array {
    const start = Atomics.load(this.ctl, Ring.READ) & this.mask;
    const n = Math.min(this.fill(), this.data.length - start);
    return this.data.subarray(start, start + n);
  }

  /** The free bytes up to the ring's end, for the producer. */
  writable(): Uint8Array {
    const start = Atomics.load(this.ctl, Ring.WRITTEN) & this.mask;
    const free = this.data.length - this.fill();
    const n = Math.min(free, this.data.length - start);
    return this.data.subarray(start, start + n);
  }

  produced(n: number): void {
    Atomics.add(this.ctl, Ring.WRITTEN, n);
    this.#event(Ring.PRODUCER_SEQ, Ring.CONSUMER_WAITS);
  }

  /**
   * As `produced`, but unless `urgent` the wake is held back while the
   * consumer sleeps on its timer and the ring holds less than BATCH (see
   * TIMED for why no wake is lost).
   */
  producedHeld(n: number, urgent: boolean): void {
    Atomics.add(this.ctl, Ring.WRITTEN, n);
    Atomics.add(this.ctl, Ring.PRODUCER_SEQ, 1);
    if (
      !urgent && this.fill() < Ring.BATCH &&
      Atomics.load(this.ctl, Ring.TIMED) === 1
    ) return;
    this.#wakeIfWaiting(Ring.PRODUCER_SEQ, Ring.CONSUMER_WAITS);
  }

  consumed(n: number): void {
    Atomics.add(this.ctl, Ring.READ, n);
    this.#event(Ring.CONSUMER_SEQ, Ring.PRODUCER_WAITS);
  }

  /** The producer ends: DONE after its last byte, or FAILED. */
  finish(state: number): void {
    Atomics.store(this.ctl, Ring.PRODUCER_STATE, state);
    this.#event(Ring.PRODUCER_SEQ, Ring.CONSUMER_WAITS);
  }

  /** The consumer ends: DONE once drained, or FAILED. */
  stopConsumer(state: number): void {
    Atomics.store(this.ctl, Ring.CONSUMER_STATE, state);
    this.#event(Ring.CONSUMER_SEQ, Ring.PRODUCER_WAITS);
  }

  producerState(): number {
    return Atomics.load(this.ctl, Ring.PRODUCER_STATE);
  }

  consumerState(): number {
    return Atomics.load(this.ctl, Ring.CONSUMER_STATE);
  }

  /** Read before looking at the ring; a later event changes it. */
  producerSeq(): number {
    return Atomics.load(this.ctl, Ring.PRODUCER_SEQ);
  }

  consumerSeq(): number {
    return Atomics.load(this.ctl, Ring.CONSUMER_SEQ);
  }

  /** The consumer sleeps (worker) until the producer's counter moves. */
  waitForProducerSync(seq: number): void {
    Atomics.store(this.ctl, Ring.CONSUMER_WAITS, 1);
    Atomics.wait(this.ctl, Ring.PRODUCER_SEQ, seq, Ring.NAP);
  }

  waitForConsumerSync(seq: number): void {
    Atomics.store(this.ctl, Ring.PRODUCER_WAITS, 1);
    Atomics.wait(this.ctl, Ring.CONSUMER_SEQ, seq, Ring.NAP);
  }

  /**
   * The consumer (main thread) says it sleeps until the producer's
   * counter moves from `seq`; false when it has moved already, and then
   * it must look again instead of sleeping. True: the producer will wake
   * it (its flag is set before the counter is read again, and the
   * producer moves the counter before it reads the flag), at once if not
   * `timed`; if `timed`, perhaps only at BATCH bytes, so the consumer
   * must end that sleep on a timer of its own (see TIMED).
   */
  sleepsOnProducer(seq: number, timed: boolean): boolean {
    Atomics.store(this.ctl, Ring.TIMED, timed ? 1 : 0);
    Atomics.store(this.ctl, Ring.CONSUMER_WAITS, 1);
    return Atomics.load(this.ctl, Ring.PRODUCER_SEQ) === seq;
  }

  /**
   * The consumer woke on its timer: a wake the producer still owes it
   * would only end its next sleep early, so it need not be posted.
   */
  consumerAwake(): void {
    Atomics.store(this.ctl, Ring.CONSUMER_WAITS, 0);
  }

  /** The producer (main thread) says it sleeps: as sleepsOnProducer. */
  sleepsOnConsumer(seq: number): boolean {
    Atomics.store(this.ctl, Ring.PRODUCER_WAITS, 1);
    return Atomics.load(this.ctl, Ring.CONSUMER_SEQ) === seq;
  }

  /**
   * Moves an event counter, then wakes the other side if it said it
   * sleeps. A sleeper reads the counter before checking the ring, so an
   * event between its check and its sleep makes the sleep return at once.
   */
  #event(seq: number, waits: number): void {
    Atomics.add(this.ctl, seq, 1);
    this.#wakeIfWaiting(seq, waits);
  }

  /** Wakes the other side if it said it sleeps (`waits` set), once. */
  #wakeIfWaiting(seq: number, waits: number): void {
    if (Atomics.exchange(this.ctl, waits, 0) !== 0) this.wake(seq);
  }
}

// The workers -------------------------------------------------------------

/** A direction, by its blocking side: reading stdin or writing stdout. */
export type Role = "stdin" | "stdout";

/** What a worker posts. */
type WorkerMessage =
  | { kind: "ready" }
  | { kind: "wake" }
  | { kind: "done" }
  | { kind: "error"; name: string; message: string };

/** What the main thread posts to start a worker. */
interface WorkerStart {
  control: SharedArrayBuffer;
  data: SharedArrayBuffer;
}

/** The parts of a worker's global scope that the worker's code uses. */
interface WorkerScope {
  onmessage: ((event: MessageEvent<WorkerStart>) => void) | null;
  postMessage(message: WorkerMessage): void;
}

/**
 * The worker's code. Runs in the worker, from its source text: it may use
 * nothing from this module but its arguments.
 */
function workerMain(scope: WorkerScope, role: Role, ring: typeof Ring): void {
  const MAX_WRITE = 65536;
  const MAX_READ = 1024 * 1024;
  const readStdin = (r: Ring) => {
    while (true) {
      const seq = r.consumerSeq();
      if (r.consumerState() !== ring.RUNNING) return;
      const space = r.writable();
      if (space.length === 0) {
        r.waitForConsumerSync(seq);
        continue;
      }
      const start = performance.now();
      const n = Deno.stdin.readSync(space.subarray(0, MAX_READ));
      if (n === null) {
        r.finish(ring.DONE);
        return;
      }
      const waited = performance.now() - start >= ring.PAUSED_MS;
      if (n > 0) r.producedHeld(n, waited);
    }
  };
  const writeStdout = (r: Ring) => {
    while (true) {
      const seq = r.producerSeq();
      const producer = r.producerState();
      const bytes = r.readable();
      if (bytes.length > 0) {
        r.consumed(Deno.stdout.writeSync(bytes.subarray(0, MAX_WRITE)));
      } else if (producer !== ring.RUNNING) {
        r.stopConsumer(ring.DONE);
        return;
      } else {
        r.waitForProducerSync(seq);
      }
    }
  };
  scope.onmessage = (event) => {
    // Through the event loop, which Atomics.waitAsync may not wake.
    const wake = () => scope.postMessage({ kind: "wake" });
    const r = new ring(event.data.control, event.data.data, wake);
    try {
      if (role === "stdin") readStdin(r);
      else writeStdout(r);
      scope.postMessage({ kind: "done" });
    } catch (error) {
      const { name, message } = error instanceof Error
        ? error
        : { name: "Error", message: String(error) };
      // The message first: the main thread reads it once woken.
      scope.postMessage({ kind: "error", name, message });
      if (role === "stdin") r.finish(ring.FAILED);
      else r.stopConsumer(ring.FAILED);
    }
  };
  scope.postMessage({ kind: "ready" });
}

function workerSource(role: Role): string {
  return `const Ring = ${Ring.toString()};\n(${workerMain.toString()})(self, ${
    JSON.stringify(role)
  }, Ring);\n`;
}

/** How a worker ended: its error, if it failed. */
interface WorkerEnd {
  error?: Error;
}

/** A worker starting, then running a ring. */
interface Handoff {
  /** "ready" once loaded; "failed" if it could not start. */
  readonly status: "starting" | "ready" | "failed" | "running";
  /** Settles when the worker has posted its end. */
  readonly ended: Promise<WorkerEnd>;
  /** Hands it the ring: from here it owns stdin (or stdout). */
  go(): Ring;
  /**
   * Settles at the worker's next message: a wake (its counter moved after
   * the main thread said it sleeps), or its end; or after `ms`, if given.
   * True when it was the timer.
   */
  woken(ms?: number): Promise<boolean>;
}

/**
 * Starts a worker for one direction. The direction keeps going on its
 * async loop until the worker is ready (starting one takes ~10 ms); if it
 * fails to start, it simply never takes over.
 */
function startWorker(role: Role, state: PipeState): Handoff {
  const url = URL.createObjectURL(
    new Blob([workerSource(role)], { type: "application/javascript" }),
  );
  const worker = new Worker(url, { type: "module" });
  state.workers.push(worker);
  const { promise: ended, resolve } = Promise.withResolvers<WorkerEnd>();
  let wakeUp: (() => void) | undefined;
  const wakeAll = (): void => {
    wakeUp?.();
    wakeUp = undefined;
  };
  const handoff = {
    status: "starting" as Handoff["status"],
    ended,
    go(): Ring {
      const buffers = Ring.create(RING_BYTES);
      const start: WorkerStart = buffers;
      worker.postMessage(start);
      handoff.status = "running";
      return new Ring(buffers.control, buffers.data);
    },
    woken(ms?: number): Promise<boolean> {
      // A wake left over from a sleep that was called off wakes this one
      // early: harmless, the caller looks at the ring again.
      const { promise, resolve } = Promise.withResolvers<boolean>();
      if (ms === undefined) {
        wakeUp = () => resolve(false);
        return promise;
      }
      const timer = setTimeout(() => {
        wakeUp = undefined;
        resolve(true);
      }, ms);
      wakeUp = () => {
        clearTimeout(timer);
        resolve(false);
      };
      return promise;
    },
  };
  worker.onmessage = (event: MessageEvent<WorkerMessage>) => {
    const message = event.data;
    wakeAll();
    if (message.kind === "wake") return;
    if (message.kind === "ready") {
      URL.revokeObjectURL(url);
      handoff.status = "ready";
    } else if (message.kind === "done") resolve({});
    else {
      const error = new Error(message.message);
      error.name = message.name;
      resolve({ error });
    }
  };
  worker.onerror = (event) => {
    event.preventDefault();
    wakeAll();
    if (handoff.status === "starting") handoff.status = "failed";
    resolve({ error: new Error(event.message) });
  };
  return handoff;
}
