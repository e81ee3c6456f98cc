/** The layouts build.sh makes, every one of them, always. */
export const TEST_IMAGE_NAMES: readonly [
  "busybox",
  "multilayer",
  "multiarch",
  "debian",
  "busybox-multiarch",
  "debian-arm64",
];
/** Where the test OCI layouts live (`$SUPERMACHINE_TEST_IMAGES` or `<cache>/test-images`). */
export function testImagesDir(): string;
/** Makes every test layout current (each checked and rebuilt on its own) and returns their paths. */
export function ensureTestImages(): {
  busybox: string;
  multilayer: string;
  multiarch: string;
  debian: string;
  /** Index with linux/amd64 and linux/arm64/v8 busybox images, each runnable in a guest of its architecture. */
  "busybox-multiarch": string;
  /** linux/arm64/v8 Debian bookworm minbase (debootstrap --foreign first stage), tag `bookworm`. */
  "debian-arm64": string;
};
/** Debian's arm64 busybox-static binary fetched for busybox-multiarch. */
export function arm64BusyboxPath(): string;
