import assert from "node:assert/strict";
import * as grpc from "@grpc/grpc-js";
import { create, type DescMessage, type MessageShape } from "@bufbuild/protobuf";
import { EmptySchema } from "@bufbuild/protobuf/wkt";
import { TestCertificateAuthority } from "./ca.ts";
import { TeleportTestServer } from "./teleport_server.ts";
import { testDialer } from "./teleport_dialer.ts";
import { GrpcTeleportClient } from "../../src/teleport/grpc_client.ts";
import {
  createDuplexClient,
  deserializer,
  DuplexCredentials,
  serializer,
} from "./grpc_transport.ts";
import {
  RequestStateSetterSchema,
  WatchSchema,
} from "../../src/teleport/gen/teleport/legacy/client/proto/authservice_pb.ts";
import { EventSchema } from "../../src/teleport/gen/teleport/legacy/client/proto/event_pb.ts";
import {
  AccessRequestV3Schema,
  AccessReviewSubmissionSchema,
  RequestState,
} from "../../src/teleport/gen/teleport/legacy/types/types_pb.ts";
import type { WatchEvent } from "../../src/teleport/types.ts";

const ca = await TestCertificateAuthority.create({ clusterName: "srv.example.com" });
const plugin = await ca.issueUser({ user: "access-plugin", roles: ["access-plugin"] });

async function withServer(
  fn: (server: TeleportTestServer, client: GrpcTeleportClient) => Promise<void>,
  opts: Partial<Parameters<typeof TeleportTestServer.start>[0]> = {},
): Promise<void> {
  const server = await TeleportTestServer.start({ ca, ...opts });
  const client = await GrpcTeleportClient.create(testDialer(server.addr, ca, plugin), {
    callTimeoutMs: 5_000,
  });
  try {
    await fn(server, client);
  } finally {
    client.close();
    await server.close();
  }
}

async function next(it: AsyncIterator<WatchEvent>): Promise<WatchEvent> {
  const r = await it.next();
  if (r.done) throw new Error("stream ended");
  return r.value;
}

Deno.test("TeleportTestServer.submitReview() approves only when the approve threshold is reached", async () => {
  await withServer(async (server, client) => {
    const it = client.watchEvents(["access_request"])[Symbol.asyncIterator]();
    await next(it);
    const { id } = server.createAccessRequest({
      user: "a",
      roles: ["r"],
      thresholds: { approve: 2, deny: 1 },
    });
    await next(it);
    server.submitReview(id, { author: "b", proposedState: "APPROVED", reason: "first" });
    const one = await next(it);
    assert.ok(one.type === "put" && one.kind === "access_request");
    assert.equal(one.request.state, "PENDING");
    assert.equal(one.request.reviews.length, 1);
    server.submitReview(id, { author: "c", proposedState: "APPROVED", reason: "second" });
    const two = await next(it);
    assert.ok(two.type === "put" && two.kind === "access_request");
    assert.equal(two.request.state, "APPROVED");
    assert.equal(two.request.resolveReason, "second");
    assert.throws(
      () => server.submitReview(id, { author: "d", proposedState: "DENIED" }),
      /is not pending/,
    );
    await it.return?.();
  });
});

Deno.test("TeleportTestServer denial, promotion and setState emit PUTs with the new state", async () => {
  await withServer(async (server, client) => {
    const it = client.watchEvents(["access_request"])[Symbol.asyncIterator]();
    await next(it);
    const a = server.createAccessRequest({ user: "a", roles: ["r"] });
    const b = server.createAccessRequest({ user: "b", roles: ["r"] });
    const c = server.createAccessRequest({ user: "c", roles: ["r"] });
    await next(it), await next(it), await next(it);
    server.submitReview(a.id, { author: "x", proposedState: "DENIED", reason: "nope" });
    const denied = await next(it);
    assert.ok(denied.type === "put" && denied.kind === "access_request");
    assert.equal(denied.request.state, "DENIED");
    assert.equal(denied.request.resolveReason, "nope");
    server.promote(b.id, { name: "al-1", title: "Prod access" });
    const promoted = await next(it);
    assert.ok(promoted.type === "put" && promoted.kind === "access_request");
    assert.equal(promoted.request.state, "PROMOTED");
    assert.deepEqual(promoted.request.promotedAccessList, { name: "al-1", title: "Prod access" });
    server.setState(c.id, "APPROVED", "tctl");
    const approved = await next(it);
    assert.ok(approved.type === "put" && approved.kind === "access_request");
    assert.equal(approved.request.resolveReason, "tctl");
    assert.deepEqual(server.listRequests().map((r) => r.state), ["DENIED", "PROMOTED", "APPROVED"]);
    await it.return?.();
  });
});

