import { connect, type Socket } from "node:net";

/** One connection attempt to a unix socket: resolves once connected, rejects with the first error. */
export function connectUnix(path: string): Promise<Socket> {
  return new Promise<Socket>((resolve, reject) => {
    const s = connect(path);
    s.once("connect", () => {
      s.off("error", reject);
      resolve(s);
    });
    s.once("error", reject);
  });
}

/**
 * Connects to a unix socket that a process is about to open: tries every
 * `intervalMs` (default 5) until it connects, rejects with the last error
 * once `deadline` (epoch ms) has passed, and gives up at once with the
 * rejection `stop()` returns when it returns one (e.g. the process died).
 */
export async function connectWhenListening(
  path: string,
  deadline: number,
  opts: { intervalMs?: number; stop?: () => Promise<never> | undefined } = {},
): Promise<Socket> {
  for (;;) {
    const stopped = opts.stop?.();
    if (stopped) return stopped;
    try {
      return await connectUnix(path);
    } catch (err) {
      if (Date.now() >= deadline) throw err;
      await new Promise((r) => setTimeout(r, opts.intervalMs ?? 5));
    }
  }
}
