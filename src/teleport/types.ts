/**
 * Teleport resources as the rest of the program sees them: plain data, decoupled from the
 * generated protobuf classes in `gen/` (the gRPC client converts between the two).
 */

export type RequestState = "NONE" | "PENDING" | "APPROVED" | "DENIED" | "PROMOTED";

export interface AccessReview {
  author: string;
  roles: string[];
  proposedState: RequestState;
  reason: string;
  /** When the review was submitted; undefined when unset on the wire. */
  created?: Date;
}

/**
 * A resource named by a resource-based access request: `RequestedResourceAccessIDs` (field 26,
 * current Teleport) or, on older servers, `RequestedResourceIDs` (field 14).
 */
export interface ResourceId {
  clusterName: string;
  kind: string;
  name: string;
  subResourceName: string;
  /** What the request narrows access to (field 26 only); absent when unconstrained. */
  constraints?: ResourceConstraints;
}

/** `types.ResourceConstraints`: the logins or AWS role ARNs a request is limited to. */
export interface ResourceConstraints {
  kind: "ssh" | "windows_desktop" | "aws_console";
  /** Logins (`ssh`, `windows_desktop`) or role ARNs (`aws_console`). */
  values: string[];
}

export interface AccessRequest {
  /** `metadata.name`: the request ID (a UUID). */
  id: string;
  user: string;
  roles: string[];
  state: RequestState;
  created?: Date;
  /** The request's own expiry (`spec.expires`). */
  expires?: Date;
  requestReason: string;
  resolveReason: string;
  reviews: AccessReview[];
  suggestedReviewers: string[];
  systemAnnotations: Record<string, string[]>;
  requestedResources: ResourceId[];
  /** Set when the request was promoted to an Access List (`spec.access_list`). */
  promotedAccessList?: { name: string; title: string };
}

export interface AccessMonitoringRule {
  /** `metadata.name`. */
  name: string;
  subjects: string[];
  states: string[];
  condition: string;
  notification: { name: string; recipients: string[] };
}

export interface PingResult {
  clusterName: string;
  serverVersion: string;
  proxyPublicAddr: string;
  /** `ServerFeatures.AdvancedAccessWorkflows` (Enterprise): links instead of tsh commands. */
  advancedAccessWorkflows: boolean;
}

/** Teleport plugin data for one plugin on one resource: a flat string map. */
export type PluginDataMap = Record<string, string>;

export const KIND_ACCESS_REQUEST = "access_request";
export const KIND_ACCESS_MONITORING_RULE = "access_monitoring_rule";

/** One event of a `WatchEvents` stream, decoded. */
export type WatchEvent =
  /** First event of every stream. `kinds` are the accepted kinds; undefined = old server (all). */
  | { type: "init"; kinds?: string[] }
  | { type: "put"; kind: typeof KIND_ACCESS_REQUEST; request: AccessRequest }
  | { type: "put"; kind: typeof KIND_ACCESS_MONITORING_RULE; rule: AccessMonitoringRule }
  /** A PUT of a resource kind we did not ask for (logged and ignored). */
  | { type: "put"; kind: "other"; resourceKind: string; name: string }
  | { type: "delete"; kind: string; name: string };