Deno.test("TeleportTestServer.pauseEvents() holds events and delivers them in order on resume", async () => {
  await withServer(async (server, client) => {
    const it = client.watchEvents(["access_request"])[Symbol.asyncIterator]();
    await next(it);
    server.pauseEvents(true);
    const a = server.createAccessRequest({ user: "a", roles: ["r"] });
    const b = server.createAccessRequest({ user: "b", roles: ["r"] });
    let received = 0;
    const pending = next(it).then((e) => {
      received++;
      return e;
    });
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(received, 0);
    server.pauseEvents(false);
    const first = await pending;
    const second = await next(it);
    assert.ok(first.type === "put" && first.kind === "access_request");
    assert.ok(second.type === "put" && second.kind === "access_request");
    assert.deepEqual([first.request.id, second.request.id], [a.id, b.id]);
    await it.return?.();
  });
});

Deno.test("TeleportTestServer.stop() and restart() serve again on the same port with the same store", async () => {
  await withServer(async (server, client) => {
    const { id } = server.createAccessRequest({ user: "a", roles: ["r"] });
    const addr = server.addr;
    await server.stop();
    await server.restart();
    assert.equal(server.addr, addr);
    let list;
    for (let i = 0; i < 50 && !list; i++) {
      list = await client.listAccessRequests().catch(() => undefined);
      if (!list) await new Promise((r) => setTimeout(r, 100));
    }
    assert.deepEqual(list?.map((r) => r.id), [id]);
  });
});

/** Raw gRPC calls for what GrpcTeleportClient does not expose. */
function rawClient(server: TeleportTestServer) {
  const dialer = testDialer(server.addr, ca, plugin);
  const client = createDuplexClient(new DuplexCredentials((o) => dialer.dial(o)));
  return {
    unary<I extends DescMessage, O extends DescMessage>(
      path: string,
      i: I,
      o: O,
      req: MessageShape<I>,
    ): Promise<MessageShape<O>> {
      return new Promise((resolve, reject) =>
        client.makeUnaryRequest(
          path,
          serializer(i),
          deserializer(o),
          req,
          new grpc.Metadata(),
          { deadline: Date.now() + 5_000 },
          (err, res) => err ? reject(err) : resolve(res as MessageShape<O>),
        )
      );
    },
    client,
    close() {
      client.close();
    },
  };
}

Deno.test("TeleportTestServer serves SubmitAccessReview and SetAccessRequestState over gRPC", async () => {
  await withServer(async (server) => {
    const raw = rawClient(server);
    try {
      const a = server.createAccessRequest({ user: "a", roles: ["r"] });
      const res = await raw.unary(
        "/proto.AuthService/SubmitAccessReview",
        AccessReviewSubmissionSchema,
        AccessRequestV3Schema,
        create(AccessReviewSubmissionSchema, {
          RequestID: a.id,
          Review: { Author: "rev", ProposedState: RequestState.APPROVED, Reason: "fine" },
        }),
      );
      assert.equal(res.Spec?.State, RequestState.APPROVED);
      const b = server.createAccessRequest({ user: "b", roles: ["r"] });
      await raw.unary(
        "/proto.AuthService/SetAccessRequestState",
        RequestStateSetterSchema,
        EmptySchema,
        create(RequestStateSetterSchema, { ID: b.id, State: RequestState.DENIED, Reason: "no" }),
      );
      assert.equal(server.getRequest(b.id)?.state, "DENIED");
      assert.equal(server.getRequest(b.id)?.resolveReason, "no");
    } finally {
      raw.close();
    }
  });
});

