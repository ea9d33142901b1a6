/**
 * Socket programming for Deno, after the tutorial "Python Socket
 * Programming": resolve a host, connect, send all, receive, and serve with a
 * backlog-aware accept loop; typed errors, timeouts and cancellation
 * throughout.
 *
 * | The tutorial                   | This module                            |
 * | ------------------------------ | -------------------------------------- |
 * | `socket.gethostbyname(host)`   | {@linkcode gethostbyname}, {@linkcode resolve} |
 * | `s.connect((host, port))`      | {@linkcode connect}                    |
 * | `s.sendall(data)`, `s.recv(n)` | {@linkcode Connection}                 |
 * | `bind`, `listen(5)`, `accept`  | {@linkcode serve}                      |
 * | `AF_UNIX` sockets (`nc -U`)    | `connect({ path })`, `serve({ path })`, `listen({ path })` |
 * | "is anything listening?"       | {@linkcode scan}, {@linkcode parsePorts} |
 * | `nc -l`, `ncat -k --broker`    | {@linkcode listen}                     |
 * | `socket.error`, `gaierror`     | {@linkcode SocketError}, {@linkcode ResolveError} |
 * | `ssl.wrap_socket`, STARTTLS    | `connect(…, { tls })`, `serve({ tls }, …)`, {@linkcode startTls} |
 *
 * @example The tutorial's server and client in one program
 * ```ts
 * import { connect, serve } from "@socket-programming/socket";
 *
 * await using server = serve(
 *   { hostname: "127.0.0.1", backlog: 5 },
 *   (conn) => conn.sendAll("Thank you for connecting"),
 * );
 * await using client = await connect("127.0.0.1", server.addr.port);
 * const reply = await client.recv(1024);
 * console.log(new TextDecoder().decode(reply!)); // "Thank you for connecting"
 * ```
 *
 * @module
 */

export {
  AddressInUseError,
  type AttemptFailure,
  CancelledError,
  CertificateError,
  type CertificateErrorCode,
  ConnectionRefusedError,
  ConnectionResetError,
  InvalidArgumentError,
  MessageTooLargeError,
  NotFoundError,
  PermissionDeniedError,
  ResolveError,
  SocketClosedError,
  SocketError,
  type SocketErrorCode,
  type SocketErrorOptions,
  type SocketOp,
  TimeoutError,
  TlsError,
  UnreachableError,
} from "./lib/errors.ts";
export {
  type Family,
  formatAddress,
  type IpAddress,
  ipFamily,
  isUnixAddress,
  type NetAddress,
  parsePort,
  pythonAddress,
  type SocketAddress,
  type UnixAddress,
  validateHost,
  validatePath,
  validatePort,
} from "./lib/address.ts";
export {
  gethostbyname,
  type NameServer,
  resolve,
  type ResolveOptions,
} from "./lib/resolve.ts";
export {
  Connection,
  type ConnectionOptions,
  type RecvAllOptions,
  type TlsInfo,
} from "./lib/connection.ts";
export {
  type AttemptEvent,
  connect,
  type ConnectOptions,
  type HandshakeEvent,
  type UnixConnectOptions,
} from "./lib/connect.ts";
export {
  type ClientTlsOptions,
  type ServeTlsOptions,
  startTls,
  type StartTlsOptions,
} from "./lib/tls.ts";
export {
  type ConnectionInfo,
  type Handler,
  type RefusalReason,
  removeStaleSocket,
  serve,
  type ServeOptions,
  type Server,
  type ServerStats,
  type UnixServeOptions,
} from "./lib/server.ts";
export {
  parsePorts,
  type PortResult,
  type PortState,
  scan,
  type ScanOptions,
} from "./lib/scan.ts";
export {
  listen,
  type ListenClient,
  Listener,
  type ListenEvent,
  type ListenInput,
  type ListenOptions,
  type ListenOutput,
  type ListenResult,
  type ListenStats,
  type UnixListenOptions,
} from "./lib/listen.ts";
