/**
 * A TCP server: the tutorial's `bind`, `listen(5)`, the `accept` loop and
 * `close`, with the backlog rule the tutorial describes made exact.
 *
 * @module
 */

import {
  describe,
  fromDenoAddr,
  ipFamily,
  type NetAddress,
  validateHost,
  validatePort,
} from "./address.ts";
import { Connection, type ConnectionOptions } from "./connection.ts";
import {
  fromRuntimeError,
  InvalidArgumentError,
  SocketError,
  TimeoutError,
} from "./errors.ts";
import {
  checkCount,
  checkDuration,
  checkFunction,
  checkOptions,
  checkSignal,
} from "./validate.ts";

/** What a handler and the hooks learn of a connection. */
export interface ConnectionInfo {
  /** 1 for the first connection accepted, 2 for the next: arrival order. */
  id: number;
  /** The client's address and port. */
  remoteAddr: NetAddress;
  /** The server's address and port for this connection. */
  localAddr: NetAddress;
  /**
   * Aborted when the handler's time is up (`handlerTimeout`, or the
   * shutdown deadline): a handler should stop then.
   */
  signal: AbortSignal;
}

/**
 * Serves one connection. The server closes the connection when the
 * returned promise settles; a handler that throws is counted as failed,
 * reported to `onError`, and the server goes on.
 */
export type Handler = (
  conn: Connection,
  info: ConnectionInfo,
) => void | Promise<void>;

/** Options of {@linkcode serve}. */
export interface ServeOptions extends ConnectionOptions {
  /**
   * The address to bind: `""` for every IPv4 interface (Python's `''`),
   * `"127.0.0.1"` (or `"localhost"`) for this machine only, `"::"` for
   * every interface, IPv6 and IPv4. Other host names are refused (`EINVAL`):
   * bind an address.
   *
   * @default {""}
   */
  hostname?: string;
  /**
   * The port to bind; 0 asks the system for a free one, read it from
   * {@linkcode Server.addr}.
   *
   * @default {0}
   */
  port?: number;
  /**
   * How many accepted connections may wait while every handler is busy;
   * the next one is refused at once (closed, after `refusalMessage`). This
   * is the tutorial's `listen(5)` rule, which the kernel alone does not
   * keep (see {@linkcode ServeOptions.kernelBacklog}).
   *
   * @default {128}
   */
  backlog?: number;
  /**
   * The kernel's accept queue (`listen(2)`'s backlog). The accept loop
   * drains it at all times and enforces `backlog` itself, so this only
   * needs to absorb a burst between two accepts: a full kernel queue drops
   * new clients' packets silently, and they hang until they time out.
   *
   * @default {Math.max(backlog, 511)}
   */
  kernelBacklog?: number;
  /**
   * How many handlers run at once; 1 serves one connection at a time, as
   * the tutorial's loop does.
   *
   * @default {1}
   */
  concurrency?: number;
  /** Stops the server, as {@linkcode Server.shutdown}. */
  signal?: AbortSignal;
  /** Sent to each refused connection before it is closed. */
  refusalMessage?: string | Uint8Array;
  /**
   * Milliseconds a handler may run; then its `info.signal` aborts, its
   * connection is closed, and it counts as failed with `ETIMEDOUT`.
   */
  handlerTimeout?: number;
  /**
   * At shutdown, what happens to the connections still waiting: `"serve"`
   * them (drain) or `"refuse"` them.
   *
   * @default {"serve"}
   */
  waitingOnShutdown?: "serve" | "refuse";
  /**
   * Milliseconds a shutdown waits for handlers to finish; then their
   * signals abort and their connections are closed. Waits for as long as
   * they take when not given.
   */
  shutdownTimeout?: number;
  /** Called once, when the server is listening. */
  onListen?: (addr: NetAddress) => void;
  /** Called when the server accepts a connection, before it waits or runs. */
  onAccept?: (info: ConnectionInfo) => void;
  /** Called when a handler starts on a connection (the tutorial's accept). */
  onConnection?: (info: ConnectionInfo) => void;
  /** Called when a connection is refused because the backlog is full. */
  onRefused?: (info: ConnectionInfo) => void;
  /**
   * Called when a handler throws or times out. Prints one line to stderr
   * when not given.
   */
  onError?: (error: unknown, info: ConnectionInfo) => void;
}

