/**
 * Test helper: a real `docker-registry` on 127.0.0.1. Import from other
 * packages' integration tests by relative path, e.g.
 * `import { startRegistry } from "../../../test-support/registry.js"`.
 * The implementation is plain JS (registry.mjs) so node benchmarks can use it too.
 */

export type { TestRegistry } from "./registry.mjs";
export { freePort, startRegistry } from "./registry.mjs";
