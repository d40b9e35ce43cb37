import assert from "node:assert/strict";
import {
  decodeDelivery,
  type DeliveryState,
  encodeDelivery,
  reconcileDelivery,
} from "./delivery_state.ts";
import { decodePluginData } from "./plugin_data.ts";

const A = "a@example.com";
const B = "b@example.com";

function data(reviewsCount: string, resolution = "") {
  return decodePluginData({
    user: "u",
    roles: "editor",
    request_reason: "",
    reviews_count: reviewsCount,
    resolution,
    resolve_reason: "",
    email_threads: `${A}/t/m1,${B}/t/m2`,
  });
}

function state(over: Partial<DeliveryState> = {}): DeliveryState {
  return {
    recipients: [A, B],
    failed: [],
    threads: { [A]: { reviews: 2, resolved: false }, [B]: { reviews: 1, resolved: false } },
    ...over,
  };
}

Deno.test("encodeDelivery() and decodeDelivery() keep decided, rc and late; bad values are dropped", () => {
  const s = state({ decided: "PROMOTED", rc: 1, late: true, title: "List" });
  assert.deepEqual(decodeDelivery(encodeDelivery(s)), s);
  const bad = decodeDelivery(
    JSON.stringify({ v: 1, decided: "MAYBE", rc: -1, late: "yes", threads: {} }),
  );
  assert.deepEqual(bad, { recipients: [], failed: [], threads: {} });
});

Deno.test("reconcileDelivery() raises every thread to a reviews_count someone else wrote", () => {
  const s = reconcileDelivery(state({ rc: 1 }), data("3"));
  assert.deepEqual(s.threads[A], { reviews: 3, resolved: false });
  assert.deepEqual(s.threads[B], { reviews: 3, resolved: false });
  // Our own value (rc): a thread behind it keeps its progress.
  const own = reconcileDelivery(state({ rc: 1 }), data("1"));
  assert.equal(own.threads[B].reviews, 1);
  // Older data (no rc): only a value above every thread's progress is someone else's.
  assert.equal(reconcileDelivery(state(), data("2")).threads[B].reviews, 1);
  assert.equal(reconcileDelivery(state(), data("3")).threads[B].reviews, 3);
});

Deno.test("reconcileDelivery() a resolution we did not decide counts as sent to every thread", () => {
  const go = reconcileDelivery(state(), data("", "DENIED"));
  assert.equal(go.threads[A].resolved && go.threads[B].resolved, true);
  assert.equal(go.decided, "DENIED");
  const ours = reconcileDelivery(state({ decided: "DENIED" }), data("", "DENIED"));
  assert.equal(ours.threads[A].resolved || ours.threads[B].resolved, false);
  // Older data (no decided) with one thread resolved: ours, the other thread is still due.
  const older = state();
  older.threads[A].resolved = true;
  const r = reconcileDelivery(older, data("", "APPROVED"));
  assert.deepEqual([r.threads[A].resolved, r.threads[B].resolved], [true, false]);
  // Unresolved: nothing changes.
  assert.deepEqual(reconcileDelivery(state(), data("")), state());
});

Deno.test("decodeDelivery() keeps who holds the lease, and reads a lease without it (older versions)", () => {
  const holder = { host: "h1", pid: 7, start: 1000, probe: "/run/teleport-email/p.sock" };
  const state = {
    recipients: [],
    failed: [],
    threads: {},
    lock: { owner: "i/1", until: 5, holder },
  };
  assert.deepEqual(decodeDelivery(encodeDelivery(state))?.lock, state.lock);
  const old = decodeDelivery('{"v":1,"lock":{"owner":"i/1","until":5}}');
  assert.deepEqual(old?.lock, { owner: "i/1", until: 5 });
  const bad = decodeDelivery('{"v":1,"lock":{"owner":"i/1","until":5,"holder":{"host":1}}}');
  assert.deepEqual(bad?.lock, { owner: "i/1", until: 5 }, "a malformed holder is ignored");
});
