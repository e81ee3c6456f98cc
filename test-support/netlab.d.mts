/** The lab's addresses, names and ports (see netlab.mjs for the layout). */
export declare const LAB: {
  public: [string, string];
  public6: string;
  dns: string;
  private: { rfc1918a: string; rfc1918b: string; metadata: string; cgnat: string };
  private6: string;
  host: { veth: string; extra: string; gateway: string; veth6: string; extra6: string; gateway6: string };
  port: number;
  httpPort: number;
  names: Record<string, string>;
  ttl: number;
};

/** A running network lab. */
export interface NetLab {
  /** Pid of the Node process in the host namespace (the one that owns the VMs). */
  hostPid: number;
  /** Pid of the process holding the internet namespace. */
  internetPid: number;
  /** Runs the driver's export `op` in the host namespace; rejects if it takes over `timeoutMs` (180 s). */
  call<T = unknown>(op: string, args?: Record<string, unknown>, timeoutMs?: number): Promise<T>;
  /** Changes the lab DNS table: `{name: address | null}`. */
  setDns(table: Record<string, string | null>): Promise<void>;
  /** SIGKILLs the host-namespace Node process (as a crash would). */
  killHost(): Promise<void>;
  /** Lets the driver clean up (its `close` export), then stops everything. Idempotent. */
  close(): Promise<void>;
}

/**
 * Starts the lab (needs root) and, in its host namespace, a Node process that
 * runs the exports of the `driver` module on request.
 */
export function startNetLab(opts: { driver: string; env?: NodeJS.ProcessEnv }): Promise<NetLab>;
