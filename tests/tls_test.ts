/**
 * TLS against real peers: `openssl s_server`/`s_client`, `ncat --ssl`,
 * `socat OPENSSL:`, and the module's own client and server. Certificates
 * are made at test time with `openssl` in a temporary directory: a
 * throwaway CA, a server certificate for localhost and 127.0.0.1, an
 * expired one (`openssl ca -startdate/-enddate`: OpenSSL 3.0's `x509 -req`
 * takes no past date), one for another name, and a second CA.
 *
 * Time bounds: a handshake on loopback takes milliseconds and a `deno run`
 * start about a second; 20 s fails only a hang on a loaded 2-core machine.
 *
 * @module
 */

import assert from "node:assert/strict";
import {
  CertificateError,
  connect,
  serve,
  type SocketError,
  startTls,
  TimeoutError,
  TlsError,
} from "../mod.ts";
import { within } from "./fixtures/deadline.ts";
import { type Certs, makeCerts } from "./fixtures/certs.ts";
import { fromRuntimeError } from "../lib/_error_mapping.ts";
import {
  CLI,
  DENO,
  missing,
  type Proc,
  ROOT,
  run,
  start,
} from "./fixtures/process.ts";

const WAIT = 20_000;
const noOpenssl = missing("openssl", "tls_test.ts");
const noNcat = missing("ncat", "serve --tls against ncat --ssl");
const noSocat = missing("socat", "socat OPENSSL: to and from");
const decoder = new TextDecoder();

const certs = noOpenssl ? undefined : await makeCerts();
// Removed when the module ends, whatever ran or failed: no test that only
// cleans up, and none that depends on running last.
if (certs !== undefined) {
  const { dir } = certs;
  globalThis.addEventListener("unload", () => {
    Deno.removeSync(dir, { recursive: true });
  });
}
/** The certificates, in a test that runs only when they were made. */
function c(): Certs {
  if (certs === undefined) throw new Error("no certificates: no openssl");
  return certs;
}
const file = (name: string) => `${c().dir}/${name}`;

/** `openssl s_server` on loopback, port 0; resolves with it and its port. */
async function sServer(args: string[]): Promise<[Proc, number]> {
  const proc = start("openssl", [
    "s_server",
    "-accept",
    "127.0.0.1:0",
    "-cert",
    file("srv.pem"),
    "-key",
    file("srv.key"),
    ...args,
  ], { stdin: true });
  const [, port] = await proc.waitForLine(/^ACCEPT .*:(\d+)$/, WAIT);
  return [proc, Number(port)];
}

/** A module server greeting with what TLS agreed. */
function tlsServer(
  tls: Partial<{ cert: string; key: string; alpnProtocols: string[] }> = {},
  extra: Parameters<typeof serve>[0] = {},
) {
  return serve({
    hostname: "127.0.0.1",
    tls: { cert: c().cert, key: c().key, ...tls },
    onError: () => {},
    ...extra,
  }, (conn) => conn.sendAll(`hello, ALPN ${conn.tls?.alpnProtocol}\n`));
}

function cli(args: string[], input?: string) {
  return run(DENO, ["run", "-N", "-R", CLI, ...args], {
    input,
    timeout: WAIT,
  });
}

Deno.test("fromRuntimeError(): rustls's handshake texts, one code each", () => {
  const where = { op: "handshake" as const, host: "localhost", port: 443 };
  const cases: [string, string][] = [
    ["invalid peer certificate: UnknownIssuer", "EUNKNOWNCA"],
    [
      'invalid peer certificate: certificate not valid for name "x"',
      "ECERTNAME",
    ],
    [
      "invalid peer certificate: certificate expired: verification time 2 " +
      "(UNIX), but certificate is not valid after 1 (1 seconds ago)",
      "ECERTEXPIRED",
    ],
    ["invalid peer certificate: BadSignature", "ECERTINVALID"],
    ["received fatal alert: UnknownCA", "EUNKNOWNCA"],
    ["received fatal alert: HandshakeFailure", "ETLS"],
    ["received corrupt message of type InvalidContentType", "ETLS"],
  ];
  for (const [text, code] of cases) {
    const error = fromRuntimeError(new Deno.errors.InvalidData(text), where);
    assert.equal(error.code, code, text);
    assert.equal(error.op, "handshake");
    assert.ok(error instanceof TlsError);
  }
  // Outside a handshake the same text is no TLS error: read in one place.
  const other = fromRuntimeError(new Error("received fatal alert: UnknownCA"), {
    ...where,
    op: "recv",
  });
  assert.equal(other.code, "EIO");
});

