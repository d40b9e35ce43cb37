/**
 * gRPC's length-prefixed messages on an HTTP/2 stream: one byte of flags (bit 0: compressed),
 * four bytes of length (big-endian), then the message. {@link frameMessage} writes one;
 * {@link FrameReader} cuts the DATA chunks of a response back into messages.
 * @module
 */
import { GrpcCallError, GrpcStatus } from "./grpc_status.ts";

const PREFIX = 5;

/** The message with its 5-byte prefix (uncompressed). */
export function frameMessage(message: Uint8Array): Uint8Array {
  const out = new Uint8Array(PREFIX + message.length);
  new DataView(out.buffer).setUint32(1, message.length);
  out.set(message, PREFIX);
  return out;
}

/** Reassembles messages from DATA chunks in any split; refuses any over `maxLength` bytes. */
export class FrameReader {
  readonly #maxLength: number;
  #chunks: Uint8Array[] = [];
  #buffered = 0;

  constructor(maxLength: number) {
    this.#maxLength = maxLength;
  }

  /** Bytes received that are not yet a whole message (0 at a clean end of stream). */
  get buffered(): number {
    return this.#buffered;
  }

  /** Adds a chunk; returns the messages it completes (throws a {@link GrpcCallError}). */
  push(chunk: Uint8Array): Uint8Array[] {
    this.#chunks.push(chunk);
    this.#buffered += chunk.length;
    const out: Uint8Array[] = [];
    for (let i = 0; i < 1_000_000 && this.#buffered >= PREFIX; i++) {
      const head = this.#peek(PREFIX);
      const length = new DataView(head.buffer, head.byteOffset, PREFIX).getUint32(1);
      this.#checkHead(head[0], length);
      if (this.#buffered < PREFIX + length) break;
      out.push(this.#take(PREFIX + length).subarray(PREFIX));
    }
    return out;
  }

  #checkHead(flags: number, length: number): void {
    if (flags & 1) {
      throw new GrpcCallError(
        GrpcStatus.INTERNAL,
        "received a compressed message, but no compression was negotiated",
      );
    }
    if (length > this.#maxLength) {
      throw new GrpcCallError(
        GrpcStatus.RESOURCE_EXHAUSTED,
        `received message larger than max (${length} vs. ${this.#maxLength})`,
      );
    }
  }

  /** The first `n` buffered bytes, joining chunks only when they straddle. */
  #peek(n: number): Uint8Array {
    if (this.#chunks[0].length >= n) return this.#chunks[0];
    this.#chunks = [concat(this.#chunks, this.#buffered)];
    return this.#chunks[0];
  }

  #take(n: number): Uint8Array {
    const first = this.#peek(n);
    this.#buffered -= n;
    if (first.length === n) this.#chunks.shift();
    else this.#chunks[0] = first.subarray(n);
    return first.subarray(0, n);
  }
}

function concat(chunks: Uint8Array[], total: number): Uint8Array {
  const out = new Uint8Array(total);
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.length;
  }
  return out;
}
