/**
 * Test helper: the test OCI layouts (busybox, multilayer, multiarch, debian),
 * every one checked and rebuilt when stale. Import from integration tests by
 * relative path, e.g. `import { ensureTestImages } from "../../../test-support/test-images.js"`.
 * The implementation is plain JS (test-images.mjs) so benchmarks can use it too.
 */
export { arm64BusyboxPath, ensureTestImages, TEST_IMAGE_NAMES, testImagesDir } from "./test-images.mjs";
