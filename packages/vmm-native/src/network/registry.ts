import { VmmError } from "../errors.js";
import { NetworkNamespace } from "./namespace.js";
import { type NetworkPolicy, normalizePolicy, policyKey } from "./policy.js";

/** A VM's share of a network namespace. */
export interface NetworkLease {
  /**
   * The namespace (shared with every VM of the same policy in this process);
   * undefined under `SUPERMACHINE_UNFILTERED_NETWORK=1`.
   */
  readonly namespace: NetworkNamespace | undefined;
  /** `command args` rewritten to run inside the namespace. */
  wrap(command: string, args: readonly string[]): { command: string; args: string[] };
  /** Gives the share back; the last one closes the namespace. Idempotent. */
  release(): Promise<void>;
}

interface Entry {
  ns: Promise<NetworkNamespace>;
  refs: number;
}

const live = new Map<string, Entry>();

/**
 * Leases the network namespace for `policy` (validated here; default: the
 * public internet only, DNS on). VMs with the same policy share one
 * namespace and one uplink process, so a pool's pre-started QEMU and every
 * restore join an existing namespace: the cost of creating it (~0.1-0.3 s)
 * is paid once per policy, not per VM. Nothing in the namespace listens, so
 * VMs sharing it cannot reach each other through it.
 */
export async function acquireNetwork(policy?: NetworkPolicy): Promise<NetworkLease> {
  const normalized = normalizePolicy(policy);
  if (process.env.SUPERMACHINE_UNFILTERED_NETWORK === "1") return unfiltered();
  const key = policyKey(normalized);
  for (let attempt = 1; ; attempt++) {
    let entry = live.get(key);
    if (!entry) {
      const created: Entry = { ns: NetworkNamespace.create(normalized), refs: 0 };
      created.ns.catch(() => {
        if (live.get(key) === created) live.delete(key);
      });
      live.set(key, created);
      entry = created;
    }
    entry.refs++;
    let ns: NetworkNamespace;
    try {
      ns = await entry.ns;
    } catch (err) {
      entry.refs--;
      throw err;
    }
    if (ns.alive) return lease(key, entry, ns);
    // closed meanwhile (last lease released) or its holder died: start over with a new one
    entry.refs--;
    if (live.get(key) === entry) live.delete(key);
    if (attempt >= 3)
      throw new VmmError("NETWORK_SETUP_FAILED", "the VM network namespace died right after it was made");
  }
}

function lease(key: string, mine: Entry, ns: NetworkNamespace): NetworkLease {
  let released = false;
  return {
    namespace: ns,
    wrap: (command, args) => ns.wrap(command, args),
    async release() {
      if (released) return;
      released = true;
      if (--mine.refs > 0) return;
      if (live.get(key) === mine) live.delete(key);
      await ns.close();
    },
  };
}

let warnedUnfiltered = false;

/**
 * `SUPERMACHINE_UNFILTERED_NETWORK=1`: QEMU's user network runs in the
 * host's own network namespace, as before network policies existed. The
 * guest then reaches the host's loopback (at 10.0.2.2) and every network the
 * host reaches. For measurements and debugging only.
 */
function unfiltered(): NetworkLease {
  if (!warnedUnfiltered) {
    warnedUnfiltered = true;
    process.emitWarning(
      "SUPERMACHINE_UNFILTERED_NETWORK=1: VM network policies are OFF; guests reach the host's loopback and every network the host reaches",
      { code: "SUPERMACHINE_UNFILTERED_NETWORK" },
    );
  }
  return {
    namespace: undefined,
    wrap: (command, args) => ({ command, args: [...args] }),
    release: async () => {},
  };
}

/** Number of network namespaces this process holds open (for tests and diagnostics). */
export function liveNetworkNamespaces(): number {
  return live.size;
}
