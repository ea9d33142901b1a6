/**
 * `nc -l` as a function: wait for a client and pipe it to stdout and stdin
 * to it; with `keepOpen`, many clients, stdin to all of them (ncat `-k`);
 * with `broker`, every client's bytes to every other one as well (ncat
 * `--broker`). On a TCP port or a Unix socket's path (`nc -lU`). Built on
 * {@linkcode serve} (admission, counters, shutdown) and on the pipe behind
 * `telnet`.
 *
 * @module
 */

import {
  type NetAddress,
  type SocketAddress,
  type UnixAddress,
  validatePath,
} from "./address.ts";
import { describe } from "./_describe.ts";
import { type AccessRules, isAllowed, parseCidr } from "./_cidr.ts";
import type { Connection } from "./connection.ts";
import { InvalidArgumentError, type SocketError } from "./errors.ts";
import {
  pipe,
  type PipeInput,
  type PipeOutput,
  type PipeResult,
} from "./_pipe.ts";
import {
  type ConnectionInfo,
  type RefusalReason,
  serve,
  type Server,
  type ServerStats,
} from "./server.ts";
import type { ServeTlsOptions } from "./tls.ts";
import {
  checkCount,
  checkDuration,
  checkFunction,
  checkOptions,
  checkSignal,
} from "./_validate.ts";
import { stopOnAbort } from "./_deadline.ts";

/**
 * Where the bytes sent to clients come from: `Deno.stdin` or a stand-in,
 * with `read(p)` (`null` at end of input) and `isTerminal()`; the same
 * shape as what `connect`'s pipe reads.
 */
export type ListenInput = PipeInput;

/**
 * Where clients' bytes go: `Deno.stdout` or a stand-in, whose `write(p)`
 * says how much of `p` it wrote; the same shape as the pipe's output.
 */
export type ListenOutput = PipeOutput;

/**
 * A client, as {@linkcode ListenEvent}s name it; `A` is the kind of
 * address, {@linkcode UnixAddress} for {@linkcode UnixListenOptions}.
 */
export interface ListenClient<A extends SocketAddress = NetAddress> {
  /** Arrival order, from 1, shared with refused and denied clients. */
  id: number;
  /**
   * The client's address and port; on a Unix socket path `""` (clients
   * there have no name, as {@linkcode serve}'s: `id` tells them apart).
   */
  remoteAddr: A;
}

/**
 * What happened, for a trace: a client `connected` (it is piped from
 * now), was `refused` (past `maxConns`, or a second client without
 * `keepOpen`), `denied` (by `allow`/`deny`), `failed` (its TLS handshake
 * failed or stalled: it was never piped), `dropped` (it stayed more than
 * `queueBytes` behind for `stallTimeout`: it is then `closed` too), or
 * `closed` (its pipe ended: bytes each way, and the connection's failure,
 * if any).
 */
export type ListenEvent<A extends SocketAddress = NetAddress> =
  | { event: "connected"; client: ListenClient<A> }
  | { event: "refused"; client: ListenClient<A>; maxConns: number }
  | { event: "denied"; client: ListenClient<A> }
  | { event: "failed"; client: ListenClient<A>; error: Error }
  | { event: "dropped"; client: ListenClient<A>; queued: number }
  | {
    event: "closed";
    client: ListenClient<A>;
    sent: number;
    received: number;
    error?: SocketError;
  };

/**
 * Options of {@linkcode listen}; `A` is the kind of address the hooks see
 * ({@linkcode UnixListenOptions} has the Unix socket's).
 */
