/**
 * A test Teleport Auth Service: the gRPC API an Access Request plugin uses, over mutual TLS, with
 * an in-memory store and an in-process admin API. Test-only (also used by the demo script and
 * benchmarks); runs under Deno.
 *
 * Transport: a `node:tls` server with `requestCert: true, rejectUnauthorized: false` that checks
 * the client certificate itself against the test user CA (grpc-js's own mTLS server does not work
 * under Deno: Deno's `node:tls` server cannot require client certificates itself) and hands accepted sockets to a grpc-js server through
 * `createConnectionInjector`. Like Teleport, a connection WITHOUT a client certificate is accepted
 * and its caller is "Nop": every RPC is PERMISSION_DENIED (knob `noCertPolicy: "reject"` closes
 * such connections instead). A certificate from a foreign CA, or an expired one, is rejected at
 * TLS level (the socket is destroyed).
 *
 * Authorization: a caller must hold one of `pluginRoles` (default `access-plugin`), else every RPC
 * is denied. Such a caller then has the rules of `role` (default: the Teleport guide's role),
 * checked per kind and verb as Teleport does (see `teleport_rbac.ts` and {@link
 * TeleportTestServer.role}); kinds listed in `deniedKinds` have no rule at all.
 *
 * Semantics follow Teleport: plugin data compare-and-swap (`lib/services/local/dynamic_access.go`,
 * `PluginDataV3.Update`), review thresholds, DELETE events carrying a ResourceHeader, plugin data
 * that outlives its request.
 */
import * as grpc from "@grpc/grpc-js";
import { clone, create } from "@bufbuild/protobuf";
import { EmptySchema } from "@bufbuild/protobuf/wkt";
import tls from "node:tls";
import type http2 from "node:http2";
import { Buffer } from "node:buffer";
import type net from "node:net";
import crypto from "node:crypto";
import type { TestCertificateAuthority } from "./ca.ts";
import {
  accessMonitoringRuleFromPb,
  accessMonitoringRuleToPb,
  accessRequestFromPb,
  dateToTimestamp,
  labelValuesToPb,
  requestedResourcesToPb,
  requestStateToPb,
} from "../../src/teleport/convert.ts";
import { grpcServiceDefinition } from "./grpc_transport.ts";
import { guardHttp2GoawayDestroy } from "../../src/teleport/http2_goaway_guard.ts";
import {
  accessRequestFilterMatches,
  type AccessRequestWatchFilter,
  authorizeWatch,
  deleteEvent,
  initEvent,
} from "./teleport_watch_rules.ts";
import { AccessMonitoringRulesService } from "../../src/teleport/gen/teleport/accessmonitoringrules/v1/access_monitoring_rules_service_pb.ts";
import {
  type AccessMonitoringRule as PbRule,
  type ListAccessMonitoringRulesWithFilterRequest,
  ListAccessMonitoringRulesWithFilterResponseSchema,
} from "../../src/teleport/gen/teleport/accessmonitoringrules/v1/access_monitoring_rules_pb.ts";
import {
  AuthService,
  type ListAccessRequestsRequest,
  ListAccessRequestsResponseSchema,
  PingResponseSchema,
  PluginDataSeqSchema,
  type RequestStateSetter,
  type Watch,
} from "../../src/teleport/gen/teleport/legacy/client/proto/authservice_pb.ts";
import {
  type Event,
  EventSchema,
  Operation,
} from "../../src/teleport/gen/teleport/legacy/client/proto/event_pb.ts";
import {
  type AccessRequestFilter,
  type AccessRequestV3,
  AccessRequestV3Schema,
  type AccessReviewSubmission,
  type PluginDataFilter,
  PluginDataSpecV3Schema,
  type PluginDataUpdateParams,
  PluginDataV3Schema,
  RequestState as PbRequestState,
} from "../../src/teleport/gen/teleport/legacy/types/types_pb.ts";
import type {
  AccessMonitoringRule,
  AccessRequest,
  PluginDataMap,
  RequestState,
  ResourceId,
} from "../../src/teleport/types.ts";
import { KIND_ACCESS_MONITORING_RULE, KIND_ACCESS_REQUEST } from "../../src/teleport/types.ts";
import {
  checkAction,
  type Denial,
  GUIDE_ROLE,
  type TestRole,
  withoutKinds,
} from "./teleport_rbac.ts";

/** RPC names served (keys of {@link TeleportTestServer.calls}, targets of `injectError`). */
export type TestServerMethod =
  | "Ping"
  | "WatchEvents"
  | "ListAccessRequests"
  | "GetAccessRequestsV2"
  | "GetPluginData"
  | "UpdatePluginData"
  | "SetAccessRequestState"
  | "SubmitAccessReview"
  | "ListAccessMonitoringRules"
  | "ListAccessMonitoringRulesWithFilter";

