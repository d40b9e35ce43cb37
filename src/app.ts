/**
 * Wiring and lifecycle of the running plugin:
 *
 * 1. within 10 s: connect to Teleport (Ping, version check), build the mailer, health-check it;
 * 2. start the pipeline (watcher → engine → handler, see `pipeline.ts`: INIT, rule cache,
 *    catch-up) and log `Plugin is ready`, then compact the heap once (`heap.ts`);
 * 3. on SIGHUP: reload (see {@link reload}; what a reload may change is in `reload.ts`);
 * 4. on abort (SIGINT/SIGTERM, handled by `cli.ts`): stop the watcher, let running handlers
 *    finish (bounded, under the CLI's 15 s limit), close the mailer and the client, resolve.
 *
 * Fatal errors reject with typed errors; `cli.ts` logs them and exits 1. Reads no environment
 * variable: the CLI passes them in {@link RunAppOptions.env}.
 */
import type { EnvSettings } from "./config/env.ts";
import { loadConfig } from "./config/load.ts";
import type { Config } from "./config/types.ts";
import { instrumentMailer } from "./diag/instrument.ts";
import { NOOP_OBSERVER, type PluginObserver } from "./diag/observer.ts";
import { ConfigError, formatError, TeleportEmailError } from "./errors.ts";
import { compactHeap } from "./heap.ts";
import { currentLogConfig, getLogger, reloadLogging } from "./log.ts";
import { createMailer } from "./mailers/create.ts";
import { DEFAULT_SMTP_MAX_CONNECTIONS, type Mailer } from "./mailers/mailer.ts";
import { SwappableMailer } from "./mailers/swappable.ts";
import { DEFAULT_LEASE_MS } from "./notify/lease.ts";
import { Watermark } from "./notify/watermark.ts";
import { type LivenessProbe, tryStartProbe } from "./liveness.ts";
import { Pipeline } from "./pipeline.ts";
import {
  type ConfigChange,
  configChanges,
  needsNewConnection,
  needsNewMailer,
  ReloadQueue,
} from "./reload.ts";
import { connectTeleport, type TeleportConnection } from "./teleport/connect.ts";
import type { WatcherReadyInfo } from "./watcher.ts";

/** Options of {@link runApp}. */
export interface RunAppOptions {
  /** Aborted on SIGINT/SIGTERM: stop gracefully and resolve. */
  signal: AbortSignal;
  /** `start --debug` was given (logging is already set up accordingly). */
  debug: boolean;
  /** What the environment sets (`config/env.ts`); default: nothing set. */
  env?: EnvSettings;
  /** Told about readiness, events and sends (`start --diag-addr`); default: nothing. */
  observer?: PluginObserver;
}

/** Bound on start-up: Teleport connection, mailer and health check (Go `initTimeout`). */
export const INIT_TIMEOUT_MS = 10_000;
/** How long running handlers may take to finish on shutdown (below the CLI's 15 s). */
export const DRAIN_TIMEOUT_MS = 12_000;
/** How long a reload waits for a new connection's watcher to receive INIT. */
export const RELOAD_WATCH_TIMEOUT_MS = 20_000;
/**
 * Emails sent at once over all requests, per transport. SMTP: the pool size; more would only
 * wait inside the SMTP pool for a connection, after their messages were built (the handler's
 * limiter makes them wait before, in arrival order, under the event deadline). Mailgun: no global limit
 * (each send is its own HTTPS request; a limit of 16 cut the bench's throughput by a quarter).
 */
export const MAX_PARALLEL_SENDS: Readonly<Record<Mailer["kind"], number | undefined>> = {
  smtp: DEFAULT_SMTP_MAX_CONNECTIONS,
  mailgun: undefined,
};
/** Plugin name for plugin data and rule notifications. */
export const PLUGIN_NAME = "email" as const;

/** What {@link runAppWith} builds its parts with; tests substitute fakes. */
export interface AppDeps {
  connect: (
    cfg: Config["teleport"],
    opts: { signal: AbortSignal; timeoutMs: number },
  ) => Promise<TeleportConnection>;
  /** Builds the configured mailer (loading only its transport's modules); see `createMailer`. */
  createMailer: (cfg: Config) => Promise<Mailer>;
  /** Re-reads the configuration file on a reload; default `loadConfig`. */
  loadConfig?: (path: string) => Promise<Config>;
  /** Calls `listener` on each reload request (SIGHUP); returns a function that stops it. */
  onReloadSignal?: (listener: () => void) => () => void;
  /** Tuning for tests. */
  eventTimeoutMs?: number;
  initTimeoutMs?: number;
  drainTimeoutMs?: number;
  /** Overrides {@link MAX_PARALLEL_SENDS}. */
  maxParallelSends?: number;
  /** Called with what the watcher learned when the plugin is ready. */
  onReady?: (info: WatcherReadyInfo) => void;
  /** Called after each reload: what changed, or why nothing did. */
  onReload?: (result: { changes: ConfigChange[] } | { error: unknown }) => void;
}

