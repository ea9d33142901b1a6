/**
 * A TCP server: the tutorial's `bind`, `listen(5)`, the `accept` loop and
 * `close`, with the backlog rule the tutorial describes made exact.
 *
 * @module
 */

import { AsyncLocalStorage } from "node:async_hooks";
import { describe, hostPort } from "./_describe.ts";
import {
  ipFamily,
  type NetAddress,
  peerFields,
  type SocketAddress,
  toSocketAddress,
  type UnixAddress,
  validateHost,
  validatePath,
  validatePort,
} from "./address.ts";
import {
  Connection,
  type ConnectionOptions,
  type ConnectionSettings,
  connectionSettings,
} from "./connection.ts";
import { fromRuntimeError, fromUnixError } from "./_error_mapping.ts";
import { stopOnAbort } from "./_deadline.ts";
import {
  secureServer,
  type ServerTlsSettings,
  serverTlsSettings,
  type ServeTlsOptions,
} from "./tls.ts";
import { connectionInternals } from "./connection.ts";
import {
  AddressInUseError,
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
} from "./_validate.ts";

/**
 * What a handler and the hooks learn of a connection; `A` as
 * {@linkcode Connection}'s. The server's object reads its addresses and
 * signal through getters (each made on first read): read the fields, as
 * `{ ...info }` or `JSON.stringify(info)` give only `id`.
 */
