import type { Options } from "tsup";

/** Build settings every publishable package shares: ESM + CJS + .d.ts for Node 20. */
export const packageBuild: Options = {
  entry: ["src/index.ts"],
  format: ["esm", "cjs"],
  dts: true,
  sourcemap: true,
  clean: true,
  target: "node20",
};
