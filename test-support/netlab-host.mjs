// The "host" of the network test lab: runs in the lab's host network (and
// mount) namespace, set up by netlab.mjs, where the code under test runs as
// if on a real host. Serves TCP port 7777 on each host address (loopback
// included: "hello from host <address>"), then loads the driver module given
// as argv[2] and answers JSON-line requests on stdin:
//   {"id": 1, "op": "name", "args": {...}}  ->  {"id": 1, "ok": true, "value": ...} | {"id": 1, "ok": false, "error": {...}}
// The driver's exports are the ops; each gets (args, lab) where lab holds the
// lab description. Prints {"ready": true} first.
import { createServer } from "node:net";
import { createInterface } from "node:readline";
import { pathToFileURL } from "node:url";

const [driverPath, configJson] = process.argv.slice(2);
const config = JSON.parse(configJson);

await Promise.all(
  config.hostAddresses.map(
    (a) =>
      new Promise((resolve) => {
        createServer((s) => {
          s.on("error", () => {});
          s.end(`hello from host ${a}\n`);
        }).listen(config.port, a, resolve);
      }),
  ),
);

const driver = await import(pathToFileURL(driverPath).href);
const out = (msg) => process.stdout.write(`${JSON.stringify(msg)}\n`);
out({ ready: true, pid: process.pid });

for await (const line of createInterface({ input: process.stdin })) {
  if (!line.trim()) continue;
  const { id, op, args } = JSON.parse(line);
  (async () => {
    const fn = driver[op];
    if (typeof fn !== "function") throw new Error(`the lab driver has no op ${op}`);
    return fn(args ?? {}, config);
  })().then(
    (value) => out({ id, ok: true, value: value ?? null }),
    (err) => out({ id, ok: false, error: { message: err?.message ?? String(err), code: err?.code } }),
  );
}
await driver.close?.();
process.exit(0);
