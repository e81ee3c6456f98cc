import { describe, expect, it } from "vitest";
import { mergeEnv, workloadFromImage } from "./workload.js";

const config = {
  entrypoint: ["/docker-entrypoint.sh"],
  cmd: ["nginx", "-g", "daemon off;"],
  env: ["PATH=/usr/bin:/bin", "LANG=C"],
  workingDir: "/srv",
  user: "www:www",
  exposedPorts: ["80/tcp"],
  labels: {},
  volumes: [],
};

describe("workloadFromImage", () => {
  it("runs ENTRYPOINT + CMD with the image env, workdir and user", () => {
    expect(workloadFromImage(config, {})).toEqual({
      argv: ["/docker-entrypoint.sh", "nginx", "-g", "daemon off;"],
      env: ["PATH=/usr/bin:/bin", "LANG=C"],
      cwd: "/srv",
      user: "www:www",
    });
  });

  it("lets cmd replace the whole argv and env override single variables", () => {
    const w = workloadFromImage(config, { cmd: ["httpd", "-f"], env: { LANG: "C.UTF-8", EXTRA: "1" } });
    expect(w.argv).toEqual(["httpd", "-f"]);
    expect(w.env).toEqual(["PATH=/usr/bin:/bin", "LANG=C.UTF-8", "EXTRA=1"]);
  });

  it("defaults the working directory to /", () => {
    expect(workloadFromImage({ ...config, workingDir: "" }, {}).cwd).toBe("/");
  });
});

describe("mergeEnv", () => {
  it("keeps values containing = and rejects invalid names", () => {
    expect(mergeEnv(["A=x=y"], {})).toEqual(["A=x=y"]);
    expect(() => mergeEnv([], { "BAD=NAME": "1" })).toThrow(/invalid environment variable name/);
    expect(() => mergeEnv([], { "": "1" })).toThrow(expect.objectContaining({ code: "INVALID_OPTIONS" }));
  });
});