export interface ConnectionInfo<A extends SocketAddress = NetAddress> {
  /** 1 for the first connection accepted, 2 for the next: arrival order. */
  id: number;
  /**
   * The client's address and port (on a Unix socket, path `""`: clients
   * have no name there, and `id` tells them apart).
   */
  remoteAddr: A;
  /** The server's address and port (or socket path) for this connection. */
  localAddr: A;
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
export type Handler<A extends SocketAddress = NetAddress> = (
  conn: Connection<A>,
  info: ConnectionInfo<A>,
) => void | Promise<void>;

/**
 * Why a connection was refused: `"admit"` turned it away, the backlog was
 * full (`"backlog"`), or the server was shutting down (`"shutdown"`).
 */
export type RefusalReason = "admit" | "backlog" | "shutdown";

/**
 * Options of {@linkcode serve}; `A` is the kind of address the hooks see
 * ({@linkcode UnixServeOptions} has the Unix socket's).
 */
export interface ServeOptions<A extends SocketAddress = NetAddress>
  extends ConnectionOptions {
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
   * new clients' packets silently, and they hang until they time out
   * (a dropped SYN is sent again only after a second).
   *
   * By default the queue is as deep as the system allows, as Go does:
   * Linux caps `listen`'s backlog at `net.core.somaxconn`, so the default
   * is that file's value (`/proc/sys/net/core/somaxconn`) when read
   * permission for it is already granted, and 4096 otherwise (Linux's
   * default somaxconn since 5.4; a larger request is capped by the kernel
   * anyway, so 4096 gets the full depth on most systems). The permission
   * is only queried, never requested: `serve()` never prompts.
   *
   * @default {Math.max(backlog, somaxconn or 4096)}
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
  /**
   * Sent to each refused connection before it is closed. A refusal being
   * written holds a descriptor (a client that takes a long message slowly,
   * or never reads it, holds one): at most 1,024 are written in full at
   * once, and past that, or past the shutdown deadline, a refusal gets one
   * write (as much of the message as the socket takes at once, all of a
   * short one) and is closed. Each write waits at most `idleTimeout`, and
   * the shutdown cuts those still going at `shutdownTimeout`.
   */
  refusalMessage?: string | Uint8Array;
  /**
   * Milliseconds a handler may run, in all; then its `info.signal`
   * aborts, its connection is closed, and it counts as failed with
   * `ETIMEDOUT`. This is the bound that ends a slow loris: `idleTimeout`
   * bounds only each wait for progress, so a peer that sends or reads a
   * byte a little faster than that keeps a connection forever.
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
   * Milliseconds the whole shutdown may take, counted from the call: then
   * the connections still waiting are refused (one write of
   * `refusalMessage`), running
   * handlers' signals abort and their connections are closed (they count
   * as failed), and refusals still being written are cut and closed.
   * Waits for as long as they take when not given.
   */
  shutdownTimeout?: number;
  /**
   * Serves TLS: each client's handshake runs before its handler, within
   * `tls.handshakeTimeout` (10 s by default); a client whose handshake
   * fails or stalls is closed and counted as failed (op `"handshake"`),
   * and the server goes on. A refused client is closed without
   * `refusalMessage`: sending it would take a handshake, the work a
   * refusal is there to save.
   */
  tls?: ServeTlsOptions;
  /**
   * Decides at once whether a new connection may be served: one it turns
   * away (`false`) is refused before it takes a handler slot, a place in
   * the backlog or (with TLS) a handshake, the way a full backlog
   * refuses (`onRefused` with reason `"admit"`, `refusalMessage`, counted
   * in `refused`). It runs before the connection is counted; one that
   * throws refuses too, and the error goes to `onError`.
   *
   * @example Refuse every client but 127.0.0.1 (a `::` server's others)
   * ```ts
   * import { serve } from "@socket-programming/socket";
   *
   * await using server = serve({
   *   hostname: "127.0.0.1",
   *   admit: (info) => info.remoteAddr.address === "127.0.0.1",
   *   refusalMessage: "not from here\n",
   * }, (conn) => conn.sendAll("hello\n"));
   * console.log(server.stats.refused); // 0
   * ```
   */
  admit?: (info: ConnectionInfo<A>) => boolean;
  /** Called once, when the server is listening. */
  onListen?: (addr: A) => void;
  /** Called when the server accepts a connection, before it waits or runs. */
  onAccept?: (info: ConnectionInfo<A>) => void;
  /**
   * Called when a handler starts on a connection (the tutorial's accept);
   * with TLS, once the handshake has succeeded.
   */
  onConnection?: (info: ConnectionInfo<A>) => void;
  /**
   * Called when a connection is refused: `admit` turned it away, the
   * backlog was full, or at shutdown.
   */
  onRefused?: (info: ConnectionInfo<A>, reason: RefusalReason) => void;
  /**
   * Called when a handler throws or times out. Prints one line to stderr
   * when not given.
   */
  onError?: (error: unknown, info: ConnectionInfo<A>) => void;
}

/**
 * Options of {@linkcode serve} on a Unix socket: `path` in place of
 * `hostname` and `port`; no kernel backlog option (Deno does not take
 * one there), no TCP options, and no TLS (Deno has no TLS listener on a
 * Unix socket).
 */
export interface UnixServeOptions extends
  Omit<
    ServeOptions<UnixAddress>,
    "hostname" | "port" | "kernelBacklog" | "noDelay" | "keepAlive" | "tls"
  > {
  /**
   * The socket file to make. It must not exist: see {@linkcode serve} on
   * a file left by a server that crashed ({@linkcode removeStaleSocket}).
   */
  path: string;
}

/** The server's counters; `accepted` = the sum of the five others. */
export interface ServerStats {
  /** Connections taken from the kernel. */
  accepted: number;
  /** Handlers that returned. */
  served: number;
  /** Handlers that threw or timed out. */
  failed: number;
  /** Connections turned away: by `admit`, the backlog was full, or at shutdown. */
  refused: number;
  /** Connections waiting for a handler now. */
  waiting: number;
  /** Handlers running now. */
  active: number;
}

/**
 * {@linkcode ServeOptions}, checked once by {@linkcode serve}: what the
 * server reads per connection, never checked again.
 */
interface ServerSettings {
  backlog: number;
  concurrency: number;
  handlerTimeout: number | undefined;
  shutdownTimeout: number | undefined;
  waitingOnShutdown: "serve" | "refuse";
  /** Encoded once; `undefined` when there is none to send. */
  refusalMessage: Uint8Array | undefined;
  onAccept: ((info: AnyInfo) => void) | undefined;
  onConnection: ((info: AnyInfo) => void) | undefined;
  onRefused: ((info: AnyInfo, reason: RefusalReason) => void) | undefined;
  admit: ((info: AnyInfo) => boolean) | undefined;
  onError: ((error: unknown, info: AnyInfo) => void) | undefined;
  connection: ConnectionSettings;
  tls: ServerTlsSettings | undefined;
  /** Removes the Unix socket's file once the listener is closed. */
  unlink?: () => void;
}

/** What the server handles inside: either kind of address. */
type AnyInfo = ConnectionInfo<SocketAddress>;

/**
 * A connection's info. The signal's AbortController is made on first use
 * (a read of `signal`, or an abort): most handlers never look at it, and
 * with thousands of idle connections its bytes count.
 */
class Info implements AnyInfo {
  readonly id: number;
  readonly #conn: Connection<SocketAddress>;
  #controller: AbortController | undefined;

  constructor(id: number, conn: Connection<SocketAddress>) {
    this.id = id;
    this.#conn = conn;
  }

  // The connection's own, made on first read.
  get remoteAddr(): SocketAddress {
    return this.#conn.remoteAddr;
  }

  get localAddr(): SocketAddress {
    return this.#conn.localAddr;
  }

  get signal(): AbortSignal {
    this.#controller ??= new AbortController();
    return this.#controller.signal;
  }

