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
  /** Tokens the token server issued (tokenAuth mode): requested scopes and service. */
  tokensIssued(): { scopes: string[]; service: string | null }[];
  /** Recent log output. */
  log(): string;
  /** Stops the registry and removes its directory. Idempotent. */
  close(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}
/**
 * Starts Debian's docker-registry on 127.0.0.1 (a free port), optionally with
 * htpasswd (Basic) auth, or token auth backed by a small in-process token
 * server issuing RS256 JWTs (the Docker Hub-style Bearer flow).
 */
export function startRegistry(opts?: {
  htpasswd?: { user: string; password: string };
  tokenAuth?: { user: string; password: string };
  binary?: string;
}): Promise<TestRegistry>;
/** A free TCP port on 127.0.0.1. */
export function freePort(): Promise<number>;
