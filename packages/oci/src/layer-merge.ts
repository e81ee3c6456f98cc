import { LayerInvalidError, LimitExceededError, UnsafePathError } from "./errors.js";
import type { TarEntry, TarEntryType } from "./tar-reader.js";

/** File metadata (and where its data lives) shared by every hardlinked name. */
export interface MergedInode extends Omit<TarEntry, "path" | "type" | "dataOffset"> {
  type: Exclude<TarEntryType, "link">;
  /** Which layer holds the data, and where (files only). */
  data?: { layer: number; offset: number };
}

/** A name in the merged tree. Directories have children. */
export interface MergedNode {
  inode: MergedInode;
  children?: Map<string, MergedNode>;
}

const WHITEOUT = ".wh.";
const OPAQUE = ".wh..wh..opq";
const MAX_SYMLINK_HOPS = 40;
/** Path components one lookup may step through, symlink targets included (bounds the work a hostile chain can cause). */
const MAX_WALK_STEPS = 4096;

/** Options of {@link MergedTree}. */
export interface MergedTreeOptions {
  /**
   * Most parent directories the tree may create because entries imply them
   * (they are not counted by the tar entry limit, yet each costs memory and
   * an inode). Default 1 000 000; exceeding it is `OCI_LIMIT_EXCEEDED` (`maxEntries`).
   */
  maxImplicitDirs?: number;
}

function implicitDir(): MergedNode {
  return {
    inode: {
      type: "dir",
      mode: 0o755,
      uid: 0,
      gid: 0,
      uname: "",
      gname: "",
      mtime: 0,
      size: 0,
      linkname: "",
      devmajor: 0,
      devminor: 0,
      xattrs: {},
    },
    children: new Map(),
  };
}

/**
 * Splits a tar path into clean components: leading `/` and `./` are
 * dropped (neutralized), `.` removed, `..` resolved lexically. Throws
 * {@link UnsafePathError} when `..` would climb above the root.
 */
export function cleanPath(path: string, what = "entry"): string[] {
  const out: string[] = [];
  for (const c of path.split("/")) {
    if (c === "" || c === ".") continue;
    if (c === "..") {
      if (out.length === 0) {
        throw new UnsafePathError(`layer ${what} ${JSON.stringify(path)} escapes the root file system`, {
          details: { path },
        });
      }
      out.pop();
      continue;
    }
    if (c.includes("\0")) throw new UnsafePathError(`layer ${what} ${JSON.stringify(path)} contains NUL`);
    out.push(c);
  }
  return out;
}

/**
 * The union of image layers, applied in order with OCI changeset semantics:
 * whiteouts (`.wh.name`) and opaque markers (`.wh..wh..opq`) hide content of
 * lower layers only, later entries replace earlier ones, directories merge,
 * hardlinks (also to files of lower layers) share one inode. Parent paths
 * are resolved through symlinks inside the root (a `..` or absolute symlink
 * target is clamped at `/`, as in a chroot), so nothing can land outside it.
 */
export class MergedTree {
  /** The root directory. */
  readonly root: MergedNode = implicitDir();
  private implicitDirs = 0;
  private readonly maxImplicitDirs: number;

  constructor(opts: MergedTreeOptions = {}) {
    this.maxImplicitDirs = opts.maxImplicitDirs ?? 1_000_000;
  }