export interface ListenOptions<A extends SocketAddress = NetAddress> {
  /**
   * The address to bind, as {@linkcode serve}'s: `""` for every IPv4
   * interface (as `nc -l`), `"127.0.0.1"` for this machine only, `"::"`
   * for IPv6 and IPv4.
   *
   * @default {""}
   */
  hostname?: string;
  /** The port; 0 for any free one, read from {@linkcode Listener.addr}. @default {0} */
  port?: number;
  /**
   * Serve clients one after another and at once (ncat `-k`), until
   * {@linkcode Listener.shutdown}: stdin goes to every connected client
   * and every client's bytes go to stdout. Without it, the first client
   * is served alone and the listener ends when it has closed (`nc -l`).
   *
   * @default {false}
   */
  keepOpen?: boolean;
  /**
   * With `keepOpen` (which it implies): each client's bytes also go to
   * every other client, a chat room.
   *
   * @default {false}
   */
  broker?: boolean;
  /**
   * With `keepOpen`: clients served at once; the next is refused at once
   * (closed, counted in `refused`) through `serve()`'s admission.
   *
   * @default {100}
   */
  maxConns?: number;
  /**
   * Clients allowed, as CIDR ranges or addresses: all when absent. The
   * others are refused at once, through `serve()`'s `admit` (before they
   * take a slot, or a TLS handshake), counted in `denied`.
   */
  allow?: string[];
  /** Clients refused, as CIDR ranges or addresses; wins over `allow`. */
  deny?: string[];
  /** Never read clients' bytes out: discard them (ncat `--send-only`). */
  sendOnly?: boolean;
  /** Never send: stdin is not read (ncat `--recv-only`). */
  recvOnly?: boolean;
  /**
   * Milliseconds a read or write of a client may wait with no progress;
   * then that client is closed with `ETIMEDOUT` (ncat `-i`).
   */
  idleTimeout?: number;
  /**
   * With `keepOpen`: bytes that may wait for one client (stdin's and other
   * clients'). Past that, the sender waits for the client to catch up, at
   * most `stallTimeout`; a client still behind then is dropped, so that
   * one slow client never stalls the others for longer.
   *
   * @default {4194304}
   */
  queueBytes?: number;
  /**
   * With `keepOpen`: milliseconds a client with a full queue may hold up
   * the others before it is dropped.
   *
   * @default {1000}
   */
  stallTimeout?: number;
  /**
   * Serves TLS (`ncat --ssl -l`), as {@linkcode serve}'s `tls`: each
   * client's handshake runs before it is piped, within
   * `tls.handshakeTimeout`; a client whose handshake fails or stalls is
   * closed, counted in `failed` with a `failed` event, and the listener
   * goes on waiting (with or without `keepOpen`).
   */
  tls?: ServeTlsOptions;
  /** The bytes to send. @default {Deno.stdin} */
  stdin?: ListenInput;
  /**
   * Where received bytes go, or a function giving each client its own
   * output (to tag its bytes). With `keepOpen`, writes to it never
   * overlap. @default {Deno.stdout}
   */
  stdout?: ListenOutput | ((client: ListenClient<A>) => ListenOutput);
  /** Stops the listener, as {@linkcode Listener.shutdown}. */
  signal?: AbortSignal;
  /** Called with each {@linkcode ListenEvent}. */
  onEvent?: (event: ListenEvent<A>) => void;
}

/**
 * Options of {@linkcode listen} on a Unix socket (`nc -lU PATH`): `path`
 * in place of `hostname` and `port`. No `allow`/`deny` (clients of a Unix
 * socket have no address to match) and no `tls` (Deno has no TLS listener
 * there); giving any of them with `path` is `EINVAL`.
 *
 * @example
 * ```ts
 * import type { UnixListenOptions } from "@socket-programming/socket";
 *
 * const options: UnixListenOptions = { path: "/tmp/chat.sock", keepOpen: true };
 * console.log(options.path); // "/tmp/chat.sock"
 * ```
 */
export interface UnixListenOptions extends
  Omit<
    ListenOptions<UnixAddress>,
    "hostname" | "port" | "allow" | "deny" | "tls"
  > {
  /**
   * The socket file to make. It must not exist (`EADDRINUSE` otherwise,
   * as {@linkcode serve}'s): remove a file left by a server that crashed
   * first, with {@linkcode removeStaleSocket} (the CLI does). It is
   * removed when the listener ends.
   */
  path: string;
}

