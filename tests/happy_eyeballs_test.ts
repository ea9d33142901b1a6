/**
 * Tests of lib/_happy_eyeballs.ts: the RFC 8305 race on its own, on real
 * loopback addresses (a listener on 127.0.0.1 only, so that the same port
 * on 127.0.0.2 and 127.0.0.3 is refused).
 *
 * @module
 */

import assert from "node:assert/strict";
import { type AttemptEvent, happyEyeballs } from "../lib/_happy_eyeballs.ts";
import {
  ConnectionRefusedError,
  PermissionDeniedError,
} from "../lib/errors.ts";
import type { IpAddress } from "../lib/address.ts";
import { within } from "./fixtures/deadline.ts";

const v4 = (address: string): IpAddress => ({ address, family: 4 });

function race(
  port: number,
  addresses: IpAddress[],
  events: AttemptEvent[] = [],
  signal?: AbortSignal,
): Promise<Deno.TcpConn> {
  return happyEyeballs({
    host: "race.test",
    port,
    addresses,
    byName: false,
    attemptDelay: 250,
    signal,
    onAttempt: (event) => events.push(event),
  });
}

Deno.test("happyEyeballs(): a refused address starts the next at once; the first to connect wins", async () => {
  using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const accepted = listener.accept();
  const events: AttemptEvent[] = [];
  const conn = await within(
    race(listener.addr.port, [v4("127.0.0.2"), v4("127.0.0.1")], events),
    5000,
    "the race",
  );
  conn.close();
  (await accepted).close();
  assert.deepEqual(
    events.map((e) => [e.address, e.state, e.error?.reason]),
    [
      ["127.0.0.2", "trying", undefined],
      ["127.0.0.2", "failed", "Connection refused"],
      ["127.0.0.1", "trying", undefined],
      ["127.0.0.1", "connected", undefined],
    ],
  );
  // Each attempt's error names the host as given and the address tried.
  const failed = events[1].error;
  assert.equal(failed?.host, "race.test");
  assert.equal(failed?.address, "127.0.0.2");
  assert.equal(failed?.op, "connect");
});

Deno.test("happyEyeballs(): every address refused: one error with each attempt", async () => {
  using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr;
  const error = await within(
    race(port, [v4("127.0.0.2"), v4("127.0.0.3")]).then(
      () => assert.fail("connected"),
      (error) => error,
    ),
    5000,
    "the race",
  );
  assert.ok(error instanceof ConnectionRefusedError);
  assert.equal(error.host, "race.test");
  assert.equal(error.address, undefined);
  assert.equal(error.reason, "Connection refused");
  assert.deepEqual(error.attempts?.map((a) => a.address), [
    "127.0.0.2",
    "127.0.0.3",
  ]);
  assert.equal(
    error.message,
    `connect to race.test port ${port} failed for every address: ` +
      "127.0.0.2: Connection refused; 127.0.0.3: Connection refused",
  );
});

Deno.test("happyEyeballs(): one address refused: its own error, unwrapped", async () => {
  using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr;
  const error = await within(
    race(port, [v4("127.0.0.2")]).then(
      () => assert.fail("connected"),
      (error) => error,
    ),
    5000,
    "the race",
  );
  assert.ok(error instanceof ConnectionRefusedError);
  assert.equal(error.attempts, undefined);
  assert.equal(
    error.message,
    `connect to 127.0.0.2 port ${port}: Connection refused`,
  );
});

Deno.test("happyEyeballs(): an aborted signal ends the race before any attempt", async () => {
  const events: AttemptEvent[] = [];
  const error = await race(1, [v4("127.0.0.1")], events, AbortSignal.abort())
    .then(() => assert.fail("connected"), (error) => error);
  assert.equal(error.code, "ECANCELED");
  assert.equal(error.op, "connect");
  assert.deepEqual(events, []);
});

Deno.test({
  name: "happyEyeballs(): without the permission, one error naming the host",
  permissions: { net: ["127.0.0.1"] },
  fn: async () => {
    const error = await race(1, [v4("127.0.0.2"), v4("127.0.0.3")]).then(
      () => assert.fail("connected"),
      (error) => error,
    );
    assert.ok(error instanceof PermissionDeniedError);
    assert.equal(error.attempts, undefined);
    assert.equal(
      error.message,
      "connect to race.test port 1: Deno needs the network permission " +
        "(run with -N or --allow-net=race.test:1)",
    );
  },
});
