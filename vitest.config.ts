import { defineConfig } from "vitest/config";

// Two projects: fast unit tests, and integration tests that boot real VMs
// under QEMU (TCG here) and talk to a real registry. Integration tests live in
// `*.integration.test.ts` files next to the code they exercise.
export default defineConfig({
  test: {
    projects: [
      {
        test: {
          name: "unit",
          include: ["packages/*/src/**/*.test.ts", "apps/*/src/**/*.test.ts"],
          exclude: ["**/*.integration.test.ts", "**/node_modules/**", "**/dist/**"],
          testTimeout: 20_000,
        },
      },
      {
        test: {
          name: "integration",
          include: ["packages/*/src/**/*.integration.test.ts", "apps/*/src/**/*.integration.test.ts"],
          // build, test images and default image first (test-support/integration-setup.ts)
          globalSetup: ["test-support/integration-setup.ts"],
          exclude: ["**/node_modules/**", "**/dist/**"],
          testTimeout: 300_000,
          hookTimeout: 600_000,
          // VMs are CPU-heavy under TCG on 2 cores: one file at a time.
          fileParallelism: false,
          pool: "forks",
        },
      },
    ],
  },
});
