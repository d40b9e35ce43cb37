import assert from "node:assert/strict";
import * as grpc from "@grpc/grpc-js";
import { TeleportError } from "../errors.ts";
import { TestCertificateAuthority } from "../../tests/helpers/ca.ts";
import {
  TeleportTestServer,
  type TeleportTestServerOptions,
} from "../../tests/helpers/teleport_server.ts";
import { testDialer } from "../../tests/helpers/teleport_dialer.ts";
import { GrpcTeleportClient, type GrpcTeleportClientOptions } from "./grpc_client.ts";

const ca = await TestCertificateAuthority.create({ clusterName: "test.example.com" });
const plugin = await ca.issueUser({ user: "access-plugin", roles: ["access-plugin"] });

interface Env {
  server: TeleportTestServer;
  client: GrpcTeleportClient;
  [Symbol.asyncDispose](): Promise<void>;
}

async function setup(
  serverOpts: Partial<TeleportTestServerOptions> = {},
  identity: { keyPem?: string; certPem?: string } = plugin,
  clientOpts: GrpcTeleportClientOptions = {},
): Promise<Env> {
  const server = await TeleportTestServer.start({ ca, ...serverOpts });
  const client = await GrpcTeleportClient.create(
    testDialer(server.addr, ca, { keyPem: identity.keyPem, certPem: identity.certPem }),
    { callTimeoutMs: 5_000, ...clientOpts },
  );
  return {
    server,
    client,
    async [Symbol.asyncDispose]() {
      client.close();
      await server.close();
    },
  };
}

Deno.test("GrpcTeleportClient.ping() returns cluster, version and features over mTLS", async () => {
  await using env = await setup({ serverVersion: "17.1.2", advancedAccessWorkflows: true });
  const pong = await env.client.ping();
  assert.deepEqual(pong, {
    clusterName: "test.example.com",
    serverVersion: "17.1.2",
    proxyPublicAddr: "teleport.example.com:443",
    advancedAccessWorkflows: true,
  });
  assert.equal(env.client.connectionMode, "direct");
  assert.equal(env.server.connections[0].user, "access-plugin");
  assert.equal(env.server.connections[0].cn, "access-plugin");
});

Deno.test("GrpcTeleportClient.watchEvents() yields INIT, PUT of requests and rules, DELETE and other kinds", async () => {
  await using env = await setup();
  const ac = new AbortController();
  const it = env.client.watchEvents(["access_request", "access_monitoring_rule"], {
    signal: ac.signal,
  })[Symbol.asyncIterator]();
  const init = await it.next();
  assert.deepEqual(init.value, {
    type: "init",
    kinds: ["access_request", "access_monitoring_rule"],
  });

  const created = env.server.createAccessRequest({
    user: "alice@example.com",
    roles: ["editor", "admin"],
    reason: "need it",
    suggestedReviewers: ["bob@example.com"],
    systemAnnotations: { "teleport.dev/recipients": ["x@example.com", "y@example.com"] },
    requestedResources: [{ clusterName: "c", kind: "node", name: "n1", subResourceName: "" }],
  });
  const put = await it.next();
  assert.equal(put.value?.type, "put");
  assert.ok(put.value?.type === "put" && put.value.kind === "access_request");
  const req = put.value.request;
  assert.equal(req.id, created.id);
  assert.equal(req.user, "alice@example.com");
  assert.deepEqual(req.roles, ["editor", "admin"]);
  assert.equal(req.state, "PENDING");
  assert.equal(req.requestReason, "need it");
  assert.deepEqual(req.suggestedReviewers, ["bob@example.com"]);
  assert.deepEqual(req.systemAnnotations, {
    "teleport.dev/recipients": ["x@example.com", "y@example.com"],
  });
  assert.deepEqual(req.requestedResources, [
    { clusterName: "c", kind: "node", name: "n1", subResourceName: "" },
  ]);
  assert.ok(req.created instanceof Date && Math.abs(req.created.getTime() - Date.now()) < 60_000);
  assert.ok(req.expires instanceof Date && req.expires > req.created);

  env.server.submitReview(created.id, {
    author: "bob@example.com",
    proposedState: "APPROVED",
    reason: "ok by me",
  });
  const approved = await it.next();
  assert.ok(approved.value?.type === "put" && approved.value.kind === "access_request");
  assert.equal(approved.value.request.state, "APPROVED");
  assert.equal(approved.value.request.resolveReason, "ok by me");
  assert.equal(approved.value.request.reviews.length, 1);
  assert.equal(approved.value.request.reviews[0].author, "bob@example.com");
  assert.equal(approved.value.request.reviews[0].proposedState, "APPROVED");
  assert.ok(approved.value.request.reviews[0].created instanceof Date);

  env.server.upsertRule({
    name: "r1",
    subjects: ["access_request"],
    states: ["reviewed"],
    condition: "true",
    notification: { name: "email", recipients: ["team@example.com"] },
  });
  const rule = await it.next();
  assert.ok(rule.value?.type === "put" && rule.value.kind === "access_monitoring_rule");
  assert.deepEqual(rule.value.rule, {
    name: "r1",
    subjects: ["access_request"],
    states: ["reviewed"],
    condition: "true",
    notification: { name: "email", recipients: ["team@example.com"] },
  });

  env.server.emitOtherPut("access_request", "someone");
  assert.deepEqual((await it.next()).value, {
    type: "put",
    kind: "other",
    resourceKind: "access_request",
    name: "someone",
  });

  env.server.deleteAccessRequest(created.id);
  assert.deepEqual((await it.next()).value, {
    type: "delete",
    kind: "access_request",
    name: created.id,
  });
  env.server.deleteRule("r1");
  assert.deepEqual((await it.next()).value, {
    type: "delete",
    kind: "access_monitoring_rule",
    name: "r1",
  });

  ac.abort();
  const end = await it.next();
  assert.equal(end.done, true);
});

