import { defineConfig } from "tsup";

export default defineConfig({
  entry: [
    "src/01-hello.ts",
    "src/02-pool.ts",
    "src/03-snapshot-then-restore.ts",
    "src/04-expose-tcp.ts",
    "src/05-spawn-streaming.ts",
  ],
  format: ["esm"],
  sourcemap: true,
  clean: true,
  target: "node20",
});
