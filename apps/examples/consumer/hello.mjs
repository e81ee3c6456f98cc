// The README's snippet as a consumer writes it in plain ESM on Node 20
// (no `await using` there: that needs TypeScript or Node 24).
import { Image } from "@supermachine/core";

const [ref, snapshotsDir] = process.argv.slice(2);
const image = await Image.build({ ref, snapshotsDir });
const pool = await image.pool({ min: 1, max: 2 });
try {
  const vm = await pool.acquire();
  const { stdout, exitCode } = await vm.exec({ argv: ["sh", "-c", "echo $((6*7)) from esm"] });
  console.log(`${stdout.toString().trim()} exit=${exitCode}`);
  await vm.release();
} finally {
  await pool.shutdown();
}
