/**
 * One signal for a caller's signal and a timeout, shared by every function
 * that takes both, and the signal wiring of the long-lived things (servers,
 * listeners). Internal: `mod.ts` does not re-export this file.
 *
 * @module
 */

/**
 * One signal for a caller's signal and a timeout. The timeout aborts with
 * the given error, so callers can tell it from the caller's abort.
 *
 * @returns The signal (undefined when neither was given) and a function that
 *   clears the timer, which every caller must call when done.
 */
export function deadlineSignal(
  signal: AbortSignal | undefined,
  timeout: number | undefined,
  onTimeout: () => Error,
): { signal: AbortSignal | undefined; clear: () => void } {
  if (timeout === undefined) return { signal, clear: () => {} };
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(onTimeout()), timeout);
  const combined = signal
    ? AbortSignal.any([signal, controller.signal])
    : controller.signal;
  return { signal: combined, clear: () => clearTimeout(timer) };
}

/**
 * Stops a long-lived thing when `signal` aborts (at once if it has), and
 * forgets the signal once `finished` settles, so that a long-lived signal
 * does not keep it. A failing stop shows through `finished`, for whoever
 * awaits it: here it must not become an unhandled rejection.
 */
export function stopOnAbort(
  signal: AbortSignal | undefined,
  stop: () => Promise<unknown>,
  finished: Promise<unknown>,
): void {
  if (signal === undefined) return;
  const onAbort = () => void stop().catch(() => {});
  if (signal.aborted) {
    onAbort();
    return;
  }
  signal.addEventListener("abort", onAbort, { once: true });
  const forget = () => signal.removeEventListener("abort", onAbort);
  finished.then(forget, forget);
}
