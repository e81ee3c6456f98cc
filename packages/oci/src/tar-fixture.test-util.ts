// Builds small tar archives for tests: each entry says exactly what a test wants.
import * as tarStream from "tar-stream";

/** One entry of a test tar (tar-stream header fields). */
export interface TarIn {
  name: string;
  type?: tarStream.Header["type"];
  data?: string | Buffer;
  linkname?: string;
  mode?: number;
  uid?: number;
  gid?: number;
  devmajor?: number;
  devminor?: number;
  pax?: Record<string, string>;
}

/** An uncompressed tar of `entries`. */
export async function tarOf(entries: TarIn[]): Promise<Buffer> {
  const pack = tarStream.pack();
  const chunks: Buffer[] = [];
  pack.on("data", (c) => {
    chunks.push(c as Buffer);
  });
  const ended = new Promise<void>((r) => pack.on("end", () => r()));
  for (const e of entries) {
    const type = e.type ?? "file";
    const data = e.data !== undefined ? Buffer.from(e.data) : type === "file" ? Buffer.alloc(0) : undefined;
    await new Promise<void>((res, rej) =>
      pack.entry(
        {
          name: e.name,
          type,
          linkname: e.linkname,
          mode: e.mode ?? (type === "directory" ? 0o755 : 0o644),
          uid: e.uid ?? 0,
          gid: e.gid ?? 0,
          mtime: new Date(1704067200000),
          devmajor: e.devmajor,
          devminor: e.devminor,
          pax: e.pax,
          size: data?.length ?? 0,
        },
        data as Buffer,
        (err) => (err ? rej(err) : res()),
      ),
    );
  }
  pack.finalize();
  await ended;
  return Buffer.concat(chunks);
}