/** The server's counters; `accepted` = the sum of the five others. */
export interface ServerStats {
  /** Connections taken from the kernel. */
  accepted: number;
  /** Handlers that returned. */
  served: number;
  /** Handlers that threw or timed out. */
  failed: number;
  /** Connections turned away: the backlog was full, or at shutdown. */
  refused: number;
  /** Connections waiting for a handler now. */
  waiting: number;
  /** Handlers running now. */
  active: number;
}

interface Entry {
  conn: Connection;
  info: ConnectionInfo;
  controller: AbortController;
  /** Rejects the running handler's race; set while it runs. */
  stop?: (reason: unknown) => void;
  /** The running handler, settled once its connection is counted. */
  task?: Promise<void>;
}

const DEFAULT_BACKLOG = 128;
const DEFAULT_KERNEL_BACKLOG = 511;
const MAX_ACCEPT_BACKOFF = 1000;

/**
 * A listening server, from {@linkcode serve}. Stop it with `shutdown()`,
 * its `signal`, or `await using`.
 *
 * @example
 * ```ts
 * import { serve } from "@socket-programming/socket";
 *
 * const server = serve({ hostname: "127.0.0.1" }, (conn) => conn.sendAll("hi"));
 * console.log(server.addr.port > 0); // true
 * await server.shutdown();
 * console.log(server.stats.accepted); // 0
 * ```
 */
export class Server implements AsyncDisposable {
  /** The address the server is bound to, with the port chosen. */
  readonly addr: NetAddress;
  /** Resolves once the server has stopped and released everything. */
  readonly finished: Promise<void>;
  readonly #listener: Deno.TcpListener;
  readonly #handler: Handler;
  readonly #options: ServeOptions;
  readonly #backlog: number;
  readonly #concurrency: number;
  readonly #waiting: Entry[] = [];
  readonly #running = new Set<Entry>();
  readonly #refusals = new Set<Promise<void>>();
  readonly #counts = { accepted: 0, served: 0, failed: 0, refused: 0 };
  readonly #stopped = Promise.withResolvers<void>();
  readonly #loop: Promise<void>;
  #nextId = 1;
  #stopping = false;
  /** Made at shutdown; resolved when no handler runs and none waits. */
  #idle: PromiseWithResolvers<void> | undefined;
  #pause:
    | { timer: ReturnType<typeof setTimeout>; wake: () => void }
    | undefined;

  /** Use {@linkcode serve}. */
  constructor(
    listener: Deno.TcpListener,
    handler: Handler,
    options: ServeOptions,
    limits: { backlog: number; concurrency: number },
  ) {
    this.#listener = listener;
    this.#handler = handler;
    this.#options = options;
    this.#backlog = limits.backlog;
    this.#concurrency = limits.concurrency;
    this.addr = fromDenoAddr(listener.addr);
    this.finished = this.#stopped.promise;
    this.#loop = this.#acceptLoop();
  }

  /** A snapshot of the counters. */
  get stats(): ServerStats {
    return {
      ...this.#counts,
      waiting: this.#waiting.length,
      active: this.#running.size,
    };
  }

  /**
   * Stops the server: stops accepting and closes the listener, serves or
   * refuses the waiting connections (`waitingOnShutdown`), lets running
   * handlers finish (up to `shutdownTimeout`), then resolves. Calling it
   * again returns the same promise.
   *
   * @returns {@linkcode Server.finished}.
   */
  shutdown(): Promise<void> {
    if (!this.#stopping) {
      this.#stopping = true;
      this.#stop().then(this.#stopped.resolve, this.#stopped.reject);
    }
    return this.finished;
  }

