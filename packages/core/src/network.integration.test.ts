import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { LAB, type NetLab, startNetLab } from "../../../test-support/netlab.js";
import { layoutPath } from "./test-support/images.js";

// The public API's network options, in the network lab: every packet stays in
// the two namespaces the lab makes (see test-support/netlab.mjs).

const driver = fileURLToPath(new URL("./test-support/netlab-driver.mjs", import.meta.url));
const [PUBLIC1] = LAB.public;
const PRIVATE = LAB.private.rfc1918a;

interface Sh {
  exitCode: number;
  out: string;
}
interface Built {
  id: number;
  dir: string;
  network: { card: boolean; policy?: unknown };
}

describe("network options of Image.build and image.pool", () => {
  let lab: NetLab;
  let ref: string;

  beforeAll(async () => {
    const busybox = layoutPath("busybox");
    if (!busybox) throw new Error("the busybox test layout was not built");
    ref = `oci:${busybox}:latest`;
    lab = await startNetLab({ driver });
  });
  afterAll(async () => {
    await lab?.close();
  });

  /** Acquires a VM from `pool`, runs `f` on it, releases it. */
  async function withVm(pool: number, f: (vm: number) => Promise<void>): Promise<void> {
    const { id } = await lab.call<{ id: number }>("acquire", { pool });
    try {
      await f(id);
    } finally {
      await lab.call("release", { vm: id });
    }
  }
  const sh = (vm: number, cmd: string) => lab.call<Sh>("sh", { vm, cmd });
  const tcp = (vm: number, addr: string) => sh(vm, `nc -w 5 ${addr} ${LAB.port} </dev/null`);
  const makePool = async (image: number, network?: unknown) => {
    const r = await lab.call<{ id?: number; error?: { code: string; message: string } }>("pool", {
      image,
      ...(network === undefined ? {} : { network }),
    });
    if (r.error) throw Object.assign(new Error(r.error.message), { code: r.error.code });
    return r.id!;
  };
  const agentChannelsWork = async (vm: number) => {
    expect(await lab.call("agentChannels", { vm, text: "via-agent" })).toEqual({
      viaExposeTcp: "via-agent",
      viaVsockPath: "via-agent",
    });
  };

  it("default: public internet only; a pool can override the policy; exposeTcp and vsockPath work in both", async () => {
    const image = await lab.call<Built>("build", { ref });
    expect(image.network).toEqual({ card: true });
    const pool = await makePool(image.id);
    await withVm(pool, async (vm) => {
      expect((await tcp(vm, PUBLIC1)).out).toBe(`hello from ${PUBLIC1}`);
      for (const addr of [PRIVATE, LAB.private.metadata, "10.0.2.2", LAB.host.extra]) {
        expect((await tcp(vm, addr)).out).toContain("refused");
      }
      expect((await sh(vm, "nslookup -type=a public.test")).out).toContain(`Address: ${PUBLIC1}`);
      await agentChannelsWork(vm);
    });
    const closed = await makePool(image.id, { allowInternetAccess: false, allowOut: [PRIVATE] });
    await withVm(closed, async (vm) => {
      expect((await tcp(vm, PRIVATE)).out).toBe(`hello from ${PRIVATE}`);
      expect((await tcp(vm, PUBLIC1)).out).toContain("refused");
      await agentChannelsWork(vm);
    });
    await lab.call("shutdown", { pool });
    await lab.call("shutdown", { pool: closed });
  });

  it('network: "none" bakes VMs without a network card (another snapshot); pools cannot give them one', async () => {
    const withCard = await lab.call<Built>("build", { ref });
    const none = await lab.call<Built>("build", { ref, network: "none" });
    expect(none.network).toEqual({ card: false });
    expect(none.dir).not.toBe(withCard.dir);
    const pool = await makePool(none.id);
    await withVm(pool, async (vm) => {
      const ifaces = (await sh(vm, "ls /sys/class/net")).out.split("\n").filter((n) => n !== "sit0");
      expect(ifaces).toEqual(["lo"]);
      expect((await tcp(vm, PUBLIC1)).exitCode).not.toBe(0);
      await agentChannelsWork(vm);
    });
    await lab.call("shutdown", { pool });
    await expect(makePool(none.id, { allowInternetAccess: false })).rejects.toMatchObject({
      code: "UNSUPPORTED_OVERRIDE",
    });
    await expect(makePool(withCard.id, "none")).rejects.toMatchObject({ code: "INVALID_OPTIONS" });
    await expect(makePool(withCard.id, { allowOut: ["*.example.com"] })).rejects.toMatchObject({
      code: "INVALID_OPTIONS",
    });
    await expect(lab.call("build", { ref, network: { denyOut: ["host:22"] } })).rejects.toMatchObject({
      code: "INVALID_OPTIONS",
    });
  });

  it("the bake runs under the build's policy, which pools and Image.fromSnapshot keep; rebuilding with another policy reuses the bake", async () => {
    const policy = { allowInternetAccess: false, allowOut: [PRIVATE] };
    const probe = `nc -w 5 ${PUBLIC1} ${LAB.port} </dev/null; nc -w 5 ${PRIVATE} ${LAB.port} </dev/null`;
    const image = await lab.call<Built>("build", { ref, network: policy, warmupProbe: probe });
    expect(image.network).toEqual({ card: true, policy });
    const pool = await makePool(image.id);
    await withVm(pool, async (vm) => {
      const baked = (await sh(vm, "cat /probe.txt")).out;
      expect(baked).toContain(`hello from ${PRIVATE}`);
      expect(baked).not.toContain(`hello from ${PUBLIC1}`);
      expect((await tcp(vm, PUBLIC1)).out).toContain("refused");
    });
    await lab.call("shutdown", { pool });

    const loaded = await lab.call<Built>("fromSnapshot", { dir: image.dir });
    expect(loaded.network).toEqual({ card: true, policy });
    const again = await lab.call<Built>("build", { ref, network: {}, warmupProbe: probe });
    expect(again.dir).toBe(image.dir);
    expect(again.network).toEqual({ card: true, policy: {} });
    const open = await makePool(again.id);
    await withVm(open, async (vm) => {
      expect((await tcp(vm, PUBLIC1)).out).toBe(`hello from ${PUBLIC1}`);
    });
    await lab.call("shutdown", { pool: open });
    expect(await lab.call("processes")).toEqual([]);
  });
});
