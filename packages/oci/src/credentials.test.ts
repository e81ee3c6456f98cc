import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { configKeysFor, lookupDockerCredentials } from "./credentials.js";

const work = mkdtempSync(join(tmpdir(), "oci-cred-test-"));
afterAll(() => rmSync(work, { recursive: true, force: true }));
let n = 0;
const config = (v: unknown) => {
  const p = join(work, `config-${n++}.json`);
  writeFileSync(p, JSON.stringify(v));
  return p;
};

describe("lookupDockerCredentials", () => {
  it("reads auths entries (base64 auth, username/password, identity token, URL keys)", async () => {
    const auth = Buffer.from("bob:pa:ss").toString("base64");
    expect(
      await lookupDockerCredentials("r.example:5000", config({ auths: { "r.example:5000": { auth } } })),
    ).toEqual({
      username: "bob",
      password: "pa:ss",
    });
    expect(
      await lookupDockerCredentials(
        "r.example",
        config({ auths: { "https://r.example/v1/": { username: "u", password: "p" } } }),
      ),
    ).toEqual({ username: "u", password: "p" });
    expect(
      await lookupDockerCredentials(
        "docker.io",
        config({ auths: { "https://index.docker.io/v1/": { identitytoken: "tok" } } }),
      ),
    ).toEqual({ identityToken: "tok", username: undefined });
    expect(
      await lookupDockerCredentials("other.example", config({ auths: { "r.example": { auth } } })),
    ).toBeUndefined();
    expect(await lookupDockerCredentials("r.example", join(work, "missing.json"))).toBeUndefined();
  });

  it("runs credential helpers (credHelpers before credsStore; <token> means identity token)", async () => {
    const bin = join(work, "bin");
    rmSync(bin, { recursive: true, force: true });
    mkdirSync(bin);
    const helper = (name: string, body: string) => {
      const p = join(bin, `docker-credential-${name}`);
      writeFileSync(p, `#!/bin/sh\nread server\n${body}\n`);
      chmodSync(p, 0o755);
    };
    helper("one", `printf '{"Username":"u1","Secret":"s1-%s"}' "$server"`);
    helper("tok", `printf '{"Username":"<token>","Secret":"refresh"}'`);
    helper("none", `echo "credentials not found in native keychain"; exit 1`);
    helper("broken", `echo boom >&2; exit 3`);
    const old = process.env.PATH;
    process.env.PATH = `${bin}:${old}`;
    try {
      expect(
        await lookupDockerCredentials(
          "r.example",
          config({ credHelpers: { "r.example": "one" }, credsStore: "tok" }),
        ),
      ).toEqual({
        username: "u1",
        password: "s1-r.example",
      });
      expect(await lookupDockerCredentials("r.example", config({ credsStore: "tok" }))).toEqual({
        identityToken: "refresh",
      });
      expect(await lookupDockerCredentials("r.example", config({ credsStore: "none" }))).toBeUndefined();
      await expect(
        lookupDockerCredentials("r.example", config({ credsStore: "broken" })),
      ).rejects.toMatchObject({
        code: "OCI_CREDENTIAL_HELPER",
      });
    } finally {
      process.env.PATH = old;
    }
  });

  it("knows Docker Hub's legacy keys", () => {
    expect(configKeysFor("docker.io")[0]).toBe("https://index.docker.io/v1/");
  });
});
