/**
 * Conversions between the generated protobuf messages (`gen/`) and the plain resources of
 * `types.ts`. Pure functions; both directions (the test Auth server builds wire messages with the
 * `to*` functions).
 */
import { create, type MessageInitShape } from "@bufbuild/protobuf";
import type { Timestamp } from "@bufbuild/protobuf/wkt";
import { TimestampSchema } from "@bufbuild/protobuf/wkt";
import {
  type AccessMonitoringRule as PbAccessMonitoringRule,
  AccessMonitoringRuleSchema,
} from "./gen/teleport/accessmonitoringrules/v1/access_monitoring_rules_pb.ts";
import type { Event } from "./gen/teleport/legacy/client/proto/event_pb.ts";
import { Operation } from "./gen/teleport/legacy/client/proto/event_pb.ts";
import type { PingResponse } from "./gen/teleport/legacy/client/proto/authservice_pb.ts";
import {
  type AccessRequestV3,
  AccessRequestV3Schema,
  type AccessReview as PbAccessReview,
  AccessReviewSchema,
  RequestState as PbRequestState,
  type ResourceConstraints as PbResourceConstraints,
  type ResourceConstraintsSchema,
  type ResourceID as PbResourceID,
  type ResourceIDSchema,
} from "./gen/teleport/legacy/types/types_pb.ts";
import {
  type LabelValues,
  LabelValuesSchema,
} from "./gen/teleport/legacy/types/wrappers/wrappers_pb.ts";
import {
  type AccessMonitoringRule,
  type AccessRequest,
  type AccessReview,
  KIND_ACCESS_MONITORING_RULE,
  KIND_ACCESS_REQUEST,
  type PingResult,
  type RequestState,
  type ResourceConstraints,
  type ResourceId,
  type WatchEvent,
} from "./types.ts";

/** Go's zero `time.Time` as a protobuf Timestamp: 0001-01-01T00:00:00Z. */
export const GO_ZERO_TIME_SECONDS = -62135596800n;

/** A Timestamp as a Date; absent, Go zero time, or out of range → undefined. */
export function timestampToDate(ts: Timestamp | undefined): Date | undefined {
  if (!ts) return undefined;
  if (ts.seconds === GO_ZERO_TIME_SECONDS && ts.nanos === 0) return undefined;
  const ms = Number(ts.seconds) * 1000 + Math.floor(ts.nanos / 1_000_000);
  const d = new Date(ms);
  return Number.isNaN(d.getTime()) ? undefined : d;
}

/** A Date as a Timestamp; undefined → Go zero time (how Go encodes a non-nullable unset time). */
export function dateToTimestamp(d: Date | undefined): Timestamp {
  if (!d) return create(TimestampSchema, { seconds: GO_ZERO_TIME_SECONDS, nanos: 0 });
  const ms = d.getTime();
  const seconds = Math.floor(ms / 1000);
  return create(TimestampSchema, {
    seconds: BigInt(seconds),
    nanos: (ms - seconds * 1000) * 1_000_000,
  });
}

const STATE_NAMES: Record<number, RequestState> = {
  [PbRequestState.NONE]: "NONE",
  [PbRequestState.PENDING]: "PENDING",
  [PbRequestState.APPROVED]: "APPROVED",
  [PbRequestState.DENIED]: "DENIED",
  [PbRequestState.PROMOTED]: "PROMOTED",
};

/** The wire enum as a state name; unknown numbers become "NONE". */
export function requestStateFromPb(s: PbRequestState): RequestState {
  return STATE_NAMES[s] ?? "NONE";
}

/** A state name as the wire enum. */
export function requestStateToPb(s: RequestState): PbRequestState {
  return PbRequestState[s];
}

/** `wrappers.LabelValues` as a map of lists. */
export function labelValuesFromPb(lv: LabelValues | undefined): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  for (const [k, v] of Object.entries(lv?.Values ?? {})) out[k] = [...(v?.Values ?? [])];
  return out;
}

/** A map of lists as `wrappers.LabelValues`. */
export function labelValuesToPb(m: Record<string, string[]> | undefined): LabelValues {
  const Values: Record<string, { Values: string[] }> = {};
  for (const [k, v] of Object.entries(m ?? {})) Values[k] = { Values: [...v] };
  return create(LabelValuesSchema, { Values });
}

/** `types.AccessReview` → {@link AccessReview}. */
export function accessReviewFromPb(r: PbAccessReview): AccessReview {
  return {
    author: r.Author,
    roles: [...r.Roles],
    proposedState: requestStateFromPb(r.ProposedState),
    reason: r.Reason,
    created: timestampToDate(r.Created),
  };
}

