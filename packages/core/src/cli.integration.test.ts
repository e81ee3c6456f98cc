// The supermachine CLI with pipes (not a terminal): run's options, stdin,
// exit statuses and signals; build --json/--quiet; ls, inspect, prune, pull;
// errors with their code and fix. Real VMs of the default image.
import { spawn, spawnSync } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { type AddressInfo, createServer } from "node:net";
import { homedir, tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { layoutPath } from "./test-support/images.js";
import { qemuPids, waitFor } from "./test-support/procs.js";

const bin = fileURLToPath(new URL("../dist/bin.js", import.meta.url));
const cacheRoot = process.env.SUPERMACHINE_CACHE ?? join(homedir(), ".cache", "supermachine");
const ref = `oci:${join(cacheRoot, "images", "default")}:latest`;
const root = mkdtempSync(join(tmpdir(), "sm-cli-"));
const snaps = join(root, "snapshots");

afterAll(() => {
  rmSync(root, { recursive: true, force: true });
});

function cli(args: string[], opts: { input?: string | Buffer; env?: Record<string, string> } = {}) {
  const r = spawnSync(process.execPath, [bin, ...args], {
    input: opts.input ?? "",
    env: { ...process.env, ...opts.env },
    timeout: 300_000,
    maxBuffer: 64 << 20,
  });
  return { code: r.status, out: r.stdout.toString(), err: r.stderr.toString(), raw: r.stdout };
}

/** Like `cli`, without blocking the event loop (for tests that serve the guest from this process). */
function cliAsync(args: string[]): Promise<{ code: number | null; out: string; err: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [bin, ...args], { stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    let err = "";
    child.stdout.on("data", (d) => {
      out += d;
    });
    child.stderr.on("data", (d) => {
      err += d;
    });
    child.on("close", (code) => resolve({ code, out, err }));
  });
}

/** stderr without the host's warnings (e.g. the accelerator fallback on hosts without KVM). */
const noWarnings = (err: string) =>
  err
    .split("\n")
    .filter((l) => l && !l.startsWith("supermachine: warning"))
    .join("\n");

beforeAll(() => {
  if (!existsSync(join(cacheRoot, "images", "default", "index.json"))) {
    throw new Error("the default image is missing: run `bash scripts/test-images/default-image.sh`");
  }
});

