/**
 * Joining byte chunks, for every file that reads a stream to its end.
 * Internal: `mod.ts` does not re-export this file.
 *
 * @module
 */

/**
 * The chunks as one array; a single chunk is returned as it is, not copied.
 *
 * @param chunks The chunks, in order.
 * @param total Their total length, when the caller has counted it.
 * @returns The bytes.
 */
export function concat(
  chunks: readonly Uint8Array[],
  total: number = chunks.reduce((n, chunk) => n + chunk.length, 0),
): Uint8Array {
  if (chunks.length === 1) return chunks[0];
  const out = new Uint8Array(total);
  let offset = 0;
  for (const chunk of chunks) {
    out.set(chunk, offset);
    offset += chunk.length;
  }
  return out;
}
