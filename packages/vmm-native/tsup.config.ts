import { defineConfig } from "tsup";
import { packageBuild } from "../../tsup.base.js";

// shims: `import.meta.url` (used to find the installed guest package) also works in the CJS build
export default defineConfig({ ...packageBuild, shims: true });
