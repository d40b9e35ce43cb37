/**
 * The watcher: one `WatchEvents` stream for access requests and access monitoring rules, kept
 * open with reconnects (Go `watcherjob`), feeding the {@link Engine}.
 *
 * - The first event must be INIT, within 15 s (`watcher initialization timed out`). Its kinds
 *   are the accepted kinds: none is fatal; without `access_monitoring_rule` the plugin warns and
 *   routes by `role_to_recipients` only (Go crashes there).
 * - After each INIT (and every `resyncIntervalMs` while connected): reload the rule cache (when
 *   rules were accepted; INIT only), then a **catch-up** that Go lacks: every access request
 *   goes through the handler as a PUT, and plugin data whose request is gone (deleted or expired while we were away) as a DELETE. The handler is
 *   idempotent, so only missing emails go out. Requests already up to date are skipped without
 *   a read each, using one `listPluginData` snapshot taken *before* listing the requests (so a
 *   request created in between is never mistaken for a deleted one).
 * - The {@link Watermark} (which requests first seen resolved are notified, see
 *   `notify/plan.ts`): the time of the first successful INIT is noted before anything is
 *   dispatched, and each catch-up notes the newest thread timestamp of the plugin data it listed
 *   before submitting any request, so requests created and resolved while the plugin or its
 *   stream was down (after the watermark) are announced, while on a first install the resolved
 *   requests that predate the plugin stay silent.
 * - Stream loss or EOF: reconnect after a decorrelated-jitter backoff (20 ms … 5 s, ×3,
 *   from the shortest again after each INIT), or fail when fail-fast is on. Access denied and
 *   other permanent errors are fatal (no hot loop on a revoked identity).
 */
import { getLogger, type Logger } from "@logtape/logtape";
import { abortable, withRetry } from "./async.ts";
import { formatError, TeleportError } from "./errors.ts";
import type { Engine } from "./notify/engine.ts";
import type { RequestEvent } from "./notify/plan.ts";
import type { Watermark } from "./notify/watermark.ts";
import type { TeleportClient } from "./teleport/client.ts";
import {
  type AccessMonitoringRule,
  KIND_ACCESS_MONITORING_RULE,
  KIND_ACCESS_REQUEST,
  type PluginDataMap,
  type WatchEvent,
} from "./teleport/types.ts";

/**
 * Where rule events go (the Access Monitoring Rule cache). The watcher waits for what `set` and
 * `replaceAll` return (a rule ready to be evaluated) before it hands on the next event.
 */
export interface RuleSink {
  set(rule: AccessMonitoringRule): void | Promise<void>;
  delete(name: string): void;
  replaceAll(rules: AccessMonitoringRule[]): void | Promise<void>;
}

/** What the watcher learned from an INIT. */
export interface WatcherReadyInfo {
  kinds: string[];
  /** Whether access monitoring rules are watched (else routing is role-based only). */
  rulesEnabled: boolean;
}

/** Options of {@link runWatcher}. */
export interface WatcherOptions {
  client: TeleportClient;
  engine: Pick<Engine, "submit" | "needsWork">;
  rules?: RuleSink;
  /** Plugin data and rule notification name; default `email`. */
  plugin?: string;
  /** How long to wait for INIT, in ms; default 15 000. */
  initTimeoutMs?: number;
  /** Exit instead of reconnecting (`TELEPORT_PLUGIN_FAIL_FAST`, read by `config/env.ts`). */
  failFast?: boolean;
  /** Reconnect backoff base and cap, in ms; default 20 and 5000. */
  backoffBaseMs?: number;
  backoffCapMs?: number;
  /** Run the catch-up after every INIT; default true. */
  catchUp?: boolean;
  /**
   * Also run the catch-up periodically while connected, in ms (default 300 000; 0 = never), so
   * a request whose retries ran out, or an event Teleport dropped, is still handled.
   */
  resyncIntervalMs?: number;
  /** Fed with INIT times and listed plugin data (see the file header); read by the handler. */
  watermark?: Pick<Watermark, "noteInit" | "noteThreads">;
  /** Called once, after the first INIT (the catch-up has started). */
  onReady?: (info: WatcherReadyInfo) => void;
  /** Called after every INIT (first and after each reconnect), for diagnostics. */
  onInit?: () => void;
  /** Called before each reconnect with why the stream was lost, for diagnostics. */
  onReconnect?: (reason: string) => void;
  /** Called for every event received (INIT included), for diagnostics. */
  onEvent?: () => void;
  log?: Logger;
  signal?: AbortSignal;
}

