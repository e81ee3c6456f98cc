// Type-checked in a consumer project with moduleResolution node16 and bundler:
// the public types resolve from the published packages alone.
import { doctor, Image, isSupermachineError, type PoolOptions, type Vm } from "@supermachine/core";
import { type PulledImage, parseReference } from "@supermachine/oci";

export async function run(ref: string): Promise<number> {
  const opts: PoolOptions = { min: 1, max: 2 };
  const image = await Image.build({ ref, accel: "auto" });
  await using pool = await image.pool(opts);
  await using vm: Vm = await pool.acquire();
  const r = await vm.exec({ argv: ["true"] });
  const report = await doctor();
  const parsed = parseReference(ref);
  const pulled: PulledImage | undefined = undefined;
  void pulled;
  return r.exitCode + (report.ok ? 0 : 1) + (parsed.transport === "oci" ? 0 : 0);
}

export function code(err: unknown): string | undefined {
  return isSupermachineError(err) ? err.code : undefined;
}
