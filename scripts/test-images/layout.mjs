// Small helpers to write OCI image layouts (used by build-images.mjs).
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";
import { gzipSync } from "node:zlib";

const require = createRequire(import.meta.url);
const tarStream = require("tar-stream");

export const sha256 = (buf) => `sha256:${createHash("sha256").update(buf).digest("hex")}`;

/** A layout being written into `dir` (blobs go straight in; index.json on finish). */
export class LayoutWriter {
  constructor(dir) {
    this.dir = dir;
    this.manifests = [];
    rmSync(dir, { recursive: true, force: true });
    mkdirSync(join(dir, "blobs", "sha256"), { recursive: true });
    writeFileSync(join(dir, "oci-layout"), JSON.stringify({ imageLayoutVersion: "1.0.0" }));
  }
  /** Stores bytes as a blob; returns a descriptor. */
  blob(buf, mediaType) {
    const digest = sha256(buf);
    const p = join(this.dir, "blobs", "sha256", digest.slice(7));
    if (!existsSync(p)) writeFileSync(p, buf);
    return { mediaType, digest, size: buf.length };
  }
  /** Stores a file as a blob without reading it twice into memory. */
  blobFile(path, mediaType) {
    const hex = execFileSync("sha256sum", [path]).toString().split(" ")[0];
    const size = Number(execFileSync("stat", ["-c", "%s", path]).toString().trim());
    const p = join(this.dir, "blobs", "sha256", hex);
    if (!existsSync(p)) copyFileSync(path, p);
    return { mediaType, digest: `sha256:${hex}`, size };
  }
  /**
   * Writes config + manifest for `layers` ({buf|path, compression, diffId}) and returns the manifest descriptor.
   */
  image({ layers, config, platform }) {
    const layerDescs = layers.map((l) => {
      const mt =
        l.compression === "gzip"
          ? "application/vnd.oci.image.layer.v1.tar+gzip"
          : l.compression === "zstd"
            ? "application/vnd.oci.image.layer.v1.tar+zstd"
            : "application/vnd.oci.image.layer.v1.tar";
      return l.path ? this.blobFile(l.path, mt) : this.blob(l.buf, mt);
    });
    const cfg = {
      created: "2024-01-01T00:00:00Z",
      architecture: platform.architecture,
      os: platform.os,
      ...(platform.variant ? { variant: platform.variant } : {}),
      config,
      rootfs: { type: "layers", diff_ids: layers.map((l) => l.diffId) },
      history: layers.map(() => ({
        created: "2024-01-01T00:00:00Z",
        created_by: "supermachine test-images",
      })),
    };
    const cfgDesc = this.blob(Buffer.from(JSON.stringify(cfg)), "application/vnd.oci.image.config.v1+json");
    const manifest = {
      schemaVersion: 2,
      mediaType: "application/vnd.oci.image.manifest.v1+json",
      config: cfgDesc,
      layers: layerDescs,
    };
    return {
      ...this.blob(Buffer.from(JSON.stringify(manifest)), "application/vnd.oci.image.manifest.v1+json"),
      platform,
    };
  }
  /** An index blob over manifest descriptors. */
  index(manifests) {
    const idx = { schemaVersion: 2, mediaType: "application/vnd.oci.image.index.v1+json", manifests };
    return this.blob(Buffer.from(JSON.stringify(idx)), "application/vnd.oci.image.index.v1+json");
  }
  /** Writes index.json naming `desc` as `tag`. */
  finish(entries) {
    const manifests = entries.map(({ desc, tag }) => {
      const { platform, ...rest } = desc;
      return { ...rest, annotations: { "org.opencontainers.image.ref.name": tag } };
    });
    const tmp = join(this.dir, "index.json.tmp");
    writeFileSync(
      tmp,
      JSON.stringify({ schemaVersion: 2, mediaType: "application/vnd.oci.image.index.v1+json", manifests }),
    );
    renameSync(tmp, join(this.dir, "index.json"));
  }
}

/** Builds an uncompressed tar in memory from entries [{name, type?, mode?, uid?, gid?, data?, linkname?, pax?, devmajor?, devminor?}]. */
export async function makeTar(entries) {
  const pack = tarStream.pack();
  const chunks = [];
  pack.on("data", (c) => chunks.push(c));
  const done = new Promise((resolve, reject) => {
    pack.on("end", resolve);
    pack.on("error", reject);
  });
  for (const e of entries) {
    const data = e.data === undefined ? undefined : Buffer.from(e.data);
    await new Promise((resolve, reject) => {
      pack.entry(
        {
          name: e.name,
          type: e.type ?? "file",
          mode: e.mode ?? (e.type === "directory" ? 0o755 : 0o644),
          uid: e.uid ?? 0,
          gid: e.gid ?? 0,
          mtime: new Date(1704067200000),
          linkname: e.linkname,
          devmajor: e.devmajor,
          devminor: e.devminor,
          pax: e.pax,
          size: data ? data.length : 0,
        },
        data,
        (err) => (err ? reject(err) : resolve()),
      );
    });
  }
  pack.finalize();
  await done;
  return Buffer.concat(chunks);
}

/** Compresses a tar; returns {buf, compression, diffId}. */
export function compress(tar, compression) {
  const diffId = sha256(tar);
  if (compression === "gzip") return { buf: gzipSync(tar, { level: 6 }), compression, diffId };
  if (compression === "zstd")
    return {
      buf: execFileSync("zstd", ["-q", "-c", "-3"], { input: tar, maxBuffer: 1 << 30 }),
      compression,
      diffId,
    };
  return { buf: tar, compression: "none", diffId };
}

export { readFileSync };
