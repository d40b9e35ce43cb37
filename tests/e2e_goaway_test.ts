/**
 * End to end: the Auth server says GOAWAY, as Go's gRPC server does on a keepalive violation
 * (ENHANCE_YOUR_CALM "too_many_pings") and when it drains its connections for a graceful stop
 * (NO_ERROR, last stream 2^31-1, then the real last stream, then the streams end). Deno 2.9.6's
 * `node:http2` used to free the session while nghttp2 was still handling such a frame and abort
 * the plugin (denoland/deno#36788, see `src/teleport/http2_goaway_guard.ts`). The plugin must stay up,
 * reconnect and keep delivering. The child runs with glibc's `MALLOC_PERTURB_`, which fills freed
 * memory, so that a use of the freed session crashes every time instead of now and then: without
 * the guard the too_many_pings test fails (exit 139). The drain never hit the bug (the watch
 * stream is still open when its GOAWAYs arrive); it checks that the plugin moves on as in Go.
 */
import assert from "node:assert/strict";
import { E2eEnv } from "./helpers/e2e_env.ts";
import type { PluginProcess } from "./helpers/plugin_process.ts";

const CHILD_ENV = { MALLOC_PERTURB_: "165" };
const ENHANCE_YOUR_CALM = 11;

/** Waits for the `count`-th "Reconnected to Teleport", then proves delivery with one request. */
async function reconnectsAndDelivers(env: E2eEnv, plugin: PluginProcess, count: number) {
  await plugin.waitForLog((l) => l.msg === "Reconnected to Teleport", { count });
  const req = env.teleport.createAccessRequest({
    user: "alice@example.com",
    roles: ["editor"],
    reason: `after GOAWAY ${count}`,
  });
  const [mail] = await env.waitForEmailsFor(req.id, 1);
  assert.ok(mail.subject.endsWith(req.id));
}

Deno.test("e2e: GOAWAY too_many_pings (ENHANCE_YOUR_CALM): the plugin survives, reconnects and delivers", async () => {
  await using env = await E2eEnv.start();
  const plugin = await env.startPlugin({ env: CHILD_ENV });
  for (let round = 1; round <= 3; round++) {
    assert.equal(
      env.teleport.goAway({
        code: ENHANCE_YOUR_CALM,
        lastStreamId: 0,
        debugData: "too_many_pings",
      }),
      1,
      "one connection told to go away",
    );
    await reconnectsAndDelivers(env, plugin, round);
  }
  assert.equal(plugin.exitCode, undefined, "still running");
  assert.equal(await plugin.stop(), 0);
});

Deno.test("e2e: graceful drain like Go's GracefulStop (GOAWAY NO_ERROR twice, streams end): the plugin moves on", async () => {
  await using env = await E2eEnv.start();
  const plugin = await env.startPlugin({ env: CHILD_ENV });
  for (let round = 1; round <= 2; round++) {
    assert.ok(env.teleport.goAway() >= 1); // NO_ERROR, last stream 2^31-1: "about to drain"
    env.teleport.goAway({ lastStreamId: 0 }); // NO_ERROR, the last stream processed
    env.teleport.endStreams(); // the server's handlers return
    await reconnectsAndDelivers(env, plugin, round);
  }
  assert.equal(plugin.exitCode, undefined, "still running");
  assert.equal(await plugin.stop(), 0);
});
