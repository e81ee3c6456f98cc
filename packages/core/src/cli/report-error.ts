import { fixFor } from "./fixes.js";
import type { Style } from "./style.js";

interface ErrorLike {
  code?: unknown;
  message?: unknown;
  stack?: unknown;
  details?: Record<string, unknown>;
  cause?: unknown;
}

/**
 * Formats an error for the terminal: `supermachine: [CODE] message`, the
 * guest console tail when the error carries one, and a `fix:` line. With
 * `debug`, the stack, details and cause chain follow.
 */
export function formatError(err: unknown, style: Style, debug: boolean, command?: string): string {
  const e = (typeof err === "object" && err !== null ? err : { message: String(err) }) as ErrorLike;
  const code = typeof e.code === "string" ? e.code : undefined;
  let message = String(e.message ?? err);
  // the console tail is shown below, trimmed; keep the first line of the message
  const tail = typeof e.details?.consoleTail === "string" ? (e.details.consoleTail as string).trimEnd() : "";
  if (tail && !debug) message = message.split("\n--- console tail ---")[0] as string;
  let out = `${style.red("supermachine:")} ${code ? style.bold(`[${code}] `) : ""}${message}\n`;
  if (tail && !debug && !message.includes(tail)) {
    const lines = tail.split("\n").slice(-12);
    out += `${style.dim("guest console (last lines):")}\n${lines.map((l) => `  ${style.dim(l)}\n`).join("")}`;
  }
  out += `  ${style.yellow("fix:")} ${fixFor(code).replace("COMMAND ", command ? `${command} ` : "")}\n`;
  if (debug) {
    if (typeof e.stack === "string") out += `${e.stack}\n`;
    if (e.details && Object.keys(e.details).length) out += `details: ${JSON.stringify(e.details, null, 2)}\n`;
    let cause = e.cause as ErrorLike | undefined;
    while (cause) {
      out += `caused by: ${typeof cause.stack === "string" ? cause.stack : String(cause.message ?? cause)}\n`;
      cause = cause.cause as ErrorLike | undefined;
    }
  }
  return out;
}

/** The error as one JSON object (for `--json`): code, message, fix. */
export function errorJson(err: unknown): { code: string; message: string; fix: string } {
  const e = (typeof err === "object" && err !== null ? err : { message: String(err) }) as ErrorLike;
  const code = typeof e.code === "string" ? e.code : "UNKNOWN";
  return { code, message: String(e.message ?? err), fix: fixFor(code) };
}
