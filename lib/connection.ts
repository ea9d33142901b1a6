/**
 * An open connection (TCP, or a Unix socket): the tutorial's `sendall`,
 * `recv` and `close`.
 *
 * @module
 */

import { concat } from "./_bytes.ts";
import { describe } from "./_describe.ts";
import {
  type NetAddress,
  peerFields,
  type SocketAddress,
  toSocketAddress,
} from "./address.ts";
import { type ErrorContext, fromRuntimeError } from "./_error_mapping.ts";
import { watchIdle } from "./_idle.ts";
import {
  InvalidArgumentError,
  MessageTooLargeError,
  SocketClosedError,
  type SocketOp,
  TimeoutError,
} from "./errors.ts";
import { checkCount, checkDuration, checkOptions } from "./_validate.ts";

/** Options of a {@linkcode Connection}. */
export interface ConnectionOptions {
  /**
   * Milliseconds a `recv` or a write may wait with no progress before the
   * connection is closed and the call fails with `ETIMEDOUT`. A pending
   * read cannot be cancelled any other way, so the connection is not usable
   * after that (unlike Python's `settimeout`). No timeout when not given.
   */
  idleTimeout?: number;
  /**
   * Sends small writes at once (`TCP_NODELAY`), as Deno does by default.
   * TCP only: a Unix socket has no such delay.
   *
   * @default {true}
   */
  noDelay?: boolean;
  /**
   * Sends TCP keep-alive probes on an idle connection. TCP only.
   *
   * @default {false}
   */
  keepAlive?: boolean;
}

/** Options of {@linkcode Connection.recvAll}. */
export interface RecvAllOptions {
  /**
   * The most bytes to accept; past it, `EMSGSIZE` and the connection is
   * closed.
   *
   * @default {67108864} (64 MiB)
   */
  maxBytes?: number;
}

/**
 * {@linkcode ConnectionOptions}, checked: made once by {@linkcode connect}
 * or {@linkcode serve}, so that no accepted connection checks them again.
 * Internal: `mod.ts` does not re-export it.
 */
export interface ConnectionSettings {
  /** As {@linkcode ConnectionOptions.idleTimeout}. */
  readonly idleTimeout: number | undefined;
  /** As {@linkcode ConnectionOptions.noDelay}, defaulted. */
  readonly noDelay: boolean;
  /** As {@linkcode ConnectionOptions.keepAlive}, defaulted. */
  readonly keepAlive: boolean;
}

/** The records {@linkcode connectionSettings} made: trusted as they are. */
const checkedSettings = new WeakSet<ConnectionOptions>();

/**
 * Checks connection options once into a record; a record it made passes
 * through unchecked. Internal: for {@linkcode connect} and {@linkcode serve}.
 *
 * @param options The caller's options, or a record made here.
 * @returns The record.
 * @throws {InvalidArgumentError} for a bad option.
 */
export function connectionSettings(
  options: ConnectionOptions,
): ConnectionSettings {
  if (checkedSettings.has(options)) return options as ConnectionSettings;
  checkOptions(options);
  const settings: ConnectionSettings = Object.freeze({
    idleTimeout: checkDuration(options.idleTimeout, "idleTimeout"),
    noDelay: options.noDelay !== false,
    keepAlive: options.keepAlive === true,
  });
  checkedSettings.add(settings);
  return settings;
}

/**
 * What a TLS handshake agreed, on {@linkcode Connection.tls}. Deno reports
 * the ALPN protocol only; the protocol version and cipher are not exposed.
 */
export interface TlsInfo {
  /** The ALPN protocol agreed (`"h2"`, `"http/1.1"`), or `null` for none. */
  alpnProtocol: string | null;
  /**
   * The name the peer's certificate was verified for (client side); absent
   * on a server's connection.
   */
  serverName?: string;
}

/**
 * Internal hooks: for lib/tls.ts, mark a connection as TLS and take the
 * runtime's connection out of one for `Deno.startTls` (which consumes it);
 * for lib/server.ts, send a refusal.
 */