/** {@link AccessReview} → `types.AccessReview`. */
export function accessReviewToPb(r: AccessReview): PbAccessReview {
  return create(AccessReviewSchema, {
    Author: r.author,
    Roles: r.roles,
    ProposedState: requestStateToPb(r.proposedState),
    Reason: r.reason,
    Created: dateToTimestamp(r.created),
  });
}

function resourceIdFromPb(id: PbResourceID | undefined): ResourceId {
  return {
    clusterName: id?.ClusterName ?? "",
    kind: id?.Kind ?? "",
    name: id?.Name ?? "",
    subResourceName: id?.SubResourceName ?? "",
  };
}

function resourceIdToPb(id: ResourceId): MessageInitShape<typeof ResourceIDSchema> {
  return {
    ClusterName: id.clusterName,
    Kind: id.kind,
    Name: id.name,
    SubResourceName: id.subResourceName,
  };
}

function constraintsFromPb(c: PbResourceConstraints | undefined): ResourceConstraints | undefined {
  switch (c?.details.case) {
    case "ssh":
      return { kind: "ssh", values: [...c.details.value.logins] };
    case "windowsDesktop":
      return { kind: "windows_desktop", values: [...c.details.value.logins] };
    case "awsConsole":
      return { kind: "aws_console", values: [...c.details.value.roleArns] };
    default:
      return undefined;
  }
}

function constraintsToPb(
  c: ResourceConstraints | undefined,
): MessageInitShape<typeof ResourceConstraintsSchema> | undefined {
  switch (c?.kind) {
    case "ssh":
      return { version: "v1", details: { case: "ssh", value: { logins: c.values } } };
    case "windows_desktop":
      return { version: "v1", details: { case: "windowsDesktop", value: { logins: c.values } } };
    case "aws_console":
      return { version: "v1", details: { case: "awsConsole", value: { roleArns: c.values } } };
    default:
      return undefined;
  }
}

/**
 * The requested resources: `RequestedResourceAccessIDs` (field 26) when present, as current
 * Teleport treats it as authoritative, else `RequestedResourceIDs` (field 14) of older servers.
 */
function requestedResourcesFromPb(spec: AccessRequestV3["Spec"]): ResourceId[] {
  const access = spec?.RequestedResourceAccessIDs ?? [];
  if (access.length === 0) return (spec?.RequestedResourceIDs ?? []).map(resourceIdFromPb);
  return access.map((a) => {
    const constraints = constraintsFromPb(a.constraints);
    return constraints ? { ...resourceIdFromPb(a.id), constraints } : resourceIdFromPb(a.id);
  });
}

/**
 * The requested resources as both spec fields carry them: `RequestedResourceIDs` (field 14, for
 * older readers) and `RequestedResourceAccessIDs` (field 26, with constraints).
 */
export function requestedResourcesToPb(ids: ResourceId[]) {
  return {
    RequestedResourceIDs: ids.map(resourceIdToPb),
    RequestedResourceAccessIDs: ids.map((id) => ({
      id: resourceIdToPb(id),
      constraints: constraintsToPb(id.constraints),
    })),
  };
}

/** `types.AccessRequestV3` → {@link AccessRequest}. */
export function accessRequestFromPb(r: AccessRequestV3): AccessRequest {
  const spec = r.Spec;
  const al = spec?.AccessList;
  return {
    id: r.Metadata?.Name ?? "",
    user: spec?.User ?? "",
    roles: [...(spec?.Roles ?? [])],
    state: requestStateFromPb(spec?.State ?? PbRequestState.NONE),
    created: timestampToDate(spec?.Created),
    expires: timestampToDate(spec?.Expires),
    requestReason: spec?.RequestReason ?? "",
    resolveReason: spec?.ResolveReason ?? "",
    reviews: (spec?.Reviews ?? []).map(accessReviewFromPb),
    suggestedReviewers: [...(spec?.SuggestedReviewers ?? [])],
    systemAnnotations: labelValuesFromPb(spec?.SystemAnnotations),
    requestedResources: requestedResourcesFromPb(spec),
    promotedAccessList: al && (al.Name || al.Title)
      ? { name: al.Name, title: al.Title }
      : undefined,
  };
}

