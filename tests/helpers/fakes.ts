/**
 * In-memory fakes for `notify/` and `watcher.ts` tests: a {@link FakeTeleportClient} with
 * Teleport's plugin-data compare-and-swap semantics and controllable watch streams, and a
 * {@link FakeMailer} with failure injection. No network, no timers except where a test asks.
 */
import { MailerError, TeleportError } from "../../src/errors.ts";
import type { Mailer, OutgoingEmail, SentEmail } from "../../src/mailers/mailer.ts";
import type { CallOptions, TeleportClient } from "../../src/teleport/client.ts";
import type {
  AccessMonitoringRule,
  AccessRequest,
  AccessReview,
  PingResult,
  PluginDataMap,
  RequestState,
  WatchEvent,
} from "../../src/teleport/types.ts";

/** Fresh empty values for the request fields every test request starts without. */
function emptyRequestParts(): Pick<
  AccessRequest,
  "resolveReason" | "reviews" | "suggestedReviewers" | "systemAnnotations" | "requestedResources"
> {
  return {
    resolveReason: "",
    reviews: [],
    suggestedReviewers: [],
    systemAnnotations: {},
    requestedResources: [],
  };
}

/** A request with defaults for every field not given. */
export function makeRequest(over: Partial<AccessRequest> & { id: string }): AccessRequest {
  return {
    user: "requester@example.com",
    roles: ["editor"],
    state: "PENDING",
    created: new Date("2024-05-01T10:00:00Z"),
    requestReason: "because of",
    ...emptyRequestParts(),
    ...over,
  };
}

/**
 * A PENDING request `req-1` by `requester@example.com` for role `dev`, with empty reasons,
 * reviews, reviewers, annotations and resources and no created time; `over` replaces fields.
 */
export function makeBareRequest(over: Partial<AccessRequest> = {}): AccessRequest {
  return {
    id: "req-1",
    user: "requester@example.com",
    roles: ["dev"],
    state: "PENDING",
    requestReason: "",
    ...emptyRequestParts(),
    ...over,
  };
}

/** A review with defaults. */
export function makeReview(
  author: string,
  proposedState: RequestState,
  reason: string,
): AccessReview {
  return {
    author,
    roles: ["reviewer"],
    proposedState,
    reason,
    created: new Date("2024-05-01T10:05:00Z"),
  };
}

class Stream {
  readonly queue: Array<WatchEvent | { error: unknown } | { end: true }> = [];
  wake: (() => void) | undefined;
  closed = false;

  push(item: WatchEvent | { error: unknown } | { end: true }): void {
    if (this.closed) return;
    this.queue.push(item);
    this.wake?.();
  }
}

/** A scripted failure for one client method. */
export type FakeMethod =
  | "ping"
  | "watchEvents"
  | "listAccessRequests"
  | "getPluginData"
  | "listPluginData"
  | "updatePluginData"
  | "listAccessMonitoringRules";

/** The error of a watch none of whose kinds may be watched, as the gRPC client reports it. */
function noWatchableKind(): TeleportError {
  return new TeleportError(
    "bad_parameter",
    'Teleport call "WatchEvents" failed (INVALID_ARGUMENT): none of the requested kinds can be watched',
    { grpcCode: 3 },
  );
}

/**
 * An in-memory Teleport: access requests, plugin data (surviving request deletion, like the real
 * server) with compare-and-swap, access monitoring rules and `WatchEvents` streams that the test
 * drives with {@link emit}, {@link breakStreams} and {@link endStreams}.
 */
