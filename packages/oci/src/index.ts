export { BlobCache, defaultCacheDir } from "./blob-cache.js";
export type { ByteSource } from "./byte-source.js";
export { bufferSource, fileSource } from "./byte-source.js";
export type { RegistryAuth, ResolvedCredentials } from "./credentials.js";
export { defaultDockerConfigPath, lookupDockerCredentials } from "./credentials.js";
export type { OciErrorCode } from "./errors.js";
export {
  AbortedError,
  CredentialHelperError,
  DigestMismatchError,
  InsecureRedirectError,
  InsecureTokenRealmError,
  InvalidImageError,
  InvalidOptionsError,
  InvalidReferenceError,
  LayerInvalidError,
  LimitExceededError,
  NetworkError,
  NoMatchingPlatformError,
  NotFoundError,
  OciError,
  PullPolicyError,
  RegistryError,
  RootfsBuildError,
  UnauthorizedError,
  UnsafePathError,
  UnsupportedSchemaError,
} from "./errors.js";
export type { ImageConfig, ParsedImageConfig } from "./image-config.js";
export { parseImageConfig } from "./image-config.js";
export type { MergedInode, MergedNode, MergedTreeOptions } from "./layer-merge.js";
export { cleanPath, MergedTree } from "./layer-merge.js";
export type { OciLimits } from "./limits.js";
export { DEFAULT_LIMITS } from "./limits.js";
export type { Descriptor, ImageIndex, ImageManifest } from "./manifest.js";
export { parseManifest, selectPlatform } from "./manifest.js";
export { MediaTypes } from "./media-types.js";
export type { LayerReader, MergedTarPlan, MergeStats } from "./merged-tar.js";
export { planMergedTar, writeMergedTar } from "./merged-tar.js";
export type { GuestArchName, Platform } from "./platform.js";
export {
  defaultPlatform,
  formatPlatform,
  normalizePlatform,
  platformForGuestArch,
  platformMatches,
} from "./platform.js";
export type { PullOptions, PullPolicy } from "./pull.js";
export { pullImage } from "./pull.js";
export type { LayerInfo, PulledImage, PullProgress } from "./pulled-image.js";
export type {
  DockerArchiveReference,
  ImageReference,
  OciLayoutReference,
  RegistryReference,
} from "./reference.js";
export { DOCKER_HUB, parseReference, parseRegistryReference } from "./reference.js";
export type { FetchedManifest, RegistryClientOptions, UploadBody } from "./registry-client.js";
export { RegistryClient } from "./registry-client.js";
export type { BuildRootfsOptions, RootfsFormat, RootfsImage } from "./rootfs.js";
export { buildRootfs, rootfsDigest } from "./rootfs.js";
export type { RootfsToolStatus } from "./rootfs-tools.js";
export { checkRootfsTools } from "./rootfs-tools.js";
export type { EncodedSquashfs, SquashfsLayout } from "./squashfs-encoder.js";
export { encodeSquashfs, squashfsUnsupported, unusedRanges } from "./squashfs-encoder.js";
export type { ReadTarOptions, TarEntry, TarEntryType } from "./tar-reader.js";
export { readTarEntries } from "./tar-reader.js";
export type { ByteSink } from "./tar-writer.js";
export type { AuthChallenge } from "./www-authenticate.js";
export { parseWwwAuthenticate } from "./www-authenticate.js";
