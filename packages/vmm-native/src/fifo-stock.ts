import { execFile } from "node:child_process";
import { mkdtempSync, readdirSync, renameSync, rmSync } from "node:fs";
import { dirname, join } from "node:path";
import { promisify } from "node:util";

const execFileAsync = promisify(execFile);

/** FIFOs made per `mkfifo` run; a new batch starts when fewer than half are left. */
const BATCH = 4;

/**
 * Named pipes made ahead of time. Node cannot create a FIFO itself, and
 * running `mkfifo` costs a few milliseconds per VM start; a stock made in
 * batches, in the background, turns that into one `rename` on the start path.
 * One stock per directory that VM run directories are made in (a rename
 * cannot cross file systems); it lives in a `fifos-<pid>-*` directory
 * there, removed when this process exits, or by the next process that makes
 * a stock there once this one is gone (killed processes leave theirs).
 */
class FifoStock {
  private readonly dir: string;
  private ready: string[] = [];
  private filling: Promise<void> | undefined;
  private serial = 0;

  constructor(parent: string) {
    reapDead(parent);
    this.dir = mkdtempSync(join(parent, `fifos-${process.pid}-`));
    process.once("exit", () => rmSync(this.dir, { recursive: true, force: true }));
  }

  private fill(): Promise<void> {
    this.filling ??= (async () => {
      const names = Array.from({ length: BATCH }, () => join(this.dir, `f${this.serial++}`));
      try {
        await execFileAsync("mkfifo", ["-m", "600", ...names]);
        this.ready.push(...names);
      } finally {
        this.filling = undefined;
      }
    })();
    return this.filling;
  }

  /** Puts a fresh FIFO (mode 0600) at `dest`. */
  async take(dest: string): Promise<void> {
    while (this.ready.length === 0) await this.fill();
    renameSync(this.ready.pop() as string, dest);
    if (this.ready.length < BATCH / 2) this.fill().catch(() => {});
  }
}

/** Removes the stocks of processes that no longer run. */
function reapDead(parent: string): void {
  for (const name of readdirSync(parent)) {
    const m = /^fifos-(\d+)-/.exec(name);
    if (!m || Number(m[1]) === process.pid || running(Number(m[1]))) continue;
    rmSync(join(parent, name), { recursive: true, force: true });
  }
}

function running(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}

const stocks = new Map<string, FifoStock>();

/** Makes a FIFO (mode 0600) at `path`, from the stock of its parent's parent directory. */
export async function makeFifo(path: string): Promise<void> {
  const parent = dirname(dirname(path));
  let stock = stocks.get(parent);
  if (!stock) {
    stock = new FifoStock(parent);
    stocks.set(parent, stock);
  }
  await stock.take(path);
}
