import { isAbsolute, resolve } from "node:path";
import { InvalidReferenceError } from "./errors.js";

/** The default registry host names images without a registry resolve to. */
export const DOCKER_HUB = "docker.io";

/** An image in a registry, named the way `docker pull` names it. */
export interface RegistryReference {
  transport: "docker";
  /** Registry host (and port), e.g. `docker.io`, `localhost:5000`. */
  registry: string;
  /** Repository path, e.g. `library/alpine`. */
  repository: string;
  /** Tag; `latest` when the reference had neither tag nor digest. */
  tag?: string;
  /** `algorithm:hex` digest when pinned. */
  digest?: string;
  /** Canonical string, e.g. `docker.io/library/alpine:latest`. */
  normalized: string;
}

/** An OCI image layout directory (`oci:/path[:tag]`). */
export interface OciLayoutReference {
  transport: "oci";
  /** Absolute path of the layout directory. */
  path: string;
  /** The `org.opencontainers.image.ref.name` to select, if given. */
  tag?: string;
  /** Canonical string, `oci:/abs/path[:tag]`. */
  normalized: string;
}

/** A `docker save` archive (`docker-archive:/path.tar[:ref]`). */
export interface DockerArchiveReference {
  transport: "docker-archive";
  /** Absolute path of the tar file. */
  path: string;
  /** Which of the archive's `RepoTags` to use (normalized), if given. */
  ref?: string;
  /** Canonical string, `docker-archive:/abs/path.tar[:ref]`. */
  normalized: string;
}

/** Any reference {@link parseReference} understands. */
export type ImageReference = RegistryReference | OciLayoutReference | DockerArchiveReference;

const COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const TAG = /^[\w][\w.-]{0,127}$/;
const DIGEST = /^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-fA-F0-9]{32,}$/;
const DOMAIN_COMPONENT = /^(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])$/;

function invalid(ref: string, why: string): never {
  throw new InvalidReferenceError(`invalid image reference ${JSON.stringify(ref)}: ${why}`, {
    details: { ref },
  });
}

function validDomain(domain: string): boolean {
  let host = domain;
  let port: string | undefined;
  if (host.startsWith("[")) {
    const end = host.indexOf("]");
    if (end < 0) return false;
    const rest = host.slice(end + 1);
    if (rest && !/^:\d+$/.test(rest)) return false;
    return /^[0-9a-fA-F:.]+$/.test(host.slice(1, end));
  }
  const colon = host.lastIndexOf(":");
  if (colon >= 0) {
    port = host.slice(colon + 1);
    host = host.slice(0, colon);
    if (!/^\d+$/.test(port)) return false;
  }
  return host.split(".").every((c) => DOMAIN_COMPONENT.test(c));
}

/**
 * Parses a registry reference with Docker's normalization: `alpine` ->
 * `docker.io/library/alpine:latest`, `host:5000/a/b:tag`, `name@sha256:...`.
 */
