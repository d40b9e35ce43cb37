/**
 * The in-memory fake (`fakes.ts`) and the test server (`teleport_server.ts`) give the same answers
 * to plugin data writes about a deleted request, both as Teleport does: the plugin data item is
 * created only for an existing request (NOT_FOUND otherwise), and once any plugin's data exists it
 * outlives the request, so every plugin may still write (dynamic_access.go
 * `updateAccessRequestPluginData`).
 */
import assert from "node:assert/strict";
import { TeleportError } from "../../src/errors.ts";
import { GrpcTeleportClient } from "../../src/teleport/grpc_client.ts";
import type { TeleportClient } from "../../src/teleport/client.ts";
import { TestCertificateAuthority } from "./ca.ts";
import { FakeTeleportClient, makeRequest } from "./fakes.ts";
import { TeleportTestServer } from "./teleport_server.ts";
import { testDialer } from "./teleport_dialer.ts";

/** Writes of two plugins around a request's deletion; returns what each write gave. */
async function scenario(
  client: TeleportClient,
  create: (id: string) => void,
  remove: (id: string) => void,
): Promise<string[]> {
  const outcome = (p: Promise<void>) =>
    p.then(() => "ok", (e) => (e instanceof TeleportError ? e.kind : String(e)));
  create("kept");
  create("bare");
  const results = [
    await outcome(client.updatePluginData("kept", "slack", { ts: "1" }, {})),
  ];
  remove("kept");
  remove("bare");
  results.push(
    // Another plugin's data exists: the item exists, this plugin may write.
    await outcome(client.updatePluginData("kept", "email", { email_threads: "x" }, {})),
    // Nobody wrote data before the deletion: there is nothing to update.
    await outcome(client.updatePluginData("bare", "email", { email_threads: "x" }, {})),
    await outcome(client.updatePluginData("never", "email", { email_threads: "x" }, {})),
  );
  return results;
}

const WANT = ["ok", "ok", "not_found", "not_found"];

Deno.test("FakeTeleportClient: plugin data NOT_FOUND only when no plugin's data exists", async () => {
  const fake = new FakeTeleportClient();
  const got = await scenario(
    fake,
    (id) => fake.putRequest(makeRequest({ id }), false),
    (id) => fake.deleteRequest(id, false),
  );
  assert.deepEqual(got, WANT);
  assert.deepEqual(await fake.getPluginData("kept", "email"), { email_threads: "x" });
});

Deno.test("TeleportTestServer: plugin data NOT_FOUND only when no plugin's data exists", async () => {
  const ca = await TestCertificateAuthority.create({ clusterName: "pd.example.com" });
  const plugin = await ca.issueUser({ user: "access-plugin", roles: ["access-plugin"] });
  const server = await TeleportTestServer.start({ ca });
  const client = await GrpcTeleportClient.create(testDialer(server.addr, ca, plugin), {
    callTimeoutMs: 5_000,
  });
  try {
    const got = await scenario(
      client,
      (id) => server.createAccessRequest({ id, user: "u", roles: ["r"] }),
      (id) => server.deleteAccessRequest(id),
    );
    assert.deepEqual(got, WANT);
    assert.deepEqual(server.getPluginData("kept", "email"), { email_threads: "x" });
  } finally {
    client.close();
    await server.close();
  }
});
