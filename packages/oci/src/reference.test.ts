import { describe, expect, it } from "vitest";
import { parseReference, parseRegistryReference } from "./reference.js";

const D = `sha256:${"a".repeat(64)}`;

describe("parseRegistryReference (Docker normalization)", () => {
  it.each([
    ["alpine", "docker.io/library/alpine:latest"],
    ["alpine:3.20", "docker.io/library/alpine:3.20"],
    ["library/alpine", "docker.io/library/alpine:latest"],
    ["docker.io/alpine", "docker.io/library/alpine:latest"],
    ["index.docker.io/library/alpine", "docker.io/library/alpine:latest"],
    ["user/app:v1", "docker.io/user/app:v1"],
    ["ghcr.io/org/team/app", "ghcr.io/org/team/app:latest"],
    ["localhost/app", "localhost/app:latest"],
    ["localhost:5000/app:dev", "localhost:5000/app:dev"],
    ["127.0.0.1:5000/a/b", "127.0.0.1:5000/a/b:latest"],
    [`alpine@${D}`, `docker.io/library/alpine@${D}`],
    [`alpine:3@${D}`, `docker.io/library/alpine:3@${D}`],
    ["docker://busybox", "docker.io/library/busybox:latest"],
    ["[::1]:5000/app", "[::1]:5000/app:latest"],
    ["a__b/c-d--e.f_g", "docker.io/a__b/c-d--e.f_g:latest"],
  ])("%s -> %s", (input, normalized) => {
    expect(parseRegistryReference(input).normalized).toBe(normalized);
  });

  it("splits registry, repository, tag and digest", () => {
    expect(parseRegistryReference(`reg.example.com:443/x/y:t@${D}`)).toMatchObject({
      registry: "reg.example.com:443",
      repository: "x/y",
      tag: "t",
      digest: D,
    });
  });

  it("treats an uppercase first component as a registry host", () => {
    expect(parseRegistryReference("Registry/app").registry).toBe("Registry");
  });

  it.each([
    ["", "empty"],
    ["Alpine", "lowercase"],
    ["alpine:", "tag"],
    ["alpine:-bad", "tag"],
    ["alpine@sha256:abc", "digest"],
    ["a//b", "component"],
    ["a/-b", "component"],
    ["host:port/app", "registry host"],
    [`a/${"b".repeat(300)}`, "255"],
  ])("rejects %j", (input, why) => {
    expect(() => parseRegistryReference(input)).toThrow(
      expect.objectContaining({ code: "OCI_INVALID_REFERENCE" }),
    );
    expect(() => parseRegistryReference(input)).toThrow(new RegExp(why));
  });
});

describe("parseReference (transports)", () => {
  it("parses oci layouts with and without tag", () => {
    expect(parseReference("oci:/tmp/layout")).toMatchObject({
      transport: "oci",
      path: "/tmp/layout",
      normalized: "oci:/tmp/layout",
    });
    expect(parseReference("oci:/tmp/layout:v1")).toMatchObject({
      transport: "oci",
      path: "/tmp/layout",
      tag: "v1",
    });
    expect(parseReference("oci:/a:b/layout")).toMatchObject({ path: "/a:b/layout", tag: undefined });
  });

  it("parses docker-archive with a normalized inner reference", () => {
    expect(parseReference("docker-archive:/tmp/x.tar")).toMatchObject({
      transport: "docker-archive",
      path: "/tmp/x.tar",
    });
    expect(parseReference("docker-archive:/tmp/x.tar:busybox:1")).toMatchObject({
      path: "/tmp/x.tar",
      ref: "docker.io/library/busybox:1",
    });
  });

  it("resolves relative layout paths against the working directory", () => {
    const r = parseReference("oci:rel/dir");
    expect(r.transport === "oci" && r.path).toBe(`${process.cwd()}/rel/dir`);
  });
});