describe("supermachine run (pipes)", () => {
  it("bakes on first use with progress lines, passes the exit status and both streams through", () => {
    const r = cli([
      "run",
      "--snapshots-dir",
      snaps,
      ref,
      "--",
      "sh",
      "-c",
      "uname -s; echo oops >&2; exit 3",
    ]);
    expect(r.out).toBe("Linux\n");
    expect(r.code).toBe(3);
    const err = noWarnings(r.err);
    expect(err).toMatch(/^boot: booting guest$/m);
    expect(err).toMatch(/^snapshot: done in [\d.]+m?s$/m);
    expect(err.trim().split("\n").at(-1)).toBe("oops");
    // a cache hit prints nothing of its own
    const again = cli(["run", "--snapshots-dir", snaps, ref, "--", "true"]);
    expect(again.code).toBe(0);
    expect(noWarnings(again.err)).toBe("");
  });

  it("forwards piped stdin without -i, byte for byte", () => {
    expect(cli(["run", "--snapshots-dir", snaps, ref, "--", "cat"], { input: "x\n" }).out).toBe("x\n");
    const data = randomBytes(3 << 20);
    const r = cli(["run", "--snapshots-dir", snaps, ref, "sha256sum"], { input: data });
    expect(r.code).toBe(0);
    expect(r.out.split(" ")[0]).toBe(createHash("sha256").update(data).digest("hex"));
  });

  it("stops the command when the reader of its output goes away (status 141, like SIGPIPE)", () => {
    const line = `${process.execPath} ${bin} run -q --snapshots-dir ${snaps} ${ref} -- yes | head -2; echo "status=\${PIPESTATUS[0]}"`;
    const r = spawnSync("bash", ["-c", line], { encoding: "utf8", timeout: 120_000 });
    expect(r.stdout).toBe("y\ny\nstatus=141\n");
    // no error, no stack trace (a warning line may name EPIPE: the accelerator probe's reason)
    expect(noWarnings(r.stderr)).not.toMatch(/EPIPE|^\s+at /m);
  });

  it("runs the image's own command when none is given", () => {
    const r = cli(["run", "--snapshots-dir", snaps, ref], { input: "echo from $0\n" });
    expect(r.out).toBe("from /bin/sh\n");
  });

  it("applies -e, --env-file, -w and -u", () => {
    const envFile = join(root, "env");
    writeFileSync(envFile, "# comment\nB=from file\nA=overridden\n");
    const r = cli(
      [
        "run",
        "-q",
        "--snapshots-dir",
        snaps,
        "--env-file",
        envFile,
        "-e",
        "A=1",
        "-e",
        "HOSTV",
        "-w",
        "/tmp",
        ref,
        // options may also stand between the image and `--`
        "-u",
        "www",
        "--",
        "sh",
        "-c",
        'echo "$A|$B|$HOSTV"; pwd; id -un',
      ],
      { env: { HOSTV: "from host" } },
    );
    expect(noWarnings(r.err)).toBe("");
    expect(r.out).toBe("1|from file|from host\n/tmp\nwww\n");
  });

  it("copies files and directories in with -v, forwards ports with -p, and passes SIGINT to the command", async () => {
    const site = join(root, "site");
    mkdirSync(join(site, "sub"), { recursive: true });
    writeFileSync(join(site, "index.html"), "hello from the host\n");
    writeFileSync(join(site, "sub", "x.txt"), "nested\n");
    const script = join(root, "hello.sh");
    writeFileSync(script, "#!/bin/sh\necho script ran\n");
    chmodSync(script, 0o755);
    const child = spawn(
      process.execPath,
      [
        bin,
        "run",
        "--snapshots-dir",
        snaps,
        "-p",
        "0:80",
        "-v",
        `${site}:/srv`,
        "-v",
        `${script}:/usr/local/bin/hello`,
        ref,
        "--",
        "sh",
        "-c",
        "hello; exec httpd -f -p 80 -h /srv",
      ],
      { stdio: ["ignore", "pipe", "pipe"] },
    );
    let out = "";
    let err = "";
    child.stdout.on("data", (d) => {
      out += d;
    });
    child.stderr.on("data", (d) => {
      err += d;
    });
    const exited = new Promise<number | null>((r) => child.on("exit", (code) => r(code)));
    try {
      const port = await waitFor(
        () => /forwarding 127\.0\.0\.1:(\d+) -> guest port 80/.exec(err)?.[1],
        240_000,
      );
      expect(port).toBeDefined();
      await waitFor(() => out.includes("script ran"), 60_000);
      const get = async (path: string) => {
        let last: unknown;
        for (let i = 0; i < 100; i++) {
          try {
            return await (await fetch(`http://127.0.0.1:${port}${path}`)).text();
          } catch (e) {
            last = e; // httpd may not listen yet
            await new Promise((r) => setTimeout(r, 100));
          }
        }
        throw last;
      };
      expect(await get("/index.html")).toBe("hello from the host\n");
      expect(await get("/sub/x.txt")).toBe("nested\n");
      child.kill("SIGINT");
      expect(await exited).toBe(130);
    } finally {
      child.kill("SIGKILL");
    }
  });

  it("applies --network none, the default egress policy and --allow-out host:PORT", async () => {
    // a server of this test on the host's loopback; the guest reaches it as 10.0.2.2 only when allowed
    const server = createServer((c) => c.end("hello from the host\n"));
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
    const port = (server.address() as AddressInfo).port;
    try {
      const noCard = cli([
        "run",
        "-q",
        "--snapshots-dir",
        snaps,
        "--network",
        "none",
        ref,
        "--",
        "ls",
        "/sys/class/net",
      ]);
      expect(noCard.out.split("\n")).not.toContain("eth0");
      expect(noCard.out.split("\n")).toContain("lo");
      const probe = ["sh", "-c", `nc -w 5 10.0.2.2 ${port} </dev/null || echo refused`];
      const refused = await cliAsync(["run", "-q", "--snapshots-dir", snaps, ref, "--", ...probe]);
      expect(refused.out).toBe("refused\n");
      const allowed = await cliAsync([
        "run",
        "-q",
        "--snapshots-dir",
        snaps,
        "--allow-out",
        `host:${port}`,
        ref,
        "--",
        ...probe,
      ]);
      expect(allowed.out).toBe("hello from the host\n");
      expect(cli(["run", "--network", "none", "--allow-out", "1.2.3.4", ref, "--", "true"]).err).toMatch(
        /\[INVALID_OPTIONS\] --network none has no network card/,
      );
    } finally {
      server.close();
    }
  });

  it("kills the command after --timeout with status 124", () => {
    const r = cli(["run", "--snapshots-dir", snaps, "--timeout", "1s", ref, "--", "sleep", "100"]);
    expect(r.code).toBe(124);
    expect(r.err).toMatch(/killed after --timeout/);
  });
});