  /** Walks `parts` from the root, following symlinks in every component; creates missing dirs if `create`. */
  private walk(parts: string[], create: boolean): { node: MergedNode; path: string[] } | undefined {
    const queue = [...parts];
    const stack: { node: MergedNode; name: string }[] = [];
    let cur = this.root;
    let hops = 0;
    let steps = 0;
    while (queue.length) {
      if (++steps > MAX_WALK_STEPS) {
        throw new UnsafePathError(
          `resolving /${parts.join("/")} takes more than ${MAX_WALK_STEPS} steps through symbolic links`,
        );
      }
      const name = queue.shift()!;
      if (name === "." || name === "") continue;
      if (name === "..") {
        const up = stack.pop();
        cur = stack.length ? stack[stack.length - 1]!.node : this.root;
        if (!up) cur = this.root;
        continue;
      }
      let child = cur.children!.get(name);
      if (child && child.inode.type === "symlink") {
        if (++hops > MAX_SYMLINK_HOPS) {
          throw new UnsafePathError(`too many levels of symbolic links resolving /${parts.join("/")}`);
        }
        const target = child.inode.linkname.split("/");
        if (steps + queue.length + target.length > MAX_WALK_STEPS) {
          throw new UnsafePathError(
            `resolving /${parts.join("/")} takes more than ${MAX_WALK_STEPS} steps through symbolic links`,
          );
        }
        queue.unshift(...target);
        if (child.inode.linkname.startsWith("/")) {
          stack.length = 0;
          cur = this.root;
        }
        continue;
      }
      if (child?.inode.type !== "dir") {
        if (!create) return undefined;
        if (++this.implicitDirs > this.maxImplicitDirs) {
          throw new LimitExceededError(
            "maxEntries",
            this.maxImplicitDirs,
            `the image implies more than ${this.maxImplicitDirs} parent directories`,
          );
        }
        child = implicitDir();
        cur.children!.set(name, child);
      }
      stack.push({ node: child, name });
      cur = child;
    }
    return { node: cur, path: stack.map((s) => s.name) };
  }

  /** Looks up a path without following a symlink in the last component. */
  lookup(path: string): MergedNode | undefined {
    const parts = cleanPath(path);
    if (parts.length === 0) return this.root;
    const parent = this.walk(parts.slice(0, -1), false);
    return parent?.node.children?.get(parts[parts.length - 1]!);
  }

  /** Applies one layer's entries (`layer` is the index recorded as the data's source). */
  applyLayer(layer: number, entries: Iterable<TarEntry>): void {
    const list = [...entries];
    // Whiteouts first: they only hide what lower layers put there.
    for (const e of list) {
      const parts = cleanPath(e.path);
      const base = parts[parts.length - 1];
      if (!base?.startsWith(WHITEOUT)) continue;
      const parent = this.walk(parts.slice(0, -1), false);
      if (!parent) continue;
      if (base === OPAQUE) parent.node.children!.clear();
      else if (!base.startsWith(`${WHITEOUT}${WHITEOUT}`))
        parent.node.children!.delete(base.slice(WHITEOUT.length));
    }
    for (const e of list) {
      const parts = cleanPath(e.path);
      const base = parts[parts.length - 1];
      if (base?.startsWith(WHITEOUT)) continue;
      if (base === undefined) {
        if (e.type === "dir") this.root.inode = inodeOf(e, layer);
        continue;
      }
      const parent = this.walk(parts.slice(0, -1), true)!.node;
      const existing = parent.children!.get(base);
      if (e.type === "dir") {
        if (existing?.inode.type === "dir") existing.inode = inodeOf(e, layer);
        else parent.children!.set(base, { inode: inodeOf(e, layer), children: new Map() });
        continue;
      }
      if (e.type === "link") {
        const targetParts = cleanPath(e.linkname, "hardlink target");
        const target =
          targetParts.length === 0
            ? this.root
            : this.walk(targetParts.slice(0, -1), false)?.node.children?.get(
                targetParts[targetParts.length - 1]!,
              );
        if (!target) {
          throw new LayerInvalidError(`hardlink ${e.path} -> ${e.linkname}: target does not exist`, {
            details: { path: e.path, linkname: e.linkname },
          });
        }
        if (target.inode.type === "dir") {
          throw new LayerInvalidError(`hardlink ${e.path} -> ${e.linkname}: target is a directory`);
        }
        if (target !== existing) parent.children!.set(base, { inode: target.inode });
        continue;
      }
      parent.children!.set(base, { inode: inodeOf(e, layer) });
    }
  }
}

function inodeOf(e: TarEntry, layer: number): MergedInode {
  const inode: MergedInode = {
    type: e.type as MergedInode["type"],
    mode: e.mode,
    uid: e.uid,
    gid: e.gid,
    uname: e.uname,
    gname: e.gname,
    mtime: e.mtime,
    size: e.type === "file" ? e.size : 0,
    linkname: e.type === "symlink" ? e.linkname : "",
    devmajor: e.devmajor,
    devminor: e.devminor,
    xattrs: e.xattrs,
  };
  if (e.type === "file") inode.data = { layer, offset: e.dataOffset };
  return inode;
}
