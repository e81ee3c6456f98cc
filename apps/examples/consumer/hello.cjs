// The README's snippet through CommonJS `require`.
const { Image } = require("@supermachine/core");

async function main() {
  const [ref, snapshotsDir] = process.argv.slice(2);
  const image = await Image.build({ ref, snapshotsDir });
  const pool = await image.pool({ min: 1, max: 1 });
  try {
    const vm = await pool.acquire();
    const { stdout, exitCode } = await vm.exec({ argv: ["sh", "-c", "echo $((6*7)) from cjs"] });
    console.log(`${stdout.toString().trim()} exit=${exitCode}`);
    await vm.release();
  } finally {
    await pool.shutdown();
  }
}
main().catch((err) => {
  console.error(err);
  process.exit(1);
});
