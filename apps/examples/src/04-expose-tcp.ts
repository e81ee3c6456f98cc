// 04 expose tcp: run busybox httpd in the guest and fetch from the host.
import { Image } from "@supermachine/core";
import { defaultImageRef, snapshotsDir } from "./default-image.js";

const image = await Image.build({ ref: defaultImageRef(), snapshotsDir });
await using pool = await image.pool();
await using vm = await pool.acquire();
await vm.writeFile("/www/index.html", Buffer.from("<h1>hello from a supermachine guest</h1>\n"));
await vm.exec({ argv: ["httpd", "-p", "8080", "-h", "/www"] });
await using fwd = await vm.exposeTcp(0, 8080);
const res = await fetch(`http://${fwd.localAddr}/`);
console.log(`GET http://${fwd.localAddr}/ -> ${res.status}\n${(await res.text()).trim()}`);
if (res.status !== 200) process.exit(1);
