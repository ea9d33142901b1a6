/**
 * How values and peers appear in messages, for every file that makes one.
 * Internal: `mod.ts` does not re-export this file.
 *
 * @module
 */

/** A value as it should appear in an error message. */
export function describe(value: unknown): string {
  if (typeof value === "string") {
    return JSON.stringify(
      value.length > 80 ? `${value.slice(0, 77)}...` : value,
    );
  }
  if (typeof value === "bigint") return `${value}n`;
  if (typeof value === "function") return "a function";
  try {
    return String(value);
  } catch {
    return typeof value;
  }
}

/**
 * "HOST port PORT", the way every message and the CLI name a peer; the
 * host alone without a port.
 */
export function hostPort(host: string, port?: number): string {
  return port === undefined ? host : `${host} port ${port}`;
}