Deno.test({
  name: "connect({ tls }): openssl s_server, ALPN agreed, bytes both ways",
  ignore: noOpenssl,
  async fn() {
    const [server, port] = await sServer(["-alpn", "h2,http/1.1", "-rev"]);
    await using _ = server;
    const events: string[] = [];
    await using conn = await within(
      connect("localhost", port, {
        tls: { caCerts: [c().ca], alpnProtocols: ["h2"] },
        onHandshake: (e) => events.push(`${e.state} ${e.alpnProtocol ?? ""}`),
      }),
      WAIT,
      "the handshake",
    );
    assert.deepEqual(conn.tls, { alpnProtocol: "h2", serverName: "localhost" });
    assert.deepEqual(events, ["started ", "done h2"]);
    await conn.sendAll("olleh\n");
    const reply = await within(conn.recv(), WAIT, "s_server's reply");
    assert.equal(decoder.decode(reply!), "hello\n");
  },
});

Deno.test({
  name: "connect({ tls }): refusals are typed, name the host, op handshake",
  ignore: noOpenssl,
  async fn(t) {
    const cases: [
      string,
      { cert?: string; serverName?: string; ca?: string },
      string,
      RegExp,
    ][] = [
      ["unknown CA", { ca: c().otherCa }, "EUNKNOWNCA", /unknown authority/],
      [
        "wrong name",
        { serverName: "other.test" },
        "ECERTNAME",
        /not valid for name "other\.test"/,
      ],
      [
        "expired",
        { cert: c().expired },
        "ECERTEXPIRED",
        /expired on 2020-01-02/,
      ],
    ];
    for (const [what, opts, code, reason] of cases) {
      await t.step(what, async () => {
        await using server = tlsServer({ cert: opts.cert ?? c().cert });
        const error = await within(
          connect("localhost", server.addr.port, {
            tls: { caCerts: [opts.ca ?? c().ca], serverName: opts.serverName },
          }).then(() => undefined, (e: SocketError) => e),
          WAIT,
          "the refusal",
        );
        assert.ok(error instanceof CertificateError, String(error));
        assert.equal(error.code, code);
        assert.equal(error.op, "handshake");
        assert.match(error.reason, reason);
        assert.match(
          error.message,
          new RegExp(
            `^TLS handshake with ${
              opts.serverName ?? "localhost"
            } port ${server.addr.port}: `,
          ),
        );
      });
    }
  },
});

Deno.test({
  name: 'connect("[::1]", { tls }): the bare address is the server name',
  ignore: noOpenssl,
  async fn() {
    // The certificate names localhost and 127.0.0.1, not ::1: the refusal
    // shows which name was checked, and a bracketed one would be no name.
    await using server = tlsServer({}, { hostname: "::1" });
    const error = await within(
      connect("[::1]", server.addr.port, { tls: { caCerts: [c().ca] } })
        .then(() => undefined, (e: SocketError) => e),
      WAIT,
      "the refusal",
    );
    assert.ok(error instanceof CertificateError, String(error));
    assert.equal(error.code, "ECERTNAME");
    assert.equal(error.host, "::1");
    assert.match(error.message, /^TLS handshake with ::1 port \d+: /);
  },
});

Deno.test({
  name: "connect({ tls, timeout }): a server that never answers the handshake",
  ignore: noOpenssl,
  async fn() {
    await using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const accepted = listener.accept();
    const error = await within(
      connect("127.0.0.1", listener.addr.port, {
        tls: { caCerts: [c().ca] },
        timeout: 300,
      }).then(() => undefined, (e: SocketError) => e),
      WAIT,
      "the timeout",
    );
    (await accepted).close();
    assert.ok(error instanceof TimeoutError, String(error));
    assert.equal(error.op, "handshake");
  },
});