  /** Shuts the server down, for `await using`. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.shutdown();
  }

  async #acceptLoop(): Promise<void> {
    let backoff = 0;
    while (!this.#stopping) {
      let conn: Deno.TcpConn;
      try {
        conn = await this.#listener.accept();
        backoff = 0;
      } catch {
        if (this.#stopping) return;
        // Out of descriptors or the like: wait, then try again, as Go's
        // net/http does, instead of giving up on every later client.
        backoff = Math.min(backoff ? backoff * 2 : 5, MAX_ACCEPT_BACKOFF);
        await this.#sleep(backoff);
        continue;
      }
      this.#admit(conn);
    }
  }

  /**
   * Places a new connection: running, waiting or refused. The counters are
   * updated before any hook runs, so that a hook reading `stats` sees
   * `accepted` equal to the sum of the others.
   */
  #admit(conn: Deno.TcpConn): void {
    this.#counts.accepted++;
    const entry = this.#entry(conn);
    const { onAccept } = this.#options;
    const refuseAll = this.#stopping &&
      this.#options.waitingOnShutdown === "refuse";
    if (!refuseAll && this.#running.size < this.#concurrency) {
      this.#running.add(entry);
      if (onAccept) this.#callHook(onAccept, entry.info);
      entry.task = this.#handle(entry);
    } else if (!refuseAll && this.#waiting.length < this.#backlog) {
      this.#waiting.push(entry);
      if (onAccept) this.#callHook(onAccept, entry.info);
    } else {
      this.#counts.refused++;
      if (onAccept) this.#callHook(onAccept, entry.info);
      this.#closeRefused(entry);
    }
  }

  /** Runs a hook; one that throws must not stop the accept loop. */
  #callHook(hook: (info: ConnectionInfo) => void, info: ConnectionInfo): void {
    try {
      hook(info);
    } catch (error) {
      this.#reportError(error, info);
    }
  }

  #entry(conn: Deno.TcpConn): Entry {
    const connection = new Connection(conn, this.#options);
    const controller = new AbortController();
    const info = {
      id: this.#nextId++,
      remoteAddr: connection.remoteAddr,
      localAddr: connection.localAddr,
      signal: controller.signal,
    };
    return { conn: connection, info, controller };
  }

  #startWaiting(): void {
    while (this.#running.size < this.#concurrency && this.#waiting.length) {
      // deno-lint-ignore no-non-null-assertion -- the length was just checked
      const entry = this.#waiting.shift()!;
      this.#running.add(entry);
      entry.task = this.#handle(entry);
    }
    if (this.#running.size === 0 && this.#waiting.length === 0) {
      this.#idle?.resolve();
    }
  }

  /** Runs the handler, then counts the connection and starts the next. */
  async #handle(entry: Entry): Promise<void> {
    const { conn, info, controller } = entry;
    const { onConnection, handlerTimeout } = this.#options;
    let timer: ReturnType<typeof setTimeout> | undefined;
    let failure: { error: unknown } | undefined;
    try {
      if (onConnection) this.#callHook(onConnection, info);
      // A sync throw lands in the catch below, as a rejection would.
      const handled = Promise.resolve(this.#handler(conn, info));
      // A handler that ignores its signal is abandoned when it aborts (its
      // deadline or the shutdown's), so that it cannot hold the server.
      handled.catch(() => {});
      // #abort rejects this: cheaper per connection than a signal listener.
      const stopped = new Promise<never>((_, reject) => {
        entry.stop = reject;
      });
      if (controller.signal.aborted) entry.stop?.(controller.signal.reason);
      if (handlerTimeout !== undefined) {
        timer = setTimeout(() => {
          this.#abort(
            entry,
            this.#lateError(conn, `timed out after ${handlerTimeout} ms`),
          );
        }, handlerTimeout);
      }
      await Promise.race([handled, stopped]);
    } catch (error) {
      failure = { error };
    } finally {
      clearTimeout(timer);
      entry.stop = undefined;
    }
    conn.close();
    this.#running.delete(entry);
    if (failure) {
      this.#counts.failed++;
      this.#reportError(failure.error, info);
    } else {
      this.#counts.served++;
    }
    this.#startWaiting();
  }

  /** Aborts a handler's signal and abandons the handler. */
  #abort(entry: Entry, reason: unknown): void {
    entry.controller.abort(reason);
    entry.stop?.(reason);
  }

  #lateError(conn: Connection, reason: string): TimeoutError {
    const { address, port } = conn.remoteAddr;
    return new TimeoutError(`handler for ${address} port ${port}: ${reason}`, {
      host: address,
      port,
    });
  }

  #reportError(error: unknown, info: ConnectionInfo): void {
    const { onError } = this.#options;
    if (onError) {
      try {
        onError(error, info);
      } catch {
        // A failing hook must not stop the server.
      }
      return;
    }
    // The module's own errors name the peer already.
    if (error instanceof SocketError && error.host !== undefined) {
      console.error(error.message);
      return;
    }
    const text = error instanceof Error ? error.message : String(error);
    console.error(
      `handler failed for ${info.remoteAddr.address} port ${info.remoteAddr.port}: ${text}`,
    );
  }

  #refuse(entry: Entry): void {
    this.#counts.refused++;
    this.#closeRefused(entry);
  }

  /** Tells a refused connection, then closes it. */
  #closeRefused({ conn, info }: Entry): void {
    const { onRefused } = this.#options;
    if (onRefused) this.#callHook(onRefused, info);
    const message = this.#options.refusalMessage;
    if (message === undefined || message.length === 0) {
      conn.close();
      return;
    }
    const refusal = conn.sendAll(message).catch(() => {}).finally(() => {
      conn.close();
      this.#refusals.delete(refusal);
    });
    this.#refusals.add(refusal);
  }

  async #stop(): Promise<void> {
    try {
      this.#listener.close();
    } catch {
      // Closed already.
    }
    this.#pause?.wake();
    await this.#loop;
    if (this.#options.waitingOnShutdown === "refuse") this.#refuseWaiting();
    this.#idle = Promise.withResolvers();
    this.#startWaiting();
    await this.#drain(this.#idle.promise);
    await Promise.all(this.#refusals);
  }

  /** Waits for every handler, up to the shutdown deadline. */
  async #drain(idle: Promise<void>): Promise<void> {
    const timeout = this.#options.shutdownTimeout;
    if (timeout === undefined) return await idle;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const late = new Promise<"late">((resolve) => {
      timer = setTimeout(() => resolve("late"), timeout);
    });
    const outcome = await Promise.race([idle, late]);
    clearTimeout(timer);
    if (outcome !== "late") return;
    this.#refuseWaiting();
    for (const entry of this.#running) {
      this.#abort(
        entry,
        this.#lateError(
          entry.conn,
          `still running at the shutdown deadline (${timeout} ms)`,
        ),
      );
      entry.conn.close();
    }
    // Handlers see their connection closed; wait for them to unwind, since
    // any op they still have pending ends with the close.
    await Promise.allSettled([...this.#running].map((entry) => entry.task));
  }

  /** One at a time, so that `stats` adds up in each `onRefused`. */
  #refuseWaiting(): void {
    while (this.#waiting.length > 0) {
      // deno-lint-ignore no-non-null-assertion -- the length was just checked
      this.#refuse(this.#waiting.shift()!);
    }
  }

  #sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const wake = () => {
        clearTimeout(this.#pause?.timer);
        this.#pause = undefined;
        resolve();
      };
      this.#pause = { timer: setTimeout(wake, ms), wake };
    });
  }
}

