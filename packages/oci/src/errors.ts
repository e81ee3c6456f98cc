import { SupermachineError, type SupermachineErrorOptions } from "@supermachine/errors";

/** Stable codes carried by {@link OciError} and its subclasses. */
export type OciErrorCode =
  | "OCI_INVALID_REFERENCE"
  | "OCI_DIGEST_MISMATCH"
  | "OCI_NOT_FOUND"
  | "OCI_MANIFEST_UNKNOWN"
  | "OCI_UNAUTHORIZED"
  | "OCI_UNSUPPORTED_SCHEMA"
  | "OCI_UNSUPPORTED_MEDIA_TYPE"
  | "OCI_NO_MATCHING_PLATFORM"
  | "OCI_PULL_POLICY"
  | "OCI_LAYER_UNSAFE_PATH"
  | "OCI_LAYER_INVALID"
  | "OCI_REGISTRY_ERROR"
  | "OCI_NETWORK"
  | "OCI_CREDENTIAL_HELPER"
  | "OCI_INVALID_IMAGE"
  | "OCI_ROOTFS_BUILD"
  | "OCI_ABORTED"
  | "OCI_LIMIT_EXCEEDED"
  | "OCI_INSECURE_TOKEN_REALM"
  | "OCI_INSECURE_REDIRECT"
  | "OCI_INVALID_OPTIONS";

/** Base class of every error thrown by `@supermachine/oci`; switch on `code`. */
export class OciError extends SupermachineError {
  declare readonly code: OciErrorCode;
  constructor(code: OciErrorCode, message: string, options?: SupermachineErrorOptions) {
    super(code, message, options);
  }
}

/** The image reference string cannot be parsed. Code `OCI_INVALID_REFERENCE`. */
export class InvalidReferenceError extends OciError {
  constructor(message: string, options?: SupermachineErrorOptions) {
    super("OCI_INVALID_REFERENCE", message, options);
  }
}

/** Content did not hash to its expected digest (nothing was cached). Code `OCI_DIGEST_MISMATCH`. */
export class DigestMismatchError extends OciError {
  /** The digest the content should have had. */
  readonly expected: string;
  /** The digest the content actually had. */
  readonly actual: string;
  constructor(what: string, expected: string, actual: string) {
    super("OCI_DIGEST_MISMATCH", `${what}: digest mismatch, expected ${expected}, got ${actual}`, {
      details: { what, expected, actual },
    });
    this.expected = expected;
    this.actual = actual;
  }
}

/** The repository, tag, manifest or blob does not exist. Code `OCI_NOT_FOUND` (or `OCI_MANIFEST_UNKNOWN`). */
export class NotFoundError extends OciError {
  constructor(message: string, options?: SupermachineErrorOptions & { manifest?: boolean }) {
    super(options?.manifest ? "OCI_MANIFEST_UNKNOWN" : "OCI_NOT_FOUND", message, options);
  }
}

/** The registry refused the credentials (or none were found). Code `OCI_UNAUTHORIZED`. */
export class UnauthorizedError extends OciError {
  constructor(message: string, options?: SupermachineErrorOptions) {
    super("OCI_UNAUTHORIZED", message, options);
  }
}

/** Docker schema 1 or another manifest format this package does not read. Code `OCI_UNSUPPORTED_SCHEMA`. */
export class UnsupportedSchemaError extends OciError {
  constructor(message: string, options?: SupermachineErrorOptions) {
    super("OCI_UNSUPPORTED_SCHEMA", message, options);
  }
}

/** No manifest in the index matches the wanted platform. Code `OCI_NO_MATCHING_PLATFORM`. */
export class NoMatchingPlatformError extends OciError {
  constructor(message: string, options?: SupermachineErrorOptions) {
    super("OCI_NO_MATCHING_PLATFORM", message, options);
  }
}

/** `pullPolicy: "never"` and the image is not in the cache. Code `OCI_PULL_POLICY`. */
export class PullPolicyError extends OciError {
  constructor(message: string, options?: SupermachineErrorOptions) {
    super("OCI_PULL_POLICY", message, options);
  }
}

/** A layer entry would land outside the root file system. Code `OCI_LAYER_UNSAFE_PATH`. */
export class UnsafePathError extends OciError {
  constructor(message: string, options?: SupermachineErrorOptions) {
    super("OCI_LAYER_UNSAFE_PATH", message, options);
  }
}