Deno.test("GrpcTeleportClient.watchEvents() reports only the accepted kinds and undefined for a legacy INIT", async () => {
  {
    await using env = await setup({ deniedKinds: ["access_monitoring_rule"] });
    const ac = new AbortController();
    const it = env.client.watchEvents(["access_request", "access_monitoring_rule"], {
      signal: ac.signal,
    })[Symbol.asyncIterator]();
    assert.deepEqual((await it.next()).value, { type: "init", kinds: ["access_request"] });
    await it.return?.();
  }
  {
    await using env = await setup({ legacyInit: true });
    const it = env.client.watchEvents(["access_request"])[Symbol.asyncIterator]();
    assert.deepEqual((await it.next()).value, { type: "init" });
    await it.return?.();
  }
});

Deno.test("GrpcTeleportClient.watchEvents() throws connection_problem when the server drops the stream", async () => {
  await using env = await setup();
  const it = env.client.watchEvents(["access_request"])[Symbol.asyncIterator]();
  assert.equal((await it.next()).value?.type, "init");
  env.server.dropStreams();
  await assert.rejects(it.next(), (e: unknown) => {
    assert.ok(e instanceof TeleportError);
    assert.equal(e.kind, "connection_problem");
    assert.equal(e.retryable, true);
    assert.match(e.message, /WatchEvents.*UNAVAILABLE/);
    return true;
  });
  // A new stream works again on the same client (reconnect).
  const again = env.client.watchEvents(["access_request"])[Symbol.asyncIterator]();
  assert.equal((await again.next()).value?.type, "init");
  await again.return?.();
  assert.equal(env.server.calls.WatchEvents, 2);
});

Deno.test("GrpcTeleportClient.watchEvents() throws connection_problem when the server stops", async () => {
  await using env = await setup();
  const it = env.client.watchEvents(["access_request"])[Symbol.asyncIterator]();
  assert.equal((await it.next()).value?.type, "init");
  await env.server.stop();
  await assert.rejects(it.next(), (e: unknown) => {
    assert.ok(e instanceof TeleportError);
    assert.equal(e.kind, "connection_problem");
    return true;
  });
  await assert.rejects(env.client.ping(), (e: unknown) => {
    assert.ok(e instanceof TeleportError);
    assert.equal(e.kind, "connection_problem");
    return true;
  });
  await env.server.restart();
  // grpc-js reconnects with backoff; bounded retry until the restarted server answers.
  let pong;
  for (let i = 0; i < 50 && !pong; i++) {
    pong = await env.client.ping().catch(() => undefined);
    if (!pong) await new Promise((r) => setTimeout(r, 100));
  }
  assert.equal(pong?.clusterName, "test.example.com");
});