const log = getLogger(["app"]);

function realDeps(env?: EnvSettings): AppDeps {
  return {
    connect: (cfg, opts) =>
      connectTeleport(cfg, { ...opts, log: getLogger(["teleport"]), dialer: { env: env?.dial } }),
    createMailer: (cfg) => createMailer(cfg, { log: getLogger(["mailer"]) }),
    loadConfig: (path) => loadConfig(path),
    onReloadSignal: listenForSighup,
  };
}

function listenForSighup(listener: () => void): () => void {
  try {
    Deno.addSignalListener("SIGHUP", listener);
  } catch {
    return () => {}; // No SIGHUP on Windows.
  }
  return () => Deno.removeSignalListener("SIGHUP", listener);
}

/** The running plugin: the configuration in force and what was built from it. */
interface App {
  config: Config;
  mailer: SwappableMailer;
  pipeline: Pipeline;
  readonly watermark: Watermark;
  /** This process's liveness socket, written into leases (undefined: it could not be made). */
  readonly probe: LivenessProbe | undefined;
  readonly opts: RunAppOptions;
  readonly deps: AppDeps;
  /** Aborted on shutdown and on a fatal error (stops a reload in progress). */
  readonly signal: AbortSignal;
}

/**
 * Runs the plugin until `opts.signal` is aborted (then resolves: graceful shutdown, exit 0) or a
 * fatal error happens (then rejects; the CLI logs `Terminating with fatal error` and exits 1).
 * Logging is already set up when this is called.
 */
export function runApp(config: Config, opts: RunAppOptions): Promise<void> {
  return runAppWith(config, opts, realDeps(opts.env));
}

/** {@link runApp} with its dependencies given (for tests). */
export async function runAppWith(
  config: Config,
  opts: RunAppOptions,
  deps: AppDeps,
): Promise<void> {
  const lifetime = new AbortController();
  const signal = AbortSignal.any([opts.signal, lifetime.signal]);
  let app: App | undefined;
  const reloads = new ReloadQueue(() => app === undefined ? Promise.resolve() : reload(app));
  // Read at scrape time, so they follow the connection and engine a reload put in force.
  const observer = opts.observer ?? NOOP_OBSERVER;
  observer.trackIdentityExpiry(() => app?.pipeline.conn.identityExpiry?.());
  observer.trackInFlight(() => app?.pipeline.engine.inFlight ?? 0);
  // Listened to from the start: a SIGHUP during start-up waits, it does not kill the process.
  const unlisten = deps.onReloadSignal?.(() => {
    log.info("Received SIGHUP, reloading the configuration", { config: config.path });
    reloads.request();
  });
  try {
    const started = await startUp(config, opts, deps);
    if (started === undefined) return;
    const watermark = new Watermark({ marginMs: opts.env?.watermarkMarginMs });
    const mailer = new SwappableMailer(started.mailer);
    const probe = tryStartProbe({
      dir: opts.env?.probeDir ?? "/tmp",
      hostName: opts.env?.hostName,
      sweepAfterMs: 2 * DEFAULT_LEASE_MS,
    }, (msg, attrs) => log.warn(msg, attrs));
    const base = { config, mailer, watermark, probe, opts, deps, signal };
    // The same object: the pipeline reads `config` from it, which a reload replaces.
    app = Object.assign(base, { pipeline: newPipeline(base, started.conn, mailer.kind, true) });
    await runPipelines(app, () => reloads.resume());
  } finally {
    unlisten?.();
    lifetime.abort();
    await reloads.stop();
    if (app !== undefined) await shutdown(app);
  }
}

/**
 * Start-up steps 1 and 2: the Teleport connection and the health-checked mailer. Resolves
 * undefined when `opts.signal` aborted meanwhile (nothing left open).
 */
async function startUp(
  config: Config,
  opts: RunAppOptions,
  deps: AppDeps,
): Promise<{ conn: TeleportConnection; mailer: Mailer } | undefined> {
  const initMs = deps.initTimeoutMs ?? INIT_TIMEOUT_MS;
  const initSignal = AbortSignal.any([opts.signal, AbortSignal.timeout(initMs)]);
  log.debug("Checking Teleport server version");
  const conn = await deps.connect(config.teleport, { signal: initSignal, timeoutMs: initMs });
  logConnected(conn, "Connected to Teleport");
  let mailer: Mailer | undefined;
  try {
    mailer = await startMailer(config, deps, opts.observer, initSignal);
  } catch (err) {
    await closeQuietly(mailer);
    conn.close();
    if (opts.signal.aborted) return undefined;
    throw err;
  }
  if (opts.signal.aborted) {
    await closeQuietly(mailer);
    conn.close();
    return undefined;
  }
  return { conn, mailer };
}