export class FakeTeleportClient implements TeleportClient {
  readonly connectionMode = "direct";
  readonly requests = new Map<string, AccessRequest>();
  /** requestId → plugin → data. */
  readonly pluginData = new Map<string, Map<string, PluginDataMap>>();
  readonly rules = new Map<string, AccessMonitoringRule>();
  /**
   * Kinds the caller may watch; undefined = all requested kinds. The INIT event confirms those
   * requested; when none is left the stream fails as Teleport's `authorizeWatchRequest` fails it
   * (INVALID_ARGUMENT "none of the requested kinds can be watched").
   */
  acceptedKinds: string[] | undefined;
  /** When false, new streams send no INIT (to test the INIT timeout). */
  sendInit = true;
  ping_: PingResult = {
    clusterName: "teleport.example.com",
    serverVersion: "17.0.0",
    proxyPublicAddr: "teleport.example.com:443",
    advancedAccessWorkflows: false,
  };
  /** Calls per method. */
  readonly calls = new Map<FakeMethod, number>();
  /** Failures to throw on the next calls of a method (consumed in order). */
  readonly failures = new Map<FakeMethod, unknown[]>();
  /** Number of successful `updatePluginData` writes. */
  writes = 0;
  /** Every stream opened so far. */
  readonly streams: Stream[] = [];
  private streamWaiters: Array<() => void> = [];
  closed = false;

  private count(method: FakeMethod): void {
    this.calls.set(method, (this.calls.get(method) ?? 0) + 1);
    const queued = this.failures.get(method);
    if (queued !== undefined && queued.length > 0) throw queued.shift();
  }

  /** Makes the next call(s) of `method` throw `err`, once per element. */
  failNext(method: FakeMethod, ...errs: unknown[]): void {
    const queued = this.failures.get(method) ?? [];
    queued.push(...errs);
    this.failures.set(method, queued);
  }

  /** Number of streams currently open. */
  get openStreams(): number {
    return this.streams.filter((s) => !s.closed).length;
  }

