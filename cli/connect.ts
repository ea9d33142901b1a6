/**
 * `connect HOST [PORT]`: the tutorial's connect script, with `--send` for
 * its "now we need to send data" step.
 *
 * @module
 */

import { type AttemptEvent, connect } from "../lib/connect.ts";
import type { Connection } from "../lib/connection.ts";
import {
  isUnixAddress,
  peerFields,
  type SocketAddress,
} from "../lib/address.ts";
import { hostPort } from "../lib/_describe.ts";
import { ConnectionResetError, SocketError } from "../lib/errors.ts";
import {
  type Command,
  ControlEscaper,
  FAMILY_OPTIONS,
  familyOption,
  hostArg,
  type ParsedArgs,
  portArg,
  printError,
  printJson,
  required,
  stdoutIsTerminal,
  stringOption,
  timeoutArg,
  unescapeArg,
  UNIX_PERMISSIONS,
  unixOption,
  UsageError,
  writeStdout,
} from "./_common.ts";
import {
  checkNoTlsOnUnix,
  CLIENT_TLS_HELP,
  CLIENT_TLS_OPTIONS,
  clientTlsFlags,
  handshakeLine,
} from "./_tls.ts";

/** The help text of `connect`. */
const CONNECT_HELP = `Usage: deno run -N cli.ts connect HOST [PORT] [options]
       deno run -R -W -N cli.ts connect --unix PATH [options]

Connects to HOST on PORT (default 80, the HTTP port, as in the tutorial) and
prints the tutorial's lines:
  Socket successfully created
  the socket has successfully connected to HOST on port PORT (IP)
The first line comes once a socket exists: never before a usage or
permission error. Names in /etc/hosts need --allow-read=/etc/hosts;
--allow-net=HOST is enough for the network (HOST as you wrote it).

With --unix PATH it connects to the Unix socket at PATH instead (nc -U)
and says "the socket has successfully connected to PATH". ${UNIX_PERMISSIONS}
A missing file fails with "No such file or directory", a file nobody
listens on (a crashed server's) with "Connection refused".

Options:
  --unix PATH   a Unix socket in place of HOST and PORT
  -4, -6        IPv4 or IPv6 addresses only
  --send TEXT   send TEXT (escapes: \\r \\n \\t \\\\) while printing what comes
                back, until the peer closes or the timeout
  --timeout MS  limit for the connect, and then for the whole exchange of
                --send; 0 means never
  --json        one JSON object per line instead of the text; each "data"
                event has the exact bytes in "base64" next to "text"
  --raw         on a terminal, print the reply's bytes as they came (by
                default control characters other than \\n \\r \\t are shown
                escaped, as cat -v does, so a peer cannot drive the
                terminal; a pipe or file always gets the bytes untouched)
  --debug       print the stack of an error
  -h, --help    this help

${CLIENT_TLS_HELP}
  With --tls a line "TLS handshake with NAME: ok, ALPN PROTO" follows the
  connected line (a "tls" event with --json).

The two directions of --send are independent, as with nc: a peer that
stops reading and resets the connection does not cut short what it sent
first. Everything that arrived is printed, then one line on stderr says
which direction was reset.

Exit status: 0 connected (with --send: the peer's reply arrived, even if
the peer then reset the connection and our send failed: nc exits 0 there
too, and the stderr line tells), 1 refused, unresolvable, timed out before
connecting, or reset before the peer sent any byte, 2 usage error. Output
cut short by the reader (| head -c 10) ends quietly with 0.
`;

/** The `connect` command. */
export const connectCommand: Command = {
  help: CONNECT_HELP,
  options: {
    send: { type: "string" },
    timeout: { type: "string" },
    json: { type: "boolean" },
    raw: { type: "boolean" },
    unix: { type: "string" },
    ...FAMILY_OPTIONS,
    ...CLIENT_TLS_OPTIONS,
  },
  positionals: 2,
  run: runConnect,
};

/** Runs `connect` and returns the exit code. */
async function runConnect(
  { values, positionals }: ParsedArgs,
): Promise<number> {
  const path = unixOption(values, ["ipv4", "ipv6"]);
  checkNoTlsOnUnix(values, path);
  if (path !== undefined && positionals.length > 0) {
    throw new UsageError(
      "--unix replaces HOST and PORT: give one or the other",
    );
  }
  const host = path ?? hostArg(required(positionals[0], "HOST"));
  const port = positionals[1] === undefined ? 80 : portArg(positionals[1]);
  const family = familyOption(values);
  const sendText = stringOption(values, "send");
  const payload = sendText === undefined
    ? undefined
    : new TextEncoder().encode(unescapeArg(sendText, "--send"));
  const timeoutText = stringOption(values, "timeout");
  const timeout = timeoutText === undefined
    ? undefined
    : timeoutArg(timeoutText);
  const json = values.json === true;
  const escape = !json && values.raw !== true && stdoutIsTerminal();
  const tls = await clientTlsFlags(values);

  let created = false;
  const printCreated = () => {
    if (created) return;
    created = true;
    if (json) printJson({ event: "created" });
    else console.log("Socket successfully created");
  };
  // A socket exists once an attempt got past the permission check.
  const onAttempt = (event: AttemptEvent) => {
    if (event.state !== "trying" && event.error?.code !== "EACCES") {
      printCreated();
    }
  };
  await using conn: Connection<SocketAddress> = path === undefined
    ? await connect(host, port, { timeout, onAttempt, family, tls })
    : await connect({ path }, { timeout });
  printCreated();
  const remote = conn.remoteAddr;
  if (isUnixAddress(remote)) {
    if (json) printJson({ event: "connected", path: remote.path });
    else console.log(`the socket has successfully connected to ${remote.path}`);
  } else if (json) {
    const { address } = remote;
    printJson({
      event: "connected",
      host,
      port,
      address,
      family: remote.family,
    });
  } else {
    console.log(
      `the socket has successfully connected to ${host} on port ${port} (${remote.address})`,
    );
  }
  if (conn.tls !== undefined) {
    const { serverName = host, alpnProtocol } = conn.tls;
    if (json) printJson({ event: "tls", serverName, alpnProtocol });
    else console.log(handshakeLine(serverName, alpnProtocol));
  }
  if (payload === undefined) return 0;
  return await exchange(conn, payload, { timeout, json, escape });
}