/** {@link AccessRequest} → `types.AccessRequestV3` (kind `access_request`, version `v3`). */
export function accessRequestToPb(r: AccessRequest): AccessRequestV3 {
  return create(AccessRequestV3Schema, {
    Kind: KIND_ACCESS_REQUEST,
    Version: "v3",
    Metadata: { Name: r.id, Namespace: "default" },
    Spec: {
      User: r.user,
      Roles: r.roles,
      State: requestStateToPb(r.state),
      Created: dateToTimestamp(r.created),
      Expires: dateToTimestamp(r.expires),
      RequestReason: r.requestReason,
      ResolveReason: r.resolveReason,
      Reviews: r.reviews.map(accessReviewToPb),
      SuggestedReviewers: r.suggestedReviewers,
      SystemAnnotations: labelValuesToPb(r.systemAnnotations),
      ...requestedResourcesToPb(r.requestedResources),
      AccessList: r.promotedAccessList
        ? { Name: r.promotedAccessList.name, Title: r.promotedAccessList.title }
        : undefined,
    },
  });
}

/** `teleport.accessmonitoringrules.v1.AccessMonitoringRule` → {@link AccessMonitoringRule}. */
export function accessMonitoringRuleFromPb(r: PbAccessMonitoringRule): AccessMonitoringRule {
  return {
    name: r.metadata?.name ?? "",
    subjects: [...(r.spec?.subjects ?? [])],
    states: [...(r.spec?.states ?? [])],
    condition: r.spec?.condition ?? "",
    notification: {
      name: r.spec?.notification?.name ?? "",
      recipients: [...(r.spec?.notification?.recipients ?? [])],
    },
  };
}

/** {@link AccessMonitoringRule} → wire message (kind `access_monitoring_rule`, version `v1`). */
export function accessMonitoringRuleToPb(r: AccessMonitoringRule): PbAccessMonitoringRule {
  return create(AccessMonitoringRuleSchema, {
    metadata: { name: r.name },
    kind: KIND_ACCESS_MONITORING_RULE,
    version: "v1",
    spec: {
      subjects: r.subjects,
      states: r.states,
      condition: r.condition,
      notification: { name: r.notification.name, recipients: r.notification.recipients },
    },
  });
}

/** `proto.PingResponse` → {@link PingResult}. */
export function pingFromPb(p: PingResponse): PingResult {
  return {
    clusterName: p.ClusterName,
    serverVersion: p.ServerVersion,
    proxyPublicAddr: p.ProxyPublicAddr,
    advancedAccessWorkflows: p.ServerFeatures?.AdvancedAccessWorkflows ?? false,
  };
}

/**
 * `proto.Event` → {@link WatchEvent}. INIT carries the accepted kinds when the server sent a
 * WatchStatus (undefined on old servers). PUT of an unrequested resource becomes `kind: "other"`.
 * Returns undefined for an operation number this program does not know.
 */
export function watchEventFromPb(ev: Event): WatchEvent | undefined {
  const res = ev.Resource;
  switch (ev.Type) {
    case Operation.INIT:
      return res.case === "WatchStatus"
        ? { type: "init", kinds: (res.value.Spec?.Kinds ?? []).map((k) => k.Kind) }
        : { type: "init" };
    case Operation.PUT:
      if (res.case === "AccessRequest") {
        return { type: "put", kind: KIND_ACCESS_REQUEST, request: accessRequestFromPb(res.value) };
      }
      if (res.case === "AccessMonitoringRule") {
        return {
          type: "put",
          kind: KIND_ACCESS_MONITORING_RULE,
          rule: accessMonitoringRuleFromPb(res.value),
        };
      }
      return {
        type: "put",
        kind: "other",
        resourceKind: res.case === "ResourceHeader" || res.case === "User" ||
            res.case === "WatchStatus"
          ? res.value.Kind
          : res.case ?? "unknown",
        name: res.case === "ResourceHeader" || res.case === "User"
          ? res.value.Metadata?.Name ?? ""
          : "",
      };
    case Operation.DELETE:
      if (res.case === "ResourceHeader") {
        return { type: "delete", kind: res.value.Kind, name: res.value.Metadata?.Name ?? "" };
      }
      if (res.case === "AccessRequest") {
        return { type: "delete", kind: KIND_ACCESS_REQUEST, name: res.value.Metadata?.Name ?? "" };
      }
      if (res.case === "AccessMonitoringRule") {
        return {
          type: "delete",
          kind: KIND_ACCESS_MONITORING_RULE,
          name: res.value.metadata?.name ?? "",
        };
      }
      return { type: "delete", kind: "unknown", name: "" };
    default:
      return undefined;
  }
}