describe("supermachine logs and run --logs", () => {
  const dir = join(root, "logs-snaps");
  const workload =
    "echo start; echo err-line >&2; touch /tmp/started; i=0; while :; do i=$((i+1)); echo line $i; sleep 0.3; done";

  it("prints a fresh VM's workload output after --wait, for an image or a snapshot name", () => {
    const r = cli(["logs", "-q", "--snapshots-dir", dir, "--cmd", workload, "--wait", "2s", ref]);
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/^start\nerr-line\nline 1\nline 2\n(line \d+\n)*$/);
    const [snap] = JSON.parse(cli(["ls", "--json", "--snapshots-dir", dir]).out) as Array<{ name: string }>;
    const byName = cli(["logs", "--snapshots-dir", dir, "--wait", "1s", snap!.name]);
    expect(byName.out).toMatch(/^start\nerr-line\n/);
  });

  it("follows the output with -f, every line once and in order, until SIGINT", async () => {
    const child = spawn(
      process.execPath,
      [bin, "logs", "-f", "--snapshots-dir", dir, "--cmd", workload, ref],
      {
        stdio: ["ignore", "pipe", "pipe"],
      },
    );
    let out = "";
    child.stdout.on("data", (d) => {
      out += d;
    });
    const exited = new Promise<number | null>((r) => child.on("exit", (code) => r(code)));
    try {
      expect(await waitFor(() => /^line 12$/m.test(out), 120_000)).toBe(true);
      child.kill("SIGINT");
      expect(await exited).toBe(130);
      const lines = out.trimEnd().split("\n");
      expect(lines.slice(0, 2)).toEqual(["start", "err-line"]);
      const numbers = lines.slice(2).map((l) => Number(/^line (\d+)$/.exec(l)?.[1]));
      expect(numbers).toEqual(numbers.map((_, i) => i + 1));
    } finally {
      child.kill("SIGKILL");
    }
  });

  it("run --logs prints the command's output, then the workload's on stderr", () => {
    // the command waits for the workload's first lines (they run side by side in the VM)
    const command = ["sh", "-c", "until [ -e /tmp/started ]; do usleep 20000; done; echo cmd-out"];
    const r = cli(["run", "-q", "--snapshots-dir", dir, "--cmd", workload, "--logs", ref, "--", ...command]);
    expect(r.code).toBe(0);
    expect(r.out).toBe("cmd-out\n");
    expect(r.err).toMatch(/--- workload logs \(last \d+ of \d+ bytes\) ---\nstart\nerr-line\n/);
  });
});

describe("supermachine --arch", () => {
  it("runs the variant of a multi-arch image for the guest architecture asked, and refuses an unknown one", () => {
    const multi = `oci:${layoutPath("busybox-multiarch")}:latest`;
    const dir = join(root, "arch-snaps");
    for (const arch of ["aarch64", "x86_64"]) {
      const r = cli(["run", "-q", "--snapshots-dir", dir, "--arch", arch, multi, "--", "uname", "-m"]);
      expect(noWarnings(r.err)).toBe("");
      expect({ code: r.code, out: r.out }).toEqual({ code: 0, out: `${arch}\n` });
    }
    const listed = JSON.parse(cli(["ls", "--json", "--snapshots-dir", dir]).out) as Array<{
      metadata: { engine: { arch?: string } };
    }>;
    expect(listed.map((s) => s.metadata.engine.arch ?? "x86_64").sort()).toEqual(["aarch64", "x86_64"]);
    const bad = cli(["build", "--snapshots-dir", dir, "--arch", "mips", multi]);
    expect(bad.code).not.toBe(0);
    expect(bad.err).toMatch(/--arch.*mips|mips.*--arch/);
  });
});

