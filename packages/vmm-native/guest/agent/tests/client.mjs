// Minimal agent-protocol client for driving sm-init in tests (over --stdio
// pipes or a QEMU virtio-serial unix socket). Test tool only: the real host
// side is @supermachine/agent-protocol.
export const T = {
  HELLO: 1,
  HELLO_OK: 2,
  PING: 3,
  PONG: 4,
  EVENT: 5,
  EXEC: 0x10,
  STARTED: 0x11,
  STDIN: 0x12,
  STDOUT: 0x13,
  STDERR: 0x14,
  RESIZE: 0x15,
  SIGNAL: 0x16,
  EXIT: 0x17,
  WRITE_FILE: 0x20,
  FILE_DATA: 0x21,
  READ_FILE: 0x22,
  FILE_INFO: 0x23,
  TCP_CONNECT: 0x30,
  CONNECTED: 0x31,
  TCP_DATA: 0x32,
  WINDOW: 0x40,
  RESET: 0x41,
  OK: 0x42,
  ERROR: 0x43,
  WORKLOAD_CONFIG: 0x50,
  WORKLOAD_START: 0x51,
  WORKLOAD_SIGNAL: 0x52,
  WORKLOAD_LOGS: 0x53,
};
export const END = 1;

export class W {
  constructor() {
    this.parts = [];
  }
  u8(v) {
    const b = Buffer.alloc(1);
    b.writeUInt8(v);
    this.parts.push(b);
    return this;
  }
  u16(v) {
    const b = Buffer.alloc(2);
    b.writeUInt16LE(v);
    this.parts.push(b);
    return this;
  }
  u32(v) {
    const b = Buffer.alloc(4);
    b.writeUInt32LE(v >>> 0);
    this.parts.push(b);
    return this;
  }
  u64(v) {
    const b = Buffer.alloc(8);
    b.writeBigUInt64LE(BigInt(v));
    this.parts.push(b);
    return this;
  }
  str(s) {
    const b = Buffer.from(s);
    this.u32(b.length);
    this.parts.push(b);
    return this;
  }
  list(a) {
    this.u32(a.length);
    for (const s of a) this.str(s);
    return this;
  }
  bytes(b) {
    this.parts.push(Buffer.from(b));
    return this;
  }
  done() {
    return Buffer.concat(this.parts);
  }
}

export function frame(type, stream, payload = Buffer.alloc(0), flags = 0) {
  const h = Buffer.alloc(12);
  h.writeUInt16LE(0x4d53, 0);
  h.writeUInt8(type, 2);
  h.writeUInt8(flags, 3);
  h.writeUInt32LE(stream, 4);
  h.writeUInt32LE(payload.length, 8);
  return Buffer.concat([h, payload]);
}

class R {
  constructor(b) {
    this.b = b;
    this.o = 0;
  }
  u8() {
    return this.b.readUInt8((this.o += 1) - 1);
  }
  u16() {
    return this.b.readUInt16LE((this.o += 2) - 2);
  }
  u32() {
    return this.b.readUInt32LE((this.o += 4) - 4);
  }
  i32() {
    return this.b.readInt32LE((this.o += 4) - 4);
  }
  u64() {
    return this.b.readBigUInt64LE((this.o += 8) - 8);
  }
  str() {
    const n = this.u32();
    const s = this.b.subarray(this.o, this.o + n).toString();
    this.o += n;
    return s;
  }
}

export function decode(f) {
  const r = new R(f.payload);
  switch (f.type) {
    case T.HELLO_OK:
      return {
        version: r.u16(),
        maxPayload: r.u32(),
        window: r.u32(),
        nonce: r.u64(),
        features: r.u32(),
        agent: r.str(),
      };
    case T.PONG:
      return { token: r.u64() };
    case T.EVENT:
      return { kind: r.u8(), value: r.u32(), detail: r.str() };
    case T.STARTED:
      return { pid: r.u32() };
    case T.EXIT:
      return { code: r.i32(), signal: r.i32(), timedOut: r.u8(), rss: r.u64() };
    case T.OK:
      return { value: r.u64() };
    case T.ERROR:
      return { code: r.u32(), errno: r.i32(), message: r.str() };
    case T.FILE_INFO:
      return { size: r.u64(), mode: r.u32() };
    case T.WINDOW:
      return { inc: r.u32() };
    default:
      return {};
  }
}