export function parseRegistryReference(input: string): RegistryReference {
  const ref = input.startsWith("docker://") ? input.slice("docker://".length) : input;
  if (!ref) invalid(input, "empty");
  if (ref.length > 4096) invalid(input, "too long");
  let rest = ref;
  let digest: string | undefined;
  const at = rest.indexOf("@");
  if (at >= 0) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
    if (!DIGEST.test(digest)) invalid(input, `bad digest ${JSON.stringify(digest)}`);
    const [algo, hex] = digest.split(":") as [string, string];
    if (algo === "sha256" && hex.length !== 64) invalid(input, "sha256 digest must have 64 hex digits");
    if (algo === "sha512" && hex.length !== 128) invalid(input, "sha512 digest must have 128 hex digits");
    digest = `${algo}:${hex.toLowerCase()}`;
  }
  let tag: string | undefined;
  const lastColon = rest.lastIndexOf(":");
  if (lastColon >= 0 && !rest.slice(lastColon + 1).includes("/")) {
    tag = rest.slice(lastColon + 1);
    rest = rest.slice(0, lastColon);
    if (!TAG.test(tag)) invalid(input, `bad tag ${JSON.stringify(tag)}`);
  }
  if (!rest) invalid(input, "missing repository name");
  let registry = DOCKER_HUB;
  let path = rest;
  const slash = rest.indexOf("/");
  if (slash >= 0) {
    const first = rest.slice(0, slash);
    if (
      first.includes(".") ||
      first.includes(":") ||
      first === "localhost" ||
      first !== first.toLowerCase()
    ) {
      registry = first;
      path = rest.slice(slash + 1);
      if (!validDomain(registry)) invalid(input, `bad registry host ${JSON.stringify(registry)}`);
    }
  }
  if (registry === "index.docker.io" || registry === "registry-1.docker.io") registry = DOCKER_HUB;
  if (registry === DOCKER_HUB && !path.includes("/")) path = `library/${path}`;
  for (const c of path.split("/")) {
    if (!COMPONENT.test(c)) {
      invalid(
        input,
        c !== c.toLowerCase()
          ? "repository name must be lowercase"
          : `bad path component ${JSON.stringify(c)}`,
      );
    }
  }
  if (`${registry}/${path}`.length > 255) invalid(input, "repository name longer than 255 characters");
  if (!tag && !digest) tag = "latest";
  const normalized = `${registry}/${path}${tag ? `:${tag}` : ""}${digest ? `@${digest}` : ""}`;
  return { transport: "docker", registry, repository: path, tag, digest, normalized };
}

function splitPathAndSuffix(body: string): [string, string | undefined] {
  // The suffix after the last ':' is a tag/ref only if it has no '/' (paths may contain ':').
  const colon = body.lastIndexOf(":");
  if (colon > 0) {
    const suffix = body.slice(colon + 1);
    // A docker-archive ref may itself be `name:tag`, so look for the first ':' after the last '/'.
    const lastSlash = body.lastIndexOf("/");
    const first = body.indexOf(":", lastSlash + 1);
    if (first > 0 && !body.slice(first + 1).includes("/"))
      return [body.slice(0, first), body.slice(first + 1)];
    if (!suffix.includes("/")) return [body.slice(0, colon), suffix];
  }
  return [body, undefined];
}

/**
 * Parses an image reference. Registry references follow Docker's rules
 * (optionally prefixed `docker://`); `oci:/path/to/layout[:tag]` names an OCI
 * image layout directory and `docker-archive:/path/file.tar[:ref]` a
 * `docker save` archive. Throws {@link InvalidReferenceError}.
 */
export function parseReference(ref: string): ImageReference {
  if (typeof ref !== "string") invalid(String(ref), "not a string");
  if (ref.startsWith("oci:")) {
    const [p, tag] = splitPathAndSuffix(ref.slice(4));
    if (!p) invalid(ref, "missing layout path");
    if (tag !== undefined && !/^[\w][\w.:@/+-]*$/.test(tag)) invalid(ref, `bad tag ${JSON.stringify(tag)}`);
    const path = isAbsolute(p) ? resolve(p) : resolve(process.cwd(), p);
    return {
      transport: "oci",
      path,
      tag: tag || undefined,
      normalized: `oci:${path}${tag ? `:${tag}` : ""}`,
    };
  }
  if (ref.startsWith("docker-archive:")) {
    const [p, inner] = splitPathAndSuffix(ref.slice("docker-archive:".length));
    if (!p) invalid(ref, "missing archive path");
    const path = isAbsolute(p) ? resolve(p) : resolve(process.cwd(), p);
    let normalizedRef: string | undefined;
    if (inner) normalizedRef = parseRegistryReference(inner).normalized;
    return {
      transport: "docker-archive",
      path,
      ref: normalizedRef,
      normalized: `docker-archive:${path}${normalizedRef ? `:${normalizedRef}` : ""}`,
    };
  }
  return parseRegistryReference(ref);
}
