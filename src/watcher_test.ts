import assert from "node:assert/strict";
import { getLogger } from "@logtape/logtape";
import { captureLogs } from "../tests/helpers/logs.ts";
import { TeleportError } from "./errors.ts";
import { decodeDelivery, DELIVERY_KEY } from "./notify/delivery_state.ts";
import { Engine } from "./notify/engine.ts";
import { Watermark } from "./notify/watermark.ts";
import type { AccessMonitoringRule, PluginDataMap } from "./teleport/types.ts";
import {
  FakeMailer,
  FakeTeleportClient,
  makeRequest,
  makeReview,
  waitFor,
} from "../tests/helpers/fakes.ts";
import { ALL, fakeHandler } from "../tests/helpers/notify_rig.ts";
import { runWatcher, type WatcherOptions } from "./watcher.ts";

const R1 = "reviewer1@example.com";

function leaseHeld(data: PluginDataMap | undefined): boolean {
  return decodeDelivery(data?.[DELIVERY_KEY])?.lock !== undefined;
}

function rig(
  client = new FakeTeleportClient(),
  mailer = new FakeMailer(),
  watermark?: Watermark,
) {
  const handler = fakeHandler(client, mailer, { sendBackoffMs: 1, watermark });
  const engine = new Engine({ handler, retryBaseMs: 5, retryCapMs: 20 });
  return { client, mailer, handler, engine };
}

interface Running {
  done: Promise<void>;
  ready: Promise<void>;
  stop: () => Promise<void>;
}

function start(
  r: ReturnType<typeof rig>,
  over: Partial<WatcherOptions> = {},
): Running {
  const ac = new AbortController();
  let markReady!: () => void;
  const ready = new Promise<void>((res) => (markReady = res));
  const done = runWatcher({
    client: r.client,
    engine: r.engine,
    backoffBaseMs: 1,
    backoffCapMs: 5,
    initTimeoutMs: 200,
    onReady: () => markReady(),
    signal: ac.signal,
    ...over,
  });
  return {
    done,
    ready,
    stop: async () => {
      ac.abort();
      await done;
      await r.engine.drain(1000);
    },
  };
}

Deno.test("runWatcher() handles request events from the stream", async () => {
  const r = rig();
  const w = start(r);
  try {
    await w.ready;
    const req = makeRequest({ id: "req-1", suggestedReviewers: [R1] });
    r.client.putRequest(req);
    await waitFor(() => r.mailer.sent.length === 2, "new-thread emails");
    r.client.putRequest({ ...req, state: "APPROVED", resolveReason: "okay" });
    await waitFor(() => r.mailer.sent.length === 4, "resolution emails");
    assert.ok(r.mailer.sent[3].text.includes("Status: ✅ APPROVED (okay)"));
    const handled = r.engine.handled;
    r.client.deleteRequest(req.id);
    await waitFor(() => r.engine.handled > handled, "the delete event to be handled");
    assert.equal(r.mailer.sent.length, 4, "deleting a resolved request sends nothing");
  } finally {
    await w.stop();
  }
});

Deno.test("runWatcher() catches up on events missed while the stream was down, each email once", async () => {
  const r = rig();
  const w = start(r);
  try {
    await w.ready;
    const a = makeRequest({ id: "req-a", suggestedReviewers: [R1] });
    const b = makeRequest({ id: "req-b", suggestedReviewers: [R1] });
    r.client.putRequest(a);
    r.client.putRequest(b);
    await waitFor(() => r.mailer.sent.length === 4, "new-thread emails");
    r.client.calls.set("watchEvents", 0);
    // The stream breaks; meanwhile: a new request, an approval with a review, a deletion.
    r.client.sendInit = false;
    r.client.breakStreams();
    const c = makeRequest({ id: "req-c" });
    r.client.putRequest(c, false);
    r.client.putRequest({
      ...a,
      state: "APPROVED",
      resolveReason: "fine",
      reviews: [makeReview(R1, "APPROVED", "fine")],
    }, false);
    r.client.deleteRequest(b.id, false);
    await waitFor(() => (r.client.calls.get("watchEvents") ?? 0) >= 1, "a reconnect attempt");
    r.client.sendInit = true;
    await waitFor(() => r.mailer.sent.length === 4 + 1 + 4 + 2, "catch-up emails", 10_000);
    await r.engine.idle();
    assert.equal(r.mailer.to(ALL).length, 6); // a: new, review, resolved; b: new, expired; c: new
    assert.equal(r.mailer.sent.filter((e) => e.subject.endsWith("req-c")).length, 1);
    const aTexts = r.mailer.sent.filter((e) => e.subject.endsWith("req-a")).map((e) => e.text);
    assert.equal(aTexts.filter((t) => t.includes("reviewed the request")).length, 2);
    assert.equal(aTexts.filter((t) => t.includes("Status: ✅ APPROVED (fine)")).length, 2);
    const bTexts = r.mailer.sent.filter((e) => e.subject.endsWith("req-b")).map((e) => e.text);
    assert.equal(bTexts.filter((t) => t.includes("Status: ⌛ EXPIRED")).length, 2);
    // Another reconnect: the catch-up finds nothing to do.
    const before = r.mailer.sent.length;
    const writes = r.client.writes;
    await captureLogs(async (records) => {
      r.client.breakStreams();
      await r.client.waitForStreams(r.client.streams.length + 1);
      await waitFor(
        () => records.some((l) => l.rawMessage === "Caught up on access requests"),
        "the catch-up after the reconnect",
      );
      const done = records.find((l) => l.rawMessage === "Caught up on access requests");
      assert.equal(done?.properties.queued, 0);
    });
    await r.engine.idle();
    assert.equal(r.mailer.sent.length, before);
    assert.equal(r.client.writes, writes);
  } finally {
    await w.stop();
  }
});

