/** A running test registry. */
export interface TestRegistry {
  /** `http://127.0.0.1:PORT`. */
  url: string;
  /** `127.0.0.1:PORT` (use as the registry part of references). */
  host: string;
  /** The registry's storage root. */
  storageDir: string;
  /** Pushes every image of an OCI layout as `repo:tag`; resolves to `host/repo:tag`. */
  pushLayout(layoutDir: string, repoTag: string, opts?: { srcTag?: string }): Promise<string>;
  /** Path of a blob's data file in storage. */
  blobPath(digest: string): string;
  /** Recent log output. */
  log(): string;
  /** Stops the registry and removes its directory. Idempotent. */
  close(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}
/** Starts Debian's docker-registry on 127.0.0.1 (a free port), optionally with htpasswd auth. */
export function startRegistry(opts?: {
  htpasswd?: { user: string; password: string };
  binary?: string;
}): Promise<TestRegistry>;
/** A free TCP port on 127.0.0.1. */
export function freePort(): Promise<number>;
