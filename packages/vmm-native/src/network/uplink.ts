import { type ChildProcess, spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { VmmError } from "../errors.js";
import { UPLINK_INTERFACE } from "./nft.js";
import type { NetworkTools } from "./tools.js";

/** What {@link startUplink} needs. */
export interface UplinkRequest {
  tools: NetworkTools;
  /** Descriptor (in this process) of the VM namespace's network namespace. */
  netFd: number;
  /** Descriptor of its user namespace, when not root. */
  userFd?: number;
  /** A process in the namespace (to watch its routes through /proc). */
  holderPid: number;
  /** Let the uplink map its gateway (10.0.2.2) to the host's loopback (only for `host` rules). */
  hostLoopback: boolean;
  /** Fail with `NETWORK_SETUP_FAILED` if the uplink is not up within this long (ms). */
  timeoutMs: number;
}

/**
 * Starts slirp4netns as the namespace's uplink and resolves once it has
 * configured the namespace (tap0 10.0.2.100/24, IPv6 fd00::100/64, default
 * routes via 10.0.2.2 and fd00::2; it reports through its ready descriptor).
 * Outbound connections become sockets of slirp4netns in the host's network
 * namespace; nothing is bound or forwarded toward the host, and its gateway
 * reaches the host's loopback only with `hostLoopback`. It runs sandboxed
 * (`--enable-sandbox`: own mount namespace, every capability dropped but
 * CAP_NET_BIND_SERVICE; `--enable-seccomp`), gets the parent-death signal
 * and also exits when this process's end of its exit descriptor closes.
 *
 * slirp4netns rather than pasta: this project's Debian ships pasta
 * 2023-03-09, which under QEMU's user network now and then delivered a
 * server's data several times and never its end of stream (5 of 200 guest
 * `nc` fetches hung; 0 of 200 with slirp4netns, whose TCP is libslirp's).
 */
export async function startUplink(req: UplinkRequest): Promise<ChildProcess> {
  const { tools } = req;
  const args = [
    "--configure",
    "--mtu=65520",
    "--enable-ipv6",
    ...(req.hostLoopback ? [] : ["--disable-host-loopback"]),
    "--enable-sandbox",
    "--enable-seccomp",
    "--ready-fd=4",
    "--exit-fd=5",
    ...(req.userFd !== undefined ? ["--userns-path=/proc/self/fd/6"] : []),
    "--netns-type=path",
    "/proc/self/fd/3",
    UPLINK_INTERFACE,
  ];
  const stdio: (number | "ignore" | "pipe")[] = ["ignore", "ignore", "pipe", req.netFd, "pipe", "pipe"];
  if (req.userFd !== undefined) stdio.push(req.userFd);
  const child = spawn(tools.setpriv, ["--pdeathsig", "KILL", "--", tools.slirp4netns, ...args], { stdio });
  let stderr = "";
  child.stderr?.setEncoding("utf8");
  child.stderr?.on("data", (s: string) => {
    stderr = (stderr + s).slice(-4096);
  });
  const pipes = child.stdio as unknown as (NodeJS.EventEmitter | null)[];
  for (const fd of [4, 5]) pipes[fd]?.on("error", () => {});
  await new Promise<void>((resolve, reject) => {
    const fail = (why: string) => {
      clearTimeout(timer);
      child.kill("SIGKILL");
      const text = stderr.trim();
      const hint = /tun/i.test(text) ? " (it needs /dev/net/tun readable and writable by this user)" : "";
      reject(
        new VmmError(
          "NETWORK_SETUP_FAILED",
          `slirp4netns (the VM network uplink) ${why}: ${text || "no output"}${hint}`,
          {
            details: { stderr: text },
          },
        ),
      );
    };
    const timer = setTimeout(() => fail("did not come up"), req.timeoutMs);
    pipes[4]?.once("data", () => {
      clearTimeout(timer);
      resolve();
    });
    child.once("exit", (code, signal) => fail(`exited (${signal ?? code})`));
  });
  child.removeAllListeners("exit");
  // IPv6 arrives by router advertisement just after: wait for its default route (briefly; IPv4 works already)
  const deadline = Date.now() + 2000;
  while (!hasIpv6DefaultRoute(req.holderPid) && Date.now() < deadline && child.exitCode === null) {
    await new Promise((r) => setTimeout(r, 5));
  }
  return child;
}

/** True once the namespace of `pid` has an IPv6 default route. */
function hasIpv6DefaultRoute(pid: number): boolean {
  try {
    return readFileSync(`/proc/${pid}/net/ipv6_route`, "utf8")
      .split("\n")
      .some((l) => l.startsWith("00000000000000000000000000000000 00 ") && !/\slo$/.test(l.trim()));
  } catch {
    return false;
  }
}
