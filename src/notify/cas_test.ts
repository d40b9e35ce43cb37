import assert from "node:assert/strict";
import { TeleportError } from "../errors.ts";
import { FakeTeleportClient, makeRequest } from "../../tests/helpers/fakes.ts";
import { casPluginDataMap, updatePluginDataCas } from "./cas.ts";
import { emptyPluginData } from "./plugin_data.ts";

function client(): FakeTeleportClient {
  const c = new FakeTeleportClient();
  c.putRequest(makeRequest({ id: "r1" }), false);
  return c;
}

Deno.test("updatePluginDataCas() creates absent data with all 7 Go keys", async () => {
  const c = client();
  const res = await updatePluginDataCas(c, "r1", "email", (cur, exists) => {
    assert.equal(exists, false);
    assert.deepEqual(cur, emptyPluginData());
    return { ...cur, user: "alice" };
  });
  assert.equal(res.written, true);
  assert.equal(res.new.user, "alice");
  assert.deepEqual(c.pluginData.get("r1")?.get("email"), { user: "alice" });
});

Deno.test("updatePluginDataCas() declining writes nothing", async () => {
  const c = client();
  const res = await updatePluginDataCas(c, "r1", "email", () => undefined);
  assert.equal(res.written, false);
  assert.equal(c.writes, 0);
});

Deno.test("updatePluginDataCas() keeps keys it does not manage and still matches Expect", async () => {
  const c = client();
  c.pluginData.set("r1", new Map([["email", { user: "bob", extra: "x", email_threads: "bad" }]]));
  await updatePluginDataCas(c, "r1", "email", (cur) => ({ ...cur, requestReason: "why" }));
  const stored = c.pluginData.get("r1")?.get("email");
  assert.equal(stored?.extra, "x");
  assert.equal(stored?.request_reason, "why");
  assert.equal(stored?.user, "bob");
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
