// Bake/restore check: boot, configure a held workload, snapshot (x-ignore-shared,
// file-backed RAM), restore in a new QEMU, HELLO again, start the workload.

import { spawn } from "node:child_process";
import { rmSync } from "node:fs";
import net from "node:net";
import { Client, T, W } from "./client.mjs";

// usage: node vm-snapshot.mjs AGENT_OUT_DIR BZIMAGE WORKDIR (WORKDIR holds root.ext4)
const OUT = process.argv[2];
const K = process.argv[3];
const D = process.argv[4];
const procs = [];
process.on("exit", () => {
  for (const p of procs) p.kill("SIGKILL");
});
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
function qemu(share, incoming) {
  for (const f of ["agent.sock", "qmp.sock"]) rmSync(`${D}/${f}`, { force: true });
  const args = [
    "-M",
    "microvm,acpi=off,pit=on,pic=on,rtc=on,memory-backend=mem",
    "-accel",
    "tcg",
    "-m",
    "256M",
    "-object",
    `memory-backend-file,id=mem,size=256M,mem-path=${D}/ram,share=${share}`,
    "-nodefaults",
    "-no-user-config",
    "-display",
    "none",
    "-kernel",
    K,
    "-initrd",
    `${OUT}/initramfs.cpio.gz`,
    "-append",
    "console=ttyS0 quiet sm.root=/dev/vda",
    "-serial",
    `file:${D}/con-${share}.log`,
    "-qmp",
    `unix:${D}/qmp.sock,server=on,wait=off`,
    "-device",
    "virtio-serial-device",
    "-chardev",
    `socket,id=agent,path=${D}/agent.sock,server=on,wait=off`,
    "-device",
    "virtserialport,chardev=agent,name=sm.agent",
    "-drive",
    `file=${D}/root.ext4,if=none,id=root,format=raw,readonly=on`,
    "-device",
    "virtio-blk-device,drive=root",
    "-netdev",
    "user,id=net0",
    "-device",
    "virtio-net-device,netdev=net0",
  ];
  if (incoming) args.push("-incoming", "defer");
  const p = spawn("qemu-system-x86_64", args, { stdio: "inherit" });
  procs.push(p);
  return p;
}
async function connect(path) {
  for (;;) {
    try {
      const s = net.connect(path);
      await new Promise((r, j) => {
        s.once("connect", r);
        s.once("error", j);
      });
      return s;
    } catch {
      await sleep(20);
    }
  }
}
async function qmp() {
  const s = await connect(`${D}/qmp.sock`);
  let buf = "";
  const waiters = [];
  const lines = [];
  s.on("data", (d) => {
    buf += d;
    let i;
    while ((i = buf.indexOf("\n")) >= 0) {
      lines.push(JSON.parse(buf.slice(0, i)));
      buf = buf.slice(i + 1);
    }
    for (const w of waiters.splice(0)) w();
  });
  const next = async (pred) => {
    for (;;) {
      const i = lines.findIndex(pred);
      if (i >= 0) return lines.splice(i, 1)[0];
      await new Promise((r) => waiters.push(r));
    }
  };
  await next((l) => l.QMP);
  const cmd = async (execute, args) => {
    s.write(`${JSON.stringify({ execute, arguments: args })}\n`);
    const r = await next((l) => "return" in l || "error" in l);
    if (r.error) throw new Error(`${execute}: ${r.error.desc}`);
    return r.return;
  };
  await cmd("qmp_capabilities");
  return { cmd, close: () => s.destroy() };
}
const q1 = qemu("on", false);
let s = await connect(`${D}/agent.sock`);
let c = new Client(s, s);
await c.hello(1n);
let r = await c.exec(1, ["sh", "-c", "echo baked > /tmp/marker; cat /tmp/marker"]);
console.log("boot 1 exec:", JSON.stringify(r.stdout.toString()));
const cf = c.collect(2);
c.send(
  T.WORKLOAD_CONFIG,
  2,
  new W()
    .u32(3)
    .u16(8080)
    .list(["httpd", "-f", "-p", "8080", "-h", "/"])
    .list([])
    .str("/")
    .str("")
    .str("")
    .done(),
);
console.log("config:", (await cf)[0].type === T.OK ? "OK" : "ERR");
while (!c.events.some((e) => e.kind === 1)) await sleep(10);
console.log("WORKLOAD_READY seen");
s.destroy();
const m1 = await qmp();
await m1.cmd("stop");
await m1.cmd("migrate-set-capabilities", { capabilities: [{ capability: "x-ignore-shared", state: true }] });
rmSync(`${D}/state`, { force: true });
await m1.cmd("migrate", { uri: `file:${D}/state` });
for (;;) {
  const st = await m1.cmd("query-migrate");
  if (st.status === "completed") break;
  if (st.status === "failed") throw new Error("migrate failed");
  await sleep(10);
}
await m1.cmd("quit").catch(() => {});
await new Promise((r) => q1.once("exit", r));
console.log("snapshot written");
const t0 = Date.now();
const q2 = qemu("off", true);
const m2 = await qmp();
await m2.cmd("migrate-set-capabilities", { capabilities: [{ capability: "x-ignore-shared", state: true }] });
await m2.cmd("migrate-incoming", { uri: `file:${D}/state` });
for (;;) {
  const st = await m2.cmd("query-migrate");
  if (st.status === "completed") break;
  if (st.status === "failed") throw new Error("incoming failed");
  await sleep(5);
}
await m2.cmd("cont");
s = await connect(`${D}/agent.sock`);
c = new Client(s, s);
const h = await c.hello(2n);
console.log(`restored: HELLO_OK nonce ${h.nonce} ${Date.now() - t0} ms after QEMU start`);
r = await c.exec(3, ["cat", "/tmp/marker"]);
console.log("restored exec:", JSON.stringify(r.stdout.toString()));
const st = c.collect(4);
c.send(T.WORKLOAD_START, 4, Buffer.alloc(0));
const sr = (await st)[0];
console.log("WORKLOAD_START:", sr.type === T.OK ? `OK pid ${sr.msg.value}` : JSON.stringify(sr.msg));
while (!c.events.some((e) => e.kind === 3)) await sleep(10);
console.log("LISTENING", c.events.find((e) => e.kind === 3).value, `${Date.now() - t0} ms after QEMU start`);
s.destroy();
m2.close();
q2.kill("SIGKILL");
process.exit(0);