Deno.test("TeleportTestServer rejects a watch of a denied kind without AllowPartialSuccess", async () => {
  await withServer(async (server) => {
    const raw = rawClient(server);
    try {
      const call = raw.client.makeServerStreamRequest(
        "/proto.AuthService/WatchEvents",
        serializer(WatchSchema),
        deserializer(EventSchema),
        create(WatchSchema, {
          Kinds: [{ Kind: "access_request" }, { Kind: "access_monitoring_rule" }],
          AllowPartialSuccess: false,
        }),
      );
      const status = await new Promise<grpc.StatusObject>((resolve) => {
        call.on("data", () => {});
        call.on("error", () => {});
        call.on("status", resolve);
      });
      assert.equal(status.code, grpc.status.PERMISSION_DENIED);
      assert.match(status.details, /access_monitoring_rule/);
    } finally {
      raw.close();
    }
  }, { deniedKinds: ["access_monitoring_rule"] });
});

Deno.test("TeleportTestServer with sendInit false never sends INIT; initDelayMs delays it", async () => {
  await withServer(async (server, client) => {
    const ac = new AbortController();
    const it = client.watchEvents(["access_request"], { signal: ac.signal })
      [Symbol.asyncIterator]();
    let got = false;
    const p = it.next().then((r) => {
      got = true;
      return r;
    });
    server.createAccessRequest({ user: "a", roles: ["r"] });
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(got, false);
    assert.equal(server.openWatchers, 1);
    ac.abort();
    assert.equal((await p).done, true);
  }, { sendInit: false });
  await withServer(async (_server, client) => {
    const it = client.watchEvents(["access_request"])[Symbol.asyncIterator]();
    assert.equal((await next(it)).type, "init");
    await it.return?.();
  }, { initDelayMs: 50 });
});

Deno.test("TeleportTestServer enforces the role per kind and verb as Teleport does", async () => {
  // No rule at all: the watch of the only kind asked for is refused, ListAccessRequests answers
  // with the caller's own requests only (no error), plugin data calls are PERMISSION_DENIED.
  await withServer(async (server, client) => {
    server.createAccessRequest({ user: "someone", roles: ["r"] });
    const own = server.createAccessRequest({ user: "access-plugin", roles: ["r"] });
    await assert.rejects(
      async () => {
        for await (const _ of client.watchEvents(["access_request"])) break;
      },
      (e: Error & { kind?: string }) =>
        e.kind === "bad_parameter" && /none of the requested kinds can be watched/.test(e.message),
    );
    assert.deepEqual((await client.listAccessRequests()).map((r) => r.id), [own.id]);
    await assert.rejects(
      client.getPluginData("nope", "email"),
      /PERMISSION_DENIED.*access denied to perform action "list" on "access_plugin_data"/,
    );
    await assert.rejects(
      client.updatePluginData("nope", "email", { a: "b" }, {}),
      /PERMISSION_DENIED.*access denied to perform action "update" on "access_plugin_data"/,
    );
    await assert.rejects(
      client.listAccessMonitoringRules("email"),
      /access denied to perform action "read" on "access_monitoring_rule", access denied to perform action "list" on "access_monitoring_rule"/,
    );
  }, { role: { allow: [] } });
  // A deny rule on access_request makes ListAccessRequests fail; access_request update also
  // grants the plugin-data update (Teleport's backwards compatibility), which then answers
  // NOT_FOUND for a request that does not exist.
  await withServer(async (_server, client) => {
    await assert.rejects(client.listAccessRequests(), /PERMISSION_DENIED/);
    await assert.rejects(
      client.updatePluginData("nope", "email", { a: "b" }, {}),
      (e: Error & { kind?: string }) => e.kind === "not_found",
    );
  }, {
    role: {
      allow: [{ resources: ["access_request"], verbs: ["update"] }],
      deny: [{ resources: ["access_request"], verbs: ["list"] }],
    },
  });
});
