import { main } from "./cli.js";

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: { code?: string; message?: string }) => {
    process.stderr.write(`supermachine: ${err.code ? `[${err.code}] ` : ""}${err.message ?? String(err)}\n`);
    process.exit(1);
  },
);
