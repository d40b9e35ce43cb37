/**
 * Wire tests: hand-computed protobuf bytes (field numbers and wire types from Teleport's .proto
 * files) decoded and encoded with the generated code, so a wrong field number in `proto/` fails
 * here without any toolchain. Plus the proto ↔ types.ts conversions.
 */
import assert from "node:assert/strict";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { TimestampSchema } from "@bufbuild/protobuf/wkt";
import { Buffer } from "node:buffer";
import {
  accessMonitoringRuleFromPb,
  accessMonitoringRuleToPb,
  accessRequestFromPb,
  accessRequestToPb,
  dateToTimestamp,
  GO_ZERO_TIME_SECONDS,
  timestampToDate,
  watchEventFromPb,
} from "./convert.ts";
import {
  ListAccessMonitoringRulesWithFilterRequestSchema,
} from "./gen/teleport/accessmonitoringrules/v1/access_monitoring_rules_pb.ts";
import {
  ListAccessRequestsRequestSchema,
  PingResponseSchema,
  PluginDataSeqSchema,
  WatchSchema,
} from "./gen/teleport/legacy/client/proto/authservice_pb.ts";
import { EventSchema } from "./gen/teleport/legacy/client/proto/event_pb.ts";
import {
  AccessRequestV3Schema,
  PluginDataUpdateParamsSchema,
  RequestState,
} from "./gen/teleport/legacy/types/types_pb.ts";
import type { AccessRequest } from "./types.ts";

const hex = (s: string) => new Uint8Array(Buffer.from(s.replace(/\s+/g, ""), "hex"));
const toHex = (b: Uint8Array) => Buffer.from(b).toString("hex");
const str = (s: string) => Buffer.from(s).toString("hex");

Deno.test("Event PUT with AccessRequest (oneof 14) decodes from hand-encoded bytes", () => {
  // Type=1 PUT; 14: AccessRequestV3{4: Metadata{1: "id1"}, 5: Spec{1: "u", 3: PENDING}}
  const bytes = hex("0801 720e 2205 0a03 696431 2a05 0a0175 1801");
  const ev = fromBinary(EventSchema, bytes);
  assert.deepEqual(watchEventFromPb(ev), {
    type: "put",
    kind: "access_request",
    request: {
      id: "id1",
      user: "u",
      roles: [],
      state: "PENDING",
      created: undefined,
      expires: undefined,
      requestReason: "",
      resolveReason: "",
      reviews: [],
      suggestedReviewers: [],
      systemAnnotations: {},
      requestedResources: [],
      promotedAccessList: undefined,
    },
  });
  assert.equal(toHex(toBinary(EventSchema, ev)), toHex(bytes));
});

Deno.test("Event INIT with WatchStatus (oneof 43) decodes the accepted kinds", () => {
  // 43 → tag varint 0xda 0x02; WatchStatusV1{5: Spec{1: [WatchKind{1: "ab"}]}}
  const ev = fromBinary(EventSchema, hex("da02 08 2a06 0a04 0a02 6162"));
  assert.deepEqual(watchEventFromPb(ev), { type: "init", kinds: ["ab"] });
  assert.deepEqual(watchEventFromPb(fromBinary(EventSchema, hex(""))), { type: "init" });
});

Deno.test("Event PUT with AccessMonitoringRule (oneof 54) and DELETE with ResourceHeader (2) decode", () => {
  // 54 → tag 0xb2 0x03; AccessMonitoringRule{1: header.v1.Metadata{1: "r"}}
  const put = fromBinary(EventSchema, hex("0801 b203 05 0a03 0a0172"));
  const w = watchEventFromPb(put);
  assert.ok(w?.type === "put" && w.kind === "access_monitoring_rule");
  assert.equal(w.rule.name, "r");
  // Type=2 DELETE; 2: ResourceHeader{1: "k", 4: Metadata{1: "n"}}
  const del = fromBinary(EventSchema, hex("0802 1208 0a016b 2203 0a016e"));
  assert.deepEqual(watchEventFromPb(del), { type: "delete", kind: "k", name: "n" });
});

Deno.test("Event PUT of an unknown oneof member is skipped and reported as kind other", () => {
  // Type=1 PUT; 9: Role (not in our trimmed copy) {4: Metadata{1: "x"}} → skipped on decode
  const ev = fromBinary(EventSchema, hex("0801 4a05 2203 0a0178"));
  assert.deepEqual(watchEventFromPb(ev), {
    type: "put",
    kind: "other",
    resourceKind: "unknown",
    name: "",
  });
});

