/** A QMP event as QEMU sends it. */
export interface QmpEvent {
  event: string;
  data?: Record<string, unknown>;
  timestamp?: { seconds: number; microseconds: number };
}

/** Subset of `query-migrate` we read. */
export interface MigrationInfo {
  status?: string;
  "error-desc"?: string;
}

/** Subset of `query-status`. */
export interface StatusInfo {
  running: boolean;
  status: string;
}

/** Typed results of the QMP commands the engine uses. */
export interface QmpCommandMap {
  qmp_capabilities: { args: Record<string, never>; result: Record<string, never> };
  "query-status": { args: Record<string, never>; result: StatusInfo };
  "query-kvm": { args: Record<string, never>; result: { enabled: boolean; present: boolean } };
  "query-migrate": { args: Record<string, never>; result: MigrationInfo };
  "migrate-set-capabilities": {
    args: { capabilities: Array<{ capability: string; state: boolean }> };
    result: Record<string, never>;
  };
  "migrate-set-parameters": { args: Record<string, unknown>; result: Record<string, never> };
  migrate: { args: { uri: string }; result: Record<string, never> };
  "migrate-incoming": { args: { uri: string }; result: Record<string, never> };
  stop: { args: Record<string, never>; result: Record<string, never> };
  cont: { args: Record<string, never>; result: Record<string, never> };
  quit: { args: Record<string, never>; result: Record<string, never> };
  system_powerdown: { args: Record<string, never>; result: Record<string, never> };
}

/** Name of a QMP command with a typed signature. */
export type QmpCommand = keyof QmpCommandMap;