describe("supermachine build, ls, inspect, prune, pull", () => {
  const dir = join(root, "json-snaps");

  it("build --json prints one well-formed event per line, ending with done", () => {
    const events = (args: string[]) => {
      const r = cli(["build", "--json", "--snapshots-dir", dir, ...args, ref]);
      expect(r.code).toBe(0);
      return r.out
        .trimEnd()
        .split("\n")
        .map((l) => JSON.parse(l) as { event: string; elapsedMs: number; [k: string]: unknown });
    };
    const cold = events([]);
    const kinds = cold.map((e) => e.event).filter((k, i, a) => a[i - 1] !== k);
    expect(kinds).toEqual(["pull", "rootfs", "boot", "snapshot", "done"]);
    for (const e of cold) expect(e.elapsedMs).toBeGreaterThanOrEqual(0);
    const done = cold.at(-1)!;
    expect(done).toMatchObject({ event: "done", cached: false });
    expect(existsSync(join(done.snapshotPath as string, "restore.snap"))).toBe(true);
    const pulls = cold.filter((e) => e.event === "pull");
    expect(pulls.at(-1)).toMatchObject({ layer: expect.stringMatching(/^sha256:/) });
    expect(pulls.at(-1)?.bytesDone).toBe(pulls.at(-1)?.bytesTotal);

    const warm = events([]);
    expect(warm.map((e) => e.event).filter((k) => k !== "pull")).toEqual(["cached", "done"]);
    expect(warm.at(-1)).toMatchObject({ cached: true, snapshotPath: done.snapshotPath });

    const quiet = cli(["build", "-q", "--snapshots-dir", dir, ref]);
    expect(quiet.out).toBe(`${done.snapshotPath}\n`);
    expect(noWarnings(quiet.err)).toBe("");
  });

  it("ls prints a table, --json and -q; inspect shows the details", () => {
    const table = cli(["ls", "--snapshots-dir", dir]);
    const [header, row, ...rest] = table.out.trimEnd().split("\n");
    expect(rest).toEqual([]);
    expect(header).toMatch(/^NAME +IMAGE +TRIGGER +ACCEL +MEMORY +DISK +CREATED +STATUS$/);
    expect(row).toMatch(
      /^oci-default_latest-[0-9a-f]+ +oci:\S+ +pre-exec +(tcg|kvm) +256 MiB +[\d.]+ [kMG]?B +\d+[smhd] ago +ok$/,
    );
    const list = JSON.parse(cli(["ls", "--json", "--snapshots-dir", dir]).out) as Array<{
      name: string;
      path: string;
    }>;
    expect(list).toHaveLength(1);
    const name = list[0]!.name;
    expect(cli(["ls", "-q", "--snapshots-dir", dir]).out).toBe(`${name}\n`);

    const text = cli(["inspect", "--snapshots-dir", dir, name]).out;
    for (const re of [
      /^ {2}status +valid$/m,
      /^ {2}platform +linux\/amd64$/m,
      /^ {2}arch +x86_64 guest \(QEMU microvm\), image linux\/amd64$/m,
      /^ {2}accelerator +(tcg|kvm) \(cpu [\w,-]+\)$/m,
      /^ {2}memory +256 MiB \([\d.]+ [kM]B on disk/m,
      /^ {2}fingerprint +[0-9a-f]{64}$/m,
      /^ {2}kernel, agent +[0-9a-f]+, [0-9a-f]+$/m,
    ]) {
      expect(text).toMatch(re);
    }
    const json = JSON.parse(cli(["inspect", "--json", "--snapshots-dir", dir, name]).out);
    expect(json).toMatchObject({ name, valid: true, arch: "x86_64", platform: "linux/amd64" });
    // by the image reference it was baked from
    const byRef = JSON.parse(cli(["inspect", "--json", "--snapshots-dir", dir, ref]).out);
    expect(byRef.fingerprint).toBe(json.fingerprint);
  });

  it("prune removes old snapshots; ls then says there are none", () => {
    expect(cli(["prune", "--snapshots-dir", dir]).out).toMatch(/^removed 0 snapshots/m);
    const r = cli(["prune", "--all", "--snapshots-dir", dir]);
    expect(r.out).toMatch(/^removed oci-default_latest-[0-9a-f]+$/m);
    expect(r.out).toMatch(/^removed 1 snapshots, 0 root fs images; freed [\d.]+ [kMG]?B$/m);
    const ls = cli(["ls", "--snapshots-dir", dir]);
    expect(ls.out).toBe("");
    expect(ls.err).toMatch(/no snapshots/);
  });

  it("pull builds the root fs only and prints its path", () => {
    const r = cli(["pull", ref]);
    expect(r.code).toBe(0);
    const path = r.out.trim();
    expect(path).toMatch(/\/rootfs\/[0-9a-f]{64}\.img$/);
    expect(existsSync(path)).toBe(true);
    expect(noWarnings(r.err)).toMatch(/linux\/amd64, 1 layer, [\d.]+ [kM]B\): root fs [\d.]+ MB/);
    const json = cli(["pull", "--json", ref])
      .out.trimEnd()
      .split("\n")
      .map((l) => JSON.parse(l));
    expect(json.at(-1)).toMatchObject({ event: "done", rootfsPath: path, platform: "linux/amd64" });
  });
});