/** Options of {@link TeleportTestServer.start}. */
export interface TeleportTestServerOptions {
  /** Issues the server certificate and verifies client certificates. */
  ca: TestCertificateAuthority;
  /** Listen address; default 127.0.0.1 (loopback only). */
  host?: string;
  /** Listen port; default 0 (any free port). */
  port?: number;
  /** Ping `ClusterName`; default the CA's cluster name. */
  clusterName?: string;
  /** Ping `ServerVersion`; default `18.2.0`. */
  serverVersion?: string;
  /** Ping `ProxyPublicAddr`; default `teleport.example.com:443`. */
  proxyPublicAddr?: string;
  /** Ping `ServerFeatures.AdvancedAccessWorkflows`; default false. */
  advancedAccessWorkflows?: boolean;
  /** Roles that authorize a caller (any one suffices); default `["access-plugin"]`. */
  pluginRoles?: string[];
  /** Kinds the plugin role may not read/list (e.g. `access_monitoring_rule`). */
  deniedKinds?: string[];
  /** Rules of the plugin's role (any of `pluginRoles`); default {@link GUIDE_ROLE}. */
  role?: TestRole;
  /** `"nop"` (default, like Teleport): accept, every RPC denied. `"reject"`: close at TLS. */
  noCertPolicy?: "nop" | "reject";
  /** Delay before the INIT event of each watch, ms (default 0). */
  initDelayMs?: number;
  /** Never send INIT (watch streams stay silent). */
  sendInit?: boolean;
  /** Send INIT without a WatchStatus resource (servers older than partial success). */
  legacyInit?: boolean;
  /** ListAccessRequests returns UNIMPLEMENTED (older servers; clients use GetAccessRequestsV2). */
  listAccessRequestsUnimplemented?: boolean;
  /** Ping returns UNIMPLEMENTED (a server too old for plugins). */
  pingUnimplemented?: boolean;
  /** The access monitoring rules service is absent (UNIMPLEMENTED). */
  rulesUnimplemented?: boolean;
  /** Maximum page size of ListAccessRequests (the request's Limit is capped to it); default 1000. */
  maxPageSize?: number;
}

/** A client connection as seen by the server. */
export interface SeenConnection {
  /** `host:port` of the client. */
  peer: string;
  /** Teleport user (certificate CN); "" for a connection without certificate. */
  user: string;
  roles: string[];
  /** Client certificate serial number (hex), "" without certificate. */
  serial: string;
  /** Client certificate subject CN, "" without certificate. */
  cn: string;
}

/** The spec fields that carry the requested resources, as {@link CreateAccessRequestInput} asks. */
function requestedResourceFields(input: CreateAccessRequestInput) {
  const pb = requestedResourcesToPb(input.requestedResources ?? []);
  const fields = input.resourceFields ?? "both";
  return {
    RequestedResourceIDs: fields === "26" ? [] : pb.RequestedResourceIDs,
    RequestedResourceAccessIDs: fields === "14" ? [] : pb.RequestedResourceAccessIDs,
  };
}

/** Arguments of {@link TeleportTestServer.createAccessRequest}. */
export interface CreateAccessRequestInput {
  user: string;
  roles: string[];
  reason?: string;
  suggestedReviewers?: string[];
  /** Review thresholds; default approve 1, deny 1. */
  thresholds?: { approve: number; deny: number };
  requestedResources?: ResourceId[];
  /**
   * Which spec fields carry `requestedResources`: `RequestedResourceIDs` (14, older Teleport),
   * `RequestedResourceAccessIDs` (26, current Teleport), or both (default).
   */
  resourceFields?: "14" | "26" | "both";
  systemAnnotations?: Record<string, string[]>;
  /** Request ID; default a random UUID. */
  id?: string;
  /** Request expiry; default one hour from now. */
  expires?: Date;
}

interface StoredPluginData {
  entries: Map<string, Record<string, string>>;
  expires?: Date;
}

interface Identity {
  user: string;
  roles: string[];
}

interface Watcher {
  call: grpc.ServerWritableStream<Watch, Event>;
  kinds: Set<string>;
  /** The `access_request` kind's filter (PUTs that do not match are not sent). */
  requestFilter?: AccessRequestWatchFilter;
  ready: boolean;
  ended: boolean;
}

interface InjectedError {
  code: grpc.status;
  count: number;
  message: string;
}

const NOP: Identity = { user: "", roles: [] };

function grpcError(code: grpc.status, details: string): Partial<grpc.StatusObject> {
  return { code, details, metadata: new grpc.Metadata() };
}

function rpcFailure(code: grpc.status, details: string): Error & Partial<grpc.StatusObject> {
  return Object.assign(new Error(details), grpcError(code, details));
}

/**
 * The test Auth server. Start with {@link TeleportTestServer.start}; always {@link close} it.
 */
export class TeleportTestServer {
  /** `127.0.0.1:<port>`: the address to configure as `teleport.addr` (direct mode). */
  addr: string;
  readonly port: number;
  readonly ca: TestCertificateAuthority;
  /** RPC calls received per method (including denied and injected failures). */
  readonly calls: Record<TestServerMethod, number> = {
    Ping: 0,
    WatchEvents: 0,
    ListAccessRequests: 0,
    GetAccessRequestsV2: 0,
    GetPluginData: 0,
    UpdatePluginData: 0,
    SetAccessRequestState: 0,
    SubmitAccessReview: 0,
    ListAccessMonitoringRules: 0,
    ListAccessMonitoringRulesWithFilter: 0,
  };
  /** Every accepted TLS connection, in order (client certificate identity, serial, CN). */
  readonly connections: SeenConnection[] = [];
  /** Connections rejected at TLS level (foreign CA, expired, or no certificate with "reject"). */
  rejectedConnections = 0;

