/**
 * {@link TeleportClient} over gRPC to the Teleport Auth Service.
 *
 * Every connection is a new stream from the `AuthDialer` (mTLS to Auth, h2 negotiated) carrying
 * an HTTP/2 session (`h2_connection.ts`); each call is one stream on it (`grpc_call.ts`), with the
 * authority `teleport.cluster.local`. No `version` metadata is sent (the Auth server then skips
 * its client version check).
 */
import {
  create,
  type DescMessage,
  fromBinary,
  type MessageInitShape,
  type MessageShape,
  toBinary,
} from "@bufbuild/protobuf";
import { EmptySchema } from "@bufbuild/protobuf/wkt";
import type { Duplex } from "node:stream";
import { errorMessage, TeleportError, type TeleportErrorKind } from "../errors.ts";
import type { CallOptions, TeleportClient } from "./client.ts";
import {
  accessMonitoringRuleFromPb,
  accessRequestFromPb,
  pingFromPb,
  requestStateToPb,
  watchEventFromPb,
} from "./convert.ts";
import {
  ListAccessMonitoringRulesWithFilterRequestSchema,
  ListAccessMonitoringRulesWithFilterResponseSchema,
} from "./gen/teleport/accessmonitoringrules/v1/access_monitoring_rules_pb.ts";
import {
  ListAccessRequestsRequestSchema,
  ListAccessRequestsResponseSchema,
  PingRequestSchema,
  PingResponseSchema,
  PluginDataSeqSchema,
  WatchSchema,
} from "./gen/teleport/legacy/client/proto/authservice_pb.ts";
import { EventSchema } from "./gen/teleport/legacy/client/proto/event_pb.ts";
import {
  AccessRequestFilterSchema,
  AccessRequestV3Schema,
  PluginDataFilterSchema,
  PluginDataUpdateParamsSchema,
  type PluginDataV3,
  RequestState as PbRequestState,
} from "./gen/teleport/legacy/types/types_pb.ts";
import { serverStreamCall, unaryCall } from "./grpc_call.ts";
import { GrpcCallError, GrpcStatus, grpcStatusName } from "./grpc_status.ts";
import { Http2Connection } from "./h2_connection.ts";
import {
  type AccessMonitoringRule,
  type AccessRequest,
  KIND_ACCESS_REQUEST,
  type PingResult,
  type PluginDataMap,
  type RequestState,
  type WatchEvent,
} from "./types.ts";

/** The TLS server name / HTTP/2 authority of the Auth Service API. */
export const TELEPORT_API_DOMAIN = "teleport.cluster.local";

const AUTH = "/proto.AuthService/";
const AMR = "/teleport.accessmonitoringrules.v1.AccessMonitoringRulesService/";

/** gRPC method paths used by the client (and served by the test Auth server). */
export const METHOD_PATHS = {
  ping: `${AUTH}Ping`,
  watchEvents: `${AUTH}WatchEvents`,
  listAccessRequests: `${AUTH}ListAccessRequests`,
  getAccessRequestsV2: `${AUTH}GetAccessRequestsV2`,
  getPluginData: `${AUTH}GetPluginData`,
  updatePluginData: `${AUTH}UpdatePluginData`,
  listAccessMonitoringRulesWithFilter: `${AMR}ListAccessMonitoringRulesWithFilter`,
} as const;

/** Role permissions the plugin's identity needs; named in access-denied hints. */
export const REQUIRED_PERMISSIONS_HINT =
  "the plugin's Teleport role needs the rules access_request: list, read; " +
  "access_plugin_data: update; access_monitoring_rule: list, read";

/** The subset of `AuthDialer` (from `dial.ts`) the client needs. */
export interface AuthDialerLike {
  /** How the connection is made: `direct`, `tls-routing`, `tls-routing-upgrade`, `tunnel`. */
  readonly mode: string;
  /** Opens a NEW mTLS socket to the Auth Service with `h2` negotiated. */
  dial(opts?: { signal?: AbortSignal }): Promise<Duplex>;
}

/** A logger with a debug level (a LogTape `Logger` fits). */
export interface DebugLogger {
  debug(message: string, properties?: Record<string, unknown>): void;
}

