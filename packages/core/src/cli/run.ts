import { readdir, readFile, stat } from "node:fs/promises";
import { join } from "node:path";
import type { ExecChild, Image, NetworkOptions, Pool, Vm } from "../index.js";
import { CoreError } from "../index.js";
import { asUser, type CopyIn, type PortMapping } from "./parse.js";
import type { Style } from "./style.js";

/** What `supermachine run` does once the image is baked. */
export interface RunPlan {
  /** Command; empty runs the image's own command (ENTRYPOINT + CMD). */
  command: string[];
  env: Record<string, string>;
  cwd?: string;
  user?: string;
  /** `-i`: forward stdin (also done whenever stdin is not a terminal). */
  interactive: boolean;
  /** `-t`: run under a pseudo-terminal in the guest. */
  tty: boolean;
  ports: PortMapping[];
  copies: CopyIn[];
  timeoutMs?: number;
  /** After the command, print the workload's output (`vm.logs()`) on stderr. */
  logs?: boolean;
  /** Egress policy of the VM (over the image's). */
  network?: NetworkOptions;
  quiet: boolean;
  style: Style;
}

const SIGNALS: Record<string, number> = { SIGINT: 2, SIGTERM: 15, SIGHUP: 1, SIGQUIT: 3 };

/** Writes to a stream, waiting for `drain` when it is full (or for its end, when the reader went away). */
function write(stream: NodeJS.WritableStream, chunk: Buffer): Promise<void> {
  return new Promise((resolve) => {
    if (stream.write(chunk)) return resolve();
    const done = () => {
      stream.off("drain", done);
      stream.off("error", done);
      stream.off("close", done);
      resolve();
    };
    stream.once("drain", done);
    stream.once("error", done);
    stream.once("close", done);
  });
}

/** Copies a guest stream to a local one; after a broken pipe it keeps reading (and drops) until the end. */
async function pump(
  read: () => Promise<Buffer>,
  out: NodeJS.WritableStream,
  broken: () => boolean,
): Promise<void> {
  for (;;) {
    const chunk = await read();
    if (chunk.length === 0) return;
    if (!broken()) await write(out, chunk);
  }
}

/** Copies a host file, or a directory tree, to `guestPath` in the VM (modes kept). */
async function copyIn(vm: Vm, hostPath: string, guestPath: string): Promise<number> {
  const st = await stat(hostPath);
  if (st.isDirectory()) {
    let n = 0;
    for (const name of await readdir(hostPath)) {
      n += await copyIn(vm, join(hostPath, name), `${guestPath.replace(/\/$/, "")}/${name}`);
    }
    return n;
  }
  if (!st.isFile()) return 0;
  await vm.writeFile(guestPath, await readFile(hostPath), st.mode & 0o7777);
  return 1;
}

/** Checks `-v` sources before anything boots, so a typo fails fast. */
export async function checkCopies(copies: readonly CopyIn[]): Promise<void> {
  for (const c of copies) {
    const st = await stat(c.hostPath).catch(() => undefined);
    if (!st)
      throw new CoreError("INVALID_OPTIONS", `-v ${c.hostPath}:${c.guestPath}: ${c.hostPath} does not exist`);
  }
}

/**
 * Restores a VM from `image`, runs the command with the terminal or pipes
 * attached and resolves with the exit status to pass on: the command's
 * own, 128 + signal when a signal killed it, 124 after `--timeout`.
 */
