let said = false;

/** The text of the TCG notice (exported for tests). */
export function tcgNoticeText(confined: boolean): string {
  return confined
    ? "QEMU runs guests under TCG software emulation, which QEMU does not treat as a security boundary; " +
        "what protects this host is the confinement around each QEMU process (seccomp, an unprivileged uid, " +
        "an empty environment, private mount and pid namespaces, resource limits, read-only snapshot memory)"
    : "QEMU runs guests under TCG software emulation, which QEMU does not treat as a security boundary, " +
        "and QEMU confinement is OFF (SUPERMACHINE_CONFINE=off or confine.enabled=false): " +
        "nothing stands between a guest that escapes QEMU and this host";
}

/**
 * Says once per process, as a process warning (code
 * `SUPERMACHINE_TCG_BOUNDARY`), that TCG is not a security boundary and what
 * protects the host instead.
 */
export function noticeTcg(confined: boolean): void {
  if (said) return;
  said = true;
  process.emitWarning(tcgNoticeText(confined), { code: "SUPERMACHINE_TCG_BOUNDARY" });
}