interface Output {
  timeout: number | undefined;
  json: boolean;
  escape: boolean;
}

/**
 * Sends `payload` while printing what the peer sends, until the peer
 * closes or `timeout` ms have passed (then the connection is closed, and
 * that is not an error). A reset in one direction leaves the other to
 * finish: every byte that arrived is printed.
 */
async function exchange(
  conn: Connection<SocketAddress>,
  payload: Uint8Array,
  output: Output,
): Promise<number> {
  let timedOut = false;
  const timer = output.timeout === undefined ? undefined : setTimeout(() => {
    timedOut = true;
    conn.close();
  }, output.timeout);
  try {
    const sending = conn.sendAll(payload).then(
      () => {
        if (output.json) printJson({ event: "sent", bytes: payload.length });
        return undefined;
      },
      (error: unknown) => error,
    );
    const received = await printReply(conn, output);
    const sendError = await sending;
    const peer = peerFields(conn.remoteAddr, conn.localAddr);
    return report(
      hostPort(peer.host, peer.port),
      received,
      timedOut ? undefined : sendError,
      timedOut,
      output.json,
    );
  } finally {
    clearTimeout(timer);
  }
}

interface Received {
  bytes: number;
  /** Why the receiving ended, when not at end of stream. */
  error?: unknown;
}

/** Prints what the peer sends until end of stream or an error. */
async function printReply(
  conn: Connection<SocketAddress>,
  { json, escape }: Output,
): Promise<Received> {
  const decoder = new TextDecoder();
  const escaper = new ControlEscaper();
  let bytes = 0;
  try {
    while (true) {
      const chunk = await conn.recv();
      if (chunk === null) break;
      bytes += chunk.length;
      if (json) printData(chunk, decoder.decode(chunk, { stream: true }));
      else await writeStdout(escape ? escaper.push(chunk) : chunk);
    }
    return { bytes };
  } catch (error) {
    return { bytes, error };
  } finally {
    // The tail of a character cut by the end is shown, not dropped.
    const tail = decoder.decode();
    if (json && tail !== "") printData(new Uint8Array(), tail);
    if (escape) await writeStdout(escaper.flush());
  }
}

function printData(bytes: Uint8Array, text: string): void {
  printJson({ event: "data", text, base64: toBase64(bytes) });
}

function toBase64(bytes: Uint8Array): string {
  let binary = "";
  for (const byte of bytes) binary += String.fromCharCode(byte);
  return btoa(binary);
}

/**
 * The end of the exchange: the "closed" event, one stderr line naming each
 * direction that failed, and the exit code (see the help's exit status).
 */
function report(
  peer: string,
  received: Received,
  sendError: unknown,
  timedOut: boolean,
  json: boolean,
): number {
  const receiveError = timedOut ? undefined : received.error;
  for (const error of [receiveError, sendError]) {
    if (error === undefined) continue;
    if (!(error instanceof SocketError)) throw error;
  }
  if (json) {
    const codes = [receiveError, sendError].flatMap((e) =>
      e instanceof SocketError ? [e.code] : []
    );
    printJson({
      event: "closed",
      bytes: received.bytes,
      timedOut,
      ...(codes.length > 0 ? { error: codes[0] } : {}),
    });
  }
  // Which syscall sees the reset first (ECONNRESET) and which the aftermath
  // (EPIPE) is the kernel's choice: one line tells both.
  const parts: string[] = [];
  if (sendError instanceof SocketError) {
    parts.push(`sending failed (${sendError.reason})`);
  }
  if (receiveError instanceof SocketError) {
    parts.push(
      `receiving failed after ${received.bytes} bytes (${receiveError.reason})`,
    );
  }
  if (parts.length > 0) printError(`${peer}: ${parts.join(", ")}`);
  const resets = [receiveError, sendError].filter((e) => e !== undefined);
  if (resets.length === 0) return 0;
  // The peer hanging up on us is how nc sees it too: fine once it spoke.
  const peerHungUp = resets.every((e) => e instanceof ConnectionResetError);
  return peerHungUp && received.bytes > 0 ? 0 : 1;
}
