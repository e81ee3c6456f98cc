import type { SnapshotInspection, SnapshotSummary } from "../index.js";
import { formatBytes, type Style, table } from "./style.js";

function age(iso: string | undefined, now = Date.now()): string {
  if (!iso) return "-";
  const s = Math.max(0, Math.round((now - Date.parse(iso)) / 1000));
  if (s < 60) return `${s}s ago`;
  if (s < 3600) return `${Math.floor(s / 60)}m ago`;
  if (s < 86_400) return `${Math.floor(s / 3600)}h ago`;
  return `${Math.floor(s / 86_400)}d ago`;
}

/** `supermachine ls` as a table. */
export function snapshotTable(list: readonly SnapshotSummary[], style: Style): string {
  const rows = [["NAME", "IMAGE", "TRIGGER", "ACCEL", "MEMORY", "DISK", "CREATED", "STATUS"].map(style.bold)];
  for (const s of list) {
    const m = s.metadata;
    rows.push([
      s.name,
      m?.image.ref ?? "-",
      m?.trigger ?? "-",
      m?.engine.accel ?? "-",
      m ? `${m.memoryMib} MiB` : "-",
      formatBytes(s.diskBytes),
      age(m?.createdAt),
      s.valid ? style.green("ok") : style.red(s.problem?.code ?? "invalid"),
    ]);
  }
  return table(rows);
}

/** `supermachine inspect` as readable sections. */
export function inspectionText(i: SnapshotInspection, style: Style): string {
  const m = i.metadata;
  const f = i.fingerprintInputs;
  const kv = (rows: Array<[string, string]>) => table(rows.map(([k, v]) => [`  ${style.dim(k)}`, v]));
  const sec = (title: string) => `${style.bold(title)}\n`;
  let out = "";
  out += kv([
    ["name", i.name],
    ["path", i.path],
    [
      "status",
      i.valid ? style.green("valid") : `${style.red(i.problem?.code ?? "invalid")}: ${i.problem?.message}`,
    ],
    [
      "guest",
      i.guestCurrent === undefined
        ? "no guest installed to compare"
        : i.guestCurrent
          ? "matches the installed guest kernel and agent"
          : style.yellow("baked with another guest build: Image.build bakes it again"),
    ],
    ["created", m.createdAt],
    ["trigger", m.trigger + (m.warmupTag !== undefined ? ` (warmup tag ${m.warmupTag})` : "")],
  ]);
  out += sec("image");
  out += kv([
    ["ref", m.image.ref],
    ["manifest", m.image.manifestDigest],
    ["platform", i.platform ?? "unknown (image blobs not in the cache)"],
    ["entrypoint", JSON.stringify(m.image.config.entrypoint ?? [])],
    ["cmd", JSON.stringify(m.image.config.cmd ?? [])],
    ["exposed", m.image.config.exposedPorts.join(" ") || "-"],
  ]);
  out += sec("machine");
  out += kv([
    ["arch", `${i.arch} guest (QEMU ${m.engine.machine})${i.platform ? `, image ${i.platform}` : ""}`],
    ["accelerator", `${i.accel}${m.engine.cpuModel ? ` (cpu ${m.engine.cpuModel})` : ""}`],
    ["qemu", m.engine.qemuVersion],
    ["memory", `${m.memoryMib} MiB`],
    ["vcpus", String(m.vcpus)],
    ["guest port", `${m.guestPort}${m.listenerRequired ? " (snapshot taken once it listened)" : ""}`],
    ["workload", JSON.stringify(m.workload.argv)],
  ]);
  out += sec("sizes");
  out += kv([
    [
      "memory",
      `${i.metadata.memoryMib} MiB (${formatBytes(i.sizes.memoryAllocatedBytes)} on disk: only pages the guest touched)`,
    ],
    ["device state", formatBytes(i.sizes.stateBytes)],
    ["directory", `${formatBytes(i.sizes.diskBytes)} on disk`],
    [
      "root fs",
      i.sizes.rootfsBytes === undefined
        ? style.red(`missing here: ${m.rootfs.digest} (rebuilt from the image's layers on first use)`)
        : `${formatBytes(i.sizes.rootfsBytes)} ${m.rootfs.digest} (shared)`,
    ],
  ]);
  out += sec("fingerprint");
  out += kv([
    ["fingerprint", i.fingerprint],
    ...(m.parentFingerprint ? [["parent", m.parentFingerprint] as [string, string]] : []),
    ["manifest", f.manifestDigest],
    ["memory, vcpus", `${f.memoryMib} MiB, ${f.vcpus}`],
    ["guest port", `${f.guestPort}, listener ${f.listenerRequired}`],
    ["workload env", f.workload.env.join(" ") || "-"],
    ["extra files", f.extraFiles.map((e) => `${e.guestPath} (${e.sha256.slice(0, 12)})`).join(", ") || "-"],
    ["warmup tag", f.warmupTag ?? "-"],
    ["kernel, agent", `${f.kernelHash}, ${f.agentHash}`],
    ["engine", `${f.accel}, cpu ${f.cpuModel ?? "-"}, qemu ${f.qemuVersion}`],
  ]);
  return out;
}