export async function runInVm(image: Image, plan: RunPlan): Promise<number> {
  const stdin = process.stdin;
  const stdout = process.stdout;
  const stderr = process.stderr;
  let pool: Pool | undefined;
  let vm: Vm | undefined;
  let child: ExecChild | undefined;
  let rawMode = false;
  let timedOut = false;
  let timer: NodeJS.Timeout | undefined;
  const forwarded: number[] = [];
  const cleanups: Array<() => void> = [];

  // Signals: before the command starts they end the run; then they go to
  // the guest process (the second SIGINT kills it outright).
  const onSignal = (name: NodeJS.Signals) => {
    const signum = SIGNALS[name] ?? 15;
    if (!child) {
      void (async () => {
        await pool?.shutdown().catch(() => {});
        process.exit(128 + signum);
      })();
      return;
    }
    const repeated = name === "SIGINT" && forwarded.includes(2);
    forwarded.push(signum);
    const proc = child;
    proc.signal(repeated ? 9 : signum).catch(() => {});
    // the terminal is gone: nothing can read the output any more
    if (name === "SIGHUP") proc.signal(9).catch(() => {});
  };
  for (const name of Object.keys(SIGNALS) as NodeJS.Signals[]) {
    process.on(name, onSignal);
    cleanups.push(() => process.off(name, onSignal));
  }

  try {
    pool = await image.pool({
      min: 1,
      max: 1,
      restoreOnRelease: false,
      ...(plan.network ? { network: plan.network } : {}),
    });
    vm = await pool.acquire();
    for (const c of plan.copies) await copyIn(vm, c.hostPath, c.guestPath);
    for (const p of plan.ports) {
      const fwd = await vm.exposeTcp(p.hostPort, p.guestPort);
      if (!plan.quiet) {
        stderr.write(`${plan.style.dim(`forwarding ${fwd.localAddr} -> guest port ${p.guestPort}`)}\n`);
      }
    }

    let argv = plan.command.length ? plan.command : image.metadata.workload.argv;
    if (argv.length === 0) {
      throw new CoreError("INVALID_OPTIONS", "the image sets no command: give one after the image (`-- sh`)");
    }
    if (plan.user) argv = asUser(plan.user, argv);
    const cols = stdout.isTTY ? stdout.columns : 0;
    const rows = stdout.isTTY ? stdout.rows : 0;
    child = await vm.spawn({
      argv,
      env: plan.env,
      ...(plan.cwd ? { cwd: plan.cwd } : {}),
      tty: plan.tty,
      ...(plan.tty ? { winsize: { cols, rows } } : {}),
    });
    const proc = child;

    if (plan.timeoutMs) {
      timer = setTimeout(() => {
        timedOut = true;
        proc.signal(9).catch(() => {});
      }, plan.timeoutMs);
    }

    // the guest terminal follows this one's size (SIGWINCH)
    if (plan.tty && stdout.isTTY) {
      const onResize = () => proc.resize(stdout.columns, stdout.rows).catch(() => {});
      stdout.on("resize", onResize);
      cleanups.push(() => stdout.off("resize", onResize));
    }

    // stdin: with -i, or whenever it is a pipe or file (`echo x | supermachine run IMAGE -- cat`)
    const forwardStdin = plan.interactive || !stdin.isTTY;
    if (forwardStdin) {
      if (plan.tty && stdin.isTTY) {
        // raw: every key (Ctrl-C, Ctrl-D, arrows) goes to the guest's line discipline
        stdin.setRawMode(true);
        rawMode = true;
      }
      let writing = Promise.resolve();
      const onData = (chunk: Buffer) => {
        stdin.pause();
        writing = proc
          .writeStdin(chunk)
          .catch(() => {})
          .then(() => {
            stdin.resume();
          });
      };
      const onEnd = () => {
        void writing.then(() => proc.closeStdin()).catch(() => {});
      };
      stdin.on("data", onData);
      stdin.once("end", onEnd);
      stdin.resume();
      cleanups.push(() => {
        stdin.off("data", onData);
        stdin.off("end", onEnd);
        stdin.pause();
      });
    } else {
      await proc.closeStdin();
    }

    // the reader of our output went away (`... | head`): stop the command, like SIGPIPE would
    let brokenPipe = false;
    const onPipeError = (err: NodeJS.ErrnoException) => {
      if (err.code !== "EPIPE") return;
      brokenPipe = true;
      proc.signal(9).catch(() => {});
    };
    for (const s of [stdout, stderr]) {
      s.on("error", onPipeError);
      cleanups.push(() => s.off("error", onPipeError));
    }
    await Promise.all([
      pump(
        () => proc.readStdout(),
        stdout,
        () => brokenPipe,
      ),
      pump(
        () => proc.readStderr(),
        stderr,
        () => brokenPipe,
      ),
    ]);
    const result = await proc.wait();
    if (brokenPipe) return 128 + 13;
    if (plan.logs) {
      const l = await vm.logs();
      stderr.write(`--- workload logs (last ${l.output.length} of ${l.totalBytes} bytes) ---\n`);
      stderr.write(l.output);
    }
    if (timedOut) {
      stderr.write(`supermachine: the command was killed after --timeout ${plan.timeoutMs}ms\n`);
      return 124;
    }
    if (result.exitCode >= 0) return result.exitCode;
    const sig = result.signal ?? forwarded.at(-1) ?? 9;
    return 128 + sig;
  } finally {
    if (timer) clearTimeout(timer);
    if (rawMode) stdin.setRawMode(false);
    for (const c of cleanups.reverse()) c();
    await vm?.release().catch(() => {});
    await pool?.shutdown().catch(() => {});
  }
}