/** The kinds the plugin watches. */
export const WATCH_KINDS = [KIND_ACCESS_REQUEST, KIND_ACCESS_MONITORING_RULE];

/** Errors that reconnecting cannot fix. */
function isFatal(err: unknown): boolean {
  return err instanceof TeleportError &&
    (err.kind === "access_denied" || err.kind === "bad_parameter" ||
      err.kind === "not_implemented");
}

class StreamClosed extends Error {}

/** What outlives one connection: the catch-ups still running, and what was said once. */
interface WatchState {
  opts: WatcherOptions;
  plugin: string;
  log: Logger;
  ready: boolean;
  warnedNoRules: boolean;
  catchUps: Set<Promise<unknown>>;
}

/**
 * Runs until `signal` aborts (then resolves once the catch-up stopped) or a fatal error
 * (thrown: {@link TeleportError}). See the file header for the behaviour.
 */
export async function runWatcher(opts: WatcherOptions): Promise<void> {
  const signal = opts.signal ?? new AbortController().signal;
  const state: WatchState = {
    opts,
    plugin: opts.plugin ?? "email",
    log: opts.log ?? getLogger(["teleport-email", "watcher"]),
    ready: false,
    warnedNoRules: false,
    catchUps: new Set(),
  };
  try {
    await withRetry((_attempt, progressed) => connection(state, signal, progressed), {
      signal,
      isRetryable: (err) => !isFatal(err) && !opts.failFast,
      baseMs: opts.backoffBaseMs ?? 20,
      capMs: opts.backoffCapMs ?? 5000,
      onRetry: ({ error }) => {
        opts.onReconnect?.(
          error instanceof StreamClosed ? "watch stream closed" : formatError(error),
        );
        logReconnect(state.log, error);
      },
    });
  } catch (err) {
    if (!signal.aborted) throw opts.failFast && !isFatal(err) ? failFastError(err) : err;
  }
  state.log.debug("Watcher context is canceled");
  await Promise.all([...state.catchUps]);
}

function logReconnect(log: Logger, problem: unknown): void {
  if (problem instanceof StreamClosed) log.warn("Watcher stream closed attempting to reconnect");
  else {
    log.error("Connection problem detected, attempting to reconnect", {
      error: formatError(problem),
    });
  }
}

function failFastError(problem: unknown): TeleportError {
  const closed = problem instanceof StreamClosed;
  return new TeleportError(
    "connection_problem",
    closed
      ? "Watcher stream closed. Exiting as fail fast is on."
      // The Go message, then what the problem was: an operator needs both on one line.
      : `Connection problem detected. Exiting as fail fast is on. (${formatError(problem)})`,
    { cause: closed ? undefined : problem },
  );
}

/**
 * One connection: opens the stream, waits for INIT, loads the rules, starts the catch-up, then
 * dispatches events until the stream ends (throws {@link StreamClosed}) or fails (throws).
 * Resolves when `signal` aborts. Calls `progressed` once INIT arrived.
 */