Deno.test("GrpcTeleportClient.listAccessRequests() pages with Limit/StartKey and filters by state", async () => {
  await using env = await setup({ maxPageSize: 2 }, plugin, { pageSize: 2 });
  const ids: string[] = [];
  for (let i = 0; i < 5; i++) {
    ids.push(env.server.createAccessRequest({ user: `u${i}`, roles: ["r"] }).id);
  }
  env.server.setState(ids[1], "DENIED", "no");
  const all = await env.client.listAccessRequests();
  assert.deepEqual(all.map((r) => r.id), ids);
  assert.equal(env.server.calls.ListAccessRequests, 3);
  const pending = await env.client.listAccessRequests({ state: "PENDING" });
  assert.deepEqual(pending.map((r) => r.id), [ids[0], ids[2], ids[3], ids[4]]);
  const denied = await env.client.listAccessRequests({ state: "DENIED" });
  assert.equal(denied[0].resolveReason, "no");
});

Deno.test("GrpcTeleportClient.listAccessRequests() falls back to GetAccessRequestsV2 on UNIMPLEMENTED", async () => {
  await using env = await setup({ listAccessRequestsUnimplemented: true });
  const a = env.server.createAccessRequest({ user: "a", roles: ["r"] });
  env.server.createAccessRequest({ user: "b", roles: ["r"] });
  env.server.setState(a.id, "APPROVED");
  const pending = await env.client.listAccessRequests({ state: "PENDING" });
  assert.deepEqual(pending.map((r) => r.user), ["b"]);
  assert.equal(env.server.calls.ListAccessRequests, 1);
  assert.equal(env.server.calls.GetAccessRequestsV2, 1);
});

Deno.test("GrpcTeleportClient plugin data: create-if-absent, CAS conflict, delete by empty value, outlives request", async () => {
  await using env = await setup();
  const { id } = env.server.createAccessRequest({ user: "a", roles: ["r"] });
  assert.equal(await env.client.getPluginData(id, "email"), undefined);

  const empty = { user: "", resolution: "" };
  await env.client.updatePluginData(id, "email", { user: "a", resolution: "" }, empty);
  assert.deepEqual(await env.client.getPluginData(id, "email"), { user: "a" });
  // Same "create only if absent" expectation now fails.
  await assert.rejects(
    env.client.updatePluginData(id, "email", { user: "z" }, empty),
    (e: unknown) => {
      assert.ok(e instanceof TeleportError);
      assert.equal(e.kind, "compare_failed");
      assert.equal(e.grpcCode, grpc.status.FAILED_PRECONDITION);
      assert.match(e.message, /expectations not met for field "user"/);
      return true;
    },
  );
  await env.client.updatePluginData(id, "email", { resolution: "APPROVED" }, {
    user: "a",
    resolution: "",
  });
  assert.deepEqual(env.server.getPluginData(id, "email"), { user: "a", resolution: "APPROVED" });
  // Other plugins' data is separate.
  await env.client.updatePluginData(id, "slack", { x: "1" }, {});
  assert.deepEqual(await env.client.getPluginData(id, "slack"), { x: "1" });

  env.server.deleteAccessRequest(id);
  assert.deepEqual(await env.client.getPluginData(id, "email"), {
    user: "a",
    resolution: "APPROVED",
  });
  await env.client.updatePluginData(id, "email", { resolution: "EXPIRED" }, {
    resolution: "APPROVED",
  });
  const listed = await env.client.listPluginData("email");
  assert.deepEqual(listed, [{ requestId: id, data: { user: "a", resolution: "EXPIRED" } }]);

  // Setting every key to "" removes the entry.
  await env.client.updatePluginData(id, "email", { user: "", resolution: "" }, {});
  assert.equal(await env.client.getPluginData(id, "email"), undefined);
  assert.deepEqual(await env.client.listPluginData("email"), []);
});

