/**
 * The test server answers `WatchEvents` and sends DELETE events as Teleport does
 * (`teleport_watch_rules.ts` names the upstream sources), over real gRPC.
 */
import assert from "node:assert/strict";
import * as grpc from "@grpc/grpc-js";
import { create, type MessageInitShape } from "@bufbuild/protobuf";
import { TestCertificateAuthority } from "./ca.ts";
import { TeleportTestServer, type TeleportTestServerOptions } from "./teleport_server.ts";
import { testDialer } from "./teleport_dialer.ts";
import {
  createDuplexClient,
  deserializer,
  DuplexCredentials,
  serializer,
} from "./grpc_transport.ts";
import { WatchSchema } from "../../src/teleport/gen/teleport/legacy/client/proto/authservice_pb.ts";
import {
  type Event,
  EventSchema,
  Operation,
} from "../../src/teleport/gen/teleport/legacy/client/proto/event_pb.ts";
import { RequestState } from "../../src/teleport/gen/teleport/legacy/types/types_pb.ts";
import { bounded } from "./bounded.ts";

const ca = await TestCertificateAuthority.create({ clusterName: "watch.example.com" });
const plugin = await ca.issueUser({ user: "access-plugin", roles: ["access-plugin"] });

/** A raw WatchEvents stream: its events as they come, and its final status. */
interface RawWatch {
  events: Event[];
  status: Promise<grpc.StatusObject>;
  waitForEvents(n: number): Promise<Event[]>;
  cancel(): void;
}

async function withWatch(
  watch: MessageInitShape<typeof WatchSchema>,
  fn: (w: RawWatch, server: TeleportTestServer) => Promise<void>,
  opts: Omit<TeleportTestServerOptions, "ca"> = {},
): Promise<void> {
  const server = await TeleportTestServer.start({ ca, ...opts });
  const dialer = testDialer(server.addr, ca, plugin);
  const client = createDuplexClient(new DuplexCredentials((o) => dialer.dial(o)));
  const call = client.makeServerStreamRequest(
    "/proto.AuthService/WatchEvents",
    serializer(WatchSchema),
    deserializer(EventSchema),
    create(WatchSchema, watch),
  );
  const events: Event[] = [];
  let wake = () => {};
  call.on("data", (e: Event) => {
    events.push(e);
    wake();
  });
  call.on("error", () => {});
  const status = new Promise<grpc.StatusObject>((resolve) => call.on("status", resolve));
  const w: RawWatch = {
    events,
    status,
    waitForEvents: (n) =>
      bounded(
        new Promise<Event[]>((resolve) => {
          wake = () => events.length >= n && resolve(events.slice(0, n));
          wake();
        }),
        () => `${n} watch events (got ${events.length})`,
      ),
    cancel: () => call.cancel(),
  };
  try {
    await fn(w, server);
  } finally {
    call.cancel();
    client.close();
    await server.close();
  }
}

Deno.test("WatchEvents with every kind denied fails even with AllowPartialSuccess", async () => {
  await withWatch(
    {
      Kinds: [{ Kind: "access_request" }, { Kind: "access_monitoring_rule" }],
      AllowPartialSuccess: true,
    },
    async (w) => {
      const status = await bounded(w.status, "watch status");
      assert.equal(status.code, grpc.status.INVALID_ARGUMENT);
      assert.equal(status.details, "none of the requested kinds can be watched");
      assert.equal(w.events.length, 0, "no INIT");
    },
    { deniedKinds: ["access_request", "access_monitoring_rule"] },
  );
});

Deno.test("WatchEvents without kinds is refused as a global watch", async () => {
  await withWatch({ Kinds: [], AllowPartialSuccess: true }, async (w) => {
    const status = await bounded(w.status, "watch status");
    assert.equal(status.code, grpc.status.PERMISSION_DENIED);
    assert.equal(status.details, "can't setup global watch");
  });
});

