/**
 * The connection race of RFC 8305 ("Happy Eyeballs"): the addresses of a
 * name are tried in turn, the next one starting when the last is refused or
 * after a delay, and the first to connect wins. Internal: {@linkcode
 * connect} runs it; `mod.ts` does not re-export this file.
 *
 * @module
 */

import type { IpAddress } from "./address.ts";
import {
  abortError,
  errorFor,
  fromRuntimeError,
  netPermissionHint,
} from "./_error_mapping.ts";
import {
  type AttemptFailure,
  PermissionDeniedError,
  type SocketError,
} from "./errors.ts";

/** One connection attempt, as the race reports it. */
export interface AttemptEvent extends IpAddress {
  /** The port. */
  port: number;
  /** Starting, or how it ended. */
  state: "trying" | "connected" | "failed";
  /** Why it failed, when `state` is `"failed"`. */
  error?: SocketError;
}

/** What to race: checked by the caller. */
export interface Race {
  /** The host as the caller gave it, for the errors. */
  host: string;
  /** The port. */
  port: number;
  /** The addresses, in the order to try them; at least one. */
  addresses: IpAddress[];
  /** The one "address" is the name, for Deno to resolve and race. */
  byName: boolean;
  /** Milliseconds before also trying the next address. */
  attemptDelay: number;
  /** Ends the race with the signal's error. */
  signal: AbortSignal | undefined;
  /** Told of each attempt; what it throws is dropped. */
  onAttempt: ((event: AttemptEvent) => void) | undefined;
}

/**
 * Runs the attempts, and settles only once every attempt has ended, so
 * that no connect outlives the call: the winner's connection, or the error
 * of them all (see {@linkcode allFailed}).
 *
 * @param race The addresses, the delay, the signal and the hook.
 * @returns The first connection made; the others are closed.
 */
export function happyEyeballs(
  { host, port, addresses, byName, attemptDelay, signal, onAttempt }: Race,
): Promise<Deno.TcpConn> {
  const { promise, resolve, reject } = Promise.withResolvers<Deno.TcpConn>();
  const controllers = new Set<AbortController>();
  const failures: AttemptFailure[] = [];
  let next = 0;
  let running = 0;
  let winner: Deno.TcpConn | undefined;
  let failure: SocketError | undefined;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const decided = () => winner !== undefined || failure !== undefined;
  // The caller's hook must not break the race: what it throws is dropped.
  const report = (event: AttemptEvent) => {
    try {
      onAttempt?.(event);
    } catch {
      // Ignored, as documented on ConnectOptions.onAttempt.
    }
  };

  const settle = () => {
    if (running > 0 || !decided()) return;
    clearTimeout(timer);
    signal?.removeEventListener("abort", onAbort);
    if (winner) resolve(winner);
    else reject(failure);
  };
  const stopOthers = () => {
    clearTimeout(timer);
    for (const controller of controllers) controller.abort();
  };
  const onAbort = () => {
    if (decided()) return;
    // deno-lint-ignore no-non-null-assertion -- only called on abort
    failure = abortError(signal!, { op: "connect", host, port });
    stopOthers();
    settle();
  };
  const start = () => {
    clearTimeout(timer);
    const address = addresses[next++];
    const controller = new AbortController();
    controllers.add(controller);
    running++;
    report({ ...address, port, state: "trying" });
    Deno.connect({
      hostname: address.address,
      port,
      signal: controller.signal,
      autoSelectFamily: byName,
    }).then((conn) => {
      if (decided()) return conn.close();
      winner = conn;
      controllers.delete(controller);
      stopOthers();
      report({ ...address, port, state: "connected" });
    }, (error) => {
      if (decided()) return;
      const attempt = fromRuntimeError(error, {
        op: "connect",
        host,
        address: address.address,
        port,
      });
      failures.push({ address: address.address, port, error: attempt });
      report({ ...address, port, state: "failed", error: attempt });
      if (next < addresses.length) start();
      else if (running === 1) failure = allFailed(host, port, failures);
    }).finally(() => {
      controllers.delete(controller);
      running--;
      settle();
    });
    if (next < addresses.length) timer = setTimeout(start, attemptDelay);
  };

  // The signal may have fired during the name lookup.
  if (signal?.aborted) {
    onAbort();
    return promise;
  }
  signal?.addEventListener("abort", onAbort, { once: true });
  start();
  return promise;
}

/**
 * The error when every address failed: one address's error as it is;
 * several, the last one's class and reason with every attempt in
 * `attempts` (the message names them); a missing permission, one error
 * naming the host as the caller gave it, since that permission is enough.
 */
function allFailed(
  host: string,
  port: number,
  failures: AttemptFailure[],
): SocketError {
  const last = failures[failures.length - 1].error;
  if (failures.every((f) => f.error.cause instanceof Deno.errors.NotCapable)) {
    return new PermissionDeniedError({
      op: "connect",
      host,
      port,
      reason: netPermissionHint(host, port),
      cause: last.cause,
    });
  }
  if (failures.length === 1) return last;
  return errorFor(last.code, {
    op: "connect",
    host,
    port,
    reason: last.reason,
    attempts: failures,
    cause: last.cause,
  });
}