Deno.test("GrpcTeleportClient.updatePluginData() on a request that never existed is not_found", async () => {
  await using env = await setup();
  await assert.rejects(
    env.client.updatePluginData("nope", "email", { user: "a" }, {}),
    (e: unknown) => {
      assert.ok(e instanceof TeleportError);
      assert.equal(e.kind, "not_found");
      assert.match(e.message, /UpdatePluginData.*NOT_FOUND.*"nope"/);
      return true;
    },
  );
});

Deno.test("GrpcTeleportClient.listAccessMonitoringRules() follows pages and filters by plugin and subject", async () => {
  await using env = await setup();
  for (let i = 0; i < 1003; i++) {
    env.server.upsertRule({
      name: `rule-${String(i).padStart(4, "0")}`,
      subjects: ["access_request"],
      states: [],
      condition: "true",
      notification: { name: "email", recipients: [`r${i}@example.com`] },
    });
  }
  env.server.upsertRule({
    name: "slack-rule",
    subjects: ["access_request"],
    states: [],
    condition: "true",
    notification: { name: "slack", recipients: [] },
  });
  env.server.upsertRule({
    name: "other-subject",
    subjects: ["access_list"],
    states: [],
    condition: "true",
    notification: { name: "email", recipients: [] },
  });
  const rules = await env.client.listAccessMonitoringRules("email");
  assert.equal(rules.length, 1003);
  assert.equal(rules[1002].name, "rule-1002");
  assert.equal(env.server.calls.ListAccessMonitoringRulesWithFilter, 2);
});

Deno.test("GrpcTeleportClient.listAccessMonitoringRules() returns [] when the server lacks the service", async () => {
  const debug: string[] = [];
  await using env = await setup({ rulesUnimplemented: true }, plugin, {
    log: { debug: (m) => debug.push(m) },
  });
  assert.deepEqual(await env.client.listAccessMonitoringRules("email"), []);
  assert.equal(debug.length, 1);
});

Deno.test("GrpcTeleportClient calls are access_denied with a role hint for a certificate without the plugin role", async () => {
  const other = await ca.issueUser({ user: "bob", roles: ["editor"] });
  await using env = await setup({}, other);
  await assert.rejects(env.client.listAccessRequests(), (e: unknown) => {
    assert.ok(e instanceof TeleportError);
    assert.equal(e.kind, "access_denied");
    assert.equal(e.grpcCode, grpc.status.PERMISSION_DENIED);
    assert.match(e.hint ?? "", /access_request: list, read/);
    assert.match(e.hint ?? "", /access_plugin_data: update/);
    assert.match(e.hint ?? "", /access_monitoring_rule: list, read/);
    return true;
  });
  const it = env.client.watchEvents(["access_request"])[Symbol.asyncIterator]();
  await assert.rejects(it.next(), (e: unknown) => {
    assert.ok(e instanceof TeleportError);
    assert.equal(e.kind, "access_denied");
    return true;
  });
  assert.equal(env.server.connections[0].user, "bob");
});

Deno.test("GrpcTeleportClient without a client certificate is access_denied (Teleport's Nop role)", async () => {
  await using env = await setup({}, {});
  await assert.rejects(env.client.ping(), (e: unknown) => {
    assert.ok(e instanceof TeleportError);
    assert.equal(e.kind, "access_denied");
    assert.match(e.message, /no client certificate/);
    return true;
  });
  assert.equal(env.server.connections[0].user, "");
});

Deno.test("GrpcTeleportClient without a client certificate is connection_problem when the server rejects at TLS", async () => {
  await using env = await setup({ noCertPolicy: "reject" }, {});
  await assert.rejects(env.client.ping(), (e: unknown) => {
    assert.ok(e instanceof TeleportError);
    assert.equal(e.kind, "connection_problem");
    return true;
  });
  assert.ok(env.server.rejectedConnections >= 1);
});

Deno.test("GrpcTeleportClient with a certificate from a foreign CA fails to connect", async () => {
  const foreign = await ca.issueUser({
    user: "access-plugin",
    roles: ["access-plugin"],
    signedBy: "foreign",
  });
  await using env = await setup({}, foreign);
  await assert.rejects(env.client.ping(), (e: unknown) => {
    assert.ok(e instanceof TeleportError);
    assert.equal(e.kind, "connection_problem");
    return true;
  });
  assert.equal(env.server.connections.length, 0);
});