/** The counters of a {@linkcode Listener}. */
export interface ListenStats {
  /** Connections taken from the kernel. */
  accepted: number;
  /** Clients piped and done (dropped ones included). */
  served: number;
  /** Clients whose TLS handshake failed or stalled (never piped). */
  failed: number;
  /** Clients turned away past `maxConns` (or while one is served). */
  refused: number;
  /** Clients turned away by `allow`/`deny` (not in `refused`). */
  denied: number;
  /** Clients dropped for falling behind. */
  dropped: number;
  /** Clients piped now. */
  active: number;
}

/** How a {@linkcode Listener} ended. */
export interface ListenResult {
  /** The counters at the end. */
  stats: ListenStats;
  /** Bytes sent to clients (to all, with `keepOpen`). */
  sent: number;
  /** Bytes received from clients. */
  received: number;
  /**
   * Without `keepOpen`: the client's connection failed (a reset, a
   * timeout); everything received before was written out.
   */
  connectionError?: SocketError;
  /** Reading stdin failed. */
  stdinError?: Error;
  /** Writing stdout failed for another reason than its reader leaving. */
  stdoutError?: Error;
  /** Stdout's reader left (`| head`): that ended the listener. */
  stdoutClosed: boolean;
}

const DEFAULT_MAX_CONNS = 100;
const DEFAULT_QUEUE_BYTES = 4 * 1024 * 1024;
const DEFAULT_STALL_MS = 1000;
const CHUNK = 64 * 1024;

/** The options, checked once. */
interface Settings {
  keepOpen: boolean;
  broker: boolean;
  maxConns: number;
  rules: AccessRules;
  sendOnly: boolean;
  recvOnly: boolean;
  queueBytes: number;
  stallTimeout: number;
  stdin: ListenInput;
  stdout: (client: AnyClient) => ListenOutput;
  onEvent: (event: ListenEvent<SocketAddress>) => void;
}

/** What the hub handles inside: a client with either kind of address. */
type AnyClient = ListenClient<SocketAddress>;
type AnyInfo = ConnectionInfo<SocketAddress>;

/**
 * A listening `nc -l`, from {@linkcode listen}. Stop it with `shutdown()`,
 * its `signal`, or `await using`.
 *
 * @example
 * ```ts
 * import { listen } from "@socket-programming/socket";
 *
 * const stdin = { read: () => Promise.resolve(null), isTerminal: () => false };
 * await using listener = listen({ hostname: "127.0.0.1", stdin });
 * console.log(listener.addr.port > 0); // true
 * ```
 */