/** A layer is not a readable tar (truncated, bad header, unsupported entry). Code `OCI_LAYER_INVALID`. */
export class LayerInvalidError extends OciError {
  constructor(message: string, options?: SupermachineErrorOptions) {
    super("OCI_LAYER_INVALID", message, options);
  }
}

/** The registry answered with an unexpected status. Code `OCI_REGISTRY_ERROR`. */
export class RegistryError extends OciError {
  constructor(message: string, options?: SupermachineErrorOptions) {
    super("OCI_REGISTRY_ERROR", message, options);
  }
}

/** The registry could not be reached after retries. Code `OCI_NETWORK`. */
export class NetworkError extends OciError {
  constructor(message: string, options?: SupermachineErrorOptions) {
    super("OCI_NETWORK", message, options);
  }
}

/** A `docker-credential-*` helper failed. Code `OCI_CREDENTIAL_HELPER`. */
export class CredentialHelperError extends OciError {
  constructor(message: string, options?: SupermachineErrorOptions) {
    super("OCI_CREDENTIAL_HELPER", message, options);
  }
}

/** A manifest, index, config or archive is malformed. Code `OCI_INVALID_IMAGE` (or `OCI_UNSUPPORTED_MEDIA_TYPE`). */
export class InvalidImageError extends OciError {
  constructor(message: string, options?: SupermachineErrorOptions & { mediaType?: boolean }) {
    super(options?.mediaType ? "OCI_UNSUPPORTED_MEDIA_TYPE" : "OCI_INVALID_IMAGE", message, options);
  }
}

/** `mke2fs` (or the merge feeding it) failed. Code `OCI_ROOTFS_BUILD`. */
export class RootfsBuildError extends OciError {
  constructor(message: string, options?: SupermachineErrorOptions) {
    super("OCI_ROOTFS_BUILD", message, options);
  }
}

/** The caller's `AbortSignal` fired. Code `OCI_ABORTED`. */
export class AbortedError extends OciError {
  constructor(options?: SupermachineErrorOptions) {
    super("OCI_ABORTED", "operation aborted", options);
  }
}

/** Throws {@link AbortedError} when `signal` has fired. */
export function throwIfAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw new AbortedError({ cause: signal.reason });
}

/**
 * A registry response or an image is bigger than a configured limit (a
 * body, the unpacked layers, the entry count, a path, the xattrs of one
 * entry). `limit` names the {@link OciLimits} field; raise it through the
 * `limits` option of `pullImage` / `buildRootfs`. Code `OCI_LIMIT_EXCEEDED`.
 */
export class LimitExceededError extends OciError {
  /** The {@link OciLimits} field that was exceeded, e.g. `maxUnpackedBytes`. */
  readonly limit: string;
  /** The limit's value. */
  readonly max: number;
  constructor(
    limit: string,
    max: number,
    what: string,
    options?: SupermachineErrorOptions & { raise?: string },
  ) {
    const raise =
      options?.raise ?? `raise it with { limits: { ${limit}: ... } } in the pullImage / buildRootfs options`;
    super("OCI_LIMIT_EXCEEDED", `${what}: exceeds limits.${limit} (${max}); ${raise}`, {
      ...options,
      details: { limit, max, ...options?.details },
    });
    this.limit = limit;
    this.max = max;
  }
}

/**
 * A registry asked for credentials to be sent to a token realm over plain
 * HTTP, and the registry is not listed in `insecureRegistries`. Code
 * `OCI_INSECURE_TOKEN_REALM`.
 */
export class InsecureTokenRealmError extends OciError {
  constructor(message: string, options?: SupermachineErrorOptions) {
    super("OCI_INSECURE_TOKEN_REALM", message, options);
  }
}

/**
 * A registry redirected an HTTPS request to plain HTTP (or to a scheme other
 * than http/https), and the registry is not listed in `insecureRegistries`.
 * Code `OCI_INSECURE_REDIRECT`.
 */
export class InsecureRedirectError extends OciError {
  constructor(message: string, options?: SupermachineErrorOptions) {
    super("OCI_INSECURE_REDIRECT", message, options);
  }
}

/** An option has a value this package cannot use. Code `OCI_INVALID_OPTIONS`. */
export class InvalidOptionsError extends OciError {
  constructor(message: string, options?: SupermachineErrorOptions) {
    super("OCI_INVALID_OPTIONS", message, options);
  }
}
