import type { Readable } from "node:stream";

/**
 * Pull-style reading of a Node Readable: `read(max)` resolves with the next
 * chunk of at most `max` bytes, or an empty Buffer at end of stream. Reading
 * only on demand keeps the agent's flow control in charge: unread output
 * stays in the guest.
 */
export class PullReader {
  private ended = false;
  private error: Error | undefined;

  constructor(private readonly stream: Readable) {
    stream.pause();
    stream.once("end", () => {
      this.ended = true;
    });
    stream.once("error", (e) => {
      this.error = e;
    });
  }

  /** Next chunk (at most `max` bytes), or an empty Buffer once the stream has ended. */
  async read(max = 64 * 1024): Promise<Buffer> {
    for (;;) {
      if (this.error) throw this.error;
      const chunk = this.stream.read() as Buffer | null;
      if (chunk !== null) {
        const buf = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk);
        if (buf.length > max) {
          this.stream.unshift(buf.subarray(max));
          return buf.subarray(0, max);
        }
        return buf;
      }
      if (this.ended || this.stream.readableEnded) return Buffer.alloc(0);
      await new Promise<void>((resolve) => {
        const done = () => {
          this.stream.off("readable", done);
          this.stream.off("end", done);
          this.stream.off("error", done);
          this.stream.off("close", done);
          resolve();
        };
        this.stream.on("readable", done);
        this.stream.on("end", done);
        this.stream.on("error", done);
        this.stream.on("close", done);
      });
      if (this.stream.destroyed && !this.stream.readableEnded && this.stream.readableLength === 0) {
        if (this.error) throw this.error;
        return Buffer.alloc(0);
      }
    }
  }

  /** Reads and discards everything left. */
  async drain(): Promise<void> {
    while ((await this.read(1 << 20)).length > 0) {}
  }
}
