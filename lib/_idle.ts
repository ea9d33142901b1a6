/**
 * The idle timeout's clock: one timer for every pending read and write
 * that waits the same time, instead of a timer set and cleared per call.
 * Per call that cost more than the rest of its bookkeeping: on a server
 * that greets and closes, 8 % of the accept rate.
 *
 * @module
 */

/** One pending call, in the list of those with its timeout. */
export class IdleWatch {
  /** When it expires, in `performance.now()` milliseconds. */
  readonly deadline: number;
  readonly #onExpire: () => void;
  readonly #list: WatchList;
  prev: IdleWatch | undefined;
  next: IdleWatch | undefined;
  /** Ended or expired: out of its list for good. */
  done = false;

  constructor(list: WatchList, deadline: number, onExpire: () => void) {
    this.#list = list;
    this.deadline = deadline;
    this.#onExpire = onExpire;
  }

  /** The call made progress or failed: it no longer waits. */
  end(): void {
    if (!this.done) this.#list.remove(this);
  }

  /** Called by its list, once out of it. */
  expire(): void {
    this.#onExpire();
  }
}

/**
 * The pending calls of one timeout, oldest first. Each waits the same
 * time from when it was added, so deadlines grow along the list, and the
 * one timer is set for the head's (or earlier: it then sets itself again).
 *
 * When the list empties, the timer is unref'd, not cleared: a call that
 * ends at once is the common case, and setting a timer costs 30 times
 * what ref'ing one does. An unref'd timer keeps no process alive, and
 * finding the list empty, it just ends.
 */
class WatchList {
  readonly #timeout: number;
  #head: IdleWatch | undefined;
  #tail: IdleWatch | undefined;
  #timer: ReturnType<typeof setTimeout> | undefined;
  /** The timer keeps the process alive: some call is pending. */
  #refed = false;

  constructor(timeout: number) {
    this.#timeout = timeout;
  }

  add(onExpire: () => void): IdleWatch {
    const watch = new IdleWatch(
      this,
      performance.now() + this.#timeout,
      onExpire,
    );
    watch.prev = this.#tail;
    if (this.#tail) this.#tail.next = watch;
    else this.#head = watch;
    this.#tail = watch;
    if (this.#timer === undefined) {
      this.#arm(this.#timeout);
    } else if (!this.#refed) {
      Deno.refTimer(this.#timer);
      this.#refed = true;
    }
    return watch;
  }

  remove(watch: IdleWatch): void {
    watch.done = true;
    if (watch.prev) watch.prev.next = watch.next;
    else this.#head = watch.next;
    if (watch.next) watch.next.prev = watch.prev;
    else this.#tail = watch.prev;
    watch.prev = watch.next = undefined;
    if (this.#head === undefined && this.#refed) {
      // deno-lint-ignore no-non-null-assertion -- ref'd only while set
      Deno.unrefTimer(this.#timer!);
      this.#refed = false;
    }
  }

  #arm(delay: number): void {
    this.#timer = setTimeout(() => this.#expire(), delay);
    this.#refed = true;
  }

  #expire(): void {
    this.#timer = undefined;
    this.#refed = false;
    const now = performance.now();
    let head = this.#head;
    while (head !== undefined && head.deadline <= now) {
      this.remove(head);
      head.expire();
      head = this.#head;
    }
    // Set for a call since ended, or a fraction of a millisecond early:
    // wait for the head's own deadline.
    if (head !== undefined && this.#timer === undefined) {
      this.#arm(head.deadline - now);
    }
  }
}

const lists = new Map<number, WatchList>();

/**
 * Starts watching a call that may wait at most `timeout` ms: `onExpire`
 * runs if it has not ended by then.
 */
export function watchIdle(timeout: number, onExpire: () => void): IdleWatch {
  let list = lists.get(timeout);
  if (list === undefined) {
    list = new WatchList(timeout);
    lists.set(timeout, list);
  }
  return list.add(onExpire);
}
