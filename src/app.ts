/**
 * Wiring and lifecycle of the running plugin (reference §3.2, §3.13):
 *
 * 1. within 10 s: connect to Teleport (Ping, version check), build the mailer, health-check it;
 * 2. start the watcher (INIT, rule cache, catch-up) and log `Plugin is ready`;
 * 3. on abort (SIGINT/SIGTERM, handled by `cli.ts`): stop the watcher, let running handlers
 *    finish (bounded, under the CLI's 15 s limit), close the mailer and the client, resolve.
 *
 * Fatal errors reject with typed errors; `cli.ts` logs them and exits 1.
 */
import type { Config } from "./config/types.ts";
import { instrumentMailer } from "./diag/instrument.ts";
import { NOOP_OBSERVER, type PluginObserver } from "./diag/metrics.ts";
import { ConfigError, formatError, TeleportEmailError } from "./errors.ts";
import { getLogger } from "./log.ts";
import { createMailer } from "./mailers/create.ts";
import { DEFAULT_SMTP_MAX_CONNECTIONS } from "./mailers/smtp.ts";
import type { Mailer } from "./mailers/mailer.ts";
import { Engine } from "./notify/engine.ts";
import { DEFAULT_WATERMARK_MARGIN_MS, RequestHandler, Watermark } from "./notify/handler.ts";
import { computeRecipients } from "./notify/recipients.ts";
import { AccessMonitoringRuleCache } from "./notify/rules.ts";
import { connectTeleport, type TeleportConnection } from "./teleport/connect.ts";
import { parseFailFast, runWatcher, type WatcherReadyInfo } from "./watcher.ts";

/** Options of {@link runApp}. */
export interface RunAppOptions {
  /** Aborted on SIGINT/SIGTERM: stop gracefully and resolve. */
  signal: AbortSignal;
  /** `start --debug` was given (logging is already set up accordingly). */
  debug: boolean;
  /** Told about readiness, events and sends (`start --diag-addr`); default: nothing. */
  observer?: PluginObserver;
}

/** Bound on start-up: Teleport connection, mailer and health check (Go `initTimeout`). */
export const INIT_TIMEOUT_MS = 10_000;
/** How long running handlers may take to finish on shutdown (below the CLI's 15 s). */
export const DRAIN_TIMEOUT_MS = 12_000;
/**
 * Emails sent at once over all requests, per transport. SMTP: the pool size; more would only
 * queue inside nodemailer, in no fair order and out of reach of the event deadline (a message
 * queued there is still sent after its handler gave up, unrecorded). Mailgun: no global limit
 * (each send is its own HTTPS request; a limit of 16 cut the bench's throughput by a quarter).
 */
export const MAX_PARALLEL_SENDS: Readonly<Record<Mailer["kind"], number | undefined>> = {
  smtp: DEFAULT_SMTP_MAX_CONNECTIONS,
  mailgun: undefined,
};
/** Plugin name for plugin data and rule notifications. */
export const PLUGIN_NAME = "email";

/**
 * Environment variable overriding the clock-skew margin of the watermark that decides which
 * requests first seen already resolved are notified (ms, default 120 000; see
 * `notify/handler.ts`).
 */
export const WATERMARK_MARGIN_ENV = "TELEPORT_EMAIL_WATERMARK_MARGIN_MS";

/**
 * Parses {@link WATERMARK_MARGIN_ENV} (unset or "" = the default). Throws {@link ConfigError}
 * unless it is a non-negative integer.
 */
export function parseWatermarkMargin(value: string | undefined): number {
  if (value === undefined || value === "") return DEFAULT_WATERMARK_MARGIN_MS;
  if (!/^[0-9]{1,12}$/.test(value)) {
    throw new ConfigError(
      WATERMARK_MARGIN_ENV,
      `Invalid ${WATERMARK_MARGIN_ENV} value "${value}"`,
      { hint: "use a number of milliseconds, e.g. 120000" },
    );
  }
  return Number(value);
}

/** What {@link runAppWith} builds its parts with; tests substitute fakes. */
export interface AppDeps {
  connect: (
    cfg: Config["teleport"],
    opts: { signal: AbortSignal; timeoutMs: number },
  ) => Promise<TeleportConnection>;
  createMailer: (cfg: Config) => Mailer;
  /** Reads an environment variable (`TELEPORT_PLUGIN_FAIL_FAST`). */
  env: (name: string) => string | undefined;
  /** Tuning for tests. */
  eventTimeoutMs?: number;
  initTimeoutMs?: number;
  drainTimeoutMs?: number;
  /** Overrides {@link MAX_PARALLEL_SENDS}. */
  maxParallelSends?: number;
  /** Called with what the watcher learned when the plugin is ready. */
  onReady?: (info: WatcherReadyInfo) => void;
}

const log = getLogger(["app"]);

