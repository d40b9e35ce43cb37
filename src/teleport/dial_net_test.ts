import assert from "node:assert/strict";
import { abortable } from "./dial_net.ts";

Deno.test("abortable() with an already aborted signal runs cleanup and leaves no unhandled rejection", async () => {
  const ac = new AbortController();
  ac.abort(new Error("too late"));
  let rejectInner!: (err: Error) => void;
  const inner = new Promise<never>((_, reject) => (rejectInner = reject));
  let cleaned = false;
  // As in tlsOver(): cleanup closes the socket, which makes the inner promise reject.
  const p = abortable(inner, ac.signal, () => {
    cleaned = true;
    queueMicrotask(() => rejectInner(new Error("connection closed during the TLS handshake")));
  });
  await assert.rejects(p, /too late/);
  assert.ok(cleaned);
  // Let the inner rejection happen: Deno fails the test on an unhandled rejection.
  await new Promise((r) => setTimeout(r, 10));
});

Deno.test("abortable() aborted while pending rejects with the reason; the late inner rejection is handled", async () => {
  const ac = new AbortController();
  let rejectInner!: (err: Error) => void;
  const inner = new Promise<never>((_, reject) => (rejectInner = reject));
  const p = abortable(
    inner,
    ac.signal,
    () => queueMicrotask(() => rejectInner(new Error("closed"))),
  );
  ac.abort(new Error("stop"));
  await assert.rejects(p, /stop/);
  await new Promise((r) => setTimeout(r, 10));
});

Deno.test("abortable() passes the value through when not aborted", async () => {
  const ac = new AbortController();
  assert.equal(await abortable(Promise.resolve(42), ac.signal), 42);
  assert.equal(await abortable(Promise.resolve(7), undefined), 7);
});