Deno.test({
  name: "serve({ tls }): a stalled handshake is cut and frees the only slot",
  ignore: noOpenssl,
  async fn() {
    const errors: unknown[] = [];
    await using server = tlsServer({}, {
      concurrency: 1,
      tls: { cert: c().cert, key: c().key, handshakeTimeout: 300 },
      onError: (e) => errors.push(e),
    });
    // A client that connects and never sends its ClientHello.
    const stalled = await Deno.connect({
      hostname: "127.0.0.1",
      port: server.addr.port,
    });
    try {
      const conn = await within(
        connect("localhost", server.addr.port, { tls: { caCerts: [c().ca] } }),
        WAIT,
        "the second client's handshake, after the first is cut",
      );
      const reply = await within(conn.recvAll(), WAIT, "the greeting");
      conn.close();
      assert.equal(decoder.decode(reply), "hello, ALPN null\n");
    } finally {
      stalled.close();
    }
    assert.equal(errors.length, 1);
    assert.ok(errors[0] instanceof TimeoutError);
    assert.equal((errors[0] as TimeoutError).op, "handshake");
    const stats = server.stats;
    assert.equal(stats.failed, 1);
    assert.equal(stats.served, 1);
  },
});

Deno.test({
  name: "serve --tls: openssl s_client -verify_return_error, ALPN h2",
  ignore: noOpenssl,
  async fn() {
    await using server = tlsServer({ alpnProtocols: ["h2", "http/1.1"] });
    const result = await run("openssl", [
      "s_client",
      "-connect",
      `127.0.0.1:${server.addr.port}`,
      "-servername",
      "localhost",
      "-CAfile",
      file("ca.pem"),
      "-verify_return_error",
      "-alpn",
      "h2",
      "-quiet",
    ], { input: "", timeout: WAIT });
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stdout, "hello, ALPN h2\n");
  },
});

Deno.test({
  name: "serve --tls (the CLI) against ncat --ssl --ssl-verify",
  ignore: noOpenssl || noNcat,
  async fn() {
    await using server = start(DENO, [
      "run",
      "-N",
      "-R",
      CLI,
      "serve",
      "--tls",
      "--cert",
      file("srv.pem"),
      "--key",
      file("srv.key"),
      "--hostname",
      "127.0.0.1",
      "--port",
      "0",
    ]);
    const [, port] = await server.waitForLine(/^socket binded to (\d+)$/, WAIT);
    const ok = await run("ncat", [
      "--ssl",
      "--ssl-verify",
      "--ssl-trustfile",
      file("ca.pem"),
      "--recv-only",
      "localhost",
      port,
    ], { timeout: WAIT });
    assert.equal(ok.code, 0, ok.stderr);
    assert.equal(ok.stdout, "Thank you for connecting");
    // ncat with the other CA refuses; the server counts it as failed.
    const refused = await run("ncat", [
      "--ssl",
      "--ssl-verify",
      "--ssl-trustfile",
      file("ca2.pem"),
      "--recv-only",
      "localhost",
      port,
    ], { timeout: WAIT });
    assert.notEqual(refused.code, 0);
    assert.equal(refused.stdout, "");
    await server.waitForStderr(/failed: TLS handshake with 127\.0\.0\.1/, WAIT);
    server.kill("SIGINT");
    await server.exit(WAIT);
    assert.match(server.stdout, /served 1, failed 1/);
  },
});

Deno.test({
  name: "socat OPENSSL: to serve({ tls }) and from connect({ tls })",
  ignore: noOpenssl || noSocat,
  async fn(t) {
    await t.step("socat OPENSSL: client", async () => {
      await using server = tlsServer();
      const result = await run("socat", [
        "-",
        `OPENSSL:localhost:${server.addr.port},cafile=${file("ca.pem")}`,
      ], { input: "", timeout: WAIT });
      assert.equal(result.code, 0, result.stderr);
      assert.equal(result.stdout, "hello, ALPN null\n");
    });
    await t.step("socat OPENSSL-LISTEN: server", async () => {
      await using socat = start("socat", [
        "-d",
        "-d",
        `OPENSSL-LISTEN:0,bind=127.0.0.1,cert=${file("srv.pem")},` +
        `key=${file("srv.key")},verify=0`,
        "SYSTEM:echo from-socat",
      ]);
      await socat.waitForStderr(/listening on .*:\d+/, WAIT);
      const port = Number(/listening on .*:(\d+)/.exec(socat.stderr)![1]);
      await using conn = await within(
        connect("localhost", port, { tls: { caCerts: [c().ca] } }),
        WAIT,
        "socat's handshake",
      );
      const reply = await within(conn.recvAll(), WAIT, "socat's line");
      assert.equal(decoder.decode(reply), "from-socat\n");
    });
  },
});

