// 05 spawn streaming: stream output as it is produced, feed stdin, and run a
// command under a pty whose window size changes.
import { Image } from "@supermachine/core";
import { defaultImageRef, snapshotsDir } from "./default-image.js";

const image = await Image.build({ ref: defaultImageRef(), snapshotsDir });
await using pool = await image.pool();
await using vm = await pool.acquire();

const ticker = await vm.spawn({ argv: ["sh", "-c", "for i in 1 2 3; do echo tick $i; sleep 0.2; done"] });
for (let chunk = await ticker.readStdout(); chunk.length > 0; chunk = await ticker.readStdout()) {
  process.stdout.write(`[stream] ${chunk}`);
}
console.log("ticker:", await ticker.wait());

const cat = await vm.spawn({ argv: ["cat"] });
await cat.writeStdin(Buffer.from("echoed through cat\n"));
await cat.closeStdin();
console.log("cat said:", (await cat.readStdout()).toString().trim(), await cat.wait());

const tty = await vm.spawn({
  argv: ["sh", "-c", "stty size; read x; stty size"],
  tty: true,
  winsize: { cols: 100, rows: 30 },
});
console.log("tty before:", (await tty.readStdout()).toString().trim());
await tty.resize(132, 43);
await tty.writeStdin(Buffer.from("\n"));
let rest = "";
for (let c = await tty.readStdout(); c.length > 0; c = await tty.readStdout()) rest += c;
console.log("tty after:", rest.trim().split(/\r?\n/).pop());
console.log(await tty.wait());