  clusterName: string;
  serverVersion: string;
  proxyPublicAddr: string;
  advancedAccessWorkflows: boolean;
  pluginRoles: string[];
  deniedKinds: string[];
  /**
   * Rules of the plugin's role, enforced per RPC as Teleport does: WatchEvents needs `read` on
   * each kind; ListAccessRequests `list`+`read` on `access_request` (without them, and without a
   * deny rule, only the caller's own requests are returned, with no error); GetPluginData `list`
   * and `read` on `access_request` or `access_plugin_data`; UpdatePluginData `update` on either;
   * the rules service `read`+`list` on `access_monitoring_rule`. SubmitAccessReview and
   * SetAccessRequestState (the tests' reviewer actions) are not checked.
   */
  role: TestRole;
  noCertPolicy: "nop" | "reject";
  initDelayMs: number;
  sendInit: boolean;
  legacyInit: boolean;
  listAccessRequestsUnimplemented: boolean;
  pingUnimplemented: boolean;
  rulesUnimplemented: boolean;
  maxPageSize: number;

  readonly #host: string;
  readonly #grpc: grpc.Server;
  readonly #injector: ReturnType<grpc.Server["createConnectionInjector"]>;
  readonly #h2Sessions: Set<http2.ServerHttp2Session>;
  readonly #tlsOptions: tls.TlsOptions;
  #tls?: tls.Server;
  readonly #sockets = new Set<tls.TLSSocket>();
  readonly #identities = new Map<string, Identity>();
  readonly #requests = new Map<string, AccessRequestV3>();
  readonly #pluginData = new Map<string, StoredPluginData>();
  readonly #rules = new Map<string, PbRule>();
  readonly #watchers = new Set<Watcher>();
  readonly #errors = new Map<string, InjectedError>();
  readonly #hangs = new Map<
    string,
    { count: number; pending: Array<grpc.sendUnaryData<unknown>> }
  >();
  #paused = false;
  readonly #pausedEvents: Array<{ kind: string; event: Event }> = [];
  #closed = false;