function logConnected(conn: TeleportConnection, message: string): void {
  log.info(message, {
    cluster_name: conn.ping.clusterName,
    server_version: conn.ping.serverVersion,
    connection_mode: conn.client.connectionMode,
  });
}

/**
 * Builds the mailer (logs `Using SMTP/Mailgun as email transport`), reporting to `observer`
 * when given, and health-checks it.
 */
async function startMailer(
  config: Config,
  deps: AppDeps,
  observer: PluginObserver | undefined,
  signal: AbortSignal,
): Promise<Mailer> {
  const created = await deps.createMailer(config);
  const mailer = observer ? instrumentMailer(created, observer) : created;
  log.debug("Starting client connection health check");
  try {
    await mailer.healthCheck({ signal });
  } catch (err) {
    await closeQuietly(mailer);
    throw new TeleportEmailError(`client connection health check failed: ${formatError(err)}`, {
      cause: err,
    });
  }
  log.debug("Client connection health check finished ok");
  return mailer;
}

function newPipeline(
  app: Omit<App, "pipeline">,
  conn: TeleportConnection,
  kind: Mailer["kind"],
  open: boolean,
): Pipeline {
  return new Pipeline(conn, {
    config: () => app.config,
    mailer: app.mailer,
    plugin: PLUGIN_NAME,
    watermark: app.watermark,
    holder: app.probe?.holder,
    holderGone: app.probe && ((lock) => app.probe!.holderGone(lock)),
    failFast: app.opts.env?.failFast ?? false,
    maxParallelSends: app.deps.maxParallelSends ?? MAX_PARALLEL_SENDS[kind],
    eventTimeoutMs: app.deps.eventTimeoutMs,
    signal: app.signal,
    observer: app.opts.observer,
    log: { notify: getLogger(["notify"]), watcher: getLogger(["watcher"]) },
  }, open);
}

/**
 * Waits until the pipeline in force stops: at shutdown (resolves) or on a fatal error (rejects).
 * A pipeline that a reload replaced hands over to the new one. Calls `onReady` at the first INIT.
 */
async function runPipelines(app: App, onReady: () => void): Promise<void> {
  let ready = false;
  app.pipeline.ready.then((info) => {
    ready = true;
    log.info("Plugin is ready");
    app.deps.onReady?.(info);
    onReady();
    const compaction = compactHeap();
    if (compaction) {
      log.debug("Compacted the heap after start-up", {
        heap_mib_before: compaction.heapMiBBefore,
        heap_mib_after: compaction.heapMiBAfter,
        ms: compaction.ms,
      });
    }
  }, () => {});
  // Bounded by the reloads: each turn follows a pipeline that replaced the previous one.
  for (;;) {
    const pipeline = app.pipeline;
    try {
      await pipeline.done;
    } catch (err) {
      if (!ready) log.error("Plugin is not ready");
      throw err;
    }
    if (app.pipeline === pipeline || app.signal.aborted) return;
  }
}

/** Step 4: stops the pipeline in force (its handlers finish), closes the mailer and client. */
async function shutdown(app: App): Promise<void> {
  const drainMs = app.deps.drainTimeoutMs ?? DRAIN_TIMEOUT_MS;
  const drained = await app.pipeline.stop(drainMs);
  if (!drained) {
    log.warn(
      "Some request handlers did not finish before shutdown; the next start or another replica will finish them",
      { drain_timeout_ms: drainMs },
    );
  }
  await closeQuietly(app.mailer);
  app.pipeline.conn.close();
  await app.probe?.close();
}

async function closeQuietly(mailer: Mailer | undefined): Promise<void> {
  try {
    await mailer?.close();
  } catch (err) {
    log.debug("Failed to close the mailer", { error: formatError(err) });
  }
}

/** A reload, built and checked but not yet in force. */
interface PreparedReload {
  config: Config;
  changes: ConfigChange[];
  mailer?: Mailer;
  pipeline?: Pipeline;
}

/**
 * One reload: re-reads and validates the configuration file, re-reads the identity file,
 * prepares what changed (a health-checked mailer, a connected and watching pipeline), switches
 * logging (the log file is reopened in any case), then puts it all in force. On any failure
 * nothing changes except the reopened log file, and the error is logged naming the key.
 */
