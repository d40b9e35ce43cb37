import assert from "node:assert/strict";
import { compactHeap } from "./heap.ts";

Deno.test("compactHeap does nothing without V8's --expose-gc", () => {
  assert.equal(typeof (globalThis as { gc?: unknown }).gc, "undefined");
  assert.equal(compactHeap(), undefined);
});

Deno.test("compactHeap asks V8 for one synchronous last-resort collection and reports the heap", () => {
  const calls: unknown[] = [];
  const g = globalThis as { gc?: unknown };
  g.gc = (options: unknown) => calls.push(options);
  try {
    const result = compactHeap();
    assert.deepEqual(calls, [{ type: "major", execution: "sync", flavor: "last-resort" }]);
    assert.ok(result && result.heapMiBBefore > 0 && result.heapMiBAfter > 0 && result.ms >= 0);
  } finally {
    delete g.gc;
  }
});
