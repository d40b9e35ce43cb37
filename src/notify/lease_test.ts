import assert from "node:assert/strict";
import { FakeMailer, FakeTeleportClient } from "../../tests/helpers/fakes.ts";
import { fakeHandler } from "../../tests/helpers/notify_rig.ts";
import { TeleportEmailError } from "../errors.ts";
import {
  DEFAULT_CLOCK_SKEW_MS,
  DEFAULT_EVENT_TIMEOUT_MS,
  DEFAULT_LEASE_MS,
  DEFAULT_RECORD_TIMEOUT_MS,
  leaseTiming,
} from "./lease.ts";

Deno.test("leaseTiming() defaults: a 30 s lease covers the 15 s event deadline, a 5 s record and 10 s of clock skew", () => {
  const defaults = leaseTiming();
  assert.deepEqual(defaults, {
    leaseMs: 30_000,
    eventTimeoutMs: 15_000,
    recordTimeoutMs: 5000,
    clockSkewMs: 10_000,
  });
  assert.ok(
    DEFAULT_LEASE_MS >=
      DEFAULT_EVENT_TIMEOUT_MS + DEFAULT_RECORD_TIMEOUT_MS + DEFAULT_CLOCK_SKEW_MS,
  );
  assert.deepEqual(leaseTiming({ eventTimeoutMs: 20 }), { ...defaults, eventTimeoutMs: 20 });
});

Deno.test("leaseTiming() rejects a lease shorter than event deadline + record budget + clock skew", () => {
  const broken = [
    { eventTimeoutMs: 20_000 },
    { leaseMs: 29_999 },
    { recordTimeoutMs: 6000 },
    { clockSkewMs: 10_001 },
    { leaseMs: 60_000, eventTimeoutMs: 50_000 },
  ];
  for (const over of broken) {
    assert.throws(
      () => leaseTiming(over),
      (err) =>
        err instanceof TeleportEmailError &&
        /^Invalid lease timing: the lease \(\d+ ms\) must last at least the event deadline/.test(
          err.message,
        ) && err.message.includes("or two instances could send the same email"),
      JSON.stringify(over),
    );
  }
  assert.throws(() => leaseTiming({ recordTimeoutMs: 0 }), /recordTimeoutMs must be positive/);
  assert.throws(() => leaseTiming({ leaseMs: NaN }), /leaseMs must be positive/);
  // A longer lease may carry a longer deadline.
  assert.equal(leaseTiming({ leaseMs: 60_000, eventTimeoutMs: 45_000 }).eventTimeoutMs, 45_000);
});

Deno.test("RequestHandler refuses to start with timing that breaks the lease rule", () => {
  assert.throws(
    () =>
      fakeHandler(new FakeTeleportClient(), new FakeMailer(), {
        timing: { eventTimeoutMs: 25_000 },
      }),
    /the lease \(30000 ms\) must last at least .* = 40000 ms/,
  );
});