async function reload(app: App): Promise<void> {
  let prepared: PreparedReload;
  try {
    prepared = await prepareReload(app);
  } catch (err) {
    reopenLog();
    if (app.signal.aborted) return;
    log.error("Configuration not reloaded; the previous configuration stays in force", {
      error: err,
      ...(err instanceof ConfigError && err.key !== "" ? { key: err.key } : {}),
    });
    app.deps.onReload?.({ error: err });
    return;
  }
  await commitReload(app, prepared);
}

/** Everything of {@link reload} that can fail; leaves nothing open when it throws. */
async function prepareReload(app: App): Promise<PreparedReload> {
  const before = app.config;
  const config = await (app.deps.loadConfig ?? loadConfig)(before.path);
  const changes = configChanges(before, config);
  const initMs = app.deps.initTimeoutMs ?? INIT_TIMEOUT_MS;
  const signal = AbortSignal.any([app.signal, AbortSignal.timeout(initMs)]);
  let reconnect = needsNewConnection(before, config);
  if (!reconnect && await identityChanged(app.pipeline.conn, signal)) {
    reconnect = true;
    changes.push("identity");
  }
  const out: PreparedReload = { config, changes };
  try {
    if (needsNewMailer(changes)) {
      out.mailer = await startMailer(config, app.deps, app.opts.observer, signal);
    }
    if (reconnect) {
      const conn = await app.deps.connect(config.teleport, { signal, timeoutMs: initMs });
      const kind = (out.mailer ?? app.mailer).kind;
      out.pipeline = newPipeline(app, conn, kind, false);
      await waitForWatch(out.pipeline, app.signal);
    }
    // Last, as it cannot be undone: the new [log] (the file reopened), or the old one kept.
    reloadLogging(config.log);
    return out;
  } catch (err) {
    await closeQuietly(out.mailer);
    if (out.pipeline !== undefined) {
      await out.pipeline.stop(0);
      out.pipeline.conn.close();
    }
    throw err;
  }
}

/**
 * Re-reads the identity file (like `refresh_identity` does periodically); true when it now
 * holds a different certificate. Throws when it cannot be read.
 */
async function identityChanged(conn: TeleportConnection, signal: AbortSignal): Promise<boolean> {
  const credentials = conn.credentials;
  if (credentials === undefined) return false;
  const before = credentials.current();
  return (await credentials.reload({ signal })) !== before;
}

/** Resolves once `pipeline` received INIT; rejects when it fails or takes too long. */
async function waitForWatch(pipeline: Pipeline, signal: AbortSignal): Promise<void> {
  const limit = AbortSignal.any([signal, AbortSignal.timeout(RELOAD_WATCH_TIMEOUT_MS)]);
  let onAbort = () => {};
  const aborted = new Promise<never>((_, reject) => {
    onAbort = () =>
      reject(
        new TeleportEmailError(
          `the new Teleport connection did not start watching within ${
            RELOAD_WATCH_TIMEOUT_MS / 1000
          } s`,
        ),
      );
    limit.addEventListener("abort", onAbort, { once: true });
  });
  try {
    await Promise.race([pipeline.ready, aborted]);
  } finally {
    limit.removeEventListener("abort", onAbort);
  }
}

/** Puts a prepared reload in force: configuration, mailer, then the pipeline hand-over. */
async function commitReload(app: App, p: PreparedReload): Promise<void> {
  app.config = p.config;
  for (const warning of p.config.warnings) log.warn(literal(warning));
  if (p.mailer !== undefined) app.mailer.replace(p.mailer);
  if (p.pipeline !== undefined) {
    const previous = app.pipeline;
    app.pipeline = p.pipeline;
    const drainMs = app.deps.drainTimeoutMs ?? DRAIN_TIMEOUT_MS;
    const drained = await previous.stop(drainMs);
    previous.conn.close();
    p.pipeline.open();
    if (!drained) {
      log.warn(
        "Some request handlers did not finish before the reload; the new connection will finish them",
        { drain_timeout_ms: drainMs },
      );
    }
    logConnected(p.pipeline.conn, "Reconnected to Teleport with the reloaded configuration");
  }
  log.info("Configuration reloaded", {
    config: p.config.path,
    changed: p.changes.length === 0 ? "nothing" : p.changes.join(","),
  });
  app.deps.onReload?.({ changes: p.changes });
}

/** Reopens the log file in force (for logrotate, even when the reload failed). */
function reopenLog(): void {
  const current = currentLogConfig();
  if (current === undefined) return;
  try {
    reloadLogging(current);
  } catch (err) {
    log.error("Cannot reopen the log file", { error: err });
  }
}

/** LogTape reads `{name}` as a placeholder: double the braces of a literal message. */
function literal(message: string): string {
  return message.replace(/[{}]/g, (c) => c + c);
}