Deno.test("runWatcher() reconnects after the stream ends and after INIT times out", async () => {
  const r = rig();
  const w = start(r, { initTimeoutMs: 30 });
  try {
    await w.ready;
    r.client.endStreams();
    await r.client.waitForStreams(2);
    r.client.sendInit = false;
    r.client.breakStreams();
    await r.client.waitForStreams(4); // the 3rd stream times out without INIT
    r.client.sendInit = true;
    await r.client.waitForStreams(5);
    r.client.putRequest(makeRequest({ id: "req-1" }));
    await waitFor(() => r.mailer.sent.length === 1, "an email after reconnecting");
  } finally {
    await w.stop();
  }
});

Deno.test("runWatcher() with fail-fast exits on a connection problem or end of stream", async () => {
  for (
    const [act, msg] of [
      [
        (c: FakeTeleportClient) => c.breakStreams(),
        /^Connection problem detected\. Exiting as fail fast is on\. \(stream reset\)$/,
      ],
      [
        (c: FakeTeleportClient) => c.endStreams(),
        /^Watcher stream closed\. Exiting as fail fast is on\.$/,
      ],
    ] as const
  ) {
    const r = rig();
    const w = start(r, { failFast: true });
    await w.ready;
    act(r.client);
    await assert.rejects(
      w.done,
      (err) => err instanceof TeleportError && msg.test(err.message),
    );
    await r.engine.drain(1000);
    assert.equal(r.client.streams.length, 1);
  }
});

Deno.test("runWatcher() fails when Teleport accepts none of the kinds", async () => {
  const r = rig();
  r.client.acceptedKinds = [];
  const w = start(r);
  await assert.rejects(
    w.done,
    (err) =>
      err instanceof TeleportError && err.kind === "bad_parameter" &&
      err.message.endsWith("none of the requested kinds can be watched"),
  );
  assert.equal(r.client.calls.get("watchEvents"), 1, "no reconnect loop");
  await r.engine.drain(1000);
});

Deno.test("runWatcher() stops on access denied instead of reconnecting", async () => {
  const r = rig();
  r.client.failNext("watchEvents", new TeleportError("access_denied", "access denied to watch"));
  const w = start(r);
  await assert.rejects(
    w.done,
    (err) => err instanceof TeleportError && err.kind === "access_denied",
  );
  assert.equal(r.client.calls.get("watchEvents"), 1);
  await r.engine.drain(1000);
});

Deno.test("runWatcher() without access_monitoring_rule routes by role and does not crash", async () => {
  const r = rig();
  r.client.acceptedKinds = ["access_request"];
  const set: string[] = [];
  let info: unknown;
  const w = start(r, {
    rules: {
      set: (rule) => void set.push(rule.name),
      delete: () => {},
      replaceAll: () => {},
    },
    onReady: (i) => (info = i),
  });
  try {
    await waitFor(() => info !== undefined, "ready");
    assert.deepEqual(info, { kinds: ["access_request"], rulesEnabled: false });
    assert.equal(r.client.calls.get("listAccessMonitoringRules") ?? 0, 0);
    r.client.putRequest(makeRequest({ id: "req-1" }));
    await waitFor(() => r.mailer.sent.length === 1, "an email");
  } finally {
    await w.stop();
  }
});