describe("supermachine errors, help and version", () => {
  it("prints the typed code and a fix, and the stack only with --debug", () => {
    const r = cli(["build", "--snapshots-dir", snaps, "UPPER/Case:@@"]);
    expect(r.code).toBe(1);
    const lines = noWarnings(r.err).split("\n");
    expect(lines.at(-2)).toMatch(/^supermachine: \[OCI_INVALID_REFERENCE\] invalid image reference/);
    expect(lines.at(-1)).toMatch(/^ {2}fix: write the image as NAME\[:TAG\]/);
    expect(r.err).not.toMatch(/^\s+at /m);
    const debug = cli(["build", "--debug", "--snapshots-dir", snaps, "UPPER/Case:@@"]);
    expect(debug.err).toMatch(/^\s+at .*\.js:\d+:\d+\)?$/m);

    const json = cli(["build", "--json", "--snapshots-dir", snaps, "UPPER/Case:@@"]);
    expect(JSON.parse(json.out.trim())).toMatchObject({ event: "error", code: "OCI_INVALID_REFERENCE" });

    const missing = cli(["run", "--snapshots-dir", snaps, "-v", "/no/such/file:/x", ref, "--", "true"]);
    expect(missing.code).toBe(1);
    expect(missing.err).toMatch(
      /\[INVALID_OPTIONS\] -v \/no\/such\/file:\/x: \/no\/such\/file does not exist/,
    );
    expect(missing.err).toMatch(/fix: check the options against `supermachine run --help`/);

    const usage = cli(["run", "--frob", ref]);
    expect(usage.code).toBe(2);
    expect(usage.err).toMatch(
      /^supermachine: \[USAGE\] unknown option '--frob'\n {2}fix: see `supermachine run --help`/m,
    );
    expect(cli([]).code).toBe(2);
  });

  it("prints the version and per-command help with examples", () => {
    const pkg = JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8")) as {
      version: string;
    };
    expect(cli(["--version"]).out).toBe(`${pkg.version}\n`);
    for (const cmd of ["build", "run", "logs", "pull", "ls", "inspect", "prune", "doctor", "completion"]) {
      const h = cli([cmd, "--help"]);
      expect(h.code, cmd).toBe(0);
      expect(h.out, cmd).toMatch(new RegExp(`^Usage: supermachine ${cmd} `));
      expect(h.out, cmd).toMatch(/\nExamples:\n {2}\$ /);
    }
    expect(cli(["run", "--help"]).out).toMatch(/-t, --tty/);
  });

  it("leaves no QEMU behind", async () => {
    expect(await waitFor(() => qemuPids().length === 0, 10_000)).toBe(true);
  });
});
