import assert from "node:assert/strict";
import { frameMessage, FrameReader } from "./grpc_frames.ts";
import { GrpcCallError, GrpcStatus } from "./grpc_status.ts";

const bytes = (...b: number[]) => new Uint8Array(b);

Deno.test("frameMessage() prefixes a message with a zero flag and its big-endian length", () => {
  assert.deepEqual(frameMessage(bytes(7, 8, 9)), bytes(0, 0, 0, 0, 3, 7, 8, 9));
  assert.deepEqual(frameMessage(new Uint8Array(0)), bytes(0, 0, 0, 0, 0));
  const big = frameMessage(new Uint8Array(0x010203));
  assert.deepEqual(big.subarray(0, 5), bytes(0, 0, 1, 2, 3));
});

Deno.test("FrameReader returns the same messages however the bytes are split", () => {
  const messages = [bytes(1), new Uint8Array(0), bytes(2, 3, 4), new Uint8Array(300).fill(5)];
  const wire = new Uint8Array(messages.reduce((n, m) => n + 5 + m.length, 0));
  let at = 0;
  for (const m of messages) {
    wire.set(frameMessage(m), at);
    at += 5 + m.length;
  }
  for (const size of [1, 2, 4, 5, 6, 7, 64, wire.length]) {
    const reader = new FrameReader(1024);
    const out: Uint8Array[] = [];
    for (let i = 0; i < wire.length; i += size) out.push(...reader.push(wire.slice(i, i + size)));
    assert.deepEqual(out, messages, `chunks of ${size}`);
    assert.equal(reader.buffered, 0);
  }
});

Deno.test("FrameReader keeps a partial message buffered until its last byte", () => {
  const reader = new FrameReader(1024);
  assert.deepEqual(reader.push(frameMessage(bytes(1, 2, 3)).subarray(0, 6)), []);
  assert.equal(reader.buffered, 6);
  assert.deepEqual(reader.push(bytes(2, 3)), [bytes(1, 2, 3)]);
});

Deno.test("FrameReader refuses a message over the limit and a compressed one", () => {
  const reader = new FrameReader(4);
  assert.deepEqual(reader.push(frameMessage(bytes(1, 2, 3, 4))), [bytes(1, 2, 3, 4)]);
  assert.throws(() => reader.push(bytes(0, 0, 0, 0, 5)), (e: unknown) => {
    assert.ok(e instanceof GrpcCallError);
    assert.equal(e.code, GrpcStatus.RESOURCE_EXHAUSTED);
    assert.equal(e.details, "received message larger than max (5 vs. 4)");
    return true;
  });
  assert.throws(() => new FrameReader(4).push(bytes(1, 0, 0, 0, 1, 9)), (e: unknown) => {
    assert.ok(e instanceof GrpcCallError);
    assert.equal(e.code, GrpcStatus.INTERNAL);
    return true;
  });
});