/** Options of {@link GrpcTeleportClient.create}. */
export interface GrpcTeleportClientOptions {
  /** Deadline of each unary call in ms (default 10 000). */
  callTimeoutMs?: number;
  /** HTTP/2 keepalive ping interval in ms (default 60 000, as the Go client). */
  keepaliveTimeMs?: number;
  /** How long to wait for a keepalive ack before dropping the connection (default 180 000). */
  keepaliveTimeoutMs?: number;
  /** Page size of `ListAccessRequests` (default 500). */
  pageSize?: number;
  /** Debug logging (fallbacks, unimplemented methods). */
  log?: DebugLogger;
  /** Rejects {@link GrpcTeleportClient.create} when already aborted. */
  signal?: AbortSignal;
}

/** Largest response message accepted (as the Go client's 64 MiB receive limit). */
const MAX_RECEIVE_LENGTH = 64 * 1024 * 1024;

const GRPC_KINDS: Record<number, TeleportErrorKind> = {
  [GrpcStatus.CANCELLED]: "canceled",
  [GrpcStatus.INVALID_ARGUMENT]: "bad_parameter",
  [GrpcStatus.DEADLINE_EXCEEDED]: "deadline_exceeded",
  [GrpcStatus.NOT_FOUND]: "not_found",
  [GrpcStatus.ALREADY_EXISTS]: "already_exists",
  [GrpcStatus.PERMISSION_DENIED]: "access_denied",
  [GrpcStatus.UNAUTHENTICATED]: "access_denied",
  [GrpcStatus.RESOURCE_EXHAUSTED]: "limit_exceeded",
  [GrpcStatus.FAILED_PRECONDITION]: "compare_failed",
  [GrpcStatus.UNIMPLEMENTED]: "not_implemented",
  [GrpcStatus.UNAVAILABLE]: "connection_problem",
};

/**
 * A gRPC failure as a {@link TeleportError} (mapping of `api/trail`): PERMISSION_DENIED →
 * `access_denied` (with a hint naming the role permissions), FAILED_PRECONDITION →
 * `compare_failed`, UNAVAILABLE → `connection_problem`, and so on.
 */
export function toTeleportError(err: unknown, method: string): TeleportError {
  if (err instanceof TeleportError) return err;
  if (!(err instanceof GrpcCallError)) {
    const msg = errorMessage(err);
    return new TeleportError("unknown", `Teleport call "${method}" failed: ${msg}`, { cause: err });
  }
  const kind = GRPC_KINDS[err.code] ?? "unknown";
  const codeName = grpcStatusName(err.code);
  const details = err.details || err.message;
  return new TeleportError(kind, `Teleport call "${method}" failed (${codeName}): ${details}`, {
    cause: err,
    grpcCode: err.code,
    hint: kind === "access_denied" ? REQUIRED_PERMISSIONS_HINT : undefined,
  });
}

function methodName(path: string): string {
  return path.slice(path.lastIndexOf("/") + 1);
}

/** {@link TeleportClient} over gRPC. Build with {@link GrpcTeleportClient.create}. */
export class GrpcTeleportClient implements TeleportClient {
  readonly connectionMode: string;
  readonly #conn: Http2Connection;
  readonly #callTimeoutMs: number;
  readonly #pageSize: number;
  readonly #log?: DebugLogger;