  /** Aborts the signal, made now if nobody asked for it yet. */
  static abort(info: Info, reason: unknown): void {
    info.#controller ??= new AbortController();
    info.#controller.abort(reason);
  }
}

/** The accept loop's channel for its turns, and who waits for one. */
interface Turns {
  channel: MessageChannel;
  wake?: () => void;
}

/** A connection in the server's hands, waiting or running. */
interface Entry {
  conn: Connection<SocketAddress>;
  info: Info;
  /** When `handlerTimeout` ends its handler (`performance.now()` ms). */
  deadline?: number;
  /** Counted already: the handler settled, or was abandoned. */
  done?: boolean;
  /** The TLS connection, whose handshake runs before the handler. */
  tls?: Deno.TlsConn;
}

const DEFAULT_BACKLOG = 128;
const FALLBACK_KERNEL_BACKLOG = 4096;
const SOMAXCONN = "/proc/sys/net/core/somaxconn";
const MAX_ACCEPT_BACKOFF = 1000;
const MAX_PENDING_REFUSALS = 1024;
/**
 * Connections the accept loop takes in a row before it lets the event loop
 * turn once (measured: 4-16 all keep a 2,000-client burst's refusals in
 * order; 64 lets them bunch up again).
 */
const ACCEPTS_PER_TURN = 8;

/** Makes a server: {@linkcode serve}'s way past the private constructor. */
let makeServer: (
  listener: Listener,
  handler: Handler<SocketAddress>,
  settings: ServerSettings,
) => Server<SocketAddress>;

/**
 * The server whose accept loop (and so whose handlers and hooks) the code
 * runs under, to know when `shutdown()` is called from inside. Entered once
 * per server, around its accept loop: a context entered per handler cost
 * about 600 bytes per idle connection and 4 % of the accept rate.
 */
const serverContext = new AsyncLocalStorage<Server<SocketAddress>>();

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
export class Server<A extends SocketAddress = NetAddress>
  implements AsyncDisposable {
  /** The address the server is bound to, with the port chosen (or path). */
  readonly addr: A;
  /** Resolves once the server has stopped and released everything. */
  readonly finished: Promise<void>;
  readonly #listener: Listener;
  readonly #handler: Handler<SocketAddress>;
  readonly #options: ServerSettings;
  readonly #backlog: number;
  readonly #concurrency: number;
  readonly #waiting: Entry[] = [];
  readonly #running = new Set<Entry>();
  /** Refusals being written, each with its connection, to cut them. */
  readonly #refusals = new Map<Promise<void>, Connection<SocketAddress>>();
  readonly #counts = { accepted: 0, served: 0, failed: 0, refused: 0 };
  readonly #stopped = Promise.withResolvers<void>();
  readonly #loop: Promise<void>;
  #nextId = 1;
  #stopping = false;
  /** Past the shutdown deadline: a refusal gets one write of its message. */
  #cut = false;
  /** Made at shutdown; resolved when no handler runs and none waits. */
  #idle: PromiseWithResolvers<void> | undefined;
  #pause:
    | { timer: ReturnType<typeof setTimeout>; wake: () => void }
    | undefined;
  /**
   * One timer for every handler's `handlerTimeout`, set for the earliest
   * deadline: a timer per connection costs more than the rest of its
   * bookkeeping.
   */
  #deadlineTimer: ReturnType<typeof setTimeout> | undefined;
  /** Made at the first turn the loop takes: see {@linkcode Server.#nextTurn}. */
  #turns: Turns | undefined;

  static {
    makeServer = (listener, handler, settings) =>
      new Server(listener, handler, settings);
  }

  /** Use {@linkcode serve}: only it makes servers. */
  private constructor(
    listener: Listener,
    handler: Handler<SocketAddress>,
    settings: ServerSettings,
  ) {
    this.#listener = listener;
    this.#handler = handler;
    this.#options = settings;
    this.#backlog = settings.backlog;
    this.#concurrency = settings.concurrency;
    this.addr = toSocketAddress(listener.addr) as A;
    this.finished = this.#stopped.promise;
    this.#loop = serverContext.run(this, () => this.#acceptLoop());
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
   * handlers finish and refusals be written (all within
   * `shutdownTimeout`), then resolves. Calling it again stops nothing
   * more and returns the same promise as before from the same side.
   *
   * A handler may call it too. Awaiting the handlers there would wait for
   * the caller itself forever, so called from inside this server (its
   * handlers, the hooks it calls per connection, or code they started)
   * the promise resolves once the server has stopped accepting;
   * {@linkcode Server.finished} still waits for every handler, the
   * caller's too.
   *
   * @example Stop from inside a handler
   * ```ts
   * import { connect, serve } from "@socket-programming/socket";
   *
   * const server = serve({ hostname: "127.0.0.1" }, async (conn) => {
   *   await conn.sendAll("bye");
   *   await server.shutdown(); // resolves once no longer accepting
   * });
   * await using conn = await connect("127.0.0.1", server.addr.port);
   * console.log(new TextDecoder().decode(await conn.recvAll())); // "bye"
   * await server.finished;
   * ```
   *
   * @returns {@linkcode Server.finished}, or from inside this server, a
   *   promise that resolves once it has stopped accepting.
   */
  shutdown(): Promise<void> {
    if (!this.#stopping) {
      this.#stopping = true;
      // In the server's context, as the accept loop: a handler the stop
      // starts (a waiting connection served) counts as inside too.
      serverContext.run(this, () => this.#stop())
        .then(this.#stopped.resolve, this.#stopped.reject);
    }
    return serverContext.getStore() === this ? this.#loop : this.finished;
  }

  /** Shuts the server down, for `await using`. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.shutdown();
  }

  async #acceptLoop(): Promise<void> {
    let backoff = 0;
    // Counted whether or not an accept waited: a turn every few accepts
    // costs a few microseconds, and telling the two apart would cost more.
    let sinceTurn = 0;
    try {
      while (!this.#stopping) {
        if (++sinceTurn > ACCEPTS_PER_TURN) {
          sinceTurn = 0;
          await this.#nextTurn();
          continue;
        }
        let conn: Accepted;
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
    } finally {
      this.#turns?.channel.port1.close();
      this.#turns?.channel.port2.close();
    }
  }

  /**
   * Resolves after one turn of the event loop. While connections wait in
   * the kernel's queue, `accept()` resolves without a turn, and in a burst
   * the loop would take them all before a write or a timer of those
   * already taken could finish: a 2,000-client burst's refused clients all
   * got their message at its end. A message through a channel of its own
   * is the cheapest macrotask (a timer waits at least a millisecond).
   */
  #nextTurn(): Promise<void> {
    if (this.#turns === undefined) {
      const turns: Turns = { channel: new MessageChannel() };
      turns.channel.port2.onmessage = () => turns.wake?.();
      this.#turns = turns;
    }
    const turns = this.#turns;
    return new Promise((resolve) => {
      turns.wake = resolve;
      turns.channel.port1.postMessage(null);
    });
  }

  /**
   * Places a new connection: running, waiting or refused. The counters are
   * updated before any hook runs, so that a hook reading `stats` sees
   * `accepted` equal to the sum of the others.
   */
  #admit(conn: Accepted): void {
    const entry = this.#entry(conn);
    // Before the count: `admit` (and its onError) see stats that add up.
    const refusal = this.#refusal(entry);
    this.#counts.accepted++;
    const { onAccept } = this.#options;
    if (!refusal && this.#running.size < this.#concurrency) {
      this.#running.add(entry);
      if (onAccept) this.#callHook(onAccept, entry.info);
      this.#handle(entry);
    } else if (!refusal && this.#waiting.length < this.#backlog) {
      this.#waiting.push(entry);
      if (onAccept) this.#callHook(onAccept, entry.info);
    } else {
      this.#counts.refused++;
      if (onAccept) this.#callHook(onAccept, entry.info);
      this.#closeRefused(entry, refusal ?? "backlog");
    }
  }

  /** Why a new connection is refused whatever the room, if it is. */
  #refusal(entry: Entry): RefusalReason | undefined {
    if (this.#stopping && this.#options.waitingOnShutdown === "refuse") {
      return "shutdown";
    }
    const { admit } = this.#options;
    if (admit === undefined) return undefined;
    try {
      return admit(entry.info) ? undefined : "admit";
    } catch (error) {
      // Fail closed: a broken rule must not let everyone in.
      this.#reportError(error, entry.info);
      return "admit";
    }
  }

  /** Runs a hook; one that throws must not stop the accept loop. */
  #callHook(hook: (info: AnyInfo) => void, info: AnyInfo): void {
    try {
      hook(info);
    } catch (error) {
      this.#reportError(error, info);
    }
  }

