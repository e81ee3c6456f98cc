import { type EventKindName, eventKindName } from "./constants.js";
import type { EventMessage } from "./messages.js";

/** An `EVENT` from the agent. */
export interface AgentEvent {
  /** Event kind name (`"UNKNOWN"` for kinds this version does not know). */
  kind: EventKindName | "UNKNOWN";
  /** Numeric kind as sent. */
  kindNumber: number;
  /** pid (WORKLOAD_STARTED), port (LISTENING), raw wait status (WORKLOAD_EXITED), else 0. */
  value: number;
  /** Text (LOG lines). */
  detail: string;
}

/** Converts an EVENT frame to an {@link AgentEvent}. */
export function toAgentEvent(m: EventMessage): AgentEvent {
  return { kind: eventKindName(m.kind) ?? "UNKNOWN", kindNumber: m.kind, value: m.value, detail: m.detail };
}

/** Per-subscriber event queue behind `AgentSession.events()`. Bounded: drops the oldest past `limit`. */
export class EventQueue implements AsyncIterableIterator<AgentEvent> {
  private items: AgentEvent[] = [];
  private waiter: ((r: IteratorResult<AgentEvent>) => void) | undefined;
  private ended = false;

  constructor(
    private readonly onReturn: (q: EventQueue) => void,
    private readonly limit = 1024,
  ) {}

  /** Delivers an event. */
  push(ev: AgentEvent): void {
    if (this.ended) return;
    if (this.waiter) {
      const w = this.waiter;
      this.waiter = undefined;
      w({ value: ev, done: false });
      return;
    }
    this.items.push(ev);
    if (this.items.length > this.limit) this.items.shift();
  }

  /** Ends the iteration (session closed). */
  end(): void {
    this.ended = true;
    const w = this.waiter;
    this.waiter = undefined;
    w?.({ value: undefined, done: true });
  }

  next(): Promise<IteratorResult<AgentEvent>> {
    const ev = this.items.shift();
    if (ev) return Promise.resolve({ value: ev, done: false });
    if (this.ended) return Promise.resolve({ value: undefined, done: true });
    return new Promise((resolve) => {
      this.waiter = resolve;
    });
  }

  return(): Promise<IteratorResult<AgentEvent>> {
    this.end();
    this.items = [];
    this.onReturn(this);
    return Promise.resolve({ value: undefined, done: true });
  }

  [Symbol.asyncIterator](): AsyncIterableIterator<AgentEvent> {
    return this;
  }
}