  /** Resolves once at least `n` streams have been opened in total (bounded by `timeoutMs`). */
  async waitForStreams(n: number, timeoutMs = 5000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (this.streams.length < n) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${n} watch streams`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, 20);
        this.streamWaiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }

  ping(opts: CallOptions = {}): Promise<PingResult> {
    opts.signal?.throwIfAborted();
    this.count("ping");
    return Promise.resolve({ ...this.ping_ });
  }

  watchEvents(kinds: string[], opts: CallOptions = {}): AsyncIterable<WatchEvent> {
    this.count("watchEvents");
    const stream = new Stream();
    this.streams.push(stream);
    for (const w of this.streamWaiters.splice(0)) w();
    const accepted = this.acceptedKinds === undefined
      ? kinds
      : kinds.filter((k) => this.acceptedKinds!.includes(k));
    if (accepted.length === 0) {
      stream.push({ error: noWatchableKind() });
    } else if (this.sendInit) {
      stream.push({ type: "init", kinds: accepted });
    }
    const signal = opts.signal;
    return {
      [Symbol.asyncIterator]: () => ({
        next: async (): Promise<IteratorResult<WatchEvent>> => {
          while (true) {
            if (signal?.aborted) {
              stream.closed = true;
              return { done: true, value: undefined };
            }
            const item = stream.queue.shift();
            if (item !== undefined) {
              if ("end" in item) {
                stream.closed = true;
                return { done: true, value: undefined };
              }
              if ("error" in item) {
                stream.closed = true;
                throw item.error;
              }
              return { done: false, value: item };
            }
            await new Promise<void>((resolve) => {
              const onAbort = () => resolve();
              signal?.addEventListener("abort", onAbort, { once: true });
              stream.wake = () => {
                signal?.removeEventListener("abort", onAbort);
                stream.wake = undefined;
                resolve();
              };
            });
          }
        },
        return: (): Promise<IteratorResult<WatchEvent>> => {
          stream.closed = true;
          stream.wake?.();
          return Promise.resolve({ done: true, value: undefined });
        },
      }),
    };
  }

  /** Sends `event` to every open stream. */
  emit(event: WatchEvent): void {
    for (const s of this.streams) if (!s.closed) s.push(event);
  }

  /** Fails every open stream with a `connection_problem` error (or `err`). */
  breakStreams(err: unknown = new TeleportError("connection_problem", "stream reset")): void {
    for (const s of this.streams) if (!s.closed) s.push({ error: err });
  }

  /** Ends every open stream normally (EOF). */
  endStreams(): void {
    for (const s of this.streams) if (!s.closed) s.push({ end: true });
  }

  /** Stores `req` and emits a PUT (unless `emit` is false, to simulate a missed event). */
  putRequest(req: AccessRequest, emit = true): void {
    this.requests.set(req.id, structuredClone(req));
    if (emit) this.emit({ type: "put", kind: "access_request", request: structuredClone(req) });
  }

  /** Deletes the request (keeping its plugin data, like Teleport) and emits a DELETE. */
  deleteRequest(id: string, emit = true): void {
    this.requests.delete(id);
    if (emit) this.emit({ type: "delete", kind: "access_request", name: id });
  }

  listAccessRequests(
    opts: CallOptions & { state?: RequestState } = {},
  ): Promise<AccessRequest[]> {
    opts.signal?.throwIfAborted();
    this.count("listAccessRequests");
    const all = [...this.requests.values()].filter((r) =>
      opts.state === undefined || r.state === opts.state
    );
    return Promise.resolve(structuredClone(all));
  }

  getPluginData(
    requestId: string,
    plugin: string,
    opts: CallOptions = {},
  ): Promise<PluginDataMap | undefined> {
    opts.signal?.throwIfAborted();
    this.count("getPluginData");
    const data = this.pluginData.get(requestId)?.get(plugin);
    return Promise.resolve(data === undefined ? undefined : { ...data });
  }

  listPluginData(
    plugin: string,
    opts: CallOptions = {},
  ): Promise<Array<{ requestId: string; data: PluginDataMap }>> {
    opts.signal?.throwIfAborted();
    this.count("listPluginData");
    const out: Array<{ requestId: string; data: PluginDataMap }> = [];
    for (const [requestId, byPlugin] of this.pluginData) {
      const data = byPlugin.get(plugin);
      if (data !== undefined) out.push({ requestId, data: { ...data } });
    }
    return Promise.resolve(out);
  }

  updatePluginData(
    requestId: string,
    plugin: string,
    set: PluginDataMap,
    expect: PluginDataMap,
    opts: CallOptions = {},
  ): Promise<void> {
    opts.signal?.throwIfAborted();
    this.count("updatePluginData");
    // Teleport creates the plugin data item only for an existing request; once any plugin's data
    // exists it survives the request (dynamic_access.go updateAccessRequestPluginData).
    const byPlugin = this.pluginData.get(requestId);
    const current = byPlugin?.get(plugin);
    if (byPlugin === undefined && !this.requests.has(requestId)) {
      return Promise.reject(
        new TeleportError("not_found", `access request "${requestId}" not found`),
      );
    }
    for (const [key, value] of Object.entries(expect)) {
      if ((current?.[key] ?? "") !== value) {
        return Promise.reject(
          new TeleportError("compare_failed", "plugin data comparison failed", { grpcCode: 9 }),
        );
      }
    }
    const next: PluginDataMap = { ...current };
    for (const [key, value] of Object.entries(set)) {
      if (value === "") delete next[key];
      else next[key] = value;
    }
    const map = byPlugin ?? new Map<string, PluginDataMap>();
    if (Object.keys(next).length === 0) map.delete(plugin);
    else map.set(plugin, next);
    this.pluginData.set(requestId, map);
    this.writes++;
    return Promise.resolve();
  }

  listAccessMonitoringRules(
    _plugin: string,
    opts: CallOptions = {},
  ): Promise<AccessMonitoringRule[]> {
    opts.signal?.throwIfAborted();
    this.count("listAccessMonitoringRules");
    return Promise.resolve(structuredClone([...this.rules.values()]));
  }

  close(): void {
    this.closed = true;
    for (const s of this.streams) s.push({ end: true });
  }
}

/** One delivered email, as the fake mailer recorded it. */
export interface FakeSent extends OutgoingEmail {
  messageId: string;
}

/** A scripted mailer failure. */
export interface FakeFailure {
  retryable: boolean;
  /** How many sends to this recipient fail; Infinity = all. */
  times: number;
  /** Only emails whose text includes this fail (default: any). */
  textIncludes?: string;
}

/** What the real mailers throw when the caller's signal aborts a send. */
function abortError(to: string): MailerError {
  return new MailerError(
    `Cannot send email to "${to}": the operation was cancelled (deadline exceeded)`,
    { recipient: to, code: "EABORT", retryable: true },
  );
}

/** Waits for `p`, or until `signal` aborts (then resolves too; the caller checks the signal). */
function abortable(p: Promise<void>, signal?: AbortSignal): Promise<void> {
  if (signal === undefined) return p;
  return new Promise<void>((resolve) => {
    const done = () => {
      signal.removeEventListener("abort", done);
      resolve();
    };
    signal.addEventListener("abort", done, { once: true });
    if (signal.aborted) done();
    p.then(done, done);
  });
}

/**
 * A mailer that records every email. {@link failFor} makes sends to a recipient throw
 * {@link MailerError}; {@link gate} holds sends until released or aborted (to test concurrency
 * and drain). An aborted send rejects like the real mailers' (`code: "EABORT"`, retryable).
 */
export class FakeMailer implements Mailer {
  readonly kind = "smtp" as const;
  readonly sent: FakeSent[] = [];
  /** Every attempt, including failed ones. */
  attempts = 0;
  inFlight = 0;
  maxInFlight = 0;
  healthChecks = 0;
  closed = false;
  healthError: Error | undefined;
  private readonly failures = new Map<string, FakeFailure>();
  private seq = 0;
  /** When set, every send waits for this promise first. */
  gate: Promise<void> | undefined;
  /** Optional artificial delay per send, in ms. */
  delayMs = 0;

  /** Makes sends to `recipient` fail. */
  failFor(recipient: string, failure: FakeFailure): void {
    this.failures.set(recipient, failure);
  }

  /** Removes the failure for `recipient`. */
  heal(recipient: string): void {
    this.failures.delete(recipient);
  }

  async send(email: OutgoingEmail, opts: { signal?: AbortSignal } = {}): Promise<SentEmail> {
    this.attempts++;
    this.inFlight++;
    this.maxInFlight = Math.max(this.maxInFlight, this.inFlight);
    try {
      if (this.gate !== undefined) await abortable(this.gate, opts.signal);
      if (this.delayMs > 0) await new Promise((r) => setTimeout(r, this.delayMs));
      if (opts.signal?.aborted) throw abortError(email.to);
      const failure = this.failures.get(email.to);
      if (
        failure !== undefined && failure.times > 0 &&
        (failure.textIncludes === undefined || email.text.includes(failure.textIncludes))
      ) {
        failure.times--;
        throw new MailerError(`Cannot send to "${email.to}": injected failure`, {
          recipient: email.to,
          code: failure.retryable ? 421 : 550,
          retryable: failure.retryable,
        });
      }
      const messageId = `${++this.seq}.${crypto.randomUUID()}@fake.local`;
      this.sent.push({ ...email, messageId });
      return { messageId };
    } finally {
      this.inFlight--;
    }
  }

  /** Emails sent to `to`, in order. */
  to(to: string): FakeSent[] {
    return this.sent.filter((e) => e.to === to);
  }

  healthCheck(opts: { signal?: AbortSignal } = {}): Promise<void> {
    opts.signal?.throwIfAborted();
    this.healthChecks++;
    return this.healthError ? Promise.reject(this.healthError) : Promise.resolve();
  }

  close(): Promise<void> {
    this.closed = true;
    return Promise.resolve();
  }
}

/** Polls `cond` every 5 ms until true; throws after `timeoutMs`. */
export async function waitFor(
  cond: () => boolean,
  what: string,
  timeoutMs = 5000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}