export let connectionInternals: {
  setTls: (conn: Connection<SocketAddress>, info: TlsInfo) => void;
  take: (conn: Connection<SocketAddress>) => Deno.TcpConn;
  settings: (conn: Connection<SocketAddress>) => ConnectionSettings;
  /** A refusal's send: see `Connection.#sendFresh`. */
  sendFresh: (
    conn: Connection<SocketAddress>,
    bytes: Uint8Array,
    whole: boolean,
  ) => Promise<void>;
};

/** A plain TCP connection: the only kind with no-delay and keep-alive. */
function isPlainTcp(
  conn: Deno.TcpConn | Deno.TlsConn | Deno.UnixConn,
): conn is Deno.TcpConn {
  return "setNoDelay" in conn;
}

const DEFAULT_RECV_SIZE = 65536;
const MAX_RECV_BUFFER = 16 * 1024 * 1024;
const DEFAULT_RECV_ALL_LIMIT = 64 * 1024 * 1024;
const encoder = new TextEncoder();

/**
 * An open connection, from {@linkcode connect} or handed to a
 * {@linkcode serve} handler. Text is sent as UTF-8. Closing twice is
 * harmless; using a closed connection throws `EBADF`.
 *
 * `A` is the kind of address its ends have: {@linkcode NetAddress} over
 * TCP (the default), `UnixAddress` over a Unix socket (from
 * `connect({ path })` or `serve({ path })`).
 *
 * @example Send a request, read the answer
 * ```ts
 * import { connect, serve } from "@socket-programming/socket";
 *
 * await using server = serve({ hostname: "127.0.0.1" }, async (conn) => {
 *   await conn.sendAll("Thank you for connecting");
 * });
 * await using conn = await connect("127.0.0.1", server.addr.port);
 * const greeting = await conn.recv(1024);
 * console.log(new TextDecoder().decode(greeting!)); // "Thank you for connecting"
 * ```
 */
