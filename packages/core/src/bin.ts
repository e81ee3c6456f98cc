import { main } from "./cli.js";

// Node's default printer adds "(node:PID)" and a --trace-warnings hint; the
// CLI prints warnings (e.g. the accelerator fallback) as its own lines.
process.removeAllListeners("warning");
process.on("warning", (w: Error & { code?: string }) => {
  process.stderr.write(`supermachine: warning${w.code ? ` [${w.code}]` : ""}: ${w.message}\n`);
});

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    // main reports its own errors; this is a bug in the CLI itself
    process.stderr.write(`supermachine: internal error: ${(err as Error)?.stack ?? String(err)}\n`);
    process.exit(70);
  },
);
