/**
 * The module works when imported by URL, with nothing of the project's
 * (no deno.json, no import map) at the importer's side.
 */

import assert from "node:assert/strict";
import { extname, join } from "node:path";
import { run } from "./fixtures/process.ts";

const ROOT = new URL("..", import.meta.url);

/** Serves the checkout's files over HTTP on loopback, port 0. */
function serveCheckout(): Deno.HttpServer<Deno.NetAddr> {
  return Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    async (request) => {
      const path = new URL(request.url).pathname;
      if (path.includes("..")) return new Response("no", { status: 400 });
      try {
        const body = await Deno.readFile(new URL(`.${path}`, ROOT));
        const type = extname(path) === ".ts"
          ? "application/typescript"
          : "text/plain";
        return new Response(body, { headers: { "content-type": type } });
      } catch {
        return new Response("not found", { status: 404 });
      }
    },
  );
}

Deno.test("mod.ts imported by URL: a greet-and-close round trip from a bare folder", async () => {
  const http = serveCheckout();
  const folder = await Deno.makeTempDir();
  try {
    const origin = `127.0.0.1:${http.addr.port}`;
    const script = join(folder, "main.ts");
    await Deno.writeTextFile(
      script,
      `import { connect, serve } from "http://${origin}/mod.ts";
await using server = serve({ hostname: "127.0.0.1", backlog: 5 }, (conn) =>
  conn.sendAll("Thank you for connecting"));
await using client = await connect("127.0.0.1", server.addr.port);
console.log(new TextDecoder().decode(await client.recvAll()));
`,
    );
    // run() kills the script after its timeout: a round trip that hangs
    // fails here. It takes ~1 s idle (most of it compiling the module);
    // 30 s is room for a loaded machine.
    const { code, stdout, stderr } = await run(Deno.execPath(), [
      "run",
      "--no-prompt",
      "--no-config",
      `--allow-import=${origin}`,
      "--allow-net=127.0.0.1",
      "main.ts",
    ], {
      cwd: folder,
      env: { DENO_DIR: join(folder, "deno_dir") },
      timeout: 30_000,
    });
    assert.equal(code, 0, stderr);
    assert.equal(stdout, "Thank you for connecting\n");
  } finally {
    await http.shutdown();
    await Deno.remove(folder, { recursive: true });
  }
});
