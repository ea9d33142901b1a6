/**
 * The tutorial's first script: find a server's IP address.
 *
 * ```sh
 * deno run examples/gethostbyname.ts                    # localhost: no permission
 * deno run --allow-read=/etc/hosts -N examples/gethostbyname.ts www.google.com
 * ```
 *
 * Permissions: none for `localhost` or an IP address;
 * `--allow-read=/etc/hosts` to find a name in the hosts file, `-N` to ask
 * DNS.
 *
 * @module
 */

import { gethostbyname, SocketError } from "../mod.ts";

// The tutorial asks for www.google.com; localhost runs without a network.
const host = Deno.args[0] ?? "localhost";

try {
  const ip = await gethostbyname(host);
  console.log(ip);
} catch (error) {
  if (!(error instanceof SocketError)) {
    // Not a socket error: one line on stderr all the same, no stack trace.
    console.error(String(error));
    Deno.exit(1);
  }
  // The message names the host and the reason, as socket.gaierror would
  // (or the permission missing, for a name without -N).
  console.log(error.message);
  Deno.exit(1);
}
