#!/usr/bin/env node
// Network benchmark (issue 16, part 1): what the network policy costs.
// Before = QEMU's user network in the host's own network namespace (what the
// engine did before policies; SUPERMACHINE_UNFILTERED_NETWORK=1); after = the
// default policy (QEMU in a network namespace with an nftables filter and a
// slirp4netns uplink). Both in one run, interleaved: restore to first exec (fresh
// QEMU, and QEMU started ahead as a pool does), exec round trip, and guest TCP
// throughput of a `wget` download from an HTTP server; plus the cost of making
// a policy's namespace and the uplink's memory.
//
// Runs in the network test lab (test-support/netlab.mjs): two network
// namespaces this process makes, so the download server is at a "public"
// address the default policy allows and no packet leaves the lab. Needs root.
// Prints a table and writes bench-results/network.json.
//
// Knobs: BENCH_NET_RESTORES (8), BENCH_NET_DOWNLOADS (3), BENCH_NET_MIB (32), BENCH_NET_EXECS (100).
import { join } from "node:path";
import { r1, repoRoot, sampleRow } from "../../../scripts/bench/guest.mjs";
import { printTable, summarize, writeResults } from "../../../scripts/bench/stats.mjs";
import { LAB, startNetLab } from "../../../test-support/netlab.mjs";

const RESTORES = Number(process.env.BENCH_NET_RESTORES ?? 8);
const DOWNLOADS = Number(process.env.BENCH_NET_DOWNLOADS ?? 3);
const MIB = Number(process.env.BENCH_NET_MIB ?? 32);
const EXECS = Number(process.env.BENCH_NET_EXECS ?? 100);

if (process.getuid?.() !== 0) {
  console.log("network benchmark: skipped, it needs root to make the network namespaces of its lab");
  process.exit(0);
}

const lab = await startNetLab({ driver: join(repoRoot, "packages/vmm-native/bench/network-driver.mjs") });
const rows = [];
const results = { samples: {} };
function add(key, metric, xs, unit, note) {
  rows.push(sampleRow(metric, xs, unit, note));
  results.samples[key] = { unit, ...summarize(xs), values: xs.map(r1) };
}

try {
  Object.assign(results, await lab.call("setup"));
  const modes = ["unfiltered", "policy"];
  const label = { unfiltered: "before (host namespace)", policy: "after (default policy)" };

  const ns = [];
  for (let i = 0; i < 5; i++) ns.push(await lab.call("namespaceCost"));
  add(
    "namespaceCreate",
    "make a policy's namespace (once per policy)",
    ns.map((n) => n.ms),
    "ms",
    "holder (unshare) + nftables ruleset + slirp4netns until it reports ready",
  );
  add(
    "uplinkRss",
    "slirp4netns RSS (one per policy)",
    ns.map((n) => n.uplinkRssKib / 1024),
    "MiB",
    "",
  );

  await lab.call("hold", { on: true }); // the namespace exists, as in a pool
  const fresh = { unfiltered: [], policy: [] };
  const prepared = { unfiltered: [], policy: [] };
  for (let i = 0; i < RESTORES; i++) {
    for (const mode of modes) {
      fresh[mode].push(await lab.call("freshRestore", { mode }));
      prepared[mode].push(await lab.call("preparedRestore", { mode }));
    }
  }
  await lab.call("hold", { on: false });
  const firstOfPolicy = [];
  for (let i = 0; i < Math.min(RESTORES, 5); i++)
    firstOfPolicy.push(await lab.call("freshRestore", { mode: "policy" }));
  for (const mode of modes) {
    add(
      `restorePreparedToFirstExec_${mode}`,
      `restore to first exec, QEMU started ahead: ${label[mode]}`,
      prepared[mode],
      "ms",
      "complete() + session + run(true)",
    );
  }
  for (const mode of modes) {
    add(
      `restoreFreshToFirstExec_${mode}`,
      `restore to first exec, fresh QEMU: ${label[mode]}`,
      fresh[mode],
      "ms",
      mode === "policy" ? "the policy's namespace exists (as in a pool)" : "",
    );
  }
  add(
    "restoreFreshToFirstExec_policyFirst",
    "restore to first exec, fresh QEMU, first VM of its policy",
    firstOfPolicy,
    "ms",
    "includes making the namespace",
  );

  const tput = { unfiltered: [], policy: [] };
  const rtt = { unfiltered: [], policy: [] };
  const qemuCpu = { unfiltered: [], policy: [] };
  const uplinkCpu = [];
  const url = `http://${LAB.public[0]}:${LAB.httpPort}/bytes/${MIB * 1024 * 1024}`;
  for (const mode of [...modes, ...modes]) {
    const r = await lab.call("throughput", {
      mode,
      url,
      bytes: MIB * 1024 * 1024,
      runs: DOWNLOADS,
      execs: EXECS / 2,
    });
    tput[mode].push(...r.mibps);
    rtt[mode].push(...r.rtt);
    qemuCpu[mode].push(...r.qemuCpu.map((c) => c / MIB));
    uplinkCpu.push(...r.uplinkCpu.map((c) => c / MIB));
  }
  for (const mode of modes) {
    add(
      `guestTcpThroughput_${mode}`,
      `guest TCP download: ${label[mode]}`,
      tput[mode],
      "MiB/s",
      `busybox wget of ${MIB} MiB from an HTTP server in the lab's internet namespace`,
    );
  }
  for (const mode of modes) {
    add(
      `qemuCpuPerMib_${mode}`,
      `QEMU CPU per MiB downloaded: ${label[mode]}`,
      qemuCpu[mode].map((c) => c * 1000),
      "ms",
      "",
    );
  }
  add(
    "uplinkCpuPerMib",
    "slirp4netns CPU per MiB downloaded",
    uplinkCpu.map((c) => c * 1000),
    "ms",
    "the extra hop",
  );
  for (const mode of modes) {
    add(`execRoundTrip_${mode}`, `exec round trip: ${label[mode]}`, rtt[mode], "ms", "run(['true'])");
  }
  printTable(`network policy cost (${results.accel}, QEMU ${results.qemuVersion})`, rows);
  writeResults("network", results);
} finally {
  await lab.close();
}
