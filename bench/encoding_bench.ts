/**
 * Micro level: what the module does to bytes and addresses on each
 * connection, against doing nothing (the raw loop's cost).
 *
 *   deno bench bench/encoding_bench.ts
 *
 * @module
 */

import { formatAddress, pythonAddress, validatePort } from "../mod.ts";
import { fromDenoAddr } from "../lib/address.ts";

const GREETING = "Thank you for connecting";
const BYTES = new TextEncoder().encode(GREETING);
const encoder = new TextEncoder();
const denoAddr: Deno.NetAddr = {
  transport: "tcp",
  hostname: "127.0.0.1",
  port: 58933,
};
const addr = fromDenoAddr(denoAddr);
let sink = 0;

Deno.bench("greeting: pre-encoded bytes", { group: "encode" }, () => {
  sink += BYTES.length;
});

Deno.bench(
  "greeting: TextEncoder.encode per send",
  { group: "encode", baseline: true },
  () => {
    sink += encoder.encode(GREETING).length;
  },
);

Deno.bench("fromDenoAddr (per connection, when an address is read)", {
  group: "address",
}, () => {
  sink += fromDenoAddr(denoAddr).port;
});

Deno.bench("formatAddress", { group: "address" }, () => {
  sink += formatAddress(addr).length;
});

Deno.bench(
  "pythonAddress (the Got connection line)",
  { group: "address" },
  () => {
    sink += pythonAddress(addr).length;
  },
);

Deno.bench("validatePort", { group: "address" }, () => {
  sink += validatePort(12345);
});

// Keeps the results alive so the work above is not optimised away.
globalThis.addEventListener("unload", () => {
  if (sink < 0) console.log(sink);
});