Deno.test("WatchEvents INIT echoes each accepted WatchKind whole", async () => {
  const kinds = [
    { Kind: "access_request", Filter: { state: "PENDING" }, Version: "v3", Name: "n" },
    { Kind: "access_monitoring_rule", SubKind: "s", LoadSecrets: true },
  ];
  await withWatch({ Kinds: kinds, AllowPartialSuccess: true }, async (w) => {
    const [init] = await w.waitForEvents(1);
    assert.equal(init.Type, Operation.INIT);
    assert.equal(init.Resource.case, "WatchStatus");
    const status = init.Resource.value!;
    assert.equal(status.Kind, "watch_status");
    assert.equal(status.Metadata?.Name, "watch-status");
    assert.deepEqual(
      status.Spec?.Kinds.map((k) => ({
        Kind: k.Kind,
        Filter: k.Filter,
        Version: k.Version,
        Name: k.Name,
        SubKind: k.SubKind,
        LoadSecrets: k.LoadSecrets,
      })),
      [
        {
          Kind: "access_request",
          Filter: { state: "PENDING" },
          Version: "v3",
          Name: "n",
          SubKind: "",
          LoadSecrets: false,
        },
        {
          Kind: "access_monitoring_rule",
          Filter: {},
          Version: "",
          Name: "",
          SubKind: "s",
          LoadSecrets: true,
        },
      ],
    );
  });
});

Deno.test("WatchEvents validates an access_request Filter like AccessRequestFilter.FromMap", async () => {
  const table: Array<[Record<string, string>, string]> = [
    [{ color: "red" }, "unknown filter key color"],
    [{ state: "MAYBE" }, 'unknown request state: "MAYBE"'],
  ];
  for (const [filter, details] of table) {
    await withWatch({ Kinds: [{ Kind: "access_request", Filter: filter }] }, async (w) => {
      const status = await bounded(w.status, "watch status");
      assert.equal(status.code, grpc.status.INVALID_ARGUMENT);
      assert.equal(status.details, details);
    });
  }
  // With partial success the bad kind is left out and the others are watched.
  await withWatch(
    {
      Kinds: [{ Kind: "access_request", Filter: { color: "red" } }, {
        Kind: "access_monitoring_rule",
      }],
      AllowPartialSuccess: true,
    },
    async (w) => {
      const [init] = await w.waitForEvents(1);
      const status = init.Resource.case === "WatchStatus" ? init.Resource.value : undefined;
      assert.deepEqual(status?.Spec?.Kinds.map((k) => k.Kind), ["access_monitoring_rule"]);
    },
  );
});

Deno.test("WatchEvents sends only access requests matching the Filter", async () => {
  await withWatch(
    { Kinds: [{ Kind: "access_request", Filter: { user: "bob", state: "PENDING" } }] },
    async (w, server) => {
      await w.waitForEvents(1);
      server.createAccessRequest({ user: "alice", roles: ["r"] });
      const bob = server.createAccessRequest({ user: "bob", roles: ["r"] });
      server.setState(bob.id, "APPROVED"); // no longer PENDING: filtered out
      server.deleteAccessRequest(bob.id); // DELETEs are not filtered
      const [, put, del] = await w.waitForEvents(3);
      assert.equal(put.Type, Operation.PUT);
      assert.equal(put.Resource.case === "AccessRequest" && put.Resource.value.Spec?.User, "bob");
      assert.equal(
        put.Resource.case === "AccessRequest" && put.Resource.value.Spec?.State,
        RequestState.PENDING,
      );
      assert.equal(del.Type, Operation.DELETE);
    },
  );
});

Deno.test("DELETE events carry Teleport's ResourceHeader: version by kind, namespace default", async () => {
  await withWatch(
    { Kinds: [{ Kind: "access_request" }, { Kind: "access_monitoring_rule" }] },
    async (w, server) => {
      await w.waitForEvents(1);
      const req = server.createAccessRequest({ user: "a", roles: ["r"] });
      server.deleteAccessRequest(req.id);
      server.upsertRule({
        name: "rule-1",
        subjects: ["access_request"],
        states: [],
        condition: "true",
        notification: { name: "email", recipients: [] },
      });
      server.deleteRule("rule-1");
      const events = await w.waitForEvents(5);
      const headers = events.filter((e) => e.Type === Operation.DELETE).map((e) =>
        e.Resource.case === "ResourceHeader" ? e.Resource.value : undefined
      );
      assert.deepEqual(
        headers.map((h) => [h?.Kind, h?.Version, h?.Metadata?.Name, h?.Metadata?.Namespace]),
        [
          ["access_request", "v3", req.id, "default"],
          ["access_monitoring_rule", "v1", "rule-1", "default"],
        ],
      );
    },
  );
});