Deno.test("GrpcTeleportClient maps injected gRPC errors to TeleportError kinds", async () => {
  await using env = await setup();
  const cases: Array<[grpc.status, string]> = [
    [grpc.status.UNAVAILABLE, "connection_problem"],
    [grpc.status.RESOURCE_EXHAUSTED, "limit_exceeded"],
    [grpc.status.INVALID_ARGUMENT, "bad_parameter"],
    [grpc.status.ALREADY_EXISTS, "already_exists"],
    [grpc.status.INTERNAL, "unknown"],
  ];
  for (const [code, kind] of cases) {
    env.server.injectError("Ping", code, 1, "boom");
    await assert.rejects(env.client.ping(), (e: unknown) => {
      assert.ok(e instanceof TeleportError);
      assert.equal(e.kind, kind);
      assert.equal(e.grpcCode, code);
      assert.match(e.message, /Ping.*boom/);
      return true;
    });
  }
  assert.equal((await env.client.ping()).clusterName, "test.example.com");
});

Deno.test("GrpcTeleportClient unary calls honour the deadline and the abort signal", async () => {
  await using env = await setup({}, plugin, { callTimeoutMs: 300 });
  const { id } = env.server.createAccessRequest({ user: "a", roles: ["r"] });
  const hang = env.server.hangNext("GetPluginData");
  await assert.rejects(env.client.getPluginData(id, "email"), (e: unknown) => {
    assert.ok(e instanceof TeleportError);
    assert.equal(e.kind, "deadline_exceeded");
    return true;
  });
  const ac = new AbortController();
  const p = env.client.getPluginData(id, "email", { signal: ac.signal });
  ac.abort();
  await assert.rejects(p, (e: unknown) => {
    assert.ok(e instanceof TeleportError);
    assert.equal(e.kind, "canceled");
    return true;
  });
  hang.release();
});

Deno.test("GrpcTeleportClient.watchEvents() throws connection_problem when the server ends the stream (EOF)", async () => {
  await using env = await setup();
  const it = env.client.watchEvents(["access_request"])[Symbol.asyncIterator]();
  assert.equal((await it.next()).value?.type, "init");
  env.server.endStreams();
  await assert.rejects(it.next(), (e: unknown) => {
    assert.ok(e instanceof TeleportError);
    assert.equal(e.kind, "connection_problem");
    assert.match(e.message, /closed by the server/);
    return true;
  });
});

Deno.test("GrpcTeleportClient uses the dialer's current certificate for each new connection", async () => {
  const server = await TeleportTestServer.start({ ca });
  const dialer = testDialer(server.addr, ca, plugin);
  const client = await GrpcTeleportClient.create(dialer, { callTimeoutMs: 5_000 });
  try {
    await client.ping();
    const renewed = await ca.issueUser({ user: "access-plugin", roles: ["access-plugin"] });
    dialer.setIdentity(renewed.keyPem, renewed.certPem);
    server.dropConnections();
    let ok = false;
    for (let i = 0; i < 50 && !ok; i++) {
      ok = await client.ping().then(() => true, () => false);
      if (!ok) await new Promise((r) => setTimeout(r, 100));
    }
    assert.ok(ok);
    assert.equal(server.connections.length, 2);
    assert.notEqual(server.connections[0].serial, "");
    assert.notEqual(server.connections[1].serial, server.connections[0].serial);
    assert.equal(client.connectionsOpened, 2);
  } finally {
    client.close();
    await server.close();
  }
});

Deno.test("GrpcTeleportClient.close() cancels an open watch stream and later calls fail", async () => {
  await using env = await setup();
  const it = env.client.watchEvents(["access_request"])[Symbol.asyncIterator]();
  assert.equal((await it.next()).value?.type, "init");
  const pending = it.next();
  env.client.close();
  await assert.rejects(pending, (e: unknown) => {
    assert.ok(e instanceof TeleportError);
    assert.equal(e.kind, "canceled");
    return true;
  });
  await assert.rejects(env.client.ping(), /client is closed/);
});