  #entry(conn: Accepted): Entry {
    const connection = new Connection<SocketAddress>(
      conn,
      this.#options.connection,
    );
    const tls = this.#options.tls ? conn as Deno.TlsConn : undefined;
    return {
      conn: connection,
      info: new Info(this.#nextId++, connection),
      tls,
    };
  }

  #startWaiting(): void {
    while (this.#running.size < this.#concurrency && this.#waiting.length) {
      // deno-lint-ignore no-non-null-assertion -- the length was just checked
      const entry = this.#waiting.shift()!;
      this.#running.add(entry);
      this.#handle(entry);
    }
    this.#checkIdle();
  }

  /** At shutdown: resolves `#idle` once no handler runs and none waits. */
  #checkIdle(): void {
    if (this.#waiting.length === 0 && this.#running.size === 0) {
      this.#idle?.resolve();
    }
  }

  /**
   * Runs the handler; `#finish` counts the connection when it settles.
   * No async frame, race or promise of its own per connection: one
   * reaction on the handler's promise, which matters with thousands idle.
   */
  #handle(entry: Entry): void {
    const { conn, info } = entry;
    const { onConnection, handlerTimeout } = this.#options;
    // With TLS, the handler's turn starts once the handshake is done.
    if (onConnection && !entry.tls) this.#callHook(onConnection, info);
    let handled: unknown;
    try {
      handled = entry.tls
        ? this.#secureThenHandle(entry)
        : this.#handler(conn, info);
    } catch (error) {
      // A sync throw counts as a rejection would, a tick later.
      handled = Promise.reject(error);
    }
    // A handler that ignores its signal is abandoned when it aborts (its
    // deadline or the shutdown's): #abort finishes it, and what it does
    // later is ignored.
    Promise.resolve(handled).then(
      () => this.#finish(entry, undefined),
      (error) => this.#finish(entry, { error }),
    );
    if (handlerTimeout !== undefined) {
      entry.deadline = performance.now() + handlerTimeout;
      this.#deadlineTimer ??= setTimeout(() => this.#expire(), handlerTimeout);
    }
  }

  /**
   * Aborts the handlers past their `handlerTimeout`, then sets the timer
   * for the next deadline. `#running` keeps the order handlers started in,
   * and every deadline is its start plus the same timeout, so the expired
   * ones come first.
   */
  #expire(): void {
    const now = performance.now();
    for (const entry of this.#running) {
      // deno-lint-ignore no-non-null-assertion -- set for all with the timeout
      const left = entry.deadline! - now;
      if (left > 0) {
        this.#deadlineTimer = setTimeout(() => this.#expire(), left);
        return;
      }
      this.#abort(
        entry,
        this.#lateError(
          entry.conn,
          `timed out after ${this.#options.handlerTimeout} ms`,
        ),
      );
    }
    this.#deadlineTimer = undefined;
  }

  /** Closes and counts a connection whose handler settled or was abandoned. */
  #finish(entry: Entry, failure: { error: unknown } | undefined): void {
    if (entry.done) return;
    entry.done = true;
    entry.conn.close();
    this.#running.delete(entry);
    if (failure) {
      this.#counts.failed++;
      this.#reportError(failure.error, entry.info);
    } else {
      this.#counts.served++;
    }
    this.#startWaiting();
  }

  /** With TLS: the handshake, within its deadline, then the handler. */
  async #secureThenHandle(entry: Entry): Promise<void> {
    const { conn, info } = entry;
    // deno-lint-ignore no-non-null-assertion -- only called with TLS on
    const tls = this.#options.tls!;
    // deno-lint-ignore no-non-null-assertion -- only called with TLS on
    const agreed = await secureServer(entry.tls!, tls.handshakeTimeout);
    connectionInternals.setTls(conn, agreed);
    const { onConnection } = this.#options;
    if (onConnection) this.#callHook(onConnection, info);
    await this.#handler(conn, info);
  }

  /** Aborts a handler's signal and abandons the handler. */
  #abort(entry: Entry, reason: unknown): void {
    if (entry.done) return;
    Info.abort(entry.info, reason);
    this.#finish(entry, { error: reason });
  }

  #lateError(conn: Connection<SocketAddress>, reason: string): TimeoutError {
    return new TimeoutError({
      op: "handle",
      ...peerFields(conn.remoteAddr, conn.localAddr),
      reason,
    });
  }

  #reportError(error: unknown, info: AnyInfo): void {
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
    const { host, port } = peerFields(info.remoteAddr, info.localAddr);
    console.error(`handler failed for ${hostPort(host, port)}: ${text}`);
  }

  /** Refuses a waiting connection, at shutdown. */
  #refuse(entry: Entry): void {
    this.#counts.refused++;
    this.#closeRefused(entry, "shutdown");
  }

  /**
   * Tells a refused connection, then closes it. Past the shutdown deadline
   * or when too many refusals are in flight, the message gets one write
   * (what the socket takes at once), so that clients that do not read
   * cannot hold descriptors or the shutdown without bound.
   */
  #closeRefused({ conn, info, tls }: Entry, reason: RefusalReason): void {
    const { onRefused } = this.#options;
    if (onRefused) this.#callHook((i) => onRefused(i, reason), info);
    // Over TLS the message would cost a handshake: a refusal just closes.
    const message = tls ? undefined : this.#options.refusalMessage;
    if (message === undefined) {
      conn.close();
      return;
    }
    // In full, unless past the shutdown deadline or too many are pending.
    const whole = !this.#cut && this.#refusals.size < MAX_PENDING_REFUSALS;
    const write = connectionInternals.sendFresh(conn, message, whole);
    const done = () => {
      conn.close();
      this.#refusals.delete(refusal);
    };
    const refusal = write.then(done, done);
    this.#refusals.set(refusal, conn);
  }

  /**
   * The shutdown: one deadline (`shutdownTimeout`, from the call) bounds
   * all of it, handlers and refusals alike.
   */
  async #stop(): Promise<void> {
    try {
      this.#listener.close();
    } catch {
      // Closed already.
    }
    this.#options.unlink?.();
    this.#pause?.wake();
    const deadline = shutdownDeadline(this.#options.shutdownTimeout);
    try {
      await this.#loop;
      if (this.#options.waitingOnShutdown === "refuse") this.#refuseWaiting();
      this.#idle = Promise.withResolvers();
      this.#startWaiting();
      // Past the deadline, #cutShort refuses the waiting and aborts the
      // running handlers, each counted at once.
      if (await deadline.race(this.#idle.promise) === "late") this.#cutShort();
      const refusals = Promise.all(this.#refusals.keys());
      if (await deadline.race(refusals) === "late") this.#cutShort();
      await Promise.all(this.#refusals.keys());
    } finally {
      deadline.clear();
      clearTimeout(this.#deadlineTimer);
      this.#deadlineTimer = undefined;
    }
  }

  /**
   * The shutdown deadline has passed: cut the refusals being written,
   * refuse the waiting (one write of the message each), abort and close
   * the running handlers.
   */
  #cutShort(): void {
    this.#cut = true;
    for (const conn of this.#refusals.values()) conn.close();
    this.#refuseWaiting();
    const timeout = this.#options.shutdownTimeout;
    // A copy: each abort takes its entry out of #running at once.
    for (const entry of [...this.#running]) {
      this.#abort(
        entry,
        this.#lateError(
          entry.conn,
          `still running at the shutdown deadline (${timeout} ms)`,
        ),
      );
    }
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

// The Unix overload comes first: TypeScript types a hook's parameter from
// the first overload it tries, and an object without `path` fails that
// one before any hook is typed.
/**
 * Serves on a Unix domain socket (`nc -lU PATH`): `path` in place of
 * `hostname` and `port`, everything else as over TCP. Deno needs read,
 * write and net permission for the path: `--allow-read=PATH
 * --allow-write=PATH --allow-net=unix:PATH` (or `-R -W -N`).
 *
 * The path must not exist, as for `nc -lU`: an existing file fails with
 * `EADDRINUSE`, whatever it is. A server that crashed leaves its socket
 * file behind; `await removeStaleSocket(path)` first removes such a file
 * (and only such a file) so that the new server can bind. The file is
 * removed when the server shuts down.
 *
 * @example A greeting server on a Unix socket
 * ```ts
 * import { connect, serve } from "@socket-programming/socket";
 *
 * const dir = await Deno.makeTempDir();
 * {
 *   await using server = serve(
 *     { path: `${dir}/greeter.sock` },
 *     (conn) => conn.sendAll("Thank you for connecting"),
 *   );
 *   await using conn = await connect(server.addr);
 *   console.log(new TextDecoder().decode(await conn.recvAll())); // "Thank you for connecting"
 * }
 * await Deno.remove(dir);
 * ```
 *
 * @param options The path, backlog, concurrency, timeouts and hooks.
 * @param handler Serves one connection.
 * @returns The listening server.
 * @throws {AddressInUseError} when a file exists at the path.
 * @throws {NotFoundError} when the path's directory does not exist.
 * @throws {PermissionDeniedError} for a missing permission, naming the
 *   flags.
 * @throws {InvalidArgumentError} for a bad path or option, or `hostname`
 *   or `port` given with `path`.
 */
export function serve(
  options: UnixServeOptions,
  handler: Handler<UnixAddress>,
): Server<UnixAddress>;
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
export function serve(
  options: ServeOptions,
  handler: Handler,
): Server;
export function serve(
  options: ServeOptions | UnixServeOptions,
  handler: Handler | Handler<UnixAddress>,
): Server | Server<UnixAddress> {
  checkOptions(options);
  // Inside, hooks and handler see either kind of address.
  const all = (options ?? {}) as ServeOptions<SocketAddress> & {
    path?: unknown;
  };
  checkFunction(handler, "handler", { required: true });
  // Every argument is checked before the socket is made.
  const listen = all.path === undefined
    ? tcpListen(all)
    : unixListen(all.path, all);
  const checked = serverSettings(all);
  const signal = checkSignal(all.signal);
  checkFunction(all.onListen, "onListen");
  const bound = listen(checked);
  const settings = { ...checked, unlink: bound.unlink };
  const server = makeServer(
    bound.listener,
    handler as Handler<SocketAddress>,
    settings,
  );
  stopOnAbort(signal, () => server.shutdown(), server.finished);
  try {
    all.onListen?.(server.addr);
  } catch (error) {
    // The caller gets no server to stop: stop it here. The caller gets
    // onListen's error; nobody could await a failing shutdown's.
    server.shutdown().catch(() => {});
    throw error;
  }
  return server as Server | Server<UnixAddress>;
}

interface Bound {
  listener: Listener;
  unlink?: () => void;
}

/**
 * Checks the TCP address; the function returned binds it, with TLS when
 * the settings have it.
 */
function tcpListen(
  options: ServeOptions<SocketAddress>,
): (settings: ServerSettings) => Bound {
  const hostname = bindAddress(options.hostname);
  const port = options.port === undefined
    ? 0
    : validatePort(options.port, { allowZero: true });
  const kernel = checkCount(options.kernelBacklog, "kernelBacklog", 1);
  return ({ backlog, tls }) => {
    const tcpBacklog = kernel ?? Math.max(backlog, systemKernelBacklog());
    try {
      const listener = tls
        ? Deno.listenTls({
          hostname,
          port,
          tcpBacklog,
          cert: tls.cert,
          key: tls.key,
          alpnProtocols: tls.alpnProtocols,
        })
        : Deno.listen({ hostname, port, tcpBacklog });
      return { listener };
    } catch (error) {
      throw fromRuntimeError(error, { op: "bind", host: hostname, port });
    }
  };
}

/**
 * Checks a Unix socket's path; the function returned binds it, and its
 * `unlink` removes the file at shutdown if it is still this server's
 * (same inode), never a file someone made since.
 */
function unixListen(
  value: unknown,
  options: ServeOptions<SocketAddress>,
): () => Bound {
  const path = validatePath(value);
  for (const name of ["hostname", "port", "kernelBacklog"] as const) {
    if (options[name] !== undefined) {
      throw new InvalidArgumentError({
        reason: `invalid ${name} ${
          describe(options[name])
        }: a Unix socket's path replaces hostname, port and kernelBacklog`,
      });
    }
  }
  // Deno has no TLS listener on a Unix socket (listenTls is TCP only).
  if (options.tls !== undefined) {
    throw new InvalidArgumentError({
      reason: "invalid tls: TLS is served over TCP only, not on a Unix " +
        "socket's path",
    });
  }
  return () => bindUnix(path);
}

function bindUnix(path: string): Bound {
  const where = { op: "bind" as const, host: path };
  let listener: Deno.UnixListener;
  try {
    listener = Deno.listen({ transport: "unix", path });
  } catch (error) {
    if (error instanceof Deno.errors.AddrInUse) {
      throw new AddressInUseError({
        ...where,
        code: "EADDRINUSE",
        reason: "Address already in use (a file is there: a live " +
          "server's, or one a crashed server left: removeStaleSocket())",
        cause: error,
      });
    }
    throw fromUnixError(error, where);
  }
  const inode = inodeOf(path);
  const unlink = () => {
    try {
      if (inode !== null && inodeOf(path) === inode) Deno.removeSync(path);
    } catch {
      // Gone already (Deno removes it on close), or not ours to remove.
    }
  };
  return { listener, unlink };
}

function inodeOf(path: string): number | null {
  try {
    return Deno.lstatSync(path).ino;
  } catch {
    return null;
  }
}

/**
 * Makes way for a new server on a Unix socket path, as a server that
 * crashed left it: when the path is a socket file that nobody listens on
 * (a connect is refused), the file is removed. A file that is not a
 * socket is never removed, and a socket a server answers on is left to it;
 * both fail with `EADDRINUSE`, as binding would. Nothing at the path is
 * fine. Where `/proc/net/unix` can be read (Linux; Deno asks for
 * `--allow-all` to read it), a server listening at the path is found there
 * and never disturbed; otherwise the check is a connect, and a live
 * server sees one connection open and close (a server that takes one
 * client, as `listen` without `keepOpen`, would take it as its client).
 *
 * Between this check and the bind another server could take the path:
 * the bind then fails with `EADDRINUSE`, which is what should happen.
 *
 * @example Take over a socket file left by a crashed server
 * ```ts
 * import { removeStaleSocket, serve } from "@socket-programming/socket";
 *
 * const dir = await Deno.makeTempDir();
 * const path = `${dir}/app.sock`;
 * await removeStaleSocket(path); // false: nothing was there
 * await using server = serve({ path }, (conn) => conn.sendAll("hi"));
 * console.log(server.addr.path === path); // true
 * await server.shutdown();
 * await Deno.remove(dir);
 * ```
 *
 * @param path The socket file's path.
 * @returns Whether a stale socket file was removed.
 * @throws {AddressInUseError} when a server answers at the path, or the
 *   file there is not a socket.
 * @throws {PermissionDeniedError} for a missing permission, naming the
 *   flags.
 * @throws {InvalidArgumentError} for a bad path.
 */
export async function removeStaleSocket(path: string): Promise<boolean> {
  validatePath(path);
  const where = { op: "bind" as const, host: path };
  const inUse = (reason: string, cause?: unknown) =>
    new AddressInUseError({ ...where, code: "EADDRINUSE", reason, cause });
  let info: Deno.FileInfo;
  try {
    info = await Deno.lstat(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return false;
    throw fromUnixError(error, where);
  }
  if (!info.isSocket) {
    throw inUse("Address already in use (the file there is not a socket)");
  }
  if (await listedAsListening(path)) {
    throw inUse("Address already in use (a server listens there)");
  }
  let conn: Deno.UnixConn;
  try {
    conn = await Deno.connect({ transport: "unix", path });
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return false;
    if (!(error instanceof Deno.errors.ConnectionRefused)) {
      if (error instanceof Deno.errors.NotCapable) {
        throw fromUnixError(error, where);
      }
      // Anything else (a full backlog): someone is there.
      throw inUse("Address already in use (a server is there)", error);
    }
    await Deno.remove(path).catch((error) => {
      if (!(error instanceof Deno.errors.NotFound)) {
        throw fromUnixError(error, where);
      }
    });
    return true;
  }
  conn.close();
  throw inUse("Address already in use (a server answers there)");
}

/** The flag of a listening socket in `/proc/net/unix` (`__SO_ACCEPTCON`). */
const ACCEPTING = 0x10000;

/**
 * Whether the kernel lists a socket listening at `path`, without touching
 * it. False when it cannot tell: no `/proc`, no permission to read it
 * (Deno wants `--allow-all` for `/proc/net`; never a prompt), or a server
 * that bound the path relative to another directory (the kernel lists the
 * path as given to bind).
 */
async function listedAsListening(path: string): Promise<boolean> {
  const table = "/proc/net/unix";
  const { state } = await Deno.permissions.query({ name: "read", path: table });
  if (state !== "granted") return false;
  let absolute = path;
  try {
    if (!path.startsWith("/")) absolute = `${Deno.cwd()}/${path}`;
  } catch {
    return false; // No permission to read the working directory.
  }
  let text: string;
  try {
    text = await Deno.readTextFile(table);
  } catch {
    return false;
  }
  // "Num RefCount Protocol Flags Type St Inode Path", the path last. Only
  // absolute paths are compared: a relative one was bound relative to a
  // directory this process does not know.
  for (const line of text.split("\n").slice(1)) {
    const match = line.match(
      /^\S+ \S+ \S+ ([0-9A-Fa-f]+) \S+ \S+ +\d+ (\/.*)$/,
    );
    if (
      match && (parseInt(match[1], 16) & ACCEPTING) !== 0 &&
      match[2] === absolute
    ) {
      return true;
    }
  }
  return false;
}

/** Checks what the server reads per connection, once. */
function serverSettings(
  options: ServeOptions<SocketAddress>,
): ServerSettings {
  const callback = <T>(value: T, name: string): T => {
    checkFunction(value, name);
    return value;
  };
  const message = checkRefusalMessage(options.refusalMessage);
  return {
    backlog: checkCount(options.backlog, "backlog", 0) ?? DEFAULT_BACKLOG,
    concurrency: checkCount(options.concurrency, "concurrency", 1) ?? 1,
    handlerTimeout: checkDuration(options.handlerTimeout, "handlerTimeout"),
    shutdownTimeout: checkDuration(options.shutdownTimeout, "shutdownTimeout"),
    waitingOnShutdown: checkWaitingOnShutdown(options.waitingOnShutdown),
    refusalMessage: message?.length ? message : undefined,
    onAccept: callback(options.onAccept, "onAccept"),
    onConnection: callback(options.onConnection, "onConnection"),
    onRefused: callback(options.onRefused, "onRefused"),
    admit: callback(options.admit, "admit"),
    onError: callback(options.onError, "onError"),
    connection: connectionSettings(options),
    tls: serverTlsSettings(options.tls),
  };
}

/**
 * A plain, a TLS or a Unix listener: accepted connections are handled
 * alike.
 */
type Listener = Deno.TcpListener | Deno.TlsListener | Deno.UnixListener;
/** What a {@linkcode Listener} accepts. */
type Accepted = Deno.TcpConn | Deno.TlsConn | Deno.UnixConn;

let systemBacklog: number | undefined;

/**
 * The deepest accept queue the system allows: somaxconn when its file may
 * be read without asking (the permission is queried, never requested, so
 * that no prompt appears), 4096 otherwise. Read once per process.
 */
function systemKernelBacklog(): number {
  if (systemBacklog !== undefined) return systemBacklog;
  systemBacklog = FALLBACK_KERNEL_BACKLOG;
  try {
    const { state } = Deno.permissions.querySync({
      name: "read",
      path: SOMAXCONN,
    });
    if (Deno.build.os === "linux" && state === "granted") {
      const value = Number(Deno.readTextFileSync(SOMAXCONN).trim());
      if (Number.isSafeInteger(value) && value > 0 && value < 2 ** 31) {
        systemBacklog = value;
      }
    }
  } catch {
    // Absent or unreadable: the fallback, which the kernel caps anyway.
  }
  return systemBacklog;
}

/** The shutdown's one deadline: races promises against it. */
function shutdownDeadline(timeout: number | undefined): {
  race: (promise: Promise<unknown>) => Promise<"done" | "late">;
  clear: () => void;
} {
  if (timeout === undefined) {
    return { race: (promise) => promise.then(() => "done"), clear: () => {} };
  }
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<"late">((resolve) => {
    timer = setTimeout(() => resolve("late"), timeout);
  });
  return {
    race: (promise) =>
      Promise.race([promise.then(() => "done" as const), late]),
    clear: () => clearTimeout(timer),
  };
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
    throw new InvalidArgumentError({
      reason: `invalid hostname ${
        describe(hostname)
      }: expected an IP address to bind ("" for every IPv4 interface)`,
    });
  }
  return host;
}

function checkWaitingOnShutdown(value: unknown): "serve" | "refuse" {
  if (value === undefined) return "serve";
  if (value !== "serve" && value !== "refuse") {
    throw new InvalidArgumentError({
      reason: `invalid waitingOnShutdown ${
        describe(value)
      }: expected "serve" or "refuse"`,
    });
  }
  return value;
}

const encoder = new TextEncoder();

/** Checks the refusal message and encodes it once. */
function checkRefusalMessage(value: unknown): Uint8Array | undefined {
  if (value === undefined) return undefined;
  if (typeof value === "string") return encoder.encode(value);
  if (value instanceof Uint8Array) return value;
  throw new InvalidArgumentError({
    reason: `invalid refusalMessage ${
      describe(value)
    }: expected a string or a Uint8Array`,
  });
}
