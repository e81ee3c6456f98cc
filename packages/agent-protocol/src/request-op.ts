import { AgentError, ProtocolError, type SessionClosedError } from "./errors.js";
import type { Frame, Message } from "./messages.js";
import type { StreamHandler, StreamHost } from "./stream-host.js";

/** A request stream answered by a single OK or ERROR (workload operations). Internal. */
export class RequestOp implements StreamHandler {
  /** Stream id. */
  readonly id: number;
  /** Resolves with the OK value; rejects with AgentError / SessionClosedError. */
  readonly result: Promise<bigint>;
  private resolve!: (v: bigint) => void;
  private reject!: (err: unknown) => void;

  constructor(host: StreamHost, request: Message) {
    this.result = new Promise((res, rej) => {
      this.resolve = res;
      this.reject = rej;
    });
    this.id = host.open(this, request);
  }

  /** @internal */
  onFrame(frame: Frame): void {
    if (frame.type === "OK") this.resolve(frame.value);
    else if (frame.type === "ERROR") {
      this.reject(new AgentError(frame.code, frame.errno, frame.message, { details: { stream: this.id } }));
    } else
      throw new ProtocolError("UNEXPECTED_FRAME", `unexpected ${frame.type} on request stream ${this.id}`);
  }

  /** @internal */
  onSessionClose(err: SessionClosedError): void {
    this.reject(err);
  }
}