function realDeps(): AppDeps {
  return {
    connect: (cfg, opts) => connectTeleport(cfg, { ...opts, log: getLogger(["teleport"]) }),
    createMailer: (cfg) => createMailer(cfg, { log: getLogger(["mailer"]) }),
    env: (name) => Deno.env.get(name),
  };
}

/**
 * Runs the plugin until `opts.signal` is aborted (then resolves: graceful shutdown, exit 0) or a
 * fatal error happens (then rejects; the CLI logs `Terminating with fatal error` and exits 1).
 * Logging is already set up when this is called.
 */
export function runApp(config: Config, opts: RunAppOptions): Promise<void> {
  return runAppWith(config, opts, realDeps());
}

/** {@link runApp} with its dependencies given (for tests). */
export async function runAppWith(
  config: Config,
  opts: RunAppOptions,
  deps: AppDeps,
): Promise<void> {
  const failFast = parseFailFast(deps.env("TELEPORT_PLUGIN_FAIL_FAST"));
  const watermarkMarginMs = parseWatermarkMargin(deps.env(WATERMARK_MARGIN_ENV));
  const initMs = deps.initTimeoutMs ?? INIT_TIMEOUT_MS;
  const initSignal = AbortSignal.any([opts.signal, AbortSignal.timeout(initMs)]);

  // 1. Teleport.
  log.debug("Checking Teleport server version");
  const conn = await deps.connect(config.teleport, { signal: initSignal, timeoutMs: initMs });
  let mailer: Mailer | undefined;
  try {
    const { ping, client } = conn;
    log.info("Connected to Teleport", {
      cluster_name: ping.clusterName,
      server_version: ping.serverVersion,
      connection_mode: client.connectionMode,
    });
    const webProxyAddr = ping.advancedAccessWorkflows && ping.proxyPublicAddr !== ""
      ? ping.proxyPublicAddr
      : undefined;

    // 2. Mailer (logs `Using SMTP/Mailgun as email transport`) and its health check.
    const observer = opts.observer ?? NOOP_OBSERVER;
    observer.trackIdentityExpiry(() => conn.identityExpiry?.());
    mailer = opts.observer
      ? instrumentMailer(deps.createMailer(config), observer)
      : deps.createMailer(config);
    log.debug("Starting client connection health check");
    try {
      await mailer.healthCheck({ signal: initSignal });
    } catch (err) {
      if (opts.signal.aborted) return;
      throw new TeleportEmailError(`client connection health check failed: ${formatError(err)}`, {
        cause: err,
      });
    }
    log.debug("Client connection health check finished ok");
    if (opts.signal.aborted) return;

    // 3. Routing, handler, dispatch, watcher.
    const notifyLog = getLogger(["notify"]);
    const warn = (msg: string, attrs: Record<string, unknown>) => notifyLog.warn(msg, attrs);
    const rules = new AccessMonitoringRuleCache({ warn });
    const watermark = new Watermark({ marginMs: watermarkMarginMs });
    const handler = new RequestHandler({
      client,
      mailer,
      clusterName: ping.clusterName,
      webProxyAddr,
      plugin: PLUGIN_NAME,
      maxParallelSends: deps.maxParallelSends ?? MAX_PARALLEL_SENDS[mailer.kind],
      recipients: (req) =>
        computeRecipients(req, {
          roleToRecipients: config.roleToRecipients,
          rules,
          notifyRequester: config.delivery.notifyRequester,
          pluginName: PLUGIN_NAME,
          warn,
        }).recipients,
      watermark,
      log: notifyLog,
    });
    const engine = new Engine({
      handler,
      eventTimeoutMs: deps.eventTimeoutMs,
      log: notifyLog,
    });
    observer.trackInFlight(() => engine.inFlight);
    let ready = false;
    const watcher = runWatcher({
      client,
      engine,
      rules,
      plugin: PLUGIN_NAME,
      failFast,
      watermark,
      signal: opts.signal,
      log: getLogger(["watcher"]),
      onInit: () => observer.watching(),
      onReconnect: (reason) => observer.reconnecting(reason),
      onEvent: () => observer.eventReceived(),
      onReady: (info) => {
        ready = true;
        log.info("Plugin is ready");
        deps.onReady?.(info);
      },
    });
    try {
      await watcher;
    } catch (err) {
      if (!ready) log.error("Plugin is not ready");
      throw err;
    } finally {
      // 4. Shutdown: the watcher has stopped reading; let running handlers finish.
      const drained = await engine.drain(deps.drainTimeoutMs ?? DRAIN_TIMEOUT_MS);
      if (!drained) {
        log.warn(
          "Some request handlers did not finish before shutdown; the next start or another replica will finish them",
          { drain_timeout_ms: deps.drainTimeoutMs ?? DRAIN_TIMEOUT_MS },
        );
      }
    }
  } finally {
    try {
      await mailer?.close();
    } catch (err) {
      log.debug("Failed to close the mailer", { error: formatError(err) });
    }
    conn.close();
  }
}