Deno.test("runWatcher() loads rules after INIT and applies rule events", async () => {
  const r = rig();
  const rule: AccessMonitoringRule = {
    name: "rule-1",
    subjects: ["access_request"],
    states: [],
    condition: "true",
    notification: { name: "email", recipients: ["x@example.com"] },
  };
  r.client.rules.set(rule.name, rule);
  const cache = new Map<string, AccessMonitoringRule>();
  const w = start(r, {
    rules: {
      set: (x) => void cache.set(x.name, x),
      delete: (name) => cache.delete(name),
      replaceAll: (rules) => {
        cache.clear();
        for (const x of rules) cache.set(x.name, x);
      },
    },
  });
  try {
    await w.ready;
    assert.deepEqual([...cache.keys()], ["rule-1"]);
    r.client.emit({
      type: "put",
      kind: "access_monitoring_rule",
      rule: { ...rule, name: "rule-2" },
    });
    await waitFor(() => cache.has("rule-2"), "rule-2");
    r.client.emit({ type: "delete", kind: "access_monitoring_rule", name: "rule-1" });
    r.client.emit({ type: "put", kind: "other", resourceKind: "user", name: "bob" });
    await waitFor(() => !cache.has("rule-1"), "rule-1 removed");
  } finally {
    await w.stop();
  }
});

Deno.test("runWatcher() two replicas against one Teleport send each email exactly once", async () => {
  const client = new FakeTeleportClient();
  const mailer = new FakeMailer();
  mailer.delayMs = 1;
  const r1 = rig(client, mailer);
  const r2 = rig(client, mailer);
  const w1 = start(r1);
  const w2 = start(r2);
  try {
    await Promise.all([w1.ready, w2.ready]);
    const n = 6;
    for (let i = 0; i < n; i++) {
      client.putRequest(makeRequest({ id: `req-${i}`, suggestedReviewers: [R1] }));
    }
    await waitFor(() => mailer.sent.length === 2 * n, "new-thread emails");
    for (let i = 0; i < n; i++) {
      const req = client.requests.get(`req-${i}`)!;
      client.putRequest({
        ...req,
        state: "DENIED",
        resolveReason: "no",
        reviews: [makeReview(R1, "DENIED", "no")],
      });
    }
    await waitFor(() => mailer.sent.length === 6 * n, "review and resolution emails", 10_000);
    // No lease held any more: every email is recorded, and a replica that found a request busy
    // and retries later finds nothing to do.
    await waitFor(
      () => [...client.pluginData.values()].every((m) => !leaseHeld(m.get("email"))),
      "every lease released",
    );
    await Promise.all([r1.engine.idle(), r2.engine.idle()]);
    assert.equal(mailer.sent.length, 6 * n);
    assert.equal(new Set(mailer.sent.map((e) => e.messageId)).size, 6 * n);
  } finally {
    await w1.stop();
    await w2.stop();
  }
});

Deno.test("runWatcher() retries a request whose sends all failed retryably, without a new event", async () => {
  const client = new FakeTeleportClient();
  const mailer = new FakeMailer();
  const handler = fakeHandler(client, mailer, { clusterName: "c", sendAttempts: 1 });
  const engine = new Engine({ handler, retryBaseMs: 5, retryCapMs: 20 });
  const r = { client, mailer, handler, engine };
  for (const to of [ALL, R1]) mailer.failFor(to, { retryable: true, times: 2 });
  const w = start(r);
  try {
    await w.ready;
    client.putRequest(makeRequest({ id: "req-1", suggestedReviewers: [R1] }));
    await waitFor(() => mailer.sent.length === 2, "emails after retries");
    await waitFor(() => engine.pendingRetries === 0 && engine.inFlight === 0, "no more retries");
    assert.equal(mailer.attempts, 6);
    assert.deepEqual(mailer.sent.map((e) => e.to).sort(), [ALL, R1]);
  } finally {
    await w.stop();
  }
});

Deno.test("runWatcher() periodic catch-up handles a request whose event never arrived", async () => {
  const r = rig();
  const w = start(r, { resyncIntervalMs: 20 });
  try {
    await w.ready;
    r.client.putRequest(makeRequest({ id: "req-silent" }), false);
    await waitFor(() => r.mailer.sent.length === 1, "the catch-up email");
    assert.equal(r.client.streams.length, 1, "without a reconnect");
    await waitFor(() => (r.client.calls.get("listAccessRequests") ?? 0) >= 4, "more resyncs");
    await r.engine.idle();
    assert.equal(r.mailer.sent.length, 1);
  } finally {
    await w.stop();
  }
});

