/**
 * Unit tests of lib/_validate.ts (the option checks) and lib/_deadline.ts
 * (deadlineSignal).
 */

import assert from "node:assert/strict";
import { InvalidArgumentError } from "../lib/errors.ts";
import {
  checkCount,
  checkDuration,
  checkFunction,
  checkOptions,
  checkSignal,
} from "../lib/_validate.ts";
import { deadlineSignal } from "../lib/_deadline.ts";

function throwsInvalid(fn: () => unknown, message: string): void {
  assert.throws(fn, (error: unknown) => {
    assert.ok(error instanceof InvalidArgumentError, `got ${error}`);
    assert.equal(error.code, "EINVAL");
    assert.equal(error.message, message);
    return true;
  });
}

/** Resolves with the signal's reason once it aborts. */
function aborted(signal: AbortSignal): Promise<unknown> {
  if (signal.aborted) return Promise.resolve(signal.reason);
  return new Promise((resolve) =>
    signal.addEventListener("abort", () => resolve(signal.reason), {
      once: true,
    })
  );
}

Deno.test("checkDuration(): undefined, 0 and finite positive numbers pass", () => {
  assert.equal(checkDuration(undefined, "timeout"), undefined);
  assert.equal(checkDuration(0, "timeout"), 0);
  assert.equal(checkDuration(1.5, "timeout"), 1.5);
  assert.equal(checkDuration(1e9, "timeout"), 1e9);
  assert.equal(checkDuration(2 ** 31 - 1, "timeout"), 2147483647);
});

Deno.test("checkDuration(): past 2^31-1 ms (the longest timer) is EINVAL", () => {
  for (
    const [value, shown] of [[2 ** 31, "2147483648"], [1e12, "1000000000000"]]
  ) {
    throwsInvalid(
      () => checkDuration(value, "timeout"),
      `invalid timeout ${shown}: expected milliseconds, at most 2147483647`,
    );
  }
});

Deno.test("checkDuration(): anything else is EINVAL naming the option and value", () => {
  const cases: [unknown, string][] = [
    [-1, "-1"],
    [NaN, "NaN"],
    [Infinity, "Infinity"],
    ["100", '"100"'],
    [null, "null"],
    [10n, "10n"],
  ];
  for (const [value, shown] of cases) {
    throwsInvalid(
      () => checkDuration(value, "idleTimeout"),
      `invalid idleTimeout ${shown}: expected milliseconds, ≥ 0`,
    );
  }
});

Deno.test("checkCount(): integers from min up pass; undefined is undefined", () => {
  assert.equal(checkCount(undefined, "backlog", 0), undefined);
  assert.equal(checkCount(0, "backlog", 0), 0);
  assert.equal(checkCount(1, "concurrency", 1), 1);
  assert.equal(
    checkCount(Number.MAX_SAFE_INTEGER, "n", 0),
    Number.MAX_SAFE_INTEGER,
  );
});

Deno.test("checkCount(): below min, fractions, unsafe integers and non-numbers are EINVAL", () => {
  const cases: [unknown, string][] = [
    [0, "0"],
    [-3, "-3"],
    [2.5, "2.5"],
    [NaN, "NaN"],
    [Infinity, "Infinity"],
    [Number.MAX_SAFE_INTEGER + 1, "9007199254740992"],
    ["4", '"4"'],
    [null, "null"],
  ];
  for (const [value, shown] of cases) {
    throwsInvalid(
      () => checkCount(value, "concurrency", 1),
      `invalid concurrency ${shown}: expected an integer ≥ 1`,
    );
  }
});

Deno.test("checkSignal(): an AbortSignal or undefined; anything else is EINVAL", () => {
  const signal = new AbortController().signal;
  assert.equal(checkSignal(signal), signal);
  assert.equal(checkSignal(undefined), undefined);
  const aborted = AbortSignal.abort();
  assert.equal(checkSignal(aborted), aborted);
  throwsInvalid(
    () => checkSignal(new AbortController()),
    "invalid signal [object AbortController]: expected an AbortSignal",
  );
  throwsInvalid(
    () => checkSignal(null),
    "invalid signal null: expected an AbortSignal",
  );
  throwsInvalid(
    () => checkSignal({ aborted: false }),
    "invalid signal [object Object]: expected an AbortSignal",
  );
});

