import { type ChildProcess, spawn } from "node:child_process";
import { closeSync, fstatSync, openSync, statSync } from "node:fs";
import { VmmError } from "../errors.js";
import { hostAddresses } from "./host-facts.js";
import { type DynamicSets, hasHostRules, renderRuleset, renderSetUpdate, UPLINK_DNS } from "./nft.js";
import { allowsNothing, type NormalizedPolicy } from "./policy.js";
import { resolveNames } from "./resolve.js";
import { scratchDir } from "./scratch-dir.js";
import { type NetworkTools, networkTools } from "./tools.js";
import { startUplink } from "./uplink.js";

/**
 * Runs in the namespace holder (a fresh network + mount namespace): mounts a
 * small tmpfs over the engine's empty scratch directory (visible only in this
 * mount namespace, gone with it), writes the engine's resolv.conf there and
 * binds it over /etc/resolv.conf (QEMU's user network reads its upstream
 * resolver there), lets any group open ICMP echo sockets (QEMU's user network
 * pings with them), lets the uplink's interface take its IPv6 address and
 * route at once (no duplicate address detection, no solicitation delay:
 * nothing else is on that link), lets loopback-sourced packets be routed out when `host`
 * rules redirect them to the uplink's gateway, loads the nftables ruleset
 * from stdin, reports `ready` and becomes a capability-less `sleep` that
 * holds the namespaces. Positional: $1 scratch directory, $2 resolv.conf
 * text, $3 mount, $4 nft, $5 setpriv, $6 sleep, $7 1 to route loopback.
 */
const HOLDER_SCRIPT = `set -e
if [ -e /etc/resolv.conf ]; then
  "$3" -t tmpfs -o size=16k,mode=0755 sm-net "$1"
  printf '%s' "$2" > "$1/resolv.conf"
  "$3" --bind "$1/resolv.conf" /etc/resolv.conf
fi
echo "0 2147483647" > /proc/sys/net/ipv4/ping_group_range 2>/dev/null || :
for k in accept_dad router_solicitation_delay; do echo 0 > /proc/sys/net/ipv6/conf/default/$k 2>/dev/null || :; done
if [ "$7" = 1 ]; then echo 1 > /proc/sys/net/ipv4/conf/all/route_localnet; fi
"$4" -f -
echo ready
exec "$5" --inh-caps=-all --bounding-set=-all --pdeathsig KILL -- "$6" infinity </dev/null`;

const SETUP_TIMEOUT_MS = 15_000;
const MAX_UPLINK_RESTARTS = 5;

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
 * - slirp4netns connects it to the host's network (see `startUplink`):
 *   outbound connections become its sockets in the host's namespace; its
 *   gateway reaches the host's loopback only for the ports `host` rules name;
 *   DNS to {@link UPLINK_DNS} goes to the host's resolver. A policy that lets
 *   nothing out gets no uplink at all.
 *
 * {@link wrap} turns a command into one that runs inside (through `nsenter`).
 */
export class NetworkNamespace {
  private uplink: ChildProcess | undefined;
  private uplinkRestarts = 0;
  private closing = false;
  private refreshTimer: NodeJS.Timeout | undefined;
  private current: DynamicSets;
  private readonly fds: { net: number; mnt: number; user?: number };

  private constructor(
    private readonly tools: NetworkTools,
    private readonly policy: NormalizedPolicy,
    private readonly holder: ChildProcess,
    /** Holder pid. */
    readonly pid: number,
    userns: boolean,
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

  /** Whether the namespace has an uplink at all. */
  get hasUplink(): boolean {
    return this.uplink !== undefined;
  }

  /** Process id of the uplink (slirp4netns), when there is one. */
  get uplinkPid(): number | undefined {
    return this.uplink?.pid;
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

    const resolvConf = policy.dns && uplink ? `nameserver ${UPLINK_DNS}\n` : "# no DNS\n";
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
        scratchDir(),
        resolvConf,
        tools.mount,
        tools.nft,
        tools.setpriv,
        tools.sleep,
        hasHostRules(policy) ? "1" : "0",
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
      if (!ready) holder.kill("SIGKILL");
    }
    let ns: NetworkNamespace;
    try {
      ns = new NetworkNamespace(tools, policy, holder, holder.pid!, !root, dyn);
    } catch (e) {
      holder.kill("SIGKILL");
      throw e;
    }
    try {
      if (uplink) await ns.startUplink();
      if (names.length) ns.scheduleRefresh(resolved.ttl);
      else ns.scheduleRefresh(60);
    } catch (e) {
      await ns.close();
      throw e;
    }
    return ns;
  }

  /** Starts the uplink; restarts it in the same namespace if it dies (the VMs keep their network). */
  private async startUplink(): Promise<void> {
    const child = await startUplink({
      tools: this.tools,
      netFd: this.fds.net,
      userFd: this.fds.user,
      holderPid: this.pid,
      hostLoopback: hasHostRules(this.policy),
      timeoutMs: SETUP_TIMEOUT_MS,
    });
    this.uplink = child;
    child.once("exit", () => {
      if (this.uplink !== child || this.closing || !this.alive) return;
      this.uplink = undefined;
      if (this.uplinkRestarts++ < MAX_UPLINK_RESTARTS) this.startUplink().catch(() => {});
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

  /** Kills the uplink and the holder (the namespaces go with their last process). Idempotent. */
  async close(): Promise<void> {
    if (this.closing) {
      await exitOf(this.holder);
      return;
    }
    this.closing = true;
    clearTimeout(this.refreshTimer);
    const waits: Promise<unknown>[] = [exitOf(this.holder)];
    if (this.uplink) {
      waits.push(exitOf(this.uplink));
      this.uplink.kill("SIGKILL");
    }
    this.holder.kill("SIGKILL");
    await Promise.all(waits);
    this.closeFds();
  }
}