async function connection(
  state: WatchState,
  signal: AbortSignal,
  progressed: () => void,
): Promise<void> {
  const { opts, log } = state;
  const stream = new AbortController();
  const onAbort = () => stream.abort();
  signal.addEventListener("abort", onAbort, { once: true });
  try {
    const it = opts.client.watchEvents(WATCH_KINDS, { signal: stream.signal })[
      Symbol.asyncIterator
    ]();
    const kinds = await awaitInit(it, opts.initTimeoutMs ?? 15_000, stream, opts.onEvent);
    const rulesEnabled = kinds.includes(KIND_ACCESS_MONITORING_RULE);
    await loadRules(state, kinds, rulesEnabled, stream.signal);
    log.debug("Watcher connected");
    opts.onInit?.();
    // Which connection mode the reconnect used (start-up logs it as "Connected to Teleport").
    if (state.ready) {
      log.info("Reconnected to Teleport", { connection_mode: opts.client.connectionMode });
    }
    opts.watermark?.noteInit(new Date());
    progressed();
    if (opts.catchUp ?? true) scheduleCatchUps(state, stream.signal);
    if (!state.ready) {
      state.ready = true;
      opts.onReady?.({ kinds, rulesEnabled });
    }
    while (true) {
      const next = await it.next();
      if (next.done) break;
      opts.onEvent?.();
      await dispatch(next.value, opts.engine, opts.rules, rulesEnabled, log, stream.signal);
    }
    if (!signal.aborted) throw new StreamClosed();
  } catch (err) {
    if (!signal.aborted) throw err;
  } finally {
    signal.removeEventListener("abort", onAbort);
    stream.abort();
  }
}

/**
 * Waits for the stream's INIT (at most `timeoutMs`) and returns the accepted kinds; `onEvent`
 * is told when the first event arrived.
 */
async function awaitInit(
  it: AsyncIterator<WatchEvent>,
  timeoutMs: number,
  stream: AbortController,
  onEvent: (() => void) | undefined,
): Promise<string[]> {
  const timeout = AbortSignal.timeout(timeoutMs);
  let first: IteratorResult<WatchEvent>;
  try {
    first = await abortable(it.next(), timeout);
  } catch (err) {
    if (!timeout.aborted) throw err;
    stream.abort();
    throw new TeleportError("connection_problem", "watcher initialization timed out");
  }
  if (first.done) throw new StreamClosed();
  onEvent?.();
  const init = first.value;
  if (init.type !== "init") {
    throw new TeleportError("connection_problem", `unexpected event type "${init.type}"`);
  }
  const kinds = init.kinds ?? WATCH_KINDS;
  if (!WATCH_KINDS.some((k) => kinds.includes(k))) {
    throw new TeleportError(
      "bad_parameter",
      `failed to initialize watcher for all the required resources: [${WATCH_KINDS.join(" ")}]`,
      { hint: "grant the plugin's role list and read on access_request" },
    );
  }
  return kinds;
}

/**
 * Fills the rule cache after INIT: from Teleport when rules are watched (access denied: warn,
 * route by role only), else empty, with a warning the first time.
 */
async function loadRules(
  state: WatchState,
  kinds: string[],
  rulesEnabled: boolean,
  signal: AbortSignal,
): Promise<void> {
  const { opts, log } = state;
  if (!rulesEnabled) {
    await opts.rules?.replaceAll([]);
    if (!state.warnedNoRules) {
      state.warnedNoRules = true;
      log.warn(
        "Teleport did not accept watching access_monitoring_rule; routing by role_to_recipients only",
        { kinds: kinds.join(",") },
      );
    }
    return;
  }
  try {
    const rules = await opts.client.listAccessMonitoringRules(state.plugin, { signal });
    await opts.rules?.replaceAll(rules);
  } catch (err) {
    if (!(err instanceof TeleportError && err.kind === "access_denied")) {
      throw new TeleportError(
        err instanceof TeleportError ? err.kind : "unknown",
        `initializing Access Monitoring Rule cache: ${formatError(err)}`,
        { cause: err },
      );
    }
    log.warn("Cannot list access monitoring rules; routing by role_to_recipients only", {
      error: formatError(err),
    });
    await opts.rules?.replaceAll([]);
  }
}

/**
 * Starts a catch-up now and every `resyncIntervalMs` until `signal` (the stream's) aborts; a
 * catch-up still running is not started twice.
 */
