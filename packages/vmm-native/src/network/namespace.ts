import { type ChildProcess, spawn } from "node:child_process";
import { closeSync, fstatSync, openSync, readFileSync, statSync } from "node:fs";
import { VmmError } from "../errors.js";
import { hostAddresses } from "./host-facts.js";
import { DNS_FORWARD_ADDRESS, type DynamicSets, renderRuleset, renderSetUpdate } from "./nft.js";
import { allowsNothing, type NormalizedPolicy } from "./policy.js";
import { removeStaleResolvFiles, resolvFileFor } from "./resolv-file.js";
import { resolveNames } from "./resolve.js";
import { type NetworkTools, networkTools } from "./tools.js";

/**
 * Runs in the namespace holder (a fresh network + mount namespace): binds the
 * engine's resolv.conf over /etc/resolv.conf (QEMU's user network reads its
 * upstream resolver there), lets any group open ICMP echo sockets (QEMU's
 * user network pings with them), loads the nftables ruleset from stdin,
 * reports `ready` and becomes a capability-less `sleep` that holds the
 * namespaces. Positional: $1 resolv.conf file, $2 mount, $3 nft, $4 setpriv, $5 sleep.
 */
const HOLDER_SCRIPT = `set -e
if [ -e /etc/resolv.conf ]; then "$2" --bind "$1" /etc/resolv.conf; fi
echo "0 2147483647" > /proc/sys/net/ipv4/ping_group_range 2>/dev/null || :
"$3" -f -
echo ready
exec "$4" --inh-caps=-all --bounding-set=-all --pdeathsig KILL -- "$5" infinity </dev/null`;

const SETUP_TIMEOUT_MS = 15_000;
const MAX_PASTA_RESTARTS = 5;

let warnedNoUplink = false;

function collect(child: ChildProcess): { text: () => string } {
  let buf = "";
  child.stderr?.setEncoding("utf8");
  child.stderr?.on("data", (s: string) => {
    buf = (buf + s).slice(-4096);
  });
  return { text: () => buf.trim() };
}

function exitOf(child: ChildProcess): Promise<number | null> {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) resolve(child.exitCode);
    else child.once("exit", (code) => resolve(code));
  });
}

