/**
 * What runs on one Teleport connection: the request handler, the engine that dispatches events
 * to it, and the watcher that reads the events. The app runs one pipeline; a reload that needs a
 * new connection starts a second one, then hands the work over:
 *
 * 1. the new pipeline starts *closed*: its watcher connects and receives INIT, but whatever it
 *    submits (events, the catch-up) waits at a gate;
 * 2. the old pipeline stops: its watcher stops reading and its engine drains (running handlers
 *    finish, queued events and retries are dropped: their emails are still missing in plugin
 *    data, so the new pipeline's catch-up finds them, exactly as after a restart);
 * 3. the gate opens.
 *
 * Only one engine handles events at a time, so no email is sent twice, and the new watcher was
 * subscribed before the old one stopped, so no event is lost.
 */
import type { Logger } from "@logtape/logtape";
import type { Config } from "./config/types.ts";
import type { PluginObserver } from "./diag/observer.ts";
import type { Mailer } from "./mailers/mailer.ts";
import type { LeaseHolder, LeaseLock } from "./notify/delivery_state.ts";
import { Engine, runningHandlersFor } from "./notify/engine.ts";
import { RequestHandler } from "./notify/handler.ts";
import type { Watermark } from "./notify/watermark.ts";
import { computeRecipients } from "./notify/recipients.ts";
import { AccessMonitoringRuleCache } from "./notify/rules.ts";
import type { TeleportConnection } from "./teleport/connect.ts";
import { runWatcher, type WatcherReadyInfo } from "./watcher.ts";

/** Options of {@link Pipeline}. */
export interface PipelineOptions {
  /** The configuration in force; read for every new request (role_to_recipients, …). */
  config: () => Config;
  mailer: Mailer;
  plugin: "email";
  watermark: Watermark;
  /** Written into the leases this pipeline's handler takes (see `liveness.ts`). */
  holder?: LeaseHolder;
  /** Whether a lease's holder has exited on this host, so its lease can be taken over. */
  holderGone?: (lock: LeaseLock) => Promise<boolean>;
  failFast: boolean;
  maxParallelSends?: number;
  eventTimeoutMs?: number;
  /** Aborts the watcher (the app's shutdown signal). */
  signal: AbortSignal;
  /** Told about INITs, reconnects and events (`start --diag-addr`). */
  observer?: PluginObserver;
  log: { notify: Logger; watcher: Logger };
}

/** See the module documentation. */
export class Pipeline {
  readonly conn: TeleportConnection;
  readonly engine: Engine;
  /** The watcher: resolves once stopped, rejects on a fatal error. */
  readonly done: Promise<void>;
  /** Resolves at the first INIT; rejects when the watcher ended before it. */
  readonly ready: Promise<WatcherReadyInfo>;
  readonly #stop = new AbortController();
  #open: () => void = () => {};
  readonly #gate = new Promise<void>((resolve) => (this.#open = resolve));

  /** Starts the watcher; events wait until {@link open} unless `open` is true. */
  constructor(conn: TeleportConnection, opts: PipelineOptions, open = false) {
    this.conn = conn;
    if (open) this.#open();
    const { client, ping } = conn;
    const warn = (msg: string, attrs: Record<string, unknown>) => opts.log.notify.warn(msg, attrs);
    const rules = new AccessMonitoringRuleCache({ warn });
    const handler = new RequestHandler({
      client,
      mailer: opts.mailer,
      clusterName: ping.clusterName,
      webProxyAddr: ping.advancedAccessWorkflows && ping.proxyPublicAddr !== ""
        ? ping.proxyPublicAddr
        : undefined,
      plugin: opts.plugin,
      maxParallelSends: opts.maxParallelSends,
      timing: { eventTimeoutMs: opts.eventTimeoutMs },
      recipients: (req) => {
        const config = opts.config();
        return computeRecipients(req, {
          roleToRecipients: config.roleToRecipients,
          rules,
          notifyRequester: config.delivery.notifyRequester,
          pluginName: opts.plugin,
          warn,
        }).recipients;
      },
      watermark: opts.watermark,
      holder: opts.holder,
      holderGone: opts.holderGone,
      log: opts.log.notify,
    });
    this.engine = new Engine({
      handler,
      maxRunning: runningHandlersFor(opts.maxParallelSends),
      log: opts.log.notify,
    });
    let onReady: (info: WatcherReadyInfo) => void = () => {};
    const initReceived = new Promise<WatcherReadyInfo>((resolve) => (onReady = resolve));
    this.done = runWatcher({
      client,
      engine: this.#gated(this.engine),
      rules,
      plugin: opts.plugin,
      failFast: opts.failFast,
      watermark: opts.watermark,
      signal: AbortSignal.any([opts.signal, this.#stop.signal]),
      log: opts.log.watcher,
      onReady,
      onInit: () => opts.observer?.watching(),
      onReconnect: (reason) => opts.observer?.reconnecting(reason),
      onEvent: () => opts.observer?.eventReceived(),
    });
    this.ready = Promise.race([
      initReceived,
      this.done.then(() => Promise.reject(new Error("the watcher stopped before INIT"))),
    ]);
    this.ready.catch(() => {}); // Observed through `done` when nobody waits for `ready`.
  }

  /** Lets the events through to the engine. */
  open(): void {
    this.#open();
  }

  /**
   * Stops the watcher, then drains the engine (running handlers finish within `drainMs`; see
   * `Engine.drain`). Returns whether every handler finished in time. Never rejects.
   */
  async stop(drainMs: number): Promise<boolean> {
    this.#stop.abort();
    await this.done.catch(() => {});
    return await this.engine.drain(drainMs);
  }

  /** The engine, with `submit` held at the gate until {@link open}. */
  #gated(engine: Engine): Pick<Engine, "submit" | "needsWork"> {
    const gate = this.#gate;
    return {
      needsWork: (ev, raw) => engine.needsWork(ev, raw),
      submit: async (ev, o = {}) => {
        await abortableWait(gate, o.signal);
        o.signal?.throwIfAborted();
        await engine.submit(ev, o);
      },
    };
  }
}

/** Waits for `p`, or until `signal` aborts (then resolves). */
function abortableWait(p: Promise<void>, signal?: AbortSignal): Promise<void> {
  if (signal === undefined) return p;
  if (signal.aborted) return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      signal.removeEventListener("abort", done);
      resolve();
    };
    signal.addEventListener("abort", done, { once: true });
    p.then(done);
  });
}
