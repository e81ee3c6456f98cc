import { ensureTestImages } from "../../../../test-support/test-images.js";

/** A test layout of `scripts/test-images/build.sh`. */
export type TestLayout =
  | "busybox"
  | "multilayer"
  | "multiarch"
  | "debian"
  | "busybox-multiarch"
  | "debian-arm64";

/**
 * Path of one test layout. Every layout is made current first (each checked
 * against its inputs and rebuilt when stale or incomplete), so this never
 * returns a missing one: it throws instead.
 */
export function layoutPath(name: TestLayout): string {
  return ensureTestImages()[name];
}
