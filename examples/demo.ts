/**
 * `deno task demo`: the tutorial's last step. Starts `server.ts` and then
 * `client.ts` as two processes, the way a reader runs them in two
 * terminals, shows what each prints, then stops the server with Ctrl-C
 * (SIGINT).
 *
 * ```sh
 * deno run --allow-run --allow-read examples/demo.ts
 * ```
 *
 * The server takes any free port (0) so the demo never collides with a
 * server already on 12345; the client is told the port the server printed.
 *
 * Permissions: `--allow-run` (to start deno) and `--allow-read` (to find
 * deno and the examples); the two scripts themselves run with `-N`.
 *
 * @module
 */

const here = new URL(".", import.meta.url).pathname;
const deno = Deno.execPath();

/** Prints each line of a stream with a label, and calls back on each. */
async function relay(
  stream: ReadableStream<Uint8Array>,
  label: string,
  onLine: (line: string) => void = () => {},
): Promise<void> {
  let partial = "";
  for await (const text of stream.pipeThrough(new TextDecoderStream())) {
    const lines = (partial + text).split("\n");
    partial = lines.pop() ?? "";
    for (const line of lines) {
      console.log(`${label} ${line}`);
      onLine(line);
    }
  }
  if (partial) console.log(`${label} ${partial}`);
}

const server = new Deno.Command(deno, {
  args: ["run", "-N", `${here}server.ts`, "0"],
  stdout: "piped",
  stderr: "inherit",
}).spawn();

const bound = Promise.withResolvers<number>();
const greeted = Promise.withResolvers<void>();
let boundPort = 0;
const serverOutput = relay(server.stdout, "[server]", (line) => {
  const binded = line.match(/^socket binded to (\d+)$/);
  if (binded) boundPort = Number(binded[1]);
  // The client starts once the server says it listens, as a reader would.
  if (line === "socket is listening") bound.resolve(boundPort);
  if (line.startsWith("Got connection from")) greeted.resolve();
});
// If the server dies before binding, say so instead of waiting forever.
server.status.then((status) =>
  bound.reject(new Error(`the server exited with code ${status.code}`))
);

try {
  const port = await bound.promise;
  console.log(`[demo] the server listens on port ${port}; starting the client`);
  const client = new Deno.Command(deno, {
    args: ["run", "-N", `${here}client.ts`, String(port)],
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  await relay(client.stdout, "[client]");
  const { code } = await client.status;
  console.log(`[demo] the client exited with code ${code}`);
  // The server prints its line as it serves; it may also have died.
  if (code === 0) await Promise.race([greeted.promise, server.status]);
} finally {
  console.log("[demo] stopping the server with Ctrl-C (SIGINT)");
  try {
    server.kill("SIGINT");
  } catch {
    // It has exited already.
  }
  await serverOutput;
  const { code } = await server.status;
  console.log(`[demo] the server exited with code ${code}`);
}
