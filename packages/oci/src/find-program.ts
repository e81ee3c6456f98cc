import { accessSync, constants } from "node:fs";
import { delimiter, join } from "node:path";

const found = new Map<string, string | undefined>();

/** Absolute path of the executable `name` on `PATH`, or undefined (looked up once per name). */
export function findProgram(name: string): string | undefined {
  if (!found.has(name)) {
    let path: string | undefined;
    for (const dir of (process.env.PATH ?? "").split(delimiter)) {
      if (!dir) continue;
      try {
        accessSync(join(dir, name), constants.X_OK);
        path = join(dir, name);
        break;
      } catch {}
    }
    found.set(name, path);
  }
  return found.get(name);
}
