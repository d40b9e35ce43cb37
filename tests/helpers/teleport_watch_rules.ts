/**
 * How Teleport's Auth server answers a `WatchEvents` request and shapes DELETE events, for the test
 * server (`teleport_server.ts`). Sources (gravitational/teleport):
 * - `lib/auth/auth_with_roles.go` `authorizeWatchRequest`: no kinds → "can't setup global watch";
 *   a kind that fails its checks is dropped with `AllowPartialSuccess`, else fails the watch;
 *   nothing left → BadParameter "none of the requested kinds can be watched";
 * - `hasWatchPermissionForKind`: an `access_request` kind's `Filter` must parse
 *   (`AccessRequestFilter.FromMap`: keys `id`, `user`, `state`) before the permission check;
 * - `lib/services/local/events.go`: INIT carries `WatchStatus` with the accepted `WatchKind`s as
 *   requested; the access request parser drops PUTs that do not match the filter; DELETE carries
 *   a `ResourceHeader` (`resourceHeader()`: kind, version `v3` for access requests and `v1` for
 *   access monitoring rules, namespace `default`).
 *
 * @module
 */
import * as grpc from "@grpc/grpc-js";
import { create } from "@bufbuild/protobuf";
import type { Watch } from "../../src/teleport/gen/teleport/legacy/client/proto/authservice_pb.ts";
import {
  type Event,
  EventSchema,
  Operation,
} from "../../src/teleport/gen/teleport/legacy/client/proto/event_pb.ts";
import {
  type AccessRequestV3,
  RequestState as PbRequestState,
  type WatchKind,
} from "../../src/teleport/gen/teleport/legacy/types/types_pb.ts";
import { KIND_ACCESS_MONITORING_RULE, KIND_ACCESS_REQUEST } from "../../src/teleport/types.ts";

/** A gRPC failure as grpc-js sends it. */
export type RpcFailure = Error & Partial<grpc.StatusObject>;

function failure(code: grpc.status, details: string): RpcFailure {
  return Object.assign(new Error(details), { code, details, metadata: new grpc.Metadata() });
}

/** Teleport's `AccessRequestFilter` (all fields optional). */
export interface AccessRequestWatchFilter {
  id?: string;
  user?: string;
  state?: PbRequestState;
}

/** `AccessRequestFilter.FromMap`: the filter, or BadParameter for an unknown key or state. */
export function accessRequestFilterFromMap(
  m: Record<string, string>,
): AccessRequestWatchFilter | RpcFailure {
  const f: AccessRequestWatchFilter = {};
  for (const [key, value] of Object.entries(m)) {
    if (key === "id") f.id = value;
    else if (key === "user") f.user = value;
    else if (key === "state") {
      const state = PbRequestState[value as keyof typeof PbRequestState];
      if (typeof state !== "number") {
        return failure(grpc.status.INVALID_ARGUMENT, `unknown request state: "${value}"`);
      }
      f.state = state;
    } else return failure(grpc.status.INVALID_ARGUMENT, `unknown filter key ${key}`);
  }
  return f;
}

/** `AccessRequestFilter.Match`. */
export function accessRequestFilterMatches(
  f: AccessRequestWatchFilter,
  r: AccessRequestV3,
): boolean {
  if (f.id && r.Metadata?.Name !== f.id) return false;
  if (f.user && r.Spec?.User !== f.user) return false;
  if (f.state && r.Spec?.State !== f.state) return false;
  return true;
}

/** One accepted kind of a watch, with its parsed access request filter. */
export interface AcceptedWatchKind {
  kind: WatchKind;
  requestFilter?: AccessRequestWatchFilter;
}

/** Why the caller may not read a kind (its `message`), or undefined when it may. */
export type WatchDenial = (kind: string) => { message: string } | undefined;

function checkKind(kind: WatchKind, denial: WatchDenial): AcceptedWatchKind | RpcFailure {
  let requestFilter: AccessRequestWatchFilter | undefined;
  if (kind.Kind === KIND_ACCESS_REQUEST) {
    const f = accessRequestFilterFromMap(kind.Filter);
    if (f instanceof Error) return f;
    requestFilter = f;
  }
  const denied = denial(kind.Kind);
  if (denied) return failure(grpc.status.PERMISSION_DENIED, denied.message);
  return { kind, requestFilter };
}

/**
 * `authorizeWatchRequest`: the kinds a watch gets, or the failure that ends it. `denial` says why
 * the caller may not read a kind (the server's role check).
 */
export function authorizeWatch(
  watch: Watch,
  denial: WatchDenial,
): AcceptedWatchKind[] | RpcFailure {
  if (watch.Kinds.length === 0) {
    return failure(grpc.status.PERMISSION_DENIED, "can't setup global watch");
  }
  const accepted: AcceptedWatchKind[] = [];
  for (const kind of watch.Kinds) {
    const checked = checkKind(kind, denial);
    if (!(checked instanceof Error)) accepted.push(checked);
    else if (!watch.AllowPartialSuccess) return checked;
  }
  if (accepted.length === 0) {
    return failure(grpc.status.INVALID_ARGUMENT, "none of the requested kinds can be watched");
  }
  return accepted;
}

/** The `ResourceHeader` version of a DELETE event of `kind` (`events.go` parsers). */
export function deleteHeaderVersion(kind: string): string {
  return kind === KIND_ACCESS_MONITORING_RULE ? "v1" : "v3";
}

/** A DELETE event as Teleport sends it: a ResourceHeader with version and namespace `default`. */
export function deleteEvent(kind: string, name: string): Event {
  return create(EventSchema, {
    Type: Operation.DELETE,
    Resource: {
      case: "ResourceHeader",
      value: {
        Kind: kind,
        Version: deleteHeaderVersion(kind),
        Metadata: { Name: name, Namespace: "default" },
      },
    },
  });
}

/**
 * The INIT event: `types.NewWatchStatus(kinds)` (kind `watch_status`, name `watch-status`) with the
 * accepted kinds exactly as requested, or no resource at all (`legacy`: servers older than partial
 * success).
 */
export function initEvent(kinds: WatchKind[], legacy = false): Event {
  return create(EventSchema, {
    Type: Operation.INIT,
    Resource: legacy ? { case: undefined } : {
      case: "WatchStatus",
      value: {
        Kind: "watch_status",
        Version: "v1",
        Metadata: { Name: "watch-status" },
        Spec: { Kinds: kinds },
      },
    },
  });
}
