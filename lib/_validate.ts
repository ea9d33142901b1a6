/**
 * Checks of option values, shared by every public function, so that a bad
 * value is an {@linkcode InvalidArgumentError} naming it, before any socket
 * is made. Internal: `mod.ts` does not re-export this file.
 *
 * @module
 */

import { describe } from "./_describe.ts";
import { InvalidArgumentError } from "./errors.ts";

/** The longest timer the runtime keeps: longer ones fire at once. */
export const MAX_DURATION = 2 ** 31 - 1;

/**
 * Checks an optional duration in milliseconds: a number from 0 to
 * 2147483647 (about 24 days, the longest timer the runtime keeps).
 *
 * @param value The option's value.
 * @param name The option's name, for the message.
 * @returns The value, or `undefined` when it was not given.
 */
export function checkDuration(
  value: unknown,
  name: string,
): number | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== "number" || !Number.isFinite(value) || value < 0) {
    throw new InvalidArgumentError({
      reason: `invalid ${name} ${describe(value)}: expected milliseconds, ≥ 0`,
    });
  }
  if (value > MAX_DURATION) {
    throw new InvalidArgumentError({
      reason: `invalid ${name} ${
        describe(value)
      }: expected milliseconds, at most ${MAX_DURATION}`,
    });
  }
  return value;
}

/**
 * Checks an optional count: an integer from `min` up.
 *
 * @param value The option's value.
 * @param name The option's name, for the message.
 * @param min The least allowed.
 * @returns The value, or `undefined` when it was not given.
 */
export function checkCount(
  value: unknown,
  name: string,
  min: number,
): number | undefined {
  if (value === undefined) return undefined;
  if (
    typeof value !== "number" || !Number.isSafeInteger(value) || value < min
  ) {
    throw new InvalidArgumentError({
      reason: `invalid ${name} ${
        describe(value)
      }: expected an integer ≥ ${min}`,
    });
  }
  return value;
}

/** Checks an optional `AbortSignal`. */
export function checkSignal(value: unknown): AbortSignal | undefined {
  if (value === undefined || value instanceof AbortSignal) return value;
  throw new InvalidArgumentError({
    reason: `invalid signal ${describe(value)}: expected an AbortSignal`,
  });
}

/** Checks a callback, optional unless `required`. */
export function checkFunction(
  value: unknown,
  name: string,
  options: { required?: boolean } = {},
): void {
  if (value === undefined && !options.required) return;
  if (typeof value !== "function") {
    throw new InvalidArgumentError({
      reason: `invalid ${name} ${describe(value)}: expected a function`,
    });
  }
}

/** Checks that the options argument is an object (or absent). */
export function checkOptions(value: unknown): void {
  if (value !== undefined && (typeof value !== "object" || value === null)) {
    throw new InvalidArgumentError({
      reason: `invalid options ${describe(value)}: expected an object`,
    });
  }
}