  private constructor(dialer: AuthDialerLike, opts: GrpcTeleportClientOptions) {
    this.connectionMode = dialer.mode;
    this.#callTimeoutMs = opts.callTimeoutMs ?? 10_000;
    this.#pageSize = opts.pageSize ?? 500;
    this.#log = opts.log;
    this.#conn = new Http2Connection((o) => dialer.dial(o), {
      authority: TELEPORT_API_DOMAIN,
      keepaliveTimeMs: opts.keepaliveTimeMs,
      keepaliveTimeoutMs: opts.keepaliveTimeoutMs,
    });
  }

  /** Creates the client; nothing is opened (no connection, no listener) until the first call. */
  static create(
    dialer: AuthDialerLike,
    opts: GrpcTeleportClientOptions = {},
  ): Promise<GrpcTeleportClient> {
    if (opts.signal?.aborted) return Promise.reject(opts.signal.reason);
    return Promise.resolve(new GrpcTeleportClient(dialer, opts));
  }

  /** Number of connections (dialer streams) opened so far. */
  get connectionsOpened(): number {
    return this.#conn.opened;
  }

  async #unary<I extends DescMessage, O extends DescMessage>(
    path: string,
    input: I,
    output: O,
    req: MessageInitShape<I>,
    opts: CallOptions = {},
  ): Promise<MessageShape<O>> {
    const method = methodName(path);
    if (this.#conn.closed) {
      throw new TeleportError("canceled", `Teleport call "${method}" failed: client is closed`);
    }
    if (opts.signal?.aborted) {
      throw new TeleportError("canceled", `Teleport call "${method}" canceled`, {
        cause: opts.signal.reason,
      });
    }
    try {
      const response = await unaryCall(this.#conn, path, toBinary(input, create(input, req)), {
        deadlineMs: this.#callTimeoutMs,
        signal: opts.signal,
        maxReceiveLength: MAX_RECEIVE_LENGTH,
      });
      return fromBinary(output, response);
    } catch (err) {
      throw toTeleportError(err, method);
    }
  }

  /** Runs a server-streaming call and yields each message; errors become TeleportErrors. */
  async *#stream<I extends DescMessage, O extends DescMessage>(
    path: string,
    input: I,
    output: O,
    req: MessageInitShape<I>,
    opts: CallOptions & { deadlineMs?: number } = {},
  ): AsyncGenerator<MessageShape<O>, void> {
    const method = methodName(path);
    if (this.#conn.closed) {
      throw new TeleportError("canceled", `Teleport call "${method}" failed: client is closed`);
    }
    if (opts.signal?.aborted) return;
    const responses = serverStreamCall(this.#conn, path, toBinary(input, create(input, req)), {
      deadlineMs: opts.deadlineMs,
      signal: opts.signal,
      maxReceiveLength: MAX_RECEIVE_LENGTH,
    });
    try {
      for await (const response of responses) yield fromBinary(output, response);
    } catch (err) {
      if (opts.signal?.aborted) return;
      if (this.#conn.closed) {
        throw new TeleportError("canceled", `Teleport call "${method}" canceled: client closed`);
      }
      throw toTeleportError(err, method);
    }
  }

  async ping(opts: CallOptions = {}): Promise<PingResult> {
    const res = await this.#unary(
      METHOD_PATHS.ping,
      PingRequestSchema,
      PingResponseSchema,
      {},
      opts,
    );
    return pingFromPb(res);
  }

  async *watchEvents(kinds: string[], opts: CallOptions = {}): AsyncIterable<WatchEvent> {
    const stream = this.#stream(METHOD_PATHS.watchEvents, WatchSchema, EventSchema, {
      Kinds: kinds.map((Kind) => ({ Kind })),
      AllowPartialSuccess: true,
    }, opts);
    for await (const ev of stream) {
      const converted = watchEventFromPb(ev);
      if (converted) yield converted;
      else this.#log?.debug("Ignoring watch event with unknown operation", { operation: ev.Type });
    }
    if (opts.signal?.aborted) return;
    throw new TeleportError("connection_problem", "Teleport event stream closed by the server");
  }

  async listAccessRequests(
    opts: CallOptions & { state?: RequestState; limit?: number } = {},
  ): Promise<AccessRequest[]> {
    const Filter = { State: opts.state ? requestStateToPb(opts.state) : PbRequestState.NONE };
    const out: AccessRequest[] = [];
    let startKey = "";
    try {
      for (let page = 0; page < 100_000; page++) {
        const res = await this.#unary(
          METHOD_PATHS.listAccessRequests,
          ListAccessRequestsRequestSchema,
          ListAccessRequestsResponseSchema,
          { Filter, Limit: opts.limit ?? this.#pageSize, StartKey: startKey },
          opts,
        );
        out.push(...res.AccessRequests.map(accessRequestFromPb));
        if (opts.limit !== undefined) return out.slice(0, opts.limit);
        if (!res.NextKey || res.NextKey === startKey) return out;
        startKey = res.NextKey;
      }
      return out;
    } catch (err) {
      if (!(err instanceof TeleportError) || err.kind !== "not_implemented") throw err;
      this.#log?.debug(
        "ListAccessRequests is not implemented, falling back to GetAccessRequestsV2",
      );
    }
    const all: AccessRequest[] = [];
    const stream = this.#stream(
      METHOD_PATHS.getAccessRequestsV2,
      AccessRequestFilterSchema,
      AccessRequestV3Schema,
      Filter,
      { ...opts, deadlineMs: this.#callTimeoutMs * 6 },
    );
    for await (const r of stream) all.push(accessRequestFromPb(r));
    return all;
  }

  async #getPluginData(
    resource: string,
    plugin: string,
    opts: CallOptions,
  ): Promise<PluginDataV3[]> {
    try {
      const seq = await this.#unary(
        METHOD_PATHS.getPluginData,
        PluginDataFilterSchema,
        PluginDataSeqSchema,
        { Kind: KIND_ACCESS_REQUEST, Resource: resource, Plugin: plugin },
        opts,
      );
      return seq.PluginData;
    } catch (err) {
      if (err instanceof TeleportError && err.kind === "not_found") return [];
      throw err;
    }
  }

  async getPluginData(
    requestId: string,
    plugin: string,
    opts: CallOptions = {},
  ): Promise<PluginDataMap | undefined> {
    const seq = await this.#getPluginData(requestId, plugin, opts);
    for (const pd of seq) {
      if (pd.Metadata && pd.Metadata.Name !== requestId) continue;
      const entry = pd.Spec?.Entries[plugin];
      if (entry) return { ...entry.Data };
    }
    return undefined;
  }

  async listPluginData(
    plugin: string,
    opts: CallOptions = {},
  ): Promise<Array<{ requestId: string; data: PluginDataMap }>> {
    const seq = await this.#getPluginData("", plugin, opts);
    const out: Array<{ requestId: string; data: PluginDataMap }> = [];
    for (const pd of seq) {
      const entry = pd.Spec?.Entries[plugin];
      if (entry && pd.Metadata?.Name) {
        out.push({ requestId: pd.Metadata.Name, data: { ...entry.Data } });
      }
    }
    return out;
  }

  async updatePluginData(
    requestId: string,
    plugin: string,
    set: PluginDataMap,
    expect: PluginDataMap,
    opts: CallOptions = {},
  ): Promise<void> {
    await this.#unary(METHOD_PATHS.updatePluginData, PluginDataUpdateParamsSchema, EmptySchema, {
      Kind: KIND_ACCESS_REQUEST,
      Resource: requestId,
      Plugin: plugin,
      Set: set,
      Expect: expect,
    }, opts);
  }

  async listAccessMonitoringRules(
    plugin: string,
    opts: CallOptions = {},
  ): Promise<AccessMonitoringRule[]> {
    const out: AccessMonitoringRule[] = [];
    let token = "";
    try {
      for (let page = 0; page < 100_000; page++) {
        const res = await this.#unary(
          METHOD_PATHS.listAccessMonitoringRulesWithFilter,
          ListAccessMonitoringRulesWithFilterRequestSchema,
          ListAccessMonitoringRulesWithFilterResponseSchema,
          {
            pageSize: 1000n,
            pageToken: token,
            subjects: [KIND_ACCESS_REQUEST],
            notificationName: plugin,
          },
          opts,
        );
        out.push(...res.rules.map(accessMonitoringRuleFromPb));
        if (!res.nextPageToken || res.nextPageToken === token) break;
        token = res.nextPageToken;
      }
    } catch (err) {
      if (err instanceof TeleportError && err.kind === "not_implemented") {
        this.#log?.debug("Access monitoring rules are not supported by the Auth server", {
          error: err.message,
        });
        return [];
      }
      throw err;
    }
    return out;
  }

  close(): void {
    this.#conn.close();
  }
}
