import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

/**
 * A private directory for one QEMU process: its QMP and agent sockets and its
 * console pipe. Kept short because unix socket paths are limited to 107 bytes.
 */
export class RunDir {
  readonly path: string;
  constructor(parent = process.env.SUPERMACHINE_RUN_DIR ?? join(tmpdir(), "supermachine")) {
    mkdirSync(parent, { recursive: true, mode: 0o700 });
    this.path = mkdtempSync(join(parent, "vm-"));
  }
  get qmpSocket(): string {
    return join(this.path, "qmp.sock");
  }
  get agentSocket(): string {
    return join(this.path, "agent.sock");
  }
  get consolePipe(): string {
    return join(this.path, "console.pipe");
  }
  /** Removes the directory and everything in it. Idempotent. */
  remove(): void {
    rmSync(this.path, { recursive: true, force: true });
  }
}
