/** A byte stream that may be destroyed early (Node readables, undici bodies). */
type Body = AsyncIterable<Uint8Array> & { destroy?: (err?: Error) => unknown };

/**
 * Reads `body` into memory, but never more than `max` bytes: a body that
 * declares (`declaredLength`) or delivers more is destroyed (closing its
 * connection or file) and `tooBig()` is thrown. An endless body therefore
 * costs at most `max` bytes of memory.
 */
export async function readBounded(
  body: Body,
  max: number,
  tooBig: () => Error,
  declaredLength?: number,
): Promise<Buffer> {
  if (declaredLength !== undefined && Number.isFinite(declaredLength) && declaredLength > max) {
    body.destroy?.();
    throw tooBig();
  }
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of body) {
    total += chunk.length;
    if (total > max) {
      body.destroy?.();
      throw tooBig();
    }
    chunks.push(Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength));
  }
  return Buffer.concat(chunks, total);
}

/** How much of an error response is read (the rest is discarded with the connection). */
export const ERROR_BODY_MAX_BYTES = 64 * 1024;

/**
 * Reads at most {@link ERROR_BODY_MAX_BYTES} of an error response as text
 * for a message, then destroys the body; never fails.
 */
export async function readErrorText(body: Body): Promise<string> {
  const chunks: Buffer[] = [];
  let total = 0;
  try {
    for await (const chunk of body) {
      const room = ERROR_BODY_MAX_BYTES - total;
      chunks.push(Buffer.from(chunk.buffer, chunk.byteOffset, Math.min(room, chunk.byteLength)));
      total += Math.min(room, chunk.byteLength);
      if (total >= ERROR_BODY_MAX_BYTES) break;
    }
  } catch {
    // A broken error body still makes an error message.
  } finally {
    body.destroy?.();
  }
  return Buffer.concat(chunks).toString("utf8");
}

/** Parsed `Content-Length`, or undefined when absent or not a number. */
export function contentLength(header: string | string[] | undefined): number | undefined {
  const n = Number(Array.isArray(header) ? header[0] : header);
  return header !== undefined && Number.isFinite(n) && n >= 0 ? n : undefined;
}
