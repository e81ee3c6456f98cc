/**
 * Test helper: the network lab (two network namespaces made by the test, see
 * netlab.mjs). Import by relative path, e.g.
 * `import { startNetLab } from "../../../test-support/netlab.js"`.
 */

export type { NetLab } from "./netlab.mjs";
export { LAB, startNetLab } from "./netlab.mjs";
