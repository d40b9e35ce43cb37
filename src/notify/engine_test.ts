import assert from "node:assert/strict";
import { MailerError } from "../errors.ts";
import { makeRequest, waitFor } from "../../tests/helpers/fakes.ts";
import { Engine } from "./engine.ts";
import { RequestBusyError, type RequestEvent, RequestFailure } from "./handler.ts";

type Handle = (ev: RequestEvent, opts: { signal?: AbortSignal }) => Promise<void>;

function engineWith(handle: Handle, over: Partial<ConstructorParameters<typeof Engine>[0]> = {}) {
  return new Engine({
    handler: {
      handle: async (ev, opts) => {
        await handle(ev, opts ?? {});
        return { sent: 0, noop: false };
      },
      eventContext: (ev) => ({ request_id: ev.op === "put" ? ev.request.id : ev.requestId }),
      needsWork: () => true,
    },
    retryBaseMs: 2,
    retryCapMs: 10,
    ...over,
  });
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
    if (id === "busy" && n < 2) return Promise.reject(new RequestBusyError("busy"));
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
    return Promise.reject(new RequestBusyError("busy"));
  }, { maxRetries: 2 });
  await engine.submit(ev("a"));
  await waitFor(() => attempts === 3 && engine.pendingRetries === 0, "retries to end");
  await new Promise((r) => setTimeout(r, 30));
  assert.equal(attempts, 3);
});

Deno.test("Engine gives each event its own deadline", async () => {
  let aborted = false;
  const engine = engineWith((_e, { signal }) =>
    new Promise<void>((resolve) => {
      signal?.addEventListener("abort", () => {
        aborted = true;
        resolve();
      });
    }), { eventTimeoutMs: 20 });
  await engine.submit(ev("a"));
  await engine.idle();
  assert.ok(aborted);
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
  let aborted = false;
  const engine = engineWith((_e, { signal }) =>
    new Promise<void>((resolve) => {
      signal?.addEventListener("abort", () => {
        aborted = true;
        resolve();
      });
    }), { eventTimeoutMs: 60_000 });
  await engine.submit(ev("a"));
  assert.equal(await engine.drain(20), false);
  assert.ok(aborted);
});