  private constructor(
    opts: TeleportTestServerOptions,
    tlsOptions: tls.TlsOptions,
  ) {
    this.ca = opts.ca;
    this.#host = opts.host ?? "127.0.0.1";
    this.port = 0;
    this.addr = "";
    this.clusterName = opts.clusterName ?? opts.ca.clusterName;
    this.serverVersion = opts.serverVersion ?? "18.2.0";
    this.proxyPublicAddr = opts.proxyPublicAddr ?? "teleport.example.com:443";
    this.advancedAccessWorkflows = opts.advancedAccessWorkflows ?? false;
    this.pluginRoles = opts.pluginRoles ?? ["access-plugin"];
    this.deniedKinds = opts.deniedKinds ?? [];
    this.role = opts.role ?? GUIDE_ROLE;
    this.noCertPolicy = opts.noCertPolicy ?? "nop";
    this.initDelayMs = opts.initDelayMs ?? 0;
    this.sendInit = opts.sendInit ?? true;
    this.legacyInit = opts.legacyInit ?? false;
    this.listAccessRequestsUnimplemented = opts.listAccessRequestsUnimplemented ?? false;
    this.pingUnimplemented = opts.pingUnimplemented ?? false;
    this.rulesUnimplemented = opts.rulesUnimplemented ?? false;
    this.maxPageSize = opts.maxPageSize ?? 1000;
    this.#tlsOptions = tlsOptions;
    // A client closing its channel sends GOAWAY; without the guard Deno 2.9.6 can abort this whole
    // process (the test runner) while the server session handles it (denoland/deno#36788).
    if (!guardHttp2GoawayDestroy()) throw new Error("node:http2 GOAWAY guard not installed");
    this.#grpc = new grpc.Server({
      // Keepalive pings from clients every 60 s (or faster in tests) are fine.
      "grpc.keepalive_permit_without_calls": 1,
      "grpc.http2.min_ping_interval_without_data_ms": 100,
      "grpc.http2.min_time_between_pings_ms": 100,
    } as grpc.ServerOptions);
    this.#grpc.addService(grpcServiceDefinition(AuthService), this.#authHandlers());
    this.#grpc.addService(
      grpcServiceDefinition(AccessMonitoringRulesService),
      this.#ruleHandlers(),
    );
    this.#injector = this.#grpc.createConnectionInjector(grpc.ServerCredentials.createInsecure());
    this.#h2Sessions = injectorSessions(this.#grpc);
  }

  /** Starts the server (TLS listener on `host:port`) and returns it. */
  static async start(opts: TeleportTestServerOptions): Promise<TeleportTestServer> {
    const cert = await opts.ca.issueServerCert();
    const server = new TeleportTestServer(opts, {
      key: cert.keyPem,
      cert: cert.certPem,
      requestCert: true,
      rejectUnauthorized: false,
      ALPNProtocols: ["h2"],
    });
    await server.#listen(opts.port ?? 0);
    return server;
  }

  #listen(port: number): Promise<void> {
    const server = tls.createServer(this.#tlsOptions, (s) => this.#accept(s));
    // No Nagle (Go's default): small HTTP/2 frames otherwise wait for the client's delayed ACK.
    server.on("connection", (s: net.Socket) => s.setNoDelay(true));
    server.on("tlsClientError", () => this.rejectedConnections++);
    this.#tls = server;
    return new Promise((resolve, reject) => {
      server.once("error", reject);
      server.listen(port, this.#host, () => {
        server.off("error", reject);
        const p = (server.address() as net.AddressInfo).port;
        (this as { port: number }).port = p;
        this.addr = `${this.#host}:${p}`;
        resolve();
      });
    });
  }

  #accept(socket: tls.TLSSocket): void {
    const peer = socket.getPeerCertificate();
    let identity: Identity;
    let serial = "", cn = "";
    if (!peer || !peer.raw) {
      if (this.noCertPolicy === "reject") {
        this.rejectedConnections++;
        socket.destroy();
        return;
      }
      identity = NOP;
    } else {
      const v = this.ca.verifyClientCert(new Uint8Array(peer.raw));
      if ("error" in v) {
        this.rejectedConnections++;
        socket.destroy();
        return;
      }
      identity = v;
      serial = peer.serialNumber ?? "";
      cn = typeof peer.subject?.CN === "string" ? peer.subject.CN : String(peer.subject?.CN ?? "");
    }
    const key = `${socket.remoteAddress}:${socket.remotePort}`;
    this.#identities.set(key, identity);
    this.connections.push({ peer: key, user: identity.user, roles: identity.roles, serial, cn });
    this.#sockets.add(socket);
    socket.once("close", () => {
      this.#sockets.delete(socket);
      this.#identities.delete(key);
    });
    socket.on("error", () => {});
    this.#injector.injectConnection(socket);
  }

  // ------------------------------------------------------------------------------------------
  // Knobs

  /** Makes the next `count` calls of `method` fail with `code` (before authorization). */
  injectError(method: TestServerMethod, code: grpc.status, count = 1, message?: string): void {
    this.#errors.set(method, { code, count, message: message ?? `injected ${grpc.status[code]}` });
  }

  /**
   * Leaves calls of a unary `method` unanswered (the client sees its deadline pass) until
   * `release()`, which fails them with UNAVAILABLE. Applies to the next `count` calls (default all).
   */
  hangNext(method: TestServerMethod, count = Infinity): { release(): void } {
    const hang = { count, pending: [] as Array<grpc.sendUnaryData<unknown>> };
    this.#hangs.set(method, hang);
    return {
      release: () => {
        if (this.#hangs.get(method) === hang) this.#hangs.delete(method);
        for (const cb of hang.pending.splice(0)) {
          cb(rpcFailure(grpc.status.UNAVAILABLE, "released"));
        }
      },
    };
  }

  /** Ends every open watch stream with UNAVAILABLE. */
  dropStreams(): void {
    for (const w of this.#watchers) this.#endWatcher(w, grpc.status.UNAVAILABLE, "watcher dropped");
  }

  /** Ends every open watch stream normally (status OK, what a client sees as EOF). */
  endStreams(): void {
    for (const w of [...this.#watchers]) {
      if (w.ended) continue;
      w.ended = true;
      this.#watchers.delete(w);
      w.call.end();
    }
  }

  /** Closes every client connection (the listener stays up; clients reconnect). */
  dropConnections(): void {
    this.dropStreams();
    for (const s of this.#sockets) s.destroy();
  }

  /**
   * Sends GOAWAY on every client connection, as Go's gRPC server does: NO_ERROR (the default) when
   * it drains its connections (graceful stop, max connection age), ENHANCE_YOUR_CALM (11) with
   * `debugData: "too_many_pings"` when a client pings too often. `lastStreamId` defaults to
   * 2^31-1 (the first GOAWAY of Go's graceful shutdown); 0 means the last stream the server
   * processed. Connections stay open and open streams go on, as in Go. Returns the count.
   */
  goAway(opts: { code?: number; lastStreamId?: number; debugData?: string } = {}): number {
    let n = 0;
    for (const s of this.#h2Sessions) {
      if (s.closed || s.destroyed) continue;
      const data = opts.debugData === undefined ? undefined : Buffer.from(opts.debugData);
      s.goaway(opts.code ?? 0, opts.lastStreamId ?? 0x7fffffff, data);
      n++;
    }
    return n;
  }

  /** Number of open watch streams. */
  get openWatchers(): number {
    return this.#watchers.size;
  }

  /** `true`: hold back events (streams stall); `false`: deliver the held events in order. */
  pauseEvents(paused: boolean): void {
    this.#paused = paused;
    if (!paused) {
      const held = this.#pausedEvents.splice(0);
      for (const e of held) this.#broadcast(e.kind, e.event);
    }
  }

  /** Closes the listener and every connection (the store is kept). */
  async stop(): Promise<void> {
    this.dropStreams();
    const server = this.#tls;
    this.#tls = undefined;
    for (const s of this.#sockets) s.destroy();
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  /** Listens again on the same port after {@link stop}. */
  async restart(): Promise<void> {
    if (this.#tls) return;
    await this.#listen(this.port);
  }

  /** Stops everything; the server cannot be restarted. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    for (const h of this.#hangs.values()) {
      for (const cb of h.pending.splice(0)) cb(rpcFailure(grpc.status.UNAVAILABLE, "closed"));
    }
    await this.stop();
    this.#grpc.forceShutdown();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  // ------------------------------------------------------------------------------------------
  // Admin API (in-process)

  /** Creates a PENDING access request and emits a PUT. Returns the stored request. */
  createAccessRequest(input: CreateAccessRequestInput): AccessRequest {
    const id = input.id ?? crypto.randomUUID();
    const now = new Date();
    const req = create(AccessRequestV3Schema, {
      Kind: KIND_ACCESS_REQUEST,
      Version: "v3",
      Metadata: { Name: id, Namespace: "default" },
      Spec: {
        User: input.user,
        Roles: input.roles,
        State: PbRequestState.PENDING,
        Created: dateToTimestamp(now),
        Expires: dateToTimestamp(input.expires ?? new Date(now.getTime() + 3_600_000)),
        RequestReason: input.reason ?? "",
        SuggestedReviewers: input.suggestedReviewers ?? [],
        SystemAnnotations: labelValuesToPb(input.systemAnnotations),
        Thresholds: [{
          Name: "default",
          Approve: input.thresholds?.approve ?? 1,
          Deny: input.thresholds?.deny ?? 1,
        }],
        ...requestedResourceFields(input),
      },
    });
    this.#requests.set(id, req);
    this.#emitRequest(req);
    return accessRequestFromPb(req);
  }

  /**
   * Adds a review (Teleport semantics): when the approvals reach the approve threshold the request
   * becomes APPROVED with the deciding review's reason as resolve reason; likewise for denials.
   * Emits a PUT. Returns the updated request.
   */
  submitReview(
    id: string,
    review: {
      author: string;
      proposedState: "APPROVED" | "DENIED";
      reason?: string;
      roles?: string[];
    },
  ): AccessRequest {
    const req = this.#mustGet(id);
    const spec = req.Spec!;
    if (spec.State !== PbRequestState.PENDING) {
      throw rpcFailure(grpc.status.INVALID_ARGUMENT, `request "${id}" is not pending`);
    }
    spec.Reviews.push({
      $typeName: "types.AccessReview",
      Author: review.author,
      Roles: review.roles ?? [],
      ProposedState: requestStateToPb(review.proposedState),
      Reason: review.reason ?? "",
      Created: dateToTimestamp(new Date()),
      ThresholdIndexes: [0],
    });
    const approvals =
      spec.Reviews.filter((r) => r.ProposedState === PbRequestState.APPROVED).length;
    const denials = spec.Reviews.filter((r) => r.ProposedState === PbRequestState.DENIED).length;
    const t = spec.Thresholds[0];
    if (review.proposedState === "APPROVED" && approvals >= (t?.Approve || 1)) {
      spec.State = PbRequestState.APPROVED;
      spec.ResolveReason = review.reason ?? "";
    } else if (review.proposedState === "DENIED" && denials >= (t?.Deny || 1)) {
      spec.State = PbRequestState.DENIED;
      spec.ResolveReason = review.reason ?? "";
    }
    this.#emitRequest(req);
    return accessRequestFromPb(req);
  }

  /** Sets a request's state and resolve reason directly (like `tctl request approve`); emits a PUT. */
  setState(id: string, state: RequestState, reason = ""): AccessRequest {
    const req = this.#mustGet(id);
    req.Spec!.State = requestStateToPb(state);
    req.Spec!.ResolveReason = reason;
    this.#emitRequest(req);
    return accessRequestFromPb(req);
  }

  /** Promotes a request to an Access List (state PROMOTED); emits a PUT. */
  promote(id: string, accessList: { name: string; title: string }): AccessRequest {
    const req = this.#mustGet(id);
    req.Spec!.State = PbRequestState.PROMOTED;
    req.Spec!.AccessList = {
      $typeName: "types.PromotedAccessList",
      Name: accessList.name,
      Title: accessList.title,
    };
    this.#emitRequest(req);
    return accessRequestFromPb(req);
  }

  /** Deletes a request (expiry or `tctl request rm`); emits a DELETE. Plugin data is kept. */
  deleteAccessRequest(id: string): void {
    this.#mustGet(id);
    this.#requests.delete(id);
    this.#emitDelete(KIND_ACCESS_REQUEST, id);
  }

  /** One stored request, or undefined. */
  getRequest(id: string): AccessRequest | undefined {
    const r = this.#requests.get(id);
    return r ? accessRequestFromPb(r) : undefined;
  }

  /** All stored requests, oldest first. */
  listRequests(): AccessRequest[] {
    return [...this.#requests.values()].map(accessRequestFromPb);
  }

  /** A plugin's data on a request (also after the request was deleted); undefined if none. */
  getPluginData(id: string, plugin: string): PluginDataMap | undefined {
    const d = this.#pluginData.get(id)?.entries.get(plugin);
    return d ? { ...d } : undefined;
  }

  /** Overwrites a plugin's data on a request without compare-and-swap ("" values are dropped). */
  putPluginData(id: string, plugin: string, data: PluginDataMap): void {
    const clean = Object.fromEntries(Object.entries(data).filter(([, v]) => v !== ""));
    let stored = this.#pluginData.get(id);
    if (!stored) this.#pluginData.set(id, stored = { entries: new Map() });
    if (Object.keys(clean).length === 0) stored.entries.delete(plugin);
    else stored.entries.set(plugin, clean);
  }

  /** Creates or replaces an access monitoring rule; emits a PUT. */
  upsertRule(rule: AccessMonitoringRule): void {
    const pb = accessMonitoringRuleToPb(rule);
    this.#rules.set(rule.name, pb);
    this.#broadcast(
      KIND_ACCESS_MONITORING_RULE,
      create(EventSchema, {
        Type: Operation.PUT,
        Resource: { case: "AccessMonitoringRule", value: pb },
      }),
    );
  }

  /** Deletes an access monitoring rule; emits a DELETE. */
  deleteRule(name: string): void {
    this.#rules.delete(name);
    this.#emitDelete(KIND_ACCESS_MONITORING_RULE, name);
  }

  /** All stored rules. */
  listRules(): AccessMonitoringRule[] {
    return [...this.#rules.values()].map(accessMonitoringRuleFromPb);
  }

  /**
   * Emits a PUT of a resource of another kind (a user) to watchers of `kind`, as a server does
   * for kinds a client did not expect.
   */
  emitOtherPut(kind: string, name: string): void {
    this.#broadcast(
      kind,
      create(EventSchema, {
        Type: Operation.PUT,
        Resource: { case: "User", value: { Kind: kind, Version: "v2", Metadata: { Name: name } } },
      }),
    );
  }

  // ------------------------------------------------------------------------------------------
  // Internals

  #mustGet(id: string): AccessRequestV3 {
    const req = this.#requests.get(id);
    if (!req) throw rpcFailure(grpc.status.NOT_FOUND, `access request "${id}" is not found`);
    return req;
  }

  #emitRequest(req: AccessRequestV3): void {
    this.#broadcast(
      KIND_ACCESS_REQUEST,
      create(EventSchema, {
        Type: Operation.PUT,
        // A snapshot: grpc-js serializes queued writes later, and the stored request may have
        // changed by then (created and approved at once must still stream PENDING first).
        Resource: { case: "AccessRequest", value: clone(AccessRequestV3Schema, req) },
      }),
    );
  }

  #emitDelete(kind: string, name: string): void {
    this.#broadcast(kind, deleteEvent(kind, name));
  }

  #broadcast(kind: string, event: Event): void {
    if (this.#paused) {
      this.#pausedEvents.push({ kind, event });
      return;
    }
    const req = event.Resource.case === "AccessRequest" ? event.Resource.value : undefined;
    for (const w of this.#watchers) {
      if (!w.ready || w.ended || !w.kinds.has(kind)) continue;
      if (req && w.requestFilter && !accessRequestFilterMatches(w.requestFilter, req)) continue;
      w.call.write(event);
    }
  }

  #endWatcher(w: Watcher, code: grpc.status, details: string): void {
    if (w.ended) return;
    w.ended = true;
    this.#watchers.delete(w);
    failStream(w.call, rpcFailure(code, details));
  }

  #identity(call: { getPeer(): string }): Identity {
    return this.#identities.get(call.getPeer()) ?? NOP;
  }

  /** Counts the call, applies injected errors and authorization. Returns an error or undefined. */
  #check(
    method: TestServerMethod,
    call: { getPeer(): string },
  ): (Error & Partial<grpc.StatusObject>) | undefined {
    this.calls[method]++;
    const inj = this.#errors.get(method);
    if (inj && inj.count > 0) {
      inj.count--;
      if (inj.count === 0) this.#errors.delete(method);
      return rpcFailure(inj.code, inj.message);
    }
    const id = this.#identity(call);
    if (id === NOP || !id.user) {
      return rpcFailure(
        grpc.status.PERMISSION_DENIED,
        "access denied: the caller has no client certificate (builtin role Nop)",
      );
    }
    if (!id.roles.some((r) => this.pluginRoles.includes(r))) {
      return rpcFailure(
        grpc.status.PERMISSION_DENIED,
        `access denied to perform action "list" on "access_request" for user "${id.user}"`,
      );
    }
    return undefined;
  }

  /** The rules of the caller's plugin role checked for `kind` and `verbs` (see {@link role}). */
  #denial(call: { getPeer(): string }, kind: string, ...verbs: string[]): Denial | undefined {
    const id = this.#identity(call);
    if (!id.roles.some((r) => this.pluginRoles.includes(r))) {
      return {
        message: `access denied to perform action "${verbs[0]}" on "${kind}"`,
        explicit: false,
      };
    }
    return checkAction(withoutKinds(this.role, this.deniedKinds), kind, ...verbs);
  }

  /**
   * Teleport's `ListAccessRequests` authorization: with `list`+`read` on `access_request` every
   * request; denied by a deny rule: PERMISSION_DENIED; otherwise (no allow rule) only the
   * caller's own requests, and no error.
   */
  #visibleRequests(call: { getPeer(): string }, all: AccessRequestV3[]): AccessRequestV3[] {
    const denied = this.#denial(call, KIND_ACCESS_REQUEST, "list", "read");
    if (!denied) return all;
    if (denied.explicit) throw rpcFailure(grpc.status.PERMISSION_DENIED, denied.message);
    const user = this.#identity(call).user;
    return all.filter((r) => r.Spec?.User === user);
  }

  /**
   * Teleport's plugin-data authorization: each verb on `access_request`, or else on
   * `access_plugin_data` (whose denial is the one reported).
   */
  #authorizePluginData(call: { getPeer(): string }, ...verbs: string[]): void {
    for (const verb of verbs) {
      if (!this.#denial(call, KIND_ACCESS_REQUEST, verb)) continue;
      const denied = this.#denial(call, "access_plugin_data", verb);
      if (denied) throw rpcFailure(grpc.status.PERMISSION_DENIED, denied.message);
    }
  }

  #unary<Req, Res>(
    method: TestServerMethod,
    handler: (req: Req, call: grpc.ServerUnaryCall<Req, Res>) => Res,
  ): grpc.handleUnaryCall<Req, Res> {
    return (call, callback) => {
      const hang = this.#hangs.get(method);
      if (hang && hang.count > 0) {
        hang.count--;
        this.calls[method]++;
        hang.pending.push(callback as grpc.sendUnaryData<unknown>);
        return;
      }
      const err = this.#check(method, call);
      if (err) return callback(err);
      try {
        callback(null, handler(call.request, call));
      } catch (e) {
        const se = e as Partial<grpc.StatusObject> & Error;
        callback(typeof se.code === "number" ? se : rpcFailure(grpc.status.UNKNOWN, se.message));
      }
    };
  }

  #authHandlers(): grpc.UntypedServiceImplementation {
    return {
      Ping: (call: grpc.ServerUnaryCall<unknown, unknown>, cb: grpc.sendUnaryData<unknown>) => {
        if (this.pingUnimplemented) {
          this.calls.Ping++;
          return cb(rpcFailure(grpc.status.UNIMPLEMENTED, "unknown method Ping"));
        }
        this.#unary("Ping", () =>
          create(PingResponseSchema, {
            ClusterName: this.clusterName,
            ServerVersion: this.serverVersion,
            ProxyPublicAddr: this.proxyPublicAddr,
            ServerFeatures: { AdvancedAccessWorkflows: this.advancedAccessWorkflows },
          }))(call, cb);
      },
      WatchEvents: (call: grpc.ServerWritableStream<Watch, Event>) => this.#watch(call),
      ListAccessRequests: (
        call: grpc.ServerUnaryCall<ListAccessRequestsRequest, unknown>,
        cb: grpc.sendUnaryData<unknown>,
      ) => {
        if (this.listAccessRequestsUnimplemented) {
          this.calls.ListAccessRequests++;
          return cb(rpcFailure(grpc.status.UNIMPLEMENTED, "unknown method ListAccessRequests"));
        }
        this.#unary("ListAccessRequests", (req: ListAccessRequestsRequest, call) => {
          const all = this.#visibleRequests(call, this.#filterRequests(req.Filter));
          const start = req.StartKey ? all.findIndex((r) => r.Metadata?.Name === req.StartKey) : 0;
          const from = start < 0 ? all.length : start;
          const limit = Math.min(req.Limit > 0 ? req.Limit : this.maxPageSize, this.maxPageSize);
          const page = all.slice(from, from + limit);
          const next = all[from + limit]?.Metadata?.Name ?? "";
          return create(ListAccessRequestsResponseSchema, { AccessRequests: page, NextKey: next });
        })(call, cb);
      },
      GetAccessRequestsV2: (
        call: grpc.ServerWritableStream<AccessRequestFilter, AccessRequestV3>,
      ) => {
        const err = this.#check("GetAccessRequestsV2", call);
        if (err) return failStream(call, err);
        let visible: AccessRequestV3[];
        try {
          visible = this.#visibleRequests(call, this.#filterRequests(call.request));
        } catch (e) {
          return failStream(call, e as Error);
        }
        for (const r of visible) call.write(r);
        call.end();
      },
      GetPluginData: this.#unary("GetPluginData", (f: PluginDataFilter, call) => {
        this.#authorizePluginData(call, "list", "read");
        return this.#getPluginDataRpc(f);
      }),
      UpdatePluginData: this.#unary("UpdatePluginData", (p: PluginDataUpdateParams, call) => {
        this.#authorizePluginData(call, "update");
        this.#updatePluginData(p);
        return create(EmptySchema);
      }),
      SetAccessRequestState: this.#unary("SetAccessRequestState", (s: RequestStateSetter) => {
        this.setState(s.ID, accessStateName(s.State), s.Reason);
        return create(EmptySchema);
      }),
      SubmitAccessReview: this.#unary("SubmitAccessReview", (s: AccessReviewSubmission) => {
        const state = s.Review?.ProposedState === PbRequestState.DENIED ? "DENIED" : "APPROVED";
        this.submitReview(s.RequestID, {
          author: s.Review?.Author ?? "",
          proposedState: state,
          reason: s.Review?.Reason,
          roles: s.Review?.Roles,
        });
        return this.#mustGet(s.RequestID);
      }),
    };
  }

  #ruleHandlers(): grpc.UntypedServiceImplementation {
    const list = (method: TestServerMethod) =>
      this.#unary(method, (req: ListAccessMonitoringRulesWithFilterRequest, call) => {
        if (this.rulesUnimplemented) {
          throw rpcFailure(grpc.status.UNIMPLEMENTED, `unknown service for ${method}`);
        }
        const denied = this.#denial(call, KIND_ACCESS_MONITORING_RULE, "read", "list");
        if (denied) throw rpcFailure(grpc.status.PERMISSION_DENIED, denied.message);
        const all = [...this.#rules.values()].filter((r) =>
          (!req.subjects?.length || req.subjects.every((s) => r.spec?.subjects.includes(s))) &&
          (!req.notificationName || r.spec?.notification?.name === req.notificationName)
        ).sort((a, b) => (a.metadata?.name ?? "").localeCompare(b.metadata?.name ?? ""));
        const size = req.pageSize > 0n ? Number(req.pageSize) : 1000;
        const from = req.pageToken
          ? Math.max(0, all.findIndex((r) => r.metadata?.name === req.pageToken))
          : 0;
        return create(ListAccessMonitoringRulesWithFilterResponseSchema, {
          rules: all.slice(from, from + size),
          nextPageToken: all[from + size]?.metadata?.name ?? "",
        });
      });
    return {
      ListAccessMonitoringRules: list("ListAccessMonitoringRules"),
      ListAccessMonitoringRulesWithFilter: list("ListAccessMonitoringRulesWithFilter"),
    };
  }

  #watch(call: grpc.ServerWritableStream<Watch, Event>): void {
    call.on("error", () => {});
    const err = this.#check("WatchEvents", call);
    if (err) return failStream(call, err);
    const accepted = authorizeWatch(call.request, (kind) => this.#denial(call, kind, "read"));
    if (accepted instanceof Error) return failStream(call, accepted);
    const w: Watcher = {
      call,
      kinds: new Set(accepted.map((a) => a.kind.Kind)),
      requestFilter: accepted.find((a) => a.requestFilter)?.requestFilter,
      ready: false,
      ended: false,
    };
    this.#watchers.add(w);
    const cleanup = () => {
      w.ended = true;
      this.#watchers.delete(w);
    };
    call.on("cancelled", cleanup);
    call.on("close", cleanup);
    if (!this.sendInit) return;
    const init = () => {
      if (w.ended) return;
      w.ready = true;
      call.write(initEvent(accepted.map((a) => a.kind), this.legacyInit));
    };
    if (this.initDelayMs > 0) {
      const t = setTimeout(init, this.initDelayMs);
      call.on("cancelled", () => clearTimeout(t));
      call.on("close", () => clearTimeout(t));
    } else init();
  }

  #filterRequests(f: AccessRequestFilter | undefined): AccessRequestV3[] {
    return [...this.#requests.values()].filter((r) =>
      (!f?.ID || r.Metadata?.Name === f.ID) &&
      (!f?.User || r.Spec?.User === f.User) &&
      (!f?.State || r.Spec?.State === f.State)
    );
  }

  #getPluginDataRpc(f: PluginDataFilter) {
    if (f.Kind !== KIND_ACCESS_REQUEST) {
      throw rpcFailure(grpc.status.INVALID_ARGUMENT, `unsupported resource kind "${f.Kind}"`);
    }
    const ids = f.Resource ? [f.Resource] : [...this.#pluginData.keys()];
    const out = [];
    for (const id of ids) {
      const stored = this.#pluginData.get(id);
      if (!stored) continue;
      const entries: Record<string, { Data: Record<string, string> }> = {};
      for (const [plugin, data] of stored.entries) {
        if (!f.Plugin || plugin === f.Plugin) entries[plugin] = { Data: { ...data } };
      }
      if (f.Plugin && !entries[f.Plugin]) continue;
      out.push(create(PluginDataV3Schema, {
        Kind: "plugin_data",
        SubKind: KIND_ACCESS_REQUEST,
        Version: "v3",
        Metadata: {
          Name: id,
          Expires: stored.expires ? dateToTimestamp(stored.expires) : undefined,
        },
        Spec: create(PluginDataSpecV3Schema, { Entries: entries }),
      }));
    }
    return create(PluginDataSeqSchema, { PluginData: out });
  }

  /** Teleport's `PluginDataV3.Update` with create-requires-request (dynamic_access.go). */
  #updatePluginData(p: PluginDataUpdateParams): void {
    if (p.Kind !== KIND_ACCESS_REQUEST) {
      throw rpcFailure(grpc.status.INVALID_ARGUMENT, `unsupported resource kind "${p.Kind}"`);
    }
    let stored = this.#pluginData.get(p.Resource);
    const creating = !stored;
    if (!stored) {
      const req = this.#requests.get(p.Resource);
      if (!req) {
        throw rpcFailure(grpc.status.NOT_FOUND, `access request "${p.Resource}" is not found`);
      }
      const exp = req.Spec?.Expires;
      const base = exp ? Number(exp.seconds) * 1000 : Date.now();
      stored = { entries: new Map(), expires: new Date(base + 3_600_000) };
    }
    const current = stored.entries.get(p.Plugin) ?? {};
    for (const [k, v] of Object.entries(p.Expect)) {
      if ((current[k] ?? "") !== v) {
        throw rpcFailure(grpc.status.FAILED_PRECONDITION, `expectations not met for field "${k}"`);
      }
    }
    const next = { ...current };
    for (const [k, v] of Object.entries(p.Set)) {
      if (v === "") delete next[k];
      else next[k] = v;
    }
    if (Object.keys(next).length === 0) stored.entries.delete(p.Plugin);
    else stored.entries.set(p.Plugin, next);
    if (creating) this.#pluginData.set(p.Resource, stored);
  }
}

/**
 * The HTTP/2 sessions of the server's (only) connection injector: grpc-js 1.14.7 keeps them in
 * its private `http2Servers` map. Throws if that changes, so a grpc-js upgrade fails loudly.
 */
function injectorSessions(server: grpc.Server): Set<http2.ServerHttp2Session> {
  const servers = (server as unknown as {
    http2Servers?: Map<unknown, { sessions?: Set<http2.ServerHttp2Session> }>;
  }).http2Servers;
  const sessions = servers ? [...servers.values()][0]?.sessions : undefined;
  if (!(sessions instanceof Set)) throw new Error("grpc-js: injector sessions not found");
  return sessions;
}

/** Ends a server stream with a gRPC status (grpc-js turns an "error" event into the status). */
function failStream(call: grpc.ServerWritableStream<unknown, unknown>, err: Error): void {
  call.emit("error", err);
}

function accessStateName(s: PbRequestState): RequestState {
  return (PbRequestState[s] as RequestState | undefined) ?? "NONE";
}
