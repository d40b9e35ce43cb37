/**
 * The server side of Teleport's WebSocket connection upgrade for the test Proxy emulator: a
 * hand-written RFC 6455 byte stream (binary frames carry the bytes, client frames are masked,
 * Pings are answered with Pongs, a Close frame is EOF), independent of the `ws` library the
 * plugin's client uses, so each side checks the other. The client role is kept for tests that
 * need to write raw frames.
 */
import crypto from "node:crypto";
import { Buffer } from "node:buffer";
import { Duplex } from "node:stream";

const GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
const OP_CONT = 0x0, OP_TEXT = 0x1, OP_BINARY = 0x2, OP_CLOSE = 0x8, OP_PING = 0x9, OP_PONG = 0xa;
const MAX_FRAME = 64 * 1024 * 1024;

/** `Sec-WebSocket-Accept` for a `Sec-WebSocket-Key`. */
export function webSocketAccept(key: string): string {
  return crypto.createHash("sha1").update(key + GUID).digest("base64");
}

/** Encodes one frame (FIN set). `mask` true for client frames. */
export function encodeFrame(opcode: number, payload: Uint8Array, mask: boolean): Buffer {
  const len = payload.length;
  const headLen = 2 + (len < 126 ? 0 : len < 65536 ? 2 : 8) + (mask ? 4 : 0);
  const out = Buffer.alloc(headLen + len);
  out[0] = 0x80 | opcode;
  let o = 2;
  if (len < 126) {
    out[1] = len;
  } else if (len < 65536) {
    out[1] = 126;
    out.writeUInt16BE(len, 2);
    o = 4;
  } else {
    out[1] = 127;
    out.writeBigUInt64BE(BigInt(len), 2);
    o = 10;
  }
  if (mask) {
    out[1] |= 0x80;
    const key = crypto.randomBytes(4);
    key.copy(out, o);
    o += 4;
    for (let i = 0; i < len; i++) out[o + i] = payload[i] ^ key[i & 3];
  } else {
    out.set(payload, o);
  }
  return out;
}

/** Options of {@link WebSocketDuplex}. */
export interface WebSocketDuplexOptions {
  /** `client` masks its frames; `server` does not. */
  role: "client" | "server";
  /** Bytes already read from `socket` past the HTTP handshake. */
  initial?: Uint8Array;
  /** Server role: send a Ping every this many ms (Teleport: 30 s with `alpn-ping`). 0 = never. */
  pingIntervalMs?: number;
}

/**
 * A byte stream over a WebSocket connection on `socket`. Writes become binary frames; received
 * binary/continuation payloads are the readable bytes; Pings get Pongs; Close ends the stream.
 */
export class WebSocketDuplex extends Duplex {
  readonly socket: Duplex;
  readonly role: "client" | "server";
  /** Pings and Pongs received (for tests and keepalive diagnostics). */
  pingsReceived = 0;
  pongsReceived = 0;
  #buf: Buffer = Buffer.alloc(0);
  #closeSent = false;
  #pingTimer?: ReturnType<typeof setInterval>;

  constructor(socket: Duplex, opts: WebSocketDuplexOptions) {
    super();
    this.socket = socket;
    this.role = opts.role;
    socket.on("data", (chunk: Buffer) => this.#onData(chunk));
    socket.once("end", () => this.push(null));
    socket.once("close", () => {
      this.#stopPing();
      this.push(null);
      if (this.destroyed) return;
      if (this.readableEnded) this.destroy();
      else this.once("end", () => this.destroy());
    });
    socket.once("error", (err) => this.destroy(err));
    if (opts.initial && opts.initial.length > 0) {
      queueMicrotask(() => this.#onData(Buffer.from(opts.initial!)));
    }
    if (opts.role === "server" && opts.pingIntervalMs && opts.pingIntervalMs > 0) {
      this.#pingTimer = setInterval(() => this.ping(), opts.pingIntervalMs);
    }
    socket.resume();
  }

  /** Sends a Ping frame. */
  ping(payload: Uint8Array = new Uint8Array(0)): void {
    this.#send(OP_PING, payload);
  }

  #stopPing() {
    if (this.#pingTimer !== undefined) clearInterval(this.#pingTimer);
    this.#pingTimer = undefined;
  }

  #send(opcode: number, payload: Uint8Array, cb?: (err?: Error | null) => void): boolean {
    if (this.socket.destroyed || this.socket.writableEnded) {
      cb?.(new Error("WebSocket connection is closed"));
      return false;
    }
    return this.socket.write(encodeFrame(opcode, payload, this.role === "client"), cb);
  }

  #onData(chunk: Buffer) {
    this.#buf = this.#buf.length ? Buffer.concat([this.#buf, chunk]) : chunk;
    for (;;) {
      const b = this.#buf;
      if (b.length < 2) return;
      const opcode = b[0] & 0x0f;
      const masked = (b[1] & 0x80) !== 0;
      let len = b[1] & 0x7f;
      let o = 2;
      if (len === 126) {
        if (b.length < 4) return;
        len = b.readUInt16BE(2);
        o = 4;
      } else if (len === 127) {
        if (b.length < 10) return;
        const big = b.readBigUInt64BE(2);
        if (big > BigInt(MAX_FRAME)) {
          this.destroy(new Error("WebSocket frame too large"));
          return;
        }
        len = Number(big);
        o = 10;
      }
      const maskKey = masked ? b.subarray(o, o + 4) : undefined;
      if (masked) o += 4;
      if (b.length < o + len) return;
      const payload = Buffer.from(b.subarray(o, o + len));
      if (maskKey) { for (let i = 0; i < len; i++) payload[i] ^= maskKey[i & 3]; }
      this.#buf = b.subarray(o + len);
      switch (opcode) {
        case OP_BINARY:
        case OP_CONT:
        case OP_TEXT:
          if (payload.length > 0 && !this.push(payload)) this.socket.pause();
          break;
        case OP_PING:
          this.pingsReceived++;
          this.#send(OP_PONG, payload);
          break;
        case OP_PONG:
          this.pongsReceived++;
          break;
        case OP_CLOSE:
          if (!this.#closeSent) {
            this.#closeSent = true;
            this.#send(OP_CLOSE, payload.subarray(0, 2));
          }
          this.#stopPing();
          this.push(null);
          this.socket.end();
          return;
        default:
          this.destroy(new Error(`unexpected WebSocket opcode ${opcode}`));
          return;
      }
    }
  }

  override _read(): void {
    this.socket.resume();
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    if (this.#closeSent) {
      cb(new Error("WebSocket connection is closed"));
      return;
    }
    this.#send(OP_BINARY, chunk, cb);
  }

  override _final(cb: (err?: Error | null) => void): void {
    this.#stopPing();
    if (!this.#closeSent) {
      this.#closeSent = true;
      const code = Buffer.alloc(2);
      code.writeUInt16BE(1000);
      this.#send(OP_CLOSE, code);
    }
    cb();
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    this.#stopPing();
    this.socket.destroy();
    cb(err);
  }

  // Socket-like no-ops that grpc-js / node:http2 / node:tls may call.
  setNoDelay(): this {
    return this;
  }
  setKeepAlive(): this {
    return this;
  }
  setTimeout(): this {
    return this;
  }
  ref(): this {
    return this;
  }
  unref(): this {
    return this;
  }
}