/**
 * Binds, listens and starts the accept loop: the tutorial's server in one
 * call. The handler runs for each connection, `concurrency` at a time; while
 * all are busy, up to `backlog` connections wait in arrival order and the
 * next one is refused at once.
 *
 * @example The tutorial's greeting server
 * ```ts
 * import { serve } from "@socket-programming/socket";
 *
 * await using server = serve(
 *   { hostname: "127.0.0.1", port: 0, backlog: 5 },
 *   (conn) => conn.sendAll("Thank you for connecting"),
 * );
 * console.log(`socket binded to ${server.addr.port}`);
 * ```
 *
 * @param options Address, backlog, concurrency, timeouts and hooks.
 * @param handler Serves one connection.
 * @returns The listening server.
 * @throws {AddressInUseError} when the port is taken (`EADDRINUSE`).
 * @throws {PermissionDeniedError} for a privileged port or a missing
 *   permission.
 * @throws {InvalidArgumentError} for a bad option, before any socket is made.
 */
export function serve(options: ServeOptions, handler: Handler): Server {
  checkOptions(options);
  options ??= {};
  checkFunction(handler, "handler", { required: true });
  const hostname = bindAddress(options.hostname);
  const port = options.port === undefined
    ? 0
    : validatePort(options.port, { allowZero: true });
  const backlog = checkCount(options.backlog, "backlog", 0) ?? DEFAULT_BACKLOG;
  const concurrency = checkCount(options.concurrency, "concurrency", 1) ?? 1;
  const kernelBacklog = checkCount(options.kernelBacklog, "kernelBacklog", 1) ??
    Math.max(backlog, DEFAULT_KERNEL_BACKLOG);
  checkDuration(options.handlerTimeout, "handlerTimeout");
  checkDuration(options.shutdownTimeout, "shutdownTimeout");
  checkDuration(options.idleTimeout, "idleTimeout");
  const signal = checkSignal(options.signal);
  checkFunction(options.onListen, "onListen");
  checkFunction(options.onAccept, "onAccept");
  checkFunction(options.onConnection, "onConnection");
  checkFunction(options.onRefused, "onRefused");
  checkFunction(options.onError, "onError");
  checkWaitingOnShutdown(options.waitingOnShutdown);
  checkRefusalMessage(options.refusalMessage);

  let listener: Deno.TcpListener;
  try {
    listener = Deno.listen({ hostname, port, tcpBacklog: kernelBacklog });
  } catch (error) {
    throw fromRuntimeError(error, { action: "bind to", host: hostname, port });
  }
  const server = new Server(listener, handler, options, {
    backlog,
    concurrency,
  });
  if (signal) {
    const stop = () => server.shutdown();
    if (signal.aborted) stop();
    signal.addEventListener("abort", stop, { once: true });
    server.finished.finally(() => signal.removeEventListener("abort", stop));
  }
  try {
    options.onListen?.(server.addr);
  } catch (error) {
    // The caller gets no server to stop: stop it here.
    server.shutdown();
    throw error;
  }
  return server;
}