export class Listener<A extends SocketAddress = NetAddress>
  implements AsyncDisposable {
  /** The address bound, with the port chosen (or the socket's path). */
  readonly addr: A;
  /** Resolves when the listener has stopped and every client is closed. */
  readonly finished: Promise<ListenResult>;
  readonly #server: Server<SocketAddress>;
  readonly #hub: Hub;

  /** Use {@linkcode listen}. */
  constructor(server: Server<SocketAddress>, hub: Hub) {
    this.#server = server;
    this.#hub = hub;
    this.addr = server.addr as A;
    this.finished = server.finished.then(() => hub.result());
  }

  /** A snapshot of the counters. */
  get stats(): ListenStats {
    return this.#hub.stats(this.#server.stats);
  }

  /**
   * Stops accepting, closes every client, and resolves with the result
   * once all is released. Calling it again returns the same promise.
   *
   * @example
   * ```ts
   * import { listen } from "@socket-programming/socket";
   *
   * const stdin = { read: () => Promise.resolve(null), isTerminal: () => false };
   * const listener = listen({ hostname: "127.0.0.1", keepOpen: true, stdin });
   * const result = await listener.shutdown();
   * console.log(result.stats.accepted); // 0
   * ```
   *
   * @returns {@linkcode Listener.finished}.
   */
  shutdown(): Promise<ListenResult> {
    this.#hub.closeAll();
    this.#server.shutdown();
    return this.finished;
  }

  /** Stops the listener, for `await using`. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.shutdown();
  }
}

// The Unix overload comes first, as serve()'s: TypeScript types a hook's
// parameter from the first overload it tries, and an object without
// `path` fails that one before any hook is typed.
/**
 * Listens on a Unix socket (`nc -lU PATH`): `path` in place of `hostname`
 * and `port`, everything else as over TCP (keepOpen, broker, maxConns,
 * sendOnly/recvOnly, idleTimeout, the fast pipe). Clients have no address
 * there: events name them by `id`, with `remoteAddr.path` `""`. Deno needs
 * read, write and net permission for the path: `--allow-read=PATH
 * --allow-write=PATH --allow-net=unix:PATH` (or `-R -W -N`).
 *
 * The path must not exist, as for `nc -lU`: an existing file fails with
 * `EADDRINUSE`, whatever it is; `await removeStaleSocket(path)` first
 * removes a file a crashed server left (and only such a file). The file
 * is removed when the listener ends.
 *
 * @example A client sends a line over a Unix socket
 * ```ts
 * import { connect, listen } from "@socket-programming/socket";
 *
 * const dir = await Deno.makeTempDir();
 * const received: string[] = [];
 * const stdout = {
 *   write(p: Uint8Array) {
 *     received.push(new TextDecoder().decode(p));
 *     return Promise.resolve(p.length);
 *   },
 * };
 * const stdin = { read: () => Promise.resolve(null), isTerminal: () => false };
 * const listener = listen({ path: `${dir}/nc.sock`, stdin, stdout });
 * const conn = await connect(listener.addr);
 * await conn.sendAll("hello\n");
 * await conn.closeWrite();
 * await conn.recvAll(); // end of stream: stdin was empty
 * conn.close();
 * const result = await listener.finished; // the socket file is gone now
 * console.log(received.join(""), result.received); // "hello\n" 6
 * await Deno.remove(dir);
 * ```
 *
 * @param options The path, modes, stdin and stdout.
 * @returns The listener; its `finished` gives how it ended.
 * @throws {AddressInUseError} when a file exists at the path.
 * @throws {NotFoundError} when the path's directory does not exist.
 * @throws {PermissionDeniedError} for a missing permission, naming the
 *   flags.
 * @throws {InvalidArgumentError} for a bad path or option, or `hostname`,
 *   `port`, `allow`, `deny` or `tls` given with `path`.
 */
export function listen(options: UnixListenOptions): Listener<UnixAddress>;
/**
 * Listens, as `nc -l` does: waits for a client, then copies its bytes to
 * stdout and stdin to it, both at once (at full speed with the process's
 * own stdin and stdout), closing the sending side at the end of stdin,
 * and ends when the client has closed and every byte is written out. With
 * `keepOpen` it serves clients until shut down, stdin going to all of
 * them; with `broker`, clients also hear each other.
 *
 * @example A client sends a line and closes
 * ```ts
 * import { connect, listen } from "@socket-programming/socket";
 *
 * const received: string[] = [];
 * const stdout = {
 *   write(p: Uint8Array) {
 *     received.push(new TextDecoder().decode(p));
 *     return Promise.resolve(p.length);
 *   },
 * };
 * const stdin = { read: () => Promise.resolve(null), isTerminal: () => false };
 * const listener = listen({ hostname: "127.0.0.1", stdin, stdout });
 * const conn = await connect("127.0.0.1", listener.addr.port);
 * await conn.sendAll("hello\n");
 * await conn.closeWrite();
 * await conn.recvAll(); // end of stream: stdin was empty
 * conn.close();
 * const result = await listener.finished;
 * console.log(received.join(""), result.received); // "hello\n" 6
 * ```
 *
 * @param options Address, modes, access rules, stdin and stdout.
 * @returns The listener; its `finished` gives how it ended.
 * @throws {AddressInUseError} when the port is taken (`EADDRINUSE`).
 * @throws {InvalidArgumentError} for a bad option, before any socket is made.
 */
export function listen(options?: ListenOptions): Listener;
export function listen(
  options: ListenOptions | UnixListenOptions = {},
): Listener | Listener<UnixAddress> {
  checkOptions(options);
  // Inside, hooks see either kind of address.
  const all = options as ListenOptions<SocketAddress> & { path?: unknown };
  const path = all.path === undefined ? undefined : unixPath(all);
  const settings = check(all);
  const signal = checkSignal(all.signal);
  const hub = new Hub(settings);
  const common = {
    idleTimeout: all.idleTimeout,
    // Past maxConns (one without keepOpen), refused at once: no client
    // ever waits unseen.
    concurrency: settings.keepOpen ? settings.maxConns : 1,
    backlog: 0,
    onRefused: (info: AnyInfo, reason: RefusalReason) =>
      hub.refused(info, reason),
    // A handler never throws (the pipe reports through "closed"): what
    // fails here is a TLS handshake, before the client is piped.
    onError: (error: unknown, info: AnyInfo) =>
      settings.onEvent({
        event: "failed",
        client: clientOf(info),
        error: error instanceof Error ? error : new Error(String(error)),
      }),
  };
  const handler = (conn: Connection<SocketAddress>, info: AnyInfo) =>
    hub.serve(conn, info);
  const server: Server<SocketAddress> = path === undefined
    ? serve({
      ...common,
      hostname: all.hostname,
      port: all.port,
      tls: all.tls,
      // Outside allow/deny: refused before it takes a slot (or a
      // handshake).
      admit: settings.rules.allow.length + settings.rules.deny.length > 0
        ? (info) => isAllowed(settings.rules, info.remoteAddr.address)
        : undefined,
    }, handler)
    : serve({ ...common, path }, handler);
  hub.attach(server);
  const listener = new Listener<SocketAddress>(server, hub);
  // Not serve()'s signal: the listener's shutdown also closes its clients,
  // which the server's would wait for.
  stopOnAbort(signal, () => listener.shutdown(), server.finished);
  return listener as Listener | Listener<UnixAddress>;
}

/**
 * A Unix socket's path, checked, with what only TCP has refused: the
 * address options, the access rules (a client there has no address to
 * match) and TLS (Deno has no TLS listener on a Unix socket).
 */
function unixPath(
  options: ListenOptions<SocketAddress> & { path?: unknown },
): string {
  const path = validatePath(options.path);
  const why = {
    hostname: "a Unix socket's path replaces hostname and port",
    port: "a Unix socket's path replaces hostname and port",
    allow: "clients of a Unix socket have no address to match",
    deny: "clients of a Unix socket have no address to match",
    tls: "TLS is served over TCP only, not on a Unix socket's path",
  } as const;
  for (const name of Object.keys(why) as (keyof typeof why)[]) {
    if (options[name] !== undefined) {
      throw new InvalidArgumentError({
        reason: `invalid ${name} ${describe(options[name])}: ${why[name]}`,
      });
    }
  }
  return path;
}

function check(options: ListenOptions<SocketAddress>): Settings {
  const flag = (name: keyof ListenOptions<SocketAddress>) => {
    const value = options[name];
    if (value !== undefined && typeof value !== "boolean") {
      throw new InvalidArgumentError({
        reason: `invalid ${name} ${describe(value)}: expected a boolean`,
      });
    }
    return value === true;
  };
  const broker = flag("broker");
  const keepOpen = flag("keepOpen") || broker;
  const sendOnly = flag("sendOnly");
  const recvOnly = flag("recvOnly");
  if (sendOnly && recvOnly) {
    throw new InvalidArgumentError({
      reason: "invalid sendOnly and recvOnly: at most one may be set",
    });
  }
  const maxConns = checkCount(options.maxConns, "maxConns", 1);
  if (maxConns !== undefined && !keepOpen) {
    throw new InvalidArgumentError({
      reason:
        "invalid maxConns: it needs keepOpen (one client is served without)",
    });
  }
  checkDuration(options.idleTimeout, "idleTimeout");
  checkFunction(options.onEvent, "onEvent");
  const stdout = options.stdout ?? Deno.stdout;
  if (typeof stdout !== "function") checkOutput(stdout);
  return {
    keepOpen,
    broker,
    maxConns: maxConns ?? DEFAULT_MAX_CONNS,
    rules: {
      allow: ranges(options.allow, "allow"),
      deny: ranges(options.deny, "deny"),
    },
    sendOnly,
    recvOnly,
    queueBytes: checkCount(options.queueBytes, "queueBytes", 1) ??
      DEFAULT_QUEUE_BYTES,
    stallTimeout: checkDuration(options.stallTimeout, "stallTimeout") ??
      DEFAULT_STALL_MS,
    stdin: checkInput(options.stdin),
    stdout: typeof stdout === "function" ? stdout : () => checkOutput(stdout),
    onEvent: options.onEvent ?? (() => {}),
  };
}

function ranges(value: unknown, name: string): ReturnType<typeof parseCidr>[] {
  if (value === undefined) return [];
  if (!Array.isArray(value)) {
    throw new InvalidArgumentError({
      reason: `invalid ${name} ${describe(value)}: expected an array of ranges`,
    });
  }
  return value.map(parseCidr);
}

function checkInput(value: unknown): ListenInput {
  if (value === undefined) return Deno.stdin;
  const input = value as Partial<ListenInput>;
  if (
    typeof input?.read !== "function" || typeof input.isTerminal !== "function"
  ) {
    throw new InvalidArgumentError({
      reason: `invalid stdin ${
        describe(value)
      }: expected read() and isTerminal()`,
    });
  }
  return value as ListenInput;
}

function checkOutput(value: unknown): ListenOutput {
  if (typeof (value as Partial<ListenOutput>)?.write !== "function") {
    throw new InvalidArgumentError({
      reason: `invalid stdout ${describe(value)}: expected write()`,
    });
  }
  return value as ListenOutput;
}

function clientOf(info: AnyInfo): AnyClient {
  return { id: info.id, remoteAddr: info.remoteAddr };
}

// The hub: who is connected, and what goes where --------------------------

/** A connected client: its connection and what waits to be sent to it. */
interface Peer {
  client: AnyClient;
  conn: Connection<SocketAddress>;
  queue: Queue;
  dropped: boolean;
}

/** The state of one listener's clients, stdin and stdout. */
class Hub {
  readonly #s: Settings;
  readonly #peers = new Set<Peer>();
  readonly #counts = { served: 0, denied: 0, dropped: 0 };
  readonly #result: Omit<ListenResult, "stats"> = {
    sent: 0,
    received: 0,
    stdoutClosed: false,
  };
  /** Serializes writes to stdout, so clients' chunks never interleave. */
  #writing: Promise<unknown> = Promise.resolve();
  /** Stdin read with no client to take it: the next client's first. */
  #held: Uint8Array[] = [];
  #stdinStarted = false;
  #stdinEnded = false;
  #stopped = false;
  /** Wakes the stdin loop when a client arrives. */
  #arrival: PromiseWithResolvers<void> | undefined;
  #server: Server<SocketAddress> | undefined;

  constructor(settings: Settings) {
    this.#s = settings;
  }

  /** The server whose handler this is: set before any client arrives. */
  attach(server: Server<SocketAddress>): void {
    this.#server = server;
  }

  /** The listener's counters, from the server's and the hub's own. */
  stats(server: ServerStats): ListenStats {
    return {
      ...this.#counts,
      accepted: server.accepted,
      failed: server.failed,
      // The server counts denials as refusals; listen tells them apart.
      refused: server.refused - this.#counts.denied,
      active: this.#peers.size,
    };
  }

  result(): ListenResult {
    // deno-lint-ignore no-non-null-assertion -- attached before any client
    return { ...this.#result, stats: this.stats(this.#server!.stats) };
  }

  /** A client the server refused: denied by the rules, or past maxConns. */
  refused(info: AnyInfo, reason: RefusalReason): void {
    const client = clientOf(info);
    if (reason === "admit") {
      this.#counts.denied++;
      this.#s.onEvent({ event: "denied", client });
      return;
    }
    const { keepOpen, maxConns } = this.#s;
    this.#s.onEvent({
      event: "refused",
      client,
      maxConns: keepOpen ? maxConns : 1,
    });
  }

  /** The handler of every admitted connection. */
  async serve(
    conn: Connection<SocketAddress>,
    info: AnyInfo,
  ): Promise<void> {
    if (this.#stopped) return;
    const peer: Peer = {
      client: clientOf(info),
      conn,
      queue: new Queue(this.#s.queueBytes),
      dropped: false,
    };
    this.#join(peer);
    let result: PipeResult;
    try {
      result = await pipe(conn, {
        stdin: this.#inputFor(peer),
        stdout: this.#outputFor(peer),
      });
    } finally {
      this.#peers.delete(peer);
      peer.queue.end();
    }
    this.#counts.served++;
    this.#leave(peer, result);
    if (!this.#s.keepOpen || result.stdoutClosed) {
      this.#stopped = true;
      // From inside the handler: resolves once the server stops accepting.
      this.closeAll();
      await this.#server?.shutdown();
    }
  }

  #join(peer: Peer): void {
    this.#peers.add(peer);
    this.#s.onEvent({ event: "connected", client: peer.client });
    if (!this.#s.keepOpen || this.#s.recvOnly) return;
    for (const chunk of this.#held) peer.queue.push(chunk);
    this.#held = [];
    if (this.#stdinEnded) return;
    this.#arrival?.resolve();
    if (!this.#stdinStarted) {
      this.#stdinStarted = true;
      this.#readStdin().catch((error) => {
        this.#result.stdinError ??= error instanceof Error
          ? error
          : new Error(String(error));
      });
    }
  }

  #leave(peer: Peer, result: PipeResult): void {
    this.#result.received += result.received;
    if (!this.#s.keepOpen) this.#result.sent += result.sent;
    if (result.stdinError) this.#result.stdinError ??= result.stdinError;
    if (result.stdoutError) this.#result.stdoutError ??= result.stdoutError;
    if (result.stdoutClosed) this.#result.stdoutClosed = true;
    // Dropped, or closed by the listener's stop (every client still here
    // then was): the error its pipe ended with is of our making.
    const error = peer.dropped || this.#stopped
      ? undefined
      : result.connectionError;
    if (!this.#s.keepOpen && error) this.#result.connectionError = error;
    this.#s.onEvent({
      event: "closed",
      client: peer.client,
      sent: result.sent,
      received: result.received,
      ...(error ? { error } : {}),
    });
  }

  /** Closes every client (the shutdown, or stdout's reader left). */
  closeAll(): void {
    this.#stopped = true;
    this.#arrival?.resolve();
    for (const peer of this.#peers) {
      peer.queue.end();
      peer.conn.close();
    }
  }

  /**
   * What the pipe sends to a client. Without keepOpen, stdin itself, so
   * the pipe's fast path applies. recvOnly: nothing, never ending (the
   * client is not half-closed: ncat's clients end when they read EOF).
   */
  #inputFor(peer: Peer): ListenInput {
    if (this.#s.recvOnly) return peer.queue;
    return this.#s.keepOpen ? peer.queue : this.#s.stdin;
  }

  /** Where the pipe writes what a client sends. */
  #outputFor(peer: Peer): ListenOutput {
    const { sendOnly, broker, keepOpen } = this.#s;
    const own = sendOnly ? undefined : this.#s.stdout(peer.client);
    if (!keepOpen && own !== undefined) return own;
    return {
      write: async (p) => {
        if (broker) await this.#relay(peer, p);
        if (own !== undefined) await this.#writeOut(own, p);
        return p.length;
      },
    };
  }

  /** One client's bytes to every other client. */
  #relay(from: Peer, p: Uint8Array): Promise<void> {
    const chunk = p.slice();
    return this.#fanOut(
      [...this.#peers].filter((peer) => peer !== from),
      chunk,
    );
  }

  /**
   * Queues a chunk for each peer. A peer whose queue is past its bound
   * holds the sender back until it catches up, for at most stallTimeout;
   * then it is dropped and the others go on.
   */
  async #fanOut(peers: Peer[], chunk: Uint8Array): Promise<void> {
    const behind = peers.filter((peer) =>
      !peer.dropped && !peer.queue.push(chunk)
    );
    if (behind.length === 0) return;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const late = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, this.#s.stallTimeout);
    });
    await Promise.race([
      Promise.all(behind.map((peer) => peer.queue.caughtUp())),
      late,
    ]);
    clearTimeout(timer);
    for (const peer of behind) if (peer.queue.full) this.#drop(peer);
  }

  #writeOut(output: ListenOutput, p: Uint8Array): Promise<void> {
    const write = this.#writing.then(async () => {
      let written = 0;
      while (written < p.length) {
        written += await output.write(p.subarray(written));
      }
    });
    // The chain goes on after a failure; the writer gets it.
    this.#writing = write.catch(() => {});
    return write;
  }

  /** Drops a client that fell too far behind. */
  #drop(peer: Peer): void {
    if (peer.dropped) return;
    peer.dropped = true;
    this.#counts.dropped++;
    this.#s.onEvent({
      event: "dropped",
      client: peer.client,
      queued: peer.queue.bytes,
    });
    peer.queue.end();
    peer.conn.close();
  }

  /**
   * Stdin to every connected client (keepOpen). Read only while a client
   * is connected, so that input waits for the first client instead of
   * being lost; what was read as the last one left goes to the next.
   */
  async #readStdin(): Promise<void> {
    const buffer = new Uint8Array(CHUNK);
    while (!this.#stopped) {
      if (this.#peers.size === 0) {
        this.#arrival = Promise.withResolvers();
        await this.#arrival.promise;
        continue;
      }
      const n = await this.#s.stdin.read(buffer);
      if (n === null) break;
      if (n === 0) continue;
      const chunk = buffer.slice(0, n);
      if (this.#peers.size === 0) this.#held.push(chunk);
      await this.#fanOut([...this.#peers], chunk);
      this.#result.sent += n;
    }
    // Clients are not half-closed: with keepOpen the listener outlives
    // stdin, and in a broker other clients still talk to them.
    this.#stdinEnded = true;
  }
}