function scheduleCatchUps(state: WatchState, signal: AbortSignal): void {
  const { opts, log } = state;
  let running: Promise<unknown> | undefined;
  const start = () => {
    if (running !== undefined || signal.aborted) return;
    const run: Promise<unknown> = catchUp(
      opts.client,
      opts.engine,
      state.plugin,
      log,
      signal,
      opts.watermark,
    )
      .catch((err) => {
        if (!signal.aborted) {
          log.error("Failed to catch up on access requests", { error: formatError(err) });
        }
      })
      .finally(() => {
        state.catchUps.delete(run);
        running = undefined;
      });
    running = run;
    state.catchUps.add(run);
  };
  start();
  const every = opts.resyncIntervalMs ?? 300_000;
  if (every > 0) {
    const resync = setInterval(start, every);
    signal.addEventListener("abort", () => clearInterval(resync), { once: true });
  }
}

async function dispatch(
  ev: WatchEvent,
  engine: Pick<Engine, "submit">,
  rules: RuleSink | undefined,
  rulesEnabled: boolean,
  log: Logger,
  signal: AbortSignal,
): Promise<void> {
  if (ev.type === "init") {
    log.warn("Unexpected INIT event in the middle of the stream");
    return;
  }
  if (ev.type === "put") {
    switch (ev.kind) {
      case KIND_ACCESS_REQUEST:
        await engine.submit({ op: "put", request: ev.request }, { signal });
        return;
      case KIND_ACCESS_MONITORING_RULE:
        if (rulesEnabled) await rules?.set(ev.rule);
        return;
      default:
        log.warn("Ignoring an event of an unexpected kind", {
          kind: ev.resourceKind,
          name: ev.name,
        });
        return;
    }
  }
  if (ev.kind === KIND_ACCESS_REQUEST) {
    await engine.submit({ op: "delete", requestId: ev.name }, { signal });
  } else if (ev.kind === KIND_ACCESS_MONITORING_RULE) {
    rules?.delete(ev.name);
  } else {
    log.warn("Ignoring an event of an unexpected kind", { kind: ev.kind, name: ev.name });
  }
}

/**
 * Feeds every access request (as a PUT) and every orphaned plugin data entry (as a DELETE)
 * that still needs work through the engine.
 */
export async function catchUp(
  client: TeleportClient,
  engine: Pick<Engine, "submit" | "needsWork">,
  plugin: string,
  log: Logger,
  signal?: AbortSignal,
  watermark?: Pick<Watermark, "noteThreads">,
): Promise<{ queued: number; requests: number }> {
  // Plugin data first: anything in this snapshot belonged to a request that existed before
  // the request listing below started, so "absent from the listing" really means deleted.
  let data: Map<string, PluginDataMap> | undefined;
  try {
    const entries = await client.listPluginData(plugin, { signal });
    data = new Map(entries.map((e) => [e.requestId, e.data]));
    watermark?.noteThreads(data.values());
  } catch (err) {
    if (err instanceof TeleportError && err.kind === "access_denied") throw err;
    log.warn("Cannot list plugin data; catching up on existing requests only", {
      error: formatError(err),
    });
  }
  const requests = await client.listAccessRequests({ signal });
  let queued = 0;
  const submit = async (ev: RequestEvent, raw: PluginDataMap | undefined, known: boolean) => {
    if (known && !engine.needsWork(ev, raw)) return;
    await engine.submit(ev, { signal });
    queued++;
  };
  for (const request of requests) {
    await submit({ op: "put", request }, data?.get(request.id), data !== undefined);
  }
  if (data !== undefined) {
    const live = new Set(requests.map((r) => r.id));
    for (const [requestId, raw] of data) {
      if (!live.has(requestId)) await submit({ op: "delete", requestId }, raw, true);
    }
  }
  log.debug("Caught up on access requests", { requests: requests.length, queued });
  return { queued, requests: requests.length };
}