/**
 * The address to bind: an IP literal, `""` for every IPv4 interface, or
 * `localhost` for 127.0.0.1. Other names are refused rather than handed to
 * the runtime's resolver, whose failures would bypass the module's errors.
 */
function bindAddress(hostname: unknown): string {
  if (hostname === undefined || hostname === "") return "0.0.0.0";
  const host = validateHost(hostname);
  if (host.toLowerCase() === "localhost") return "127.0.0.1";
  if (ipFamily(host) === undefined) {
    throw new InvalidArgumentError(
      `invalid hostname ${
        describe(hostname)
      }: expected an IP address to bind ("" for every IPv4 interface)`,
    );
  }
  return host;
}

function checkWaitingOnShutdown(value: unknown): void {
  if (value !== undefined && value !== "serve" && value !== "refuse") {
    throw new InvalidArgumentError(
      `invalid waitingOnShutdown ${
        describe(value)
      }: expected "serve" or "refuse"`,
    );
  }
}

function checkRefusalMessage(value: unknown): void {
  if (
    value !== undefined && typeof value !== "string" &&
    !(value instanceof Uint8Array)
  ) {
    throw new InvalidArgumentError(
      `invalid refusalMessage ${
        describe(value)
      }: expected a string or a Uint8Array`,
    );
  }
}