Deno.test("PingResponse decodes cluster, version, features.AdvancedAccessWorkflows (7) and proxy", () => {
  const p = fromBinary(PingResponseSchema, hex("0a0163 120131 1a023801 220170"));
  assert.equal(p.ClusterName, "c");
  assert.equal(p.ServerVersion, "1");
  assert.equal(p.ServerFeatures?.AdvancedAccessWorkflows, true);
  assert.equal(p.ProxyPublicAddr, "p");
});

Deno.test("PluginDataSeq decodes nested Entries map → PluginDataEntry.Data map", () => {
  const bytes = hex(
    "0a1a 2203 0a0178 2a13 0a11 0a05" + str("email") + "1208 0a06 0a016b 120176",
  );
  const seq = fromBinary(PluginDataSeqSchema, bytes);
  assert.equal(seq.PluginData[0].Metadata?.Name, "x");
  assert.deepEqual(seq.PluginData[0].Spec?.Entries.email.Data, { k: "v" });
});

Deno.test("Request messages encode with Teleport's field numbers", () => {
  assert.equal(
    toHex(toBinary(
      PluginDataUpdateParamsSchema,
      create(PluginDataUpdateParamsSchema, {
        Kind: "a",
        Resource: "b",
        Plugin: "c",
        Set: { k: "v" },
        Expect: { k: "w" },
      }),
    )),
    "0a0161" + "120162" + "1a0163" + "2206 0a016b 120176".replace(/ /g, "") +
      "2a06 0a016b 120177".replace(/ /g, ""),
  );
  assert.equal(
    toHex(toBinary(
      ListAccessMonitoringRulesWithFilterRequestSchema,
      create(ListAccessMonitoringRulesWithFilterRequestSchema, {
        pageSize: 1000n,
        pageToken: "t",
        subjects: ["access_request"],
        notificationName: "email",
      }),
    )),
    "08e807" + "120174" + "1a0e" + str("access_request") + "2205" + str("email"),
  );
  assert.equal(
    toHex(toBinary(
      ListAccessRequestsRequestSchema,
      create(ListAccessRequestsRequestSchema, {
        Filter: { State: RequestState.PENDING },
        Limit: 500,
        StartKey: "s",
      }),
    )),
    "0a021801" + "20f403" + "2a0173",
  );
  assert.equal(
    toHex(toBinary(
      WatchSchema,
      create(WatchSchema, { Kinds: [{ Kind: "access_request" }], AllowPartialSuccess: true }),
    )),
    "0a10 0a0e".replace(/ /g, "") + str("access_request") + "1001",
  );
});

Deno.test("timestampToDate() treats Go zero time and absence as unset", () => {
  assert.equal(timestampToDate(undefined), undefined);
  assert.equal(
    timestampToDate(create(TimestampSchema, { seconds: GO_ZERO_TIME_SECONDS, nanos: 0 })),
    undefined,
  );
  const d = new Date("2024-05-01T10:11:12.345Z");
  assert.deepEqual(timestampToDate(dateToTimestamp(d)), d);
  assert.equal(dateToTimestamp(undefined).seconds, GO_ZERO_TIME_SECONDS);
});

Deno.test("accessRequestToPb() and accessRequestFromPb() round-trip every field", () => {
  const req: AccessRequest = {
    id: "0b0a6f4e-7f2c-4d0e-9a59-1f2b3c4d5e6f",
    user: "alice@example.com",
    roles: ["editor", "admin"],
    state: "PROMOTED",
    created: new Date("2024-05-01T10:00:00Z"),
    expires: new Date("2024-05-01T11:00:00Z"),
    requestReason: "reason",
    resolveReason: "resolved",
    reviews: [{
      author: "bob",
      roles: ["reviewer"],
      proposedState: "APPROVED",
      reason: "ok",
      created: new Date("2024-05-01T10:30:00Z"),
    }],
    suggestedReviewers: ["bob", "carol"],
    systemAnnotations: { a: ["1", "2"], b: [] },
    requestedResources: [{ clusterName: "c", kind: "db", name: "pg", subResourceName: "x" }],
    promotedAccessList: { name: "al", title: "Access List" },
  };
  const wire = toBinary(AccessRequestV3Schema, accessRequestToPb(req));
  assert.deepEqual(accessRequestFromPb(fromBinary(AccessRequestV3Schema, wire)), req);
});

