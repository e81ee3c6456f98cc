// Driver of the network lab for core's tests: runs in the lab's host
// namespace (test-support/netlab-host.mjs) and drives the public API (dist)
// there. Each export is an op the test calls; images, pools and VMs are
// referred to by ids.
import { mkdtempSync, rmSync } from "node:fs";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { descendantsOf } from "../../../../scripts/bench/guest.mjs";

const core = await import(new URL("../../dist/index.js", import.meta.url).href);
const { Image } = core;

const work = mkdtempSync(join(tmpdir(), "sm-netlab-core-"));
const objects = new Map();
let nextId = 1;
const keep = (o) => {
  const id = nextId++;
  objects.set(id, o);
  return id;
};
const errorInfo = (err) => ({ code: err?.code, message: err?.message });

/**
 * `Image.build` of `ref` into the driver's snapshots dir. `warmupProbe`: a
 * command the bake's warmup runs, its output kept in /probe.txt of the image.
 */
export async function build({ ref, network, warmupProbe }) {
  const image = await Image.build({
    ref,
    snapshotsDir: join(work, "snapshots"),
    network,
    ...(warmupProbe
      ? {
          warmupTag: warmupProbe,
          warmup: async (vm) => {
            const r = await vm.exec({ argv: ["sh", "-c", `(${warmupProbe}) >/probe.txt 2>&1; true`] });
            if (r.exitCode !== 0) throw new Error("warmup probe failed");
          },
        }
      : {}),
  });
  return { id: keep(image), dir: image.snapshotPath, network: image.network };
}

/** `Image.fromSnapshot(dir)`. */
export async function fromSnapshot({ dir }) {
  const image = await Image.fromSnapshot(dir);
  return { id: keep(image), network: image.network };
}

/** `image.pool(options)`; resolves `{id}` or `{error}`. */
export async function pool({ image, ...options }) {
  try {
    return { id: keep(await objects.get(image).pool({ min: 1, max: 2, ...options })) };
  } catch (err) {
    return { error: errorInfo(err) };
  }
}

/** `pool.acquire()`. */
export async function acquire({ pool: id }) {
  const vm = await objects.get(id).acquire();
  return { id: keep(vm) };
}

/** `vm.exec` of `sh -c cmd`: `{exitCode, out}`. */
export async function sh({ vm, cmd }) {
  const r = await objects.get(vm).exec({ argv: ["sh", "-c", `${cmd} 2>&1`] });
  return { exitCode: r.exitCode, out: r.stdout.toString().trim() };
}

function httpOverUnix(path) {
  return new Promise((resolve, reject) => {
    const s = connect(path);
    let buf = "";
    s.on("data", (d) => {
      buf += d;
    });
    s.on("end", () => resolve(buf.split("\r\n\r\n").slice(1).join("\r\n\r\n").trim()));
    s.on("error", reject);
    s.write("GET /index.html HTTP/1.0\r\n\r\n");
  });
}

/**
 * Serves `text` from a busybox httpd on guest ports 80 and 8080, then reads it
 * through `exposeTcp` (a host port) and through `vsockPath` (a unix socket to
 * the image's guest port 80): `{viaExposeTcp, viaVsockPath}`.
 */
export async function agentChannels({ vm: id, text }) {
  const vm = objects.get(id);
  const r = await vm.exec({
    argv: [
      "sh",
      "-c",
      `mkdir -p /www && echo ${text} >/www/index.html && httpd -p 80 -h /www && httpd -p 8080 -h /www`,
    ],
  });
  if (r.exitCode !== 0) throw new Error(`httpd did not start: ${r.stderr}`);
  const fwd = await vm.exposeTcp(0, 8080);
  let viaExposeTcp;
  for (let i = 0; ; i++) {
    try {
      viaExposeTcp = (await (await fetch(`http://${fwd.localAddr}/index.html`)).text()).trim();
      break;
    } catch (err) {
      if (i > 50) throw err;
      await new Promise((res) => setTimeout(res, 100));
    }
  }
  await fwd.stop();
  const viaVsockPath = await httpOverUnix(vm.vsockPath);
  return { viaExposeTcp, viaVsockPath };
}

/** `vm.release()`. */
export async function release({ vm }) {
  await objects.get(vm).release();
  objects.delete(vm);
}

/** `pool.shutdown()`. */
export async function shutdown({ pool: id }) {
  await objects.get(id).shutdown();
  objects.delete(id);
}

/** Processes under this one (QEMU, uplinks, namespace holders): `[{pid, comm}]`. */
export function processes() {
  return descendantsOf(process.pid).map(({ pid, comm }) => ({ pid, comm }));
}

export async function close() {
  for (const o of objects.values()) {
    if (typeof o.shutdown === "function") await o.shutdown().catch(() => {});
  }
  rmSync(work, { recursive: true, force: true });
}