export class Connection<A extends SocketAddress = NetAddress>
  implements AsyncDisposable, Disposable {
  readonly #conn: Deno.TcpConn | Deno.TlsConn | Deno.UnixConn;
  readonly #idleTimeout: number | undefined;
  readonly #settings: ConnectionSettings;
  #closed = false;
  #tls: TlsInfo | undefined;
  // Made on first read: a server that never looks at them keeps two
  // objects less per connection.
  #localAddr: A | undefined;
  #remoteAddr: A | undefined;

  /**
   * Wraps a connection from Deno's `Deno.connect` or `listener.accept()`
   * (a TLS one from `Deno.connectTls` or `Deno.listenTls` too: no-delay and
   * keep-alive then stay as Deno set them).
   *
   * `A` must match the kind of `conn` (`UnixAddress` for a
   * `Deno.UnixConn`): {@linkcode connect} and {@linkcode serve} see to it.
   *
   * @param conn The connection; the new object owns it.
   * @param options Idle timeout, no-delay and keep-alive (TCP only).
   */
  constructor(
    conn: Deno.TcpConn | Deno.TlsConn | Deno.UnixConn,
    options: ConnectionOptions = {},
  ) {
    const settings = connectionSettings(options);
    this.#settings = settings;
    this.#idleTimeout = settings.idleTimeout;
    this.#conn = conn;
    // Plain TCP only: a Unix socket has no such options, and TLS keeps
    // what Deno set.
    if (isPlainTcp(conn)) {
      if (!settings.noDelay) conn.setNoDelay(false);
      if (settings.keepAlive) conn.setKeepAlive(true);
    }
  }

  static {
    connectionInternals = {
      setTls: (conn, info) => {
        conn.#tls = Object.freeze({ ...info });
      },
      take: (conn) => {
        conn.#checkOpen("handshake");
        const inner = conn.#conn;
        if (inner.localAddr.transport === "unix") {
          throw new InvalidArgumentError({
            reason: "invalid conn: TLS runs over TCP, not a Unix socket",
          });
        }
        if (!isPlainTcp(inner) || conn.#tls !== undefined) {
          throw new InvalidArgumentError({
            reason: "invalid conn: TLS is already on",
          });
        }
        // The new connection owns the socket: this one is closed, not it.
        conn.#closed = true;
        return inner;
      },
      settings: (conn) => conn.#settings,
      sendFresh: (conn, bytes, whole) => conn.#sendFresh(bytes, whole),
    };
  }

  /**
   * The local end: this machine's address and port, or the socket's path
   * (`""` on a Unix socket's client end).
   */
  get localAddr(): A {
    return this.#localAddr ??= toSocketAddress(this.#conn.localAddr) as A;
  }

  /**
   * The remote end: the peer's address and port, or the socket's path
   * (`""` for a client accepted on a Unix socket: it has no name).
   */
  get remoteAddr(): A {
    return this.#remoteAddr ??= toSocketAddress(this.#conn.remoteAddr) as A;
  }

  /**
   * What the TLS handshake agreed (the ALPN protocol), or `undefined` on a
   * plain TCP connection.
   *
   * @example
   * ```ts
   * import { connect, serve } from "@socket-programming/socket";
   *
   * await using server = serve({ hostname: "127.0.0.1" }, () => {});
   * await using conn = await connect("127.0.0.1", server.addr.port);
   * console.log(conn.tls); // undefined: plain TCP
   * ```
   */
  get tls(): TlsInfo | undefined {
    return this.#tls;
  }

  /** Whether {@linkcode Connection.close} has been called. */
  get closed(): boolean {
    return this.#closed;
  }

  /**
   * The bytes from the peer as a stream, for piping. Reading it to the end
   * closes the connection.
   */
  get readable(): ReadableStream<Uint8Array> {
    return this.#conn.readable;
  }

  /** A stream of bytes to the peer, for piping. */
  get writable(): WritableStream<Uint8Array> {
    return this.#conn.writable;
  }

  /**
   * Writes once, as Python's `send`: may write only part of the data, and
   * returns how much. Use {@linkcode Connection.sendAll} to send it all.
   *
   * @param data Bytes, or text to send as UTF-8.
   * @returns The number of bytes written.
   */
  async send(data: Uint8Array | string): Promise<number> {
    const bytes = toBytes(data);
    return await this.#io("send", () => this.#conn.write(bytes));
  }

  /**
   * Writes every byte, calling write again after each partial write, as
   * Python's `sendall`. Resolves once all of it is handed to the kernel.
   *
   * @param data Bytes, or text to send as UTF-8.
   */
  sendAll(data: Uint8Array | string): Promise<void> {
    let bytes: Uint8Array;
    try {
      bytes = toBytes(data);
      if (bytes.length === 0) {
        this.#checkOpen("send");
        return Promise.resolve();
      }
    } catch (error) {
      return Promise.reject(error);
    }
    // Most sends go in one write: no async frame for them (a server's
    // greeting is one per connection).
    return this.#io("send", () => this.#conn.write(bytes)).then((sent) =>
      sent < bytes.length ? this.#sendRest(bytes, sent) : undefined
    );
  }

  /**
   * A send on a plain TCP or Unix socket nothing was written to yet, as a
   * server's refusal (not over TLS, where the first write waits for the
   * handshake). Its first write never waits (the socket takes what fits),
   * so it goes without the idle clock, whose watch showed in the server's
   * CPU when thousands were refused at once. With `whole`, the rest of a
   * message too long for that write follows as in `sendAll`, each write
   * within the idle timeout; without, the rest is dropped.
   */
  #sendFresh(bytes: Uint8Array, whole: boolean): Promise<void> {
    let first: Promise<number>;
    try {
      this.#checkOpen("send");
      first = this.#conn.write(bytes);
    } catch (error) {
      return Promise.reject(this.#error(error, "send"));
    }
    return first.then(
      (sent) =>
        whole && sent < bytes.length ? this.#sendRest(bytes, sent) : undefined,
      (error) => {
        throw this.#error(error, "send");
      },
    );
  }

  /** The rest of a `sendAll` (or `#sendFresh`) the first write left. */
  async #sendRest(bytes: Uint8Array, sent: number): Promise<void> {
    while (sent < bytes.length) {
      sent += await this.#io(
        "send",
        () => this.#conn.write(bytes.subarray(sent)),
      );
    }
  }

  /**
   * Reads what has arrived, at most `maxBytes`, waiting if nothing has yet,
   * as Python's `recv`. End of stream is `null` (Python's `b''`), and stays
   * so on every later call.
   *
   * @param maxBytes The most bytes to return, ≥ 1 (a read returns at most
   *   16 MiB whatever the size asked).
   * @default {65536}
   * @returns The bytes (never empty), or `null` at end of stream.
   */
  recv(maxBytes: number = DEFAULT_RECV_SIZE): Promise<Uint8Array | null> {
    try {
      checkCount(maxBytes, "maxBytes", 1);
    } catch (error) {
      return Promise.reject(error);
    }
    // A buffer of any size asked for could fail to allocate; one read never
    // returns more than the socket's buffer holds anyway. A fresh buffer
    // per call: the caller owns what it gets, never overwritten later.
    const buffer = new Uint8Array(Math.min(maxBytes, MAX_RECV_BUFFER));
    if (this.#closed || this.#idleTimeout !== undefined) {
      return this.#read(buffer).then((n) => received(buffer, n));
    }
    // The common case in one reaction, as in #read: with thousands of
    // connections idle in recv, each reaction and promise counts.
    return this.#conn.read(buffer).then(
      (n) =>
        n === 0
          // Not the end of stream: read again, as #read does.
          ? this.#read(buffer).then((m) => received(buffer, m))
          : received(buffer, n),
      (error) => {
        throw this.#error(error, "recv");
      },
    );
  }

  /**
   * Reads what has arrived into `buffer`, as Python's `recv_into`: no new
   * buffer per call, so a loop that reuses one buffer moves bytes as fast
   * as a raw `Deno.TcpConn` read loop. End of stream is `null`, and stays
   * so on every later call.
   *
   * @example Count the bytes of a stream with one buffer
   * ```ts
   * import { connect, serve } from "@socket-programming/socket";
   *
   * await using server = serve(
   *   { hostname: "127.0.0.1" },
   *   (conn) => conn.sendAll("Thank you for connecting"),
   * );
   * await using conn = await connect("127.0.0.1", server.addr.port);
   * const buffer = new Uint8Array(65536);
   * let total = 0;
   * let n: number | null;
   * while ((n = await conn.recvInto(buffer)) !== null) total += n;
   * console.log(total); // 24
   * ```
   *
   * @param buffer Where the bytes go, from its start; not empty.
   * @returns How many bytes were read (≥ 1), or `null` at end of stream.
   */
  recvInto(buffer: Uint8Array): Promise<number | null> {
    if (!(buffer instanceof Uint8Array) || buffer.length === 0) {
      return Promise.reject(
        new InvalidArgumentError({
          reason: `invalid buffer ${
            describe(buffer)
          }: expected a non-empty Uint8Array`,
        }),
      );
    }
    return this.#read(buffer);
  }

  /**
   * One read of at least a byte, or `null` at end of stream. Plain promise
   * chains, no async frames: a connection idle in `recv` holds a promise
   * and a reaction or two, which counts with thousands of them.
   */
  #read(buffer: Uint8Array): Promise<number | null> {
    // Deno may report a read of 0 bytes that is not the end of stream.
    const again = (n: number | null) => n === 0 ? this.#read(buffer) : n;
    if (this.#closed || this.#idleTimeout !== undefined) {
      return this.#io("recv", () => this.#conn.read(buffer)).then(again);
    }
    // The common case in one reaction: the read, its error mapped.
    return this.#conn.read(buffer).then(again, (error) => {
      throw this.#error(error, "recv");
    });
  }

  /**
   * Reads until the peer closes its side, and returns all of it.
   *
   * @param options The size limit.
   * @returns Everything the peer sent.
   * @throws {MessageTooLargeError} past `maxBytes`.
   */
  async recvAll(options: RecvAllOptions = {}): Promise<Uint8Array> {
    checkOptions(options);
    const limit = checkCount(options.maxBytes, "maxBytes", 0) ??
      DEFAULT_RECV_ALL_LIMIT;
    const chunks: Uint8Array[] = [];
    // One buffer for every read; each chunk keeps only the bytes it got.
    const buffer = new Uint8Array(DEFAULT_RECV_SIZE);
    let total = 0;
    while (true) {
      const n = await this.recvInto(buffer);
      if (n === null) break;
      const chunk = buffer.slice(0, n);
      total += n;
      if (total > limit) {
        this.close();
        throw new MessageTooLargeError({
          ...this.#where("recv"),
          reason: `more than ${limit} bytes`,
        });
      }
      chunks.push(chunk);
    }
    return concat(chunks, total);
  }

  /**
   * Closes the sending side (`shutdown(SHUT_WR)`): the peer reads end of
   * stream, and this side can still receive.
   */
  async closeWrite(): Promise<void> {
    await this.#io("shutdown", () => this.#conn.closeWrite());
  }

  /** Closes the connection. Closing again does nothing. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    try {
      this.#conn.close();
    } catch {
      // Already closed by the runtime: a readable read to its end does that.
    }
  }

  /** Closes the connection, for `using`. */
  [Symbol.dispose](): void {
    this.close();
  }

  /** Closes the connection, for `await using`. */
  [Symbol.asyncDispose](): Promise<void> {
    this.close();
    return Promise.resolve();
  }

  /** Runs one read or write, with the idle timeout and the module's errors. */
  #io<T>(action: SocketOp, op: () => Promise<T>): Promise<T> {
    try {
      this.#checkOpen(action);
      if (this.#idleTimeout !== undefined) return this.#timedIo(action, op);
      // Not async here: a connection that waits in recv holds one promise
      // less, which counts with thousands of idle connections.
      return op().catch((error) => {
        throw this.#error(error, action);
      });
    } catch (error) {
      // A closed connection's own error passes through #error unchanged.
      return Promise.reject(this.#error(error, action));
    }
  }

  /**
   * {@linkcode Connection.#io} with the idle timeout. A promise chain, not
   * an async function: this runs for every send and receive.
   */
  #timedIo<T>(action: SocketOp, op: () => Promise<T>): Promise<T> {
    let timedOut = false;
    // deno-lint-ignore no-non-null-assertion -- only called with the timeout
    const watch = watchIdle(this.#idleTimeout!, () => {
      timedOut = true;
      this.close();
    });
    let pending: Promise<T>;
    try {
      pending = op();
    } catch (error) {
      watch.end();
      throw error;
    }
    return pending.then((result) => {
      watch.end();
      if (timedOut) throw this.#timeout(action);
      return result;
    }, (error) => {
      watch.end();
      throw timedOut ? this.#timeout(action) : this.#error(error, action);
    });
  }

  #checkOpen(action: SocketOp): void {
    if (this.#closed) {
      throw new SocketClosedError({
        ...this.#where(action),
        reason: "the connection is closed",
      });
    }
  }

  #error(error: unknown, action: SocketOp) {
    return fromRuntimeError(error, this.#where(action));
  }

  #timeout(action: SocketOp): TimeoutError {
    return new TimeoutError({
      ...this.#where(action),
      reason: `no progress in ${this.#idleTimeout} ms`,
    });
  }

  /** The fields of an error of `op` on this connection. */
  #where(op: SocketOp): ErrorContext {
    return { op, ...peerFields(this.remoteAddr, this.localAddr) };
  }
}

/** What `recv` returns for a read of `n` bytes: `null` at end of stream. */
function received(buffer: Uint8Array, n: number | null): Uint8Array | null {
  return n === null ? null : buffer.subarray(0, n);
}

function toBytes(data: Uint8Array | string): Uint8Array {
  if (typeof data === "string") return encoder.encode(data);
  if (data instanceof Uint8Array) return data;
  throw new InvalidArgumentError({
    reason: `invalid data ${describe(data)}: expected a Uint8Array or a string`,
  });
}