Deno.test({
  name: "connect --tls and telnet --tls against openssl s_server -www",
  ignore: noOpenssl,
  async fn(t) {
    await t.step("connect --tls --send: the line, then the page", async () => {
      const [server, port] = await sServer(["-www", "-alpn", "http/1.1"]);
      await using _ = server;
      const result = await cli([
        "connect",
        "localhost",
        String(port),
        "--tls",
        "--ca",
        file("ca.pem"),
        "--alpn",
        "http/1.1",
        "--send",
        "GET / HTTP/1.0\\r\\n\\r\\n",
      ]);
      assert.equal(result.code, 0, result.stderr);
      const lines = result.stdout.split("\n");
      assert.equal(lines[2], "TLS handshake with localhost: ok, ALPN http/1.1");
      assert.equal(lines[3], "HTTP/1.0 200 ok\r");
    });
    await t.step("telnet --tls: the trace has the handshake", async () => {
      const [server, port] = await sServer(["-www", "-alpn", "h2"]);
      await using _ = server;
      const result = await cli([
        "telnet",
        "localhost",
        String(port),
        "--tls",
        "--ca",
        file("ca.pem"),
        "--alpn",
        "h2",
      ], "GET / HTTP/1.0\r\n\r\n");
      assert.equal(result.code, 0, result.stderr);
      assert.match(
        result.stderr,
        /^TLS handshake with localhost: ok, ALPN h2$/m,
      );
      assert.match(result.stdout, /^HTTP\/1\.0 200 ok/);
    });
    await t.step("unknown CA: exit 1, one line, nothing printed", async () => {
      const [server, port] = await sServer(["-www"]);
      await using _ = server;
      const result = await cli([
        "telnet",
        "localhost",
        String(port),
        "--tls",
      ], "GET / HTTP/1.0\r\n\r\n");
      assert.equal(result.code, 1);
      assert.equal(result.stdout, "");
      const last = result.stderr.trim().split("\n").at(-1);
      assert.equal(
        last,
        `TLS handshake with localhost port ${port}: certificate signed by an unknown authority`,
      );
    });
    await t.step("--insecure warns on stderr every time", async () => {
      const [server, port] = await sServer(["-www"]);
      await using _ = server;
      const result = await cli([
        "client",
        "--hostname",
        "localhost",
        "--port",
        String(port),
        "--tls",
        "--ca",
        file("ca.pem"),
        "--servername",
        "other.test",
        "--insecure",
        "--timeout",
        "500",
      ]);
      assert.match(result.stderr, /^warning: --insecure/);
      // The name check is off: the handshake passed, s_server -www waits.
      assert.doesNotMatch(result.stderr, /not valid for name/);
    });
  },
});

Deno.test({
  name: "examples: https_get.ts and starttls.ts (a STARTTLS round trip)",
  ignore: noOpenssl,
  async fn(t) {
    await t.step("https_get.ts against openssl s_server -www", async () => {
      const [server, port] = await sServer(["-www"]);
      await using _ = server;
      const result = await run(DENO, [
        "run",
        "-N",
        "-R",
        `${ROOT}examples/https_get.ts`,
        "--ca",
        file("ca.pem"),
        `https://localhost:${port}/`,
      ], { timeout: WAIT });
      assert.equal(result.code, 0, result.stderr);
      assert.match(result.stdout, /^HTTP\/1\.0 200 ok\r\n/);
    });
    await t.step("starttls.ts: plain greeting, upgrade, secret", async () => {
      const result = await run(DENO, [
        "run",
        "-N",
        "-R",
        `${ROOT}examples/starttls.ts`,
        file("srv.pem"),
        file("srv.key"),
        file("ca.pem"),
      ], { timeout: WAIT });
      assert.equal(result.code, 0, result.stderr);
      assert.match(result.stdout, /S: 220 go ahead\n\(TLS with localhost/);
      assert.match(result.stdout, /S: 250 secret HELLO over TLS\n$/);
    });
    await t.step(
      "startTls() on a peer that closes: ETLS, plain spent",
      async () => {
        await using server = serve({ hostname: "127.0.0.1" }, () => {});
        await using plain = await connect("127.0.0.1", server.addr.port);
        const error = await within(
          startTls(plain, { serverName: "localhost", timeout: 5000 })
            .then(() => undefined, (e: SocketError) => e),
          WAIT,
          "the failed upgrade",
        );
        assert.ok(error instanceof TlsError, String(error));
        assert.equal(error.code, "ETLS");
        assert.equal(plain.closed, true);
      },
    );
  },
});