Deno.test("accessMonitoringRuleToPb() and accessMonitoringRuleFromPb() round-trip", () => {
  const rule = {
    name: "r",
    subjects: ["access_request"],
    states: ["reviewed"],
    condition: 'contains(access_request.spec.roles, "admin")',
    notification: { name: "email", recipients: ["a@example.com"] },
  };
  assert.deepEqual(accessMonitoringRuleFromPb(accessMonitoringRuleToPb(rule)), rule);
});

/** `types.ResourceID` bytes: ClusterName (1), Kind (2), Name (3). */
function resourceIdHex(cluster: string, kind: string, name: string): string {
  const field = (tag: string, s: string) =>
    `${tag}${s.length.toString(16).padStart(2, "0")}${str(s)}`;
  return field("0a", cluster) + field("12", kind) + field("1a", name);
}
const len = (h: string) => (h.replace(/\s+/g, "").length / 2).toString(16).padStart(2, "0");

Deno.test("RequestedResourceAccessIDs (field 26) decode from hand-encoded bytes, constraints included", () => {
  const web = resourceIdHex("c", "node", "web"); // 0a0163 12046e6f6465 1a03776562
  assert.equal(web, "0a0163" + "12046e6f6465" + "1a03776562");
  // ResourceConstraints: version (1) "v1", ssh (11, tag 5a) { logins (1) "root" }.
  const ssh = "0a027631" + "5a06" + "0a04726f6f74";
  // ResourceAccessID: id (1), constraints (2).
  const constrained = `0a${len(web)}${web}12${len(ssh)}${ssh}`;
  const pg = resourceIdHex("c", "db", "pg");
  const plain = `0a${len(pg)}${pg}`;
  // AccessRequestSpecV3 field 26, wire type 2: tag 26<<3|2 = 210 = varint d2 01.
  const spec = `d201${len(constrained)}${constrained}d201${len(plain)}${plain}`;
  const bytes = hex(`2a${len(spec)}${spec}`);
  const req = accessRequestFromPb(fromBinary(AccessRequestV3Schema, bytes));
  assert.deepEqual(req.requestedResources, [
    {
      clusterName: "c",
      kind: "node",
      name: "web",
      subResourceName: "",
      constraints: { kind: "ssh", values: ["root"] },
    },
    { clusterName: "c", kind: "db", name: "pg", subResourceName: "" },
  ]);
});

Deno.test("RequestedResourceIDs (field 14) are read when field 26 is absent, and 26 wins over 14", () => {
  const old = resourceIdHex("c", "node", "old");
  const field14 = `72${len(old)}${old}`; // tag 14<<3|2 = 0x72
  const only14 = hex(`2a${len(field14)}${field14}`);
  assert.deepEqual(
    accessRequestFromPb(fromBinary(AccessRequestV3Schema, only14)).requestedResources,
    [{ clusterName: "c", kind: "node", name: "old", subResourceName: "" }],
  );
  const cur = resourceIdHex("c", "node", "new");
  const access = `0a${len(cur)}${cur}`;
  const both = `${field14}d201${len(access)}${access}`;
  assert.deepEqual(
    accessRequestFromPb(fromBinary(AccessRequestV3Schema, hex(`2a${len(both)}${both}`)))
      .requestedResources,
    [{ clusterName: "c", kind: "node", name: "new", subResourceName: "" }],
  );
});

Deno.test("accessRequestToPb() writes both field 14 (older readers) and field 26", () => {
  const pb = accessRequestToPb({
    id: "r",
    user: "u",
    roles: [],
    state: "PENDING",
    requestReason: "",
    resolveReason: "",
    reviews: [],
    suggestedReviewers: [],
    systemAnnotations: {},
    requestedResources: [{
      clusterName: "c",
      kind: "app",
      name: "aws",
      subResourceName: "",
      constraints: { kind: "aws_console", values: ["arn:aws:iam::1:role/r"] },
    }],
  });
  assert.equal(pb.Spec?.RequestedResourceIDs[0].Name, "aws");
  const wire = toHex(toBinary(AccessRequestV3Schema, pb));
  // aws_console is field 10 of ResourceConstraints (tag 52), role_arns field 1.
  assert.ok(wire.includes("d201"), wire);
  assert.ok(wire.includes(`52${len(`0a15${str("arn:aws:iam::1:role/r")}`)}0a15`), wire);
  const back = accessRequestFromPb(fromBinary(AccessRequestV3Schema, hex(wire)));
  assert.deepEqual(back.requestedResources[0].constraints, {
    kind: "aws_console",
    values: ["arn:aws:iam::1:role/r"],
  });
});