Deno.test("checkFunction(): optional unless required; non-functions are EINVAL", () => {
  checkFunction(undefined, "onError");
  checkFunction(() => {}, "onError");
  checkFunction(async () => {}, "handler", { required: true });
  throwsInvalid(
    () => checkFunction(undefined, "handler", { required: true }),
    "invalid handler undefined: expected a function",
  );
  throwsInvalid(
    () => checkFunction(null, "onError"),
    "invalid onError null: expected a function",
  );
  throwsInvalid(
    () => checkFunction("console.log", "onListen"),
    'invalid onListen "console.log": expected a function',
  );
});

Deno.test("checkOptions(): an object or absent; null and primitives are EINVAL", () => {
  checkOptions(undefined);
  checkOptions({});
  checkOptions(Object.create(null));
  const cases: [unknown, string][] = [
    [null, "null"],
    [5, "5"],
    ["x", '"x"'],
    [true, "true"],
    [() => {}, "a function"],
  ];
  for (const [value, shown] of cases) {
    throwsInvalid(
      () => checkOptions(value),
      `invalid options ${shown}: expected an object`,
    );
  }
});

Deno.test("deadlineSignal(): without a timeout, the caller's signal as is", () => {
  const calls: string[] = [];
  const onTimeout = () => {
    calls.push("timeout");
    return new Error("late");
  };
  const none = deadlineSignal(undefined, undefined, onTimeout);
  assert.equal(none.signal, undefined);
  none.clear();
  const caller = new AbortController().signal;
  const same = deadlineSignal(caller, undefined, onTimeout);
  assert.equal(same.signal, caller);
  same.clear();
  assert.deepEqual(calls, []);
});

Deno.test("deadlineSignal(): the timeout aborts with onTimeout's error", async () => {
  const late = new Error("late");
  const deadline = deadlineSignal(undefined, 5, () => late);
  try {
    assert.ok(deadline.signal);
    assert.equal(deadline.signal.aborted, false);
    assert.equal(await aborted(deadline.signal), late);
  } finally {
    deadline.clear();
  }
});

Deno.test("deadlineSignal(): with a caller's signal, the timeout still aborts with its error", async () => {
  const caller = new AbortController();
  const late = new Error("late");
  const deadline = deadlineSignal(caller.signal, 5, () => late);
  try {
    assert.ok(deadline.signal);
    assert.notEqual(deadline.signal, caller.signal);
    assert.equal(await aborted(deadline.signal), late);
    assert.equal(caller.signal.aborted, false);
  } finally {
    deadline.clear();
  }
});

Deno.test("deadlineSignal(): the caller's abort comes through with its reason", async () => {
  const caller = new AbortController();
  let made = 0;
  const deadline = deadlineSignal(caller.signal, 60_000, () => {
    made++;
    return new Error("late");
  });
  try {
    const reason = new Error("user");
    caller.abort(reason);
    assert.ok(deadline.signal);
    assert.equal(await aborted(deadline.signal), reason);
    assert.equal(made, 0);
  } finally {
    deadline.clear();
  }
});

Deno.test("deadlineSignal(): an already-aborted caller's signal is aborted at once", () => {
  const reason = new Error("before");
  const deadline = deadlineSignal(
    AbortSignal.abort(reason),
    60_000,
    () => new Error("late"),
  );
  try {
    assert.equal(deadline.signal?.aborted, true);
    assert.equal(deadline.signal?.reason, reason);
  } finally {
    deadline.clear();
  }
});

Deno.test("deadlineSignal(): clear() stops the timer, so the signal never aborts", async () => {
  let made = 0;
  const deadline = deadlineSignal(undefined, 1, () => {
    made++;
    return new Error("late");
  });
  deadline.clear();
  // Wait past the cleared deadline (the thing under test), then look.
  await new Promise((resolve) => setTimeout(resolve, 20));
  assert.equal(deadline.signal?.aborted, false);
  assert.equal(made, 0);
});
