import assert from "node:assert/strict";
import { captureLogs } from "../../tests/helpers/logs.ts";
import { fakeHandler } from "../../tests/helpers/notify_rig.ts";
import { MailerError, RequestBusyError, RequestFailure } from "../errors.ts";
import { FakeMailer, FakeTeleportClient, makeRequest, waitFor } from "../../tests/helpers/fakes.ts";
import { DELIVERY_KEY } from "./delivery_state.ts";
import { Engine, runningHandlersFor } from "./engine.ts";
import { leaseTiming } from "./lease.ts";
import type { RequestEvent } from "./plan.ts";

type Handle = (ev: RequestEvent, opts: { signal?: AbortSignal }) => Promise<void>;

function engineWith(
  handle: Handle,
  over: Partial<ConstructorParameters<typeof Engine>[0]> & { eventTimeoutMs?: number } = {},
) {
  const { eventTimeoutMs, ...rest } = over;
  return new Engine({
    handler: {
      timing: leaseTiming({ eventTimeoutMs }),
      handle: async (ev, opts) => {
        await handle(ev, opts ?? {});
        return { sent: 0, noop: false };
      },
      eventContext: (ev) => ({ request_id: ev.op === "put" ? ev.request.id : ev.requestId }),
      needsWork: () => true,
    },
    retryBaseMs: 2,
    retryCapMs: 10,
    ...rest,
  });
}

/** An engine whose handler waits until its signal aborts; `aborted()` says whether it did. */
function engineWaitingForAbort(eventTimeoutMs: number) {
  let aborted = false;
  const engine = engineWith((_e, { signal }) =>
    new Promise<void>((resolve) => {
      signal?.addEventListener("abort", () => {
        aborted = true;
        resolve();
      });
    }), { eventTimeoutMs });
  return { engine, aborted: () => aborted };
}

function ev(id: string, reason = ""): RequestEvent {
  return { op: "put", request: makeRequest({ id, requestReason: reason }) };
}

function deferred() {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => (resolve = r));
  return { promise, resolve };
}

Deno.test("Engine runs events of one request in order and different requests concurrently", async () => {
  const log: string[] = [];
  const gates = new Map([["a", deferred()], ["b", deferred()]]);
  const engine = engineWith(async (e) => {
    const id = e.op === "put" ? e.request.id : e.requestId;
    const n = e.op === "put" ? e.request.requestReason : "";
    log.push(`start ${id}${n}`);
    if (n === "1") await gates.get(id)!.promise;
    log.push(`end ${id}${n}`);
  });
  await engine.submit(ev("a", "1"));
  await engine.submit(ev("a", "2"));
  await engine.submit(ev("b", "1"));
  await waitFor(() => log.includes("start b1"), "b to start while a1 runs");
  assert.ok(!log.includes("start a2"), "a2 waits for a1");
  gates.get("b")!.resolve();
  gates.get("a")!.resolve();
  await engine.idle();
  assert.ok(log.indexOf("end a1") < log.indexOf("start a2"));
  assert.equal(engine.inFlight, 0);
});

Deno.test("Engine.submit() waits while maxInFlight events are in flight", async () => {
  const gate = deferred();
  let started = 0;
  const engine = engineWith(async () => {
    started++;
    await gate.promise;
  }, { maxInFlight: 3 });
  for (const id of ["a", "b", "c"]) await engine.submit(ev(id));
  let fourthQueued = false;
  const fourth = engine.submit(ev("d")).then(() => (fourthQueued = true));
  await waitFor(() => started === 3, "3 handlers to start");
  await new Promise((r) => setTimeout(r, 10));
  assert.equal(fourthQueued, false);
  assert.equal(engine.inFlight, 3);
  gate.resolve();
  await fourth;
  await engine.idle();
  assert.equal(started, 4);
});

Deno.test("Engine runs at most maxRunning handlers at once and starts the queued ones in arrival order", async () => {
  const gates = new Map<string, ReturnType<typeof deferred>>();
  const started: string[] = [];
  let running = 0;
  let most = 0;
  const engine = engineWith(async (e) => {
    const id = e.op === "put" ? e.request.id : e.requestId;
    started.push(id);
    most = Math.max(most, ++running);
    const gate = deferred();
    gates.set(id, gate);
    await gate.promise;
    running--;
  }, { maxRunning: 2 });
  for (const id of ["a", "b", "c", "d", "e"]) await engine.submit(ev(id));
  await waitFor(() => started.length === 2, "2 handlers to start");
  assert.deepEqual(started, ["a", "b"]);
  assert.equal(engine.inFlight, 5, "the others are queued, submit() did not wait");
  gates.get("b")!.resolve();
  await waitFor(() => started.length === 3, "a third handler to start");
  assert.deepEqual(started, ["a", "b", "c"]);
  for (const id of ["a", "c", "d", "e"]) {
    await waitFor(() => gates.has(id), `${id} to start`);
    gates.get(id)!.resolve();
  }
  await engine.idle();
  assert.deepEqual(started, ["a", "b", "c", "d", "e"]);
  assert.equal(most, 2);
});

