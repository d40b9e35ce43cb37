import assert from "node:assert/strict";
import { TeleportError } from "../errors.ts";
import { FakeTeleportClient, makeRequest } from "../../tests/helpers/fakes.ts";
import { casPluginDataMap } from "./cas.ts";

function client(): FakeTeleportClient {
  const c = new FakeTeleportClient();
  c.putRequest(makeRequest({ id: "r1" }), false);
  return c;
}

Deno.test("casPluginDataMap() expects the exact stored map (extra and malformed keys too) and keeps what it does not set", async () => {
  const c = client();
  c.pluginData.set("r1", new Map([["email", { user: "bob", extra: "x", email_threads: "bad" }]]));
  const res = await casPluginDataMap(c, "r1", "email", () => ({ request_reason: "why" }));
  assert.equal(res.written, true);
  assert.deepEqual(c.pluginData.get("r1")?.get("email"), {
    user: "bob",
    extra: "x",
    email_threads: "bad",
    request_reason: "why",
  });
  assert.deepEqual(res.new, c.pluginData.get("r1")?.get("email"));
});

Deno.test("casPluginDataMap() declining writes nothing", async () => {
  const c = client();
  const res = await casPluginDataMap(c, "r1", "email", () => undefined);
  assert.equal(res.written, false);
  assert.equal(res.new, undefined);
  assert.equal(c.writes, 0);
});

Deno.test("casPluginDataMap() retries compare failures and gives up after 5 attempts", async () => {
  const c = client();
  const cf = () => new TeleportError("compare_failed", "plugin data comparison failed");
  c.failNext("updatePluginData", cf(), cf());
  const ok = await casPluginDataMap(c, "r1", "email", () => ({ user: "a" }));
  assert.equal(ok.written, true);
  assert.equal(c.calls.get("updatePluginData"), 3);

  c.failNext("updatePluginData", cf(), cf(), cf(), cf(), cf());
  await assert.rejects(
    casPluginDataMap(c, "r1", "email", () => ({ user: "b" })),
    (err) => err instanceof TeleportError && err.kind === "compare_failed",
  );
  assert.equal(c.calls.get("updatePluginData"), 8);
});

Deno.test("casPluginDataMap() does not retry other errors", async () => {
  const c = client();
  c.failNext("updatePluginData", new TeleportError("access_denied", "access denied"));
  await assert.rejects(
    casPluginDataMap(c, "r1", "email", () => ({ user: "a" })),
    (err) => err instanceof TeleportError && err.kind === "access_denied",
  );
  assert.equal(c.calls.get("updatePluginData"), 1);
});

Deno.test("casPluginDataMap() guards expectKeys even when absent", async () => {
  const c = client();
  c.pluginData.set("r1", new Map([["email", { user: "a" }]]));
  // A concurrent writer adds the guarded key between our read and our write.
  let first = true;
  const res = await casPluginDataMap(c, "r1", "email", (cur) => {
    if (first) {
      first = false;
      c.pluginData.set("r1", new Map([["email", { ...cur, lock: "theirs" }]]));
    }
    return cur?.lock === undefined ? { lock: "mine" } : undefined;
  }, { expectKeys: ["lock"] });
  assert.equal(res.written, false);
  assert.equal(c.pluginData.get("r1")?.get("email")?.lock, "theirs");
});

Deno.test("casPluginDataMap() with initial skips the first read, and reads after a compare failure", async () => {
  const c = client();
  c.pluginData.set("r1", new Map([["email", { user: "a" }]]));
  await casPluginDataMap(c, "r1", "email", () => ({ user: "b" }), { initial: { user: "a" } });
  assert.equal(c.calls.get("getPluginData") ?? 0, 0);
  assert.equal(c.pluginData.get("r1")?.get("email")?.user, "b");
  // A wrong belief costs one compare failure, then the real value is read.
  const res = await casPluginDataMap(c, "r1", "email", (cur) => ({ user: cur!.user + "c" }), {
    initial: { user: "stale" },
  });
  assert.equal(res.written, true);
  assert.equal(c.calls.get("getPluginData"), 1);
  assert.equal(c.pluginData.get("r1")?.get("email")?.user, "bc");
});

Deno.test("casPluginDataMap() with assumeAbsent creates without a read, and reads when data exists", async () => {
  const c = client();
  c.putRequest(makeRequest({ id: "r1" }), false);
  const created = await casPluginDataMap(c, "r1", "email", (cur) => ({ user: cur?.user ?? "a" }), {
    assumeAbsent: true,
    expectKeys: ["email_delivery"],
  });
  assert.equal(created.written, true);
  assert.equal(c.calls.get("getPluginData") ?? 0, 0);
  assert.equal(c.calls.get("updatePluginData"), 1);
  // Wrong guess: the write expecting absence fails, then the stored value is read and used.
  const res = await casPluginDataMap(
    c,
    "r1",
    "email",
    (cur) => ({ user: (cur?.user ?? "") + "b" }),
    {
      assumeAbsent: true,
    },
  );
  assert.equal(res.written, true);
  assert.equal(c.calls.get("getPluginData"), 1);
  assert.equal(c.calls.get("updatePluginData"), 3);
  assert.equal(c.pluginData.get("r1")?.get("email")?.user, "ab");
});