/** Resolves after `ms`. */
function delay(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** True once the namespace seen through `/proc/PID/net` has a default route (IPv4 or IPv6). */
function hasDefaultRoute(pid: number): boolean {
  try {
    const v4 = readFileSync(`/proc/${pid}/net/route`, "utf8").split("\n").slice(1);
    if (v4.some((l) => l.split(/\s+/)[1] === "00000000")) return true;
    const v6 = readFileSync(`/proc/${pid}/net/ipv6_route`, "utf8").split("\n");
    return v6.some((l) => l.startsWith("00000000000000000000000000000000 00 ") && !l.trim().endsWith(" lo"));
  } catch {
    return false;
  }
}

/**
 * One network namespace that VMs (QEMU processes) run in, with its egress
 * filter and its uplink:
 *
 * - a holder process (`unshare --net --mount`, plus `--user` when not root)
 *   keeps the namespaces alive; it and every helper get the parent-death
 *   signal, so a SIGKILLed Node process leaves nothing behind, and the
 *   namespaces vanish with their last process;
 * - an nftables table inside it (ours: we own the namespace; the host's own
 *   network configuration is never touched) enforces the policy;
 * - `pasta` connects it to the host's network: outbound connections become
 *   host sockets, with no mapping of the gateway to the host (`--no-map-gw`)
 *   and no port forwarded back to the host's loopback except the ports
 *   `host` rules name; UDP port 53 to {@link DNS_FORWARD_ADDRESS} goes to the
 *   host's resolver. A policy that lets nothing out gets no pasta at all, and
 *   a host without a routable interface gets a namespace with no uplink.
 *
 * {@link wrap} turns a command into one that runs inside (through `nsenter`).
 */
export class NetworkNamespace {
  private pasta: ChildProcess | undefined;
  private pastaRestarts = 0;
  private closing = false;
  private refreshTimer: NodeJS.Timeout | undefined;
  private current: DynamicSets;
  private readonly fds: { net: number; mnt: number; user?: number };
  /**
   * The resolv.conf bound over /etc/resolv.conf inside: kept until close,
   * because a process that bind-mounts it again (bubblewrap, confining QEMU)
   * cannot bind a mount whose file was deleted.
   */
  resolvFile: { remove(): void } | undefined;

  private constructor(
    private readonly tools: NetworkTools,
    private readonly policy: NormalizedPolicy,
    private readonly holder: ChildProcess,
    /** Holder pid. */
    readonly pid: number,
    private readonly userns: boolean,
    dyn: DynamicSets,
  ) {
    this.current = dyn;
    const ns = `/proc/${pid}/ns`;
    // our own references to the namespaces: `wrap` never depends on the holder's pid staying ours
    this.fds = {
      net: openSync(`${ns}/net`, "r"),
      mnt: openSync(`${ns}/mnt`, "r"),
      ...(userns ? { user: openSync(`${ns}/user`, "r") } : {}),
    };
    if (fstatSync(this.fds.net).ino === statSync("/proc/self/ns/net").ino) {
      this.closeFds();
      throw new VmmError(
        "NETWORK_SETUP_FAILED",
        "the namespace holder did not get its own network namespace",
      );
    }
  }

  /** True while the holder (and so the namespaces) lives. */
  get alive(): boolean {
    return !this.closing && this.holder.exitCode === null && this.holder.signalCode === null;
  }

  /** Whether the namespace has an uplink (pasta) at all. */
  get hasUplink(): boolean {
    return this.pasta !== undefined;
  }

  /** Process id of pasta, when there is an uplink. */
  get pastaPid(): number | undefined {
    return this.pasta?.pid;
  }

  /**
   * Creates the namespace, loads the ruleset and starts the uplink. Throws
   * `NETWORK_UNAVAILABLE` when tools are missing and `NETWORK_SETUP_FAILED`
   * when a step fails (with what the helper printed).
   */
  static async create(policy: NormalizedPolicy): Promise<NetworkNamespace> {
    const tools = networkTools();
    const root = process.getuid?.() === 0;
    const names = [...policy.allowOut, ...policy.denyOut].flatMap((r) =>
      r.kind === "domain" ? [r.domain] : [],
    );
    const resolved = names.length ? await resolveNames(names) : { map: new Map(), ttl: 300 };
    const dyn: DynamicSets = { hostAddresses: hostAddresses(), domains: resolved.map };
    const uplink = !allowsNothing(policy);

    removeStaleResolvFiles();
    const resolv = resolvFileFor(policy.dns && uplink ? `nameserver ${DNS_FORWARD_ADDRESS}\n` : "# no DNS\n");
    const unshareArgs = [
      ...(root ? [] : ["--user", "--map-root-user"]),
      "--net",
      "--mount",
      "--propagation",
      "slave",
    ];
    const holder = spawn(
      tools.setpriv,
      [
        "--pdeathsig",
        "KILL",
        "--",
        tools.unshare,
        ...unshareArgs,
        "--",
        tools.sh,
        "-c",
        HOLDER_SCRIPT,
        "sm-net",
        resolv.path,
        tools.mount,
        tools.nft,
        tools.setpriv,
        tools.sleep,
      ],
      { stdio: ["pipe", "pipe", "pipe"] },
    );
    const err = collect(holder);
    const exited = exitOf(holder);
    holder.stdin?.on("error", () => {}); // a holder that died early reports through its exit status
    holder.stdin?.end(renderRuleset(policy, dyn));
    let ready = false;
    try {
      await new Promise<void>((resolve, reject) => {
        let out = "";
        const timer = setTimeout(
          () => reject(new VmmError("NETWORK_SETUP_FAILED", "network namespace setup timed out")),
          SETUP_TIMEOUT_MS,
        );
        holder.stdout?.setEncoding("utf8");
        holder.stdout?.on("data", (s: string) => {
          out += s;
          if (out.includes("ready\n")) {
            clearTimeout(timer);
            resolve();
          }
        });
        exited.then((code) => {
          clearTimeout(timer);
          reject(
            new VmmError(
              "NETWORK_SETUP_FAILED",
              `creating the VM network namespace failed (exit ${code}): ${err.text() || "no output"}`,
              { details: { stderr: err.text() } },
            ),
          );
        });
      });
      ready = true;
    } finally {
      if (!ready) {
        resolv.remove();
        holder.kill("SIGKILL");
      }
    }
    let ns: NetworkNamespace;
    try {
      ns = new NetworkNamespace(tools, policy, holder, holder.pid!, !root, dyn);
      ns.resolvFile = resolv;
    } catch (e) {
      resolv.remove();
      holder.kill("SIGKILL");
      throw e;
    }
    try {
      if (uplink) await ns.startPasta();
      if (names.length) ns.scheduleRefresh(resolved.ttl);
      else ns.scheduleRefresh(60);
    } catch (e) {
      await ns.close();
      throw e;
    }
    return ns;
  }

  /** Arguments of pasta: the namespace's uplink. */
  private pastaArgs(): string[] {
    const ports = (proto: "tcp" | "udp") =>
      this.policy.allowOut
        .flatMap((r) =>
          r.kind === "host" && (r.protocol === undefined || r.protocol === proto)
            ? [r.ports[0] === r.ports[1] ? `${r.ports[0]}` : `${r.ports[0]}-${r.ports[1]}`]
            : [],
        )
        .join(",") || "none";
    const root = !this.userns;
    return [
      "--quiet",
      "--foreground",
      ...(root ? ["--runas", "0"] : []),
      "--config-net",
      "--no-map-gw",
      "--tcp-ports",
      "none",
      "--udp-ports",
      "none",
      "--tcp-ns",
      ports("tcp"),
      "--udp-ns",
      ports("udp"),
      ...(this.policy.dns ? ["--dns-forward", DNS_FORWARD_ADDRESS] : []),
      ...(root ? [] : ["--userns", "/proc/self/fd/4"]),
      "--netns",
      "/proc/self/fd/3",
      ...(root ? ["--netns-only"] : []),
    ];
  }

  /** Starts pasta and waits until it has configured the namespace (a default route appears). */
  private async startPasta(): Promise<void> {
    const fds: (number | "ignore" | "pipe")[] = ["ignore", "ignore", "pipe", this.fds.net];
    if (this.fds.user !== undefined) fds.push(this.fds.user);
    const pasta = spawn(
      this.tools.setpriv,
      ["--pdeathsig", "KILL", "--", this.tools.pasta, ...this.pastaArgs()],
      {
        stdio: fds,
      },
    );
    const err = collect(pasta);
    const exited = exitOf(pasta);
    let gone = false;
    exited.then(() => {
      gone = true;
    });
    const deadline = Date.now() + SETUP_TIMEOUT_MS;
    while (!hasDefaultRoute(this.pid)) {
      if (gone) {
        const text = err.text();
        if (/External interface not usable/.test(text)) {
          // no route out of this host at all: the VMs get a namespace without uplink
          if (!warnedNoUplink) {
            warnedNoUplink = true;
            process.emitWarning(
              `supermachine: the host has no routable network interface, VMs get no network (${text})`,
              {
                code: "SUPERMACHINE_NO_UPLINK",
              },
            );
          }
          return;
        }
        const hint = /tun/.test(text) ? " (pasta needs /dev/net/tun readable and writable by this user)" : "";
        throw new VmmError(
          "NETWORK_SETUP_FAILED",
          `pasta (the VM network uplink) exited: ${text || "no output"}${hint}`,
          {
            details: { stderr: text },
          },
        );
      }
      if (Date.now() > deadline) {
        pasta.kill("SIGKILL");
        throw new VmmError(
          "NETWORK_SETUP_FAILED",
          `pasta did not configure the VM network namespace: ${err.text()}`,
        );
      }
      await delay(2);
    }
    this.pasta = pasta;
    exited.then(() => {
      if (this.pasta !== pasta || this.closing || !this.alive) return;
      // an uplink that crashed is restarted in the same namespace (the VMs keep their network)
      this.pasta = undefined;
      if (this.pastaRestarts++ < MAX_PASTA_RESTARTS) this.startPasta().catch(() => {});
    });
  }

  /** Re-reads the host's addresses and re-resolves domain rules after `seconds`; updates the sets when they changed. */
  private scheduleRefresh(seconds: number): void {
    if (this.closing) return;
    this.refreshTimer = setTimeout(() => {
      this.refresh().then(
        (ttl) => this.scheduleRefresh(ttl),
        () => this.scheduleRefresh(60),
      );
    }, seconds * 1000);
    this.refreshTimer.unref();
  }

  private async refresh(): Promise<number> {
    const names = [...this.policy.allowOut, ...this.policy.denyOut].flatMap((r) =>
      r.kind === "domain" ? [r.domain] : [],
    );
    const resolved = names.length ? await resolveNames(names) : { map: new Map(), ttl: 60 };
    const next: DynamicSets = { hostAddresses: hostAddresses(), domains: resolved.map };
    const key = (d: DynamicSets) => JSON.stringify([d.hostAddresses, [...d.domains]]);
    if (key(next) !== key(this.current) && this.alive) {
      await this.nft(renderSetUpdate(this.policy, next));
      this.current = next;
    }
    return resolved.ttl;
  }

  /** Runs `nft -f -` inside the namespace. */
  private async nft(input: string): Promise<void> {
    const { command, args } = this.wrap(this.tools.nft, ["-f", "-"], { mount: false });
    const child = spawn(command, args, { stdio: ["pipe", "ignore", "pipe"] });
    const err = collect(child);
    child.stdin?.on("error", () => {});
    child.stdin?.end(input);
    const code = await exitOf(child);
    if (code !== 0)
      throw new VmmError("NETWORK_SETUP_FAILED", `nft failed in the VM namespace: ${err.text()}`);
  }

  /** The addresses the namespace's sets hold now (for tests and diagnostics). */
  get sets(): DynamicSets {
    return this.current;
  }

  /**
   * A command line that runs `command args` inside this namespace: its
   * network and mount namespaces (and user namespace when not root), in the
   * caller's working directory. `nsenter` execs the command, so its pid is
   * the command's.
   */
  wrap(
    command: string,
    args: readonly string[],
    opts: { mount?: boolean } = {},
  ): { command: string; args: string[] } {
    const fd = (n: number) => `/proc/${process.pid}/fd/${n}`;
    return {
      command: this.tools.nsenter,
      args: [
        ...(this.fds.user !== undefined ? [`--user=${fd(this.fds.user)}`, "--preserve-credentials"] : []),
        `--net=${fd(this.fds.net)}`,
        ...(opts.mount === false ? [] : [`--mount=${fd(this.fds.mnt)}`, `--wd=${process.cwd()}`]),
        "--",
        command,
        ...args,
      ],
    };
  }

  private closeFds(): void {
    for (const fd of Object.values(this.fds)) {
      if (fd !== undefined) closeSync(fd);
    }
  }

  /** Kills pasta and the holder (the namespaces go with their last process). Idempotent. */
  async close(): Promise<void> {
    if (this.closing) {
      await exitOf(this.holder);
      return;
    }
    this.closing = true;
    clearTimeout(this.refreshTimer);
    const waits: Promise<unknown>[] = [exitOf(this.holder)];
    if (this.pasta) {
      waits.push(exitOf(this.pasta));
      this.pasta.kill("SIGKILL");
    }
    this.holder.kill("SIGKILL");
    await Promise.all(waits);
    this.closeFds();
    this.resolvFile?.remove();
  }
}
