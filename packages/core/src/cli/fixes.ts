/** One-line fixes the CLI prints under an error, by error code. */
const FIXES: Record<string, string> = {
  INVALID_OPTIONS: "check the options against `supermachine COMMAND --help`",
  CLI_USAGE: "see `supermachine COMMAND --help` for the options and examples",
  OCI_INVALID_REFERENCE:
    "write the image as NAME[:TAG], HOST[:PORT]/NAME[:TAG], NAME@sha256:..., oci:/DIR[:TAG] or docker-archive:/FILE.tar",
  OCI_NOT_FOUND: "check the image name and tag; `supermachine pull IMAGE` tries it without booting anything",
  OCI_MANIFEST_UNKNOWN: "check the image tag; `supermachine pull IMAGE` tries it without booting anything",
  BAKE_IMAGE_NOT_FOUND:
    "check the image name and tag; `supermachine pull IMAGE` tries it without booting anything",
  OCI_UNAUTHORIZED: "log in with `docker login HOST`: credentials are read from ~/.docker/config.json",
  OCI_NETWORK:
    "check that the registry is reachable from this host; a plain-HTTP registry other than localhost needs --insecure-registry HOST",
  OCI_REGISTRY_ERROR: "the registry refused the request; retry, or check the registry's logs",
  OCI_NO_MATCHING_PLATFORM:
    "the image has no variant for the guest architecture (the message lists what it offers): pick a tag built for it, or another guest `arch`",
  OCI_PULL_POLICY: "the image is not in the local cache: drop `--pull never`",
  OCI_DIGEST_MISMATCH: "the registry served corrupt data: retry, and check any proxy in between",
  OCI_CREDENTIAL_HELPER: "the docker credential helper failed: run it by hand or `docker login` again",
  OCI_ROOTFS_BUILD: "run `supermachine doctor` (the root fs is written by mke2fs from e2fsprogs)",
  OCI_LAYER_UNSAFE_PATH: "the image has a layer that writes outside its root: do not run this image",
  OCI_LAYER_INVALID: "a layer of the image is not a valid tar archive: rebuild or re-push the image",
  QEMU_NOT_FOUND: "run `supermachine doctor`: it says which QEMU is missing and how to install it",
  QEMU_START_FAILED: "run `supermachine doctor` to see what this host lacks",
  GUEST_ASSETS_MISSING:
    "run `supermachine doctor`: it shows where the guest kernel and agent were looked for",
  ACCEL_UNAVAILABLE: "run `supermachine doctor` for the accelerator verdict, or use --accel tcg",
  ACCEL_MISMATCH:
    "the snapshot was baked under another accelerator: `supermachine build IMAGE` bakes it again",
  BOOT_TIMEOUT: "the guest did not come up: run `supermachine doctor`, then retry with --debug",
  VM_EXITED:
    "the VM stopped unexpectedly: retry with --debug for its console tail; `supermachine doctor` checks the host",
  RESTORE_FAILED: "bake the snapshot again: `supermachine prune --all`, then `supermachine build IMAGE`",
  RESTORE_TIMEOUT: "the host is too busy to restore in time: retry, or free some CPU",
  SNAPSHOT_NOT_FOUND: "`supermachine ls` lists the snapshots: pass a name from it or a snapshot directory",
  SNAPSHOT_CORRUPT:
    "`supermachine prune` removes broken snapshots; `supermachine build IMAGE` bakes it again",
  SNAPSHOT_VERSION:
    "the snapshot is from another supermachine version: `supermachine build IMAGE` bakes it again",
  SNAPSHOT_ASSET_MISMATCH:
    "the snapshot was baked with another guest: `supermachine build IMAGE` bakes it again",
  SNAPSHOT_ROOTFS_MISSING: "its root fs was deleted: `supermachine build IMAGE` bakes it again",
  SNAPSHOT_ROOTFS_CHANGED: "its root fs changed on disk: `supermachine build IMAGE` bakes it again",
  SNAPSHOT_LOCK_TIMEOUT: "another process is baking the same image: wait for it to finish",
  BAKE_WORKLOAD_EXITED:
    "the image's command exited while the guest booted: the console tail above shows why (try `supermachine run IMAGE -- sh`)",
  BAKE_LISTENER_TIMEOUT: "the workload never listened on --port: check the port, or drop --listener",
  BAKE_GUEST_DIED: "the guest died during the bake: the console tail above shows why",
  BAKE_OUT_OF_MEMORY: "give the guest more memory, e.g. --memory 512",
  BAKE_FAILED: "retry with --debug; `supermachine doctor` checks the host",
  UNSUPPORTED_OVERRIDE: "--memory and --vcpus are fixed at bake time: bake with the values you want",
  POOL_ACQUIRE_TIMEOUT: "no VM became ready in time: the host may be overloaded; retry",
  POOL_CREATE_FAILED:
    "the VM could not be restored: retry with --debug; `supermachine doctor` checks the host",
  ENOENT: "check the path",
  EACCES: "check the file's permissions",
};

/** The one-line fix for an error code. */
export function fixFor(code: string | undefined): string {
  return (
    (code && FIXES[code]) ?? "retry with --debug for the details; `supermachine doctor` checks this host"
  );
}