Deno.test("runWatcher() notifies requests created and resolved while the stream was down, not those that predate the first INIT", async () => {
  const watermark = new Watermark({ marginMs: 0 });
  const r = rig(new FakeTeleportClient(), new FakeMailer(), watermark);
  // First install: resolved before the plugin ever ran (created long ago), no plugin data.
  r.client.putRequest(
    makeRequest({
      id: "req-old",
      state: "APPROVED",
      resolveReason: "old",
      suggestedReviewers: [R1],
    }),
    false,
  );
  const w = start(r, { watermark });
  try {
    await w.ready;
    await waitFor(() => (r.client.calls.get("listAccessRequests") ?? 0) >= 1, "1st catch-up");
    await r.engine.idle();
    assert.equal(r.mailer.sent.length, 0, "the old resolved request stays silent");
    r.client.calls.set("watchEvents", 0);
    r.client.sendInit = false;
    r.client.breakStreams();
    // While the stream is down: created, reviewed and approved.
    r.client.putRequest(
      makeRequest({
        id: "req-away",
        created: new Date(),
        state: "APPROVED",
        resolveReason: "fine",
        suggestedReviewers: [R1],
        reviews: [makeReview(R1, "APPROVED", "fine")],
      }),
      false,
    );
    await waitFor(() => (r.client.calls.get("watchEvents") ?? 0) >= 1, "a reconnect attempt");
    r.client.sendInit = true;
    await waitFor(() => r.mailer.sent.length === 6, "catch-up emails", 10_000);
    // Live: a request whose PENDING event was missed, resolved after the stream came back.
    r.client.putRequest(
      makeRequest({ id: "req-live", created: new Date(), state: "DENIED", resolveReason: "no" }),
    );
    await waitFor(() => r.mailer.sent.length === 8, "live emails", 10_000);
    await r.engine.idle();
    for (const to of [ALL, R1]) {
      const mine = r.mailer.to(to).filter((e) => e.subject.endsWith("req-away"));
      assert.equal(mine.length, 3, to);
      assert.ok(mine[0].text.includes("You have a new Role Request"), mine[0].text);
      assert.ok(mine[1].text.includes(`${R1} reviewed the request`), mine[1].text);
      assert.ok(mine[2].text.includes("Status: ✅ APPROVED (fine)"), mine[2].text);
    }
    const live = r.mailer.sent.filter((e) => e.subject.endsWith("req-live"));
    assert.deepEqual(live.map((e) => e.to), [ALL, ALL]);
    assert.ok(live[1].text.includes("Status: ❌ DENIED (no)"), live[1].text);
    assert.equal(r.mailer.sent.filter((e) => e.subject.endsWith("req-old")).length, 0);
  } finally {
    await w.stop();
  }
});

Deno.test("runWatcher() takes the watermark back to the newest stored thread: requests created since are caught up", async () => {
  const watermark = new Watermark({ marginMs: 60_000 });
  const r = rig(new FakeTeleportClient(), new FakeMailer(), watermark);
  // A previous run (Go's format) sent its last thread at 09:30; the plugin was down since.
  r.client.pluginData.set(
    "req-prev",
    new Map([["email", {
      user: "u",
      roles: "editor",
      request_reason: "",
      reviews_count: "",
      resolution: "APPROVED",
      resolve_reason: "",
      email_threads: "a@example.com/2024-05-01 09:30:00.5 +0000 UTC m=+3.1/m1",
    }]]),
  );
  r.client.putRequest(
    makeRequest({ id: "req-prev", created: new Date("2024-05-01T09:00:00Z"), state: "APPROVED" }),
    false,
  );
  // Created at 09:00 (before 09:29), at 09:29:30 (within the margin) and at 10:00.
  r.client.putRequest(
    makeRequest({ id: "req-before", created: new Date("2024-05-01T09:00:00Z"), state: "DENIED" }),
    false,
  );
  r.client.putRequest(
    makeRequest({ id: "req-margin", created: new Date("2024-05-01T09:29:30Z"), state: "DENIED" }),
    false,
  );
  r.client.putRequest(makeRequest({ id: "req-after", state: "APPROVED" }), false);
  const w = start(r, { watermark });
  try {
    await w.ready;
    await waitFor(() => r.mailer.sent.length === 4, "catch-up emails", 10_000);
    await r.engine.idle();
    assert.equal(watermark.value(), Date.parse("2024-05-01T09:29:00.500Z"));
    const ids = r.mailer.sent.map((e) => e.subject.split(" ").at(-1)).sort();
    assert.deepEqual(ids, ["req-after", "req-after", "req-margin", "req-margin"]);
  } finally {
    await w.stop();
  }
});

Deno.test("runWatcher() says which connection mode a reconnect used", async () => {
  await captureLogs(async (records) => {
    const r = rig();
    const w = start(r, { log: getLogger(["teleport-email", "watcher"]) });
    try {
      await w.ready;
      assert.ok(!records.some((x) => x.rawMessage === "Reconnected to Teleport"), "not at start");
      r.client.breakStreams();
      await waitFor(
        () => records.some((x) => x.rawMessage === "Reconnected to Teleport"),
        "the reconnect line",
      );
      const line = records.find((x) => x.rawMessage === "Reconnected to Teleport")!;
      assert.equal(line.level, "info");
      assert.equal(line.properties.connection_mode, "direct");
    } finally {
      await w.stop();
    }
  });
});
