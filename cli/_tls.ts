/**
 * The TLS flags that `connect`, `telnet`, `client` and `serve` share:
 * parsing, reading the PEM files, the `--insecure` warning and the help.
 *
 * @module
 */

import type { ClientTlsOptions, ServeTlsOptions } from "../lib/tls.ts";
import {
  msArg,
  type OptionSpec,
  type ParsedArgs,
  printError,
  stringOption,
  UsageError,
} from "./_common.ts";

/** The client's TLS flags. */
export const CLIENT_TLS_OPTIONS: Record<string, OptionSpec> = {
  tls: { type: "boolean" },
  ca: { type: "string", multiple: true },
  servername: { type: "string" },
  alpn: { type: "string" },
  cert: { type: "string" },
  key: { type: "string" },
  insecure: { type: "boolean" },
};

/** The server's TLS flags. */
export const SERVER_TLS_OPTIONS: Record<string, OptionSpec> = {
  tls: { type: "boolean" },
  cert: { type: "string" },
  key: { type: "string" },
  alpn: { type: "string" },
  "handshake-timeout": { type: "string" },
};

/** The client's TLS flags in --help. */
export const CLIENT_TLS_HELP = `TLS:
  --tls               speak TLS; the server's certificate and name are
                      checked against the system's roots (Deno's root store)
  --ca FILE           trust the authority in FILE (PEM) too; repeatable
  --servername NAME   the name the certificate must be valid for, sent as
                      SNI (default: HOST)
  --alpn LIST         ALPN protocols to offer, comma-separated (h2,http/1.1)
  --cert FILE --key FILE
                      a client certificate and its key (PEM), for a server
                      that asks for one
  --insecure          do not check the certificate's name (a warning is
                      printed each time). Deno has no API to skip the chain
                      and date checks per connection: for that, run deno
                      with --unsafely-ignore-certificate-errors
  The PEM files need read permission: --allow-read=FILE,... (or -R).
  TLS runs over TCP only: --tls with --unix is a usage error.
  A refused certificate is exit 1 and one line naming why (unknown
  authority, name mismatch, expired); nothing the server sent is printed
  before its certificate is verified.`;

/** The server's TLS flags in --help. */
export const SERVER_TLS_HELP = `TLS:
  --tls                 serve TLS; needs --cert and --key
  --cert FILE           the certificate chain (PEM), the server's first
  --key FILE            its private key (PEM)
  --alpn LIST           ALPN protocols to accept, comma-separated
  --handshake-timeout MS
                        close a client that has not finished its handshake
                        in MS (default 10000); it counts as failed
  The PEM files need read permission: --allow-read=FILE,... (or -R).
  TLS runs over TCP only: --tls with --unix is a usage error.
  A refused client is closed without the refusal message (it would cost a
  handshake).`;

/**
 * The client's TLS options from the flags (reading the PEM files), or
 * `undefined` without `--tls`. `--insecure` prints its warning here.
 */
export async function clientTlsFlags(
  values: ParsedArgs["values"],
): Promise<ClientTlsOptions | undefined> {
  const caFiles = values.ca === undefined ? [] : values.ca as string[];
  const servername = stringOption(values, "servername");
  const alpn = stringOption(values, "alpn");
  const certFile = stringOption(values, "cert");
  const keyFile = stringOption(values, "key");
  const insecure = values.insecure === true;
  if (!values.tls) {
    const stray = caFiles.length > 0 || servername || alpn || certFile ||
      keyFile || insecure;
    if (stray) throw new UsageError("TLS options need --tls");
    return undefined;
  }
  pair(certFile, keyFile);
  if (insecure) {
    printError(
      "warning: --insecure: the certificate's name is not checked; " +
        "anyone on the path can pose as the server",
    );
  }
  return {
    caCerts: caFiles.length > 0
      ? await Promise.all(caFiles.map((f) => readPem(f, "--ca")))
      : undefined,
    serverName: servername,
    alpnProtocols: alpn === undefined ? undefined : alpnList(alpn),
    cert: certFile === undefined
      ? undefined
      : await readPem(certFile, "--cert"),
    key: keyFile === undefined ? undefined : await readPem(keyFile, "--key"),
    verifyName: !insecure,
  };
}

/** The server's TLS options from the flags, or `undefined` without `--tls`. */
export async function serverTlsFlags(
  values: ParsedArgs["values"],
): Promise<ServeTlsOptions | undefined> {
  const handshakeText = stringOption(values, "handshake-timeout");
  const handshakeTimeout = handshakeText === undefined
    ? undefined
    : msArg(handshakeText, "handshake-timeout");
  const certFile = stringOption(values, "cert");
  const keyFile = stringOption(values, "key");
  const alpn = stringOption(values, "alpn");
  if (!values.tls) {
    if (certFile || keyFile || alpn || handshakeTimeout !== undefined) {
      throw new UsageError("TLS options need --tls");
    }
    return undefined;
  }
  if (certFile === undefined || keyFile === undefined) {
    throw new UsageError("--tls needs --cert FILE and --key FILE");
  }
  return {
    cert: await readPem(certFile, "--cert"),
    key: await readPem(keyFile, "--key"),
    alpnProtocols: alpn === undefined ? undefined : alpnList(alpn),
    handshakeTimeout,
  };
}

/**
 * `--tls` with `--unix` is a usage error: Deno's TLS runs over TCP only
 * (no TLS listener or client on a Unix socket).
 */
export function checkNoTlsOnUnix(
  values: ParsedArgs["values"],
  path: string | undefined,
): void {
  if (path !== undefined && values.tls) {
    throw new UsageError(
      "--tls runs over TCP only: it cannot be used with --unix",
    );
  }
}

/** What `connect`/`telnet` print once the handshake is done. */
export function handshakeLine(
  serverName: string,
  alpnProtocol: string | null | undefined,
): string {
  const alpn = alpnProtocol ? `ALPN ${alpnProtocol}` : "no ALPN";
  return `TLS handshake with ${serverName}: ok, ${alpn}`;
}

function pair(cert: string | undefined, key: string | undefined): void {
  if ((cert === undefined) !== (key === undefined)) {
    throw new UsageError("--cert and --key go together");
  }
}

function alpnList(text: string): string[] {
  const list = text.split(",").map((p) => p.trim());
  if (list.some((p) => p === "" || p.length > 255)) {
    throw new UsageError(
      `invalid --alpn ${JSON.stringify(text)}: expected names separated by ` +
        `commas (h2,http/1.1)`,
    );
  }
  return list;
}

/**
 * A PEM file's text. A missing file is a usage error (exit 2); a missing
 * permission is a runtime one (exit 1) that names the flag to add.
 */
async function readPem(file: string, flag: string): Promise<string> {
  let text: string;
  try {
    text = await Deno.readTextFile(file);
  } catch (error) {
    if (error instanceof Deno.errors.NotCapable) {
      throw new Error(
        `${flag} ${file}: Deno needs read permission (run with ` +
          `--allow-read=${file})`,
      );
    }
    const why = error instanceof Deno.errors.NotFound
      ? "no such file"
      : error instanceof Error
      ? error.message
      : String(error);
    throw new UsageError(`cannot read ${flag} ${file}: ${why}`);
  }
  if (!text.includes("-----BEGIN ")) {
    throw new UsageError(`${flag} ${file}: not a PEM file (no -----BEGIN)`);
  }
  return text;
}