/**
 * Bytes waiting to be sent to one client, bounded: a stand-in stdin for
 * that client's pipe. `end()` makes its reads return end of input.
 */
class Queue implements ListenInput {
  readonly #limit: number;
  readonly #chunks: Uint8Array[] = [];
  #offset = 0;
  #bytes = 0;
  #ended = false;
  #waiter: (() => void) | undefined;
  #drained: PromiseWithResolvers<void> | undefined;

  constructor(limit: number) {
    this.#limit = limit;
  }

  /** Bytes queued now. */
  get bytes(): number {
    return this.#bytes;
  }

  /** Past its bound: the sender should wait for it. */
  get full(): boolean {
    return !this.#ended && this.#bytes > this.#limit;
  }

  /** Adds a chunk (not copied); false when the queue is now past its bound. */
  push(chunk: Uint8Array): boolean {
    if (this.#ended) return true;
    this.#chunks.push(chunk);
    this.#bytes += chunk.length;
    this.#wake();
    return !this.full;
  }

  /** Resolves once the queue is within its bound again, or has ended. */
  caughtUp(): Promise<void> {
    if (!this.full) return Promise.resolve();
    this.#drained ??= Promise.withResolvers();
    return this.#drained.promise;
  }

  end(): void {
    this.#ended = true;
    this.#wake();
    this.#checkDrained();
  }

  #checkDrained(): void {
    if (this.#drained === undefined || this.full) return;
    this.#drained.resolve();
    this.#drained = undefined;
  }

  async read(p: Uint8Array): Promise<number | null> {
    while (this.#chunks.length === 0) {
      if (this.#ended) return null;
      await new Promise<void>((resolve) => this.#waiter = resolve);
    }
    if (this.#ended) return null;
    const head = this.#chunks[0];
    const n = Math.min(p.length, head.length - this.#offset);
    p.set(head.subarray(this.#offset, this.#offset + n));
    this.#offset += n;
    this.#bytes -= n;
    if (this.#offset === head.length) {
      this.#chunks.shift();
      this.#offset = 0;
    }
    this.#checkDrained();
    return n;
  }

  isTerminal(): boolean {
    return false;
  }

  #wake(): void {
    const waiter = this.#waiter;
    this.#waiter = undefined;
    waiter?.();
  }
}