export class Client {
  constructor(readable, writable) {
    this.w = writable;
    this.buf = Buffer.alloc(0);
    this.waiters = [];
    this.frames = [];
    this.handlers = new Map(); // stream id -> fn(frame)
    this.events = [];
    readable.on("data", (d) => this.#onData(d));
    readable.on("end", () => {
      this.closed = true;
      this.#wake();
    });
  }
  send(type, stream, payload, flags = 0) {
    this.w.write(frame(type, stream, payload, flags));
  }
  #onData(d) {
    this.buf = Buffer.concat([this.buf, d]);
    while (this.buf.length >= 12) {
      if (this.buf.readUInt16LE(0) !== 0x4d53) {
        // resync (pre-handshake garbage)
        const i = this.buf.indexOf(Buffer.from([0x53, 0x4d]), 1);
        this.buf = i < 0 ? this.buf.subarray(this.buf.length - 1) : this.buf.subarray(i);
        continue;
      }
      const len = this.buf.readUInt32LE(8);
      if (this.buf.length < 12 + len) break;
      const f = {
        type: this.buf[2],
        flags: this.buf[3],
        stream: this.buf.readUInt32LE(4),
        payload: Buffer.from(this.buf.subarray(12, 12 + len)),
      };
      this.buf = this.buf.subarray(12 + len);
      f.msg = decode(f);
      if (f.type === T.EVENT) this.events.push(f.msg);
      const h = this.handlers.get(f.stream);
      if (h) h(f);
      else this.frames.push(f);
    }
    this.#wake();
  }
  #wake() {
    const w = this.waiters;
    this.waiters = [];
    for (const fn of w) fn();
  }
  async next(pred = () => true, ms = 20000) {
    const t0 = Date.now();
    for (;;) {
      const i = this.frames.findIndex(pred);
      if (i >= 0) return this.frames.splice(i, 1)[0];
      if (this.closed) throw new Error("channel closed");
      const left = ms - (Date.now() - t0);
      if (left <= 0) throw new Error("timeout waiting for frame");
      await new Promise((res) => {
        const to = setTimeout(res, left);
        this.waiters.push(() => {
          clearTimeout(to);
          res();
        });
      });
    }
  }
  async hello(nonce = 42n, maxPayload = 65536, window = 262144) {
    this.send(T.HELLO, 0, new W().u16(1).u16(1).u32(maxPayload).u32(window).u64(nonce).done());
    for (;;) {
      const f = await this.next((f) => f.type === T.HELLO_OK || (f.stream === 0 && f.type === T.ERROR));
      if (f.type === T.ERROR) throw new Error(`hello failed: ${f.msg.message}`);
      if (f.msg.nonce === nonce) return f.msg;
    }
  }
  // Runs a command to completion; returns {stdout, stderr, exit, started}.
  exec(id, argv, o = {}) {
    return new Promise((resolve, reject) => {
      const out = [],
        err = [],
        res = { started: null };
      let consumed = 0;
      const ack = (n) => {
        consumed += n;
        if (consumed >= (o.ackAt ?? 65536)) {
          this.send(T.WINDOW, id, new W().u32(consumed).done());
          consumed = 0;
        }
      };
      this.handlers.set(id, (f) => {
        if (f.type === T.STARTED) {
          res.started = f.msg.pid;
          o.onStarted?.(f.msg.pid);
        } else if (f.type === T.STDOUT) {
          out.push(f.payload);
          if (!o.noAck) ack(f.payload.length);
          o.onStdout?.(f);
        } else if (f.type === T.STDERR) {
          err.push(f.payload);
          if (!o.noAck) ack(f.payload.length);
        } else if (f.type === T.EXIT || f.type === T.ERROR) {
          this.handlers.delete(id);
          resolve({
            ...res,
            stdout: Buffer.concat(out),
            stderr: Buffer.concat(err),
            exit: f.type === T.EXIT ? f.msg : null,
            error: f.type === T.ERROR ? f.msg : null,
          });
        }
      });
      const p = new W()
        .u32(o.tty ? 1 : 0)
        .u32(o.timeoutMs ?? 0)
        .u16(o.cols ?? 0)
        .u16(o.rows ?? 0)
        .list(argv)
        .list(o.env ?? [])
        .str(o.cwd ?? "")
        .list(o.chain ?? [])
        .done();
      this.send(T.EXEC, id, p);
      if (o.stdin !== undefined) this.send(T.STDIN, id, Buffer.from(o.stdin), END);
      setTimeout(() => reject(new Error(`exec ${argv.join(" ")} timed out`)), o.waitMs ?? 30000).unref();
    });
  }
  // Collects a stream's frames until its terminal frame.
  collect(id, onFrame) {
    return new Promise((resolve) => {
      const frames = [];
      this.handlers.set(id, (f) => {
        frames.push(f);
        onFrame?.(f);
        if (f.type === T.OK || f.type === T.ERROR || f.type === T.EXIT) {
          this.handlers.delete(id);
          resolve(frames);
        }
      });
    });
  }
}