Deno.test("runningHandlersFor() allows 4 handlers per parallel send, 32 without a send limit", () => {
  assert.equal(runningHandlersFor(5), 20);
  assert.equal(runningHandlersFor(0), 2);
  assert.equal(runningHandlersFor(undefined), 32);
});

Deno.test("Engine.drain() drops events waiting for a run slot", async () => {
  const gate = deferred();
  const started: string[] = [];
  const engine = engineWith(async (e) => {
    started.push(e.op === "put" ? e.request.id : e.requestId);
    await gate.promise;
  }, { maxRunning: 1 });
  for (const id of ["a", "b", "c"]) await engine.submit(ev(id));
  await waitFor(() => started.length === 1, "a to start");
  const drained = engine.drain(5000);
  gate.resolve();
  assert.equal(await drained, true);
  assert.deepEqual(started, ["a"]);
  assert.equal(engine.inFlight, 0);
});

Deno.test("Engine retries retryable failures and busy leases, not permanent ones", async () => {
  const attempts = new Map<string, number>();
  const engine = engineWith((e) => {
    const id = e.op === "put" ? e.request.id : e.requestId;
    const n = (attempts.get(id) ?? 0) + 1;
    attempts.set(id, n);
    if (id === "retry" && n < 3) {
      const err = new MailerError("try later", { retryable: true });
      return Promise.reject(new RequestFailure("Failed to send emails", [err], true));
    }
    if (id === "busy" && n < 2) return Promise.reject(new RequestBusyError("busy", Date.now()));
    if (id === "perm") {
      const err = new MailerError("no such user", { retryable: false });
      return Promise.reject(new RequestFailure("Failed to send emails", [err], false));
    }
    return Promise.resolve();
  });
  for (const id of ["retry", "busy", "perm"]) await engine.submit(ev(id));
  await waitFor(
    () => attempts.get("retry") === 3 && attempts.get("busy") === 2,
    "retries to happen",
  );
  await engine.idle();
  assert.equal(attempts.get("perm"), 1);
  assert.equal(engine.pendingRetries, 0);
});

Deno.test("Engine gives up after maxRetries until the next event", async () => {
  let attempts = 0;
  const engine = engineWith(() => {
    attempts++;
    return Promise.reject(new RequestBusyError("busy", Date.now()));
  }, { maxRetries: 2 });
  await engine.submit(ev("a"));
  await waitFor(() => attempts === 3 && engine.pendingRetries === 0, "retries to end");
  // No retry is scheduled any more, so no further attempt can come.
  await engine.idle();
  assert.equal(attempts, 3);
});

Deno.test("Engine gives each event its own deadline", async () => {
  const { engine, aborted } = engineWaitingForAbort(20);
  await engine.submit(ev("a"));
  await engine.idle();
  assert.ok(aborted());
});

Deno.test("Engine.drain() waits for running handlers, drops queued ones and stops retries", async () => {
  const gate = deferred();
  const seen: string[] = [];
  const engine = engineWith(async (e) => {
    const reason = e.op === "put" ? e.request.requestReason : "";
    seen.push(reason);
    if (reason === "1") await gate.promise;
  });
  await engine.submit(ev("a", "1"));
  await engine.submit(ev("a", "2"));
  await waitFor(() => seen.length === 1, "the first event to start");
  const drained = engine.drain(5000);
  gate.resolve();
  assert.equal(await drained, true);
  assert.deepEqual(seen, ["1"]);
  await engine.submit(ev("b", "3"));
  assert.equal(engine.inFlight, 0, "events after drain are dropped");
});

Deno.test("Engine.drain() aborts handlers that outlive the timeout", async () => {
  const { engine, aborted } = engineWaitingForAbort(15_000);
  await engine.submit(ev("a"));
  assert.equal(await engine.drain(20), false);
  assert.ok(aborted());
});

