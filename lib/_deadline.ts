/**
 * One signal for a caller's signal and a timeout, shared by every function
 * that takes both. Internal: `mod.ts` does not re-export this file.
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