Deno.test("Engine retries a busy request just after the holder's lease expires, not after its backoff", async () => {
  const calls: number[] = [];
  let until = 0;
  const engine = engineWith(() => {
    calls.push(Date.now());
    if (calls.length === 1) {
      until = Date.now() + 50;
      return Promise.reject(new RequestBusyError("busy", until));
    }
    return Promise.resolve();
  }, { retryBaseMs: 60_000, retryCapMs: 300_000 });
  await engine.submit(ev("a"));
  // The exponential backoff would wait 30 to 60 s here.
  await waitFor(() => calls.length === 2, "the retry after the lease", 10_000);
  await engine.idle();
  assert.equal(engine.pendingRetries, 0);
});

Deno.test("Engine bounds the wait on a busy lease far in the future by retryCapMs", async () => {
  let calls = 0;
  const engine = engineWith(() => {
    calls++;
    if (calls === 1) return Promise.reject(new RequestBusyError("busy", Date.now() + 3_600_000));
    return Promise.resolve();
  }, { retryBaseMs: 1, retryCapMs: 20 });
  await engine.submit(ev("a"));
  await waitFor(() => calls === 2, "the capped retry", 10_000);
  await engine.idle();
});

Deno.test("Engine with the real handler takes over a dead instance's lease as soon as it expires", async () => {
  // A process died mid-send: its lease is stored, one of two threads recorded.
  const client = new FakeTeleportClient();
  const mailer = new FakeMailer();
  const req = makeRequest({ id: "req-crash", suggestedReviewers: ["r1@example.com"] });
  client.putRequest(req, false);
  client.pluginData.set(
    req.id,
    new Map([["email", {
      user: req.user,
      roles: "editor",
      request_reason: req.requestReason,
      email_threads: "all@example.com/2024-05-01T10:00:00Z/m1@x",
      [DELIVERY_KEY]: JSON.stringify({
        v: 1,
        recipients: ["all@example.com", "r1@example.com"],
        failed: [],
        threads: { "all@example.com": { reviews: 0, resolved: false } },
        lock: { owner: "dead-process/1", until: Date.now() + 200 },
      }),
    }]]),
  );
  const handler = fakeHandler(client, mailer, {
    clusterName: "c",
    recipients: () => ["all@example.com", "r1@example.com"],
  });
  const engine = new Engine({ handler, retryBaseMs: 60_000 });
  await engine.submit({ op: "put", request: structuredClone(req) });
  await waitFor(() => mailer.sent.length === 1, "the unrecorded email", 10_000);
  await engine.idle();
  assert.deepEqual(mailer.sent.map((e) => e.to), ["r1@example.com"]);
  assert.equal(engine.pendingRetries, 0);
  assert.equal(engine.failed, 1, "one busy attempt before the lease expired");
});

Deno.test("Engine.drain() logs a handler cut off by shutdown as a warning naming the request", async () => {
  await captureLogs(async (records) => {
    const engine = engineWith((_e, { signal }) =>
      new Promise<void>((_resolve, reject) => {
        // Cut off while reading plugin data: the read rejects with the abort reason.
        signal?.addEventListener("abort", () => reject(signal.reason));
      })
    );
    await engine.submit(ev("req-cut"));
    assert.equal(await engine.drain(20), false);
    const mine = records.filter((r) => r.properties.request_id === "req-cut");
    assert.deepEqual(mine.map((r) => [r.level, r.rawMessage]), [[
      "warning",
      "Request not handled because the plugin is shutting down; the next start or another replica will handle it",
    ]]);
  });
});

Deno.test("Engine logs when a failed request is retried, and that it stops timed retries after the last", async () => {
  await captureLogs(async (records) => {
    const engine = engineWith(() => {
      throw new RequestFailure("Failed to send emails", [new Error("421 try later")], true);
    }, { maxRetries: 1 });
    await engine.submit(ev("req-retry"));
    await waitFor(() => engine.handled === 2, "the first attempt and its one retry");
    await engine.idle();
    const retries = records.filter((r) => r.rawMessage === "Failed to process request")
      .map((r) => String(r.properties.retry));
    assert.equal(retries.length, 2);
    assert.match(retries[0], /^yes, in \d+\.\d s at \d{4}-\d\d-\d\dT[\d:.]+Z \(retry 1 of 1\)$/);
    assert.match(retries[1], /^not on a timer any more \(1 retries failed\)/);
    assert.equal(engine.pendingRetries, 0);
  });
});
