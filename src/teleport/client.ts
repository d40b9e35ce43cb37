/**
 * What the plugin needs from Teleport, as an interface: `notify/` and `watcher.ts` depend on this,
 * never on the gRPC implementation, so they are tested against in-memory fakes.
 *
 * Every method throws {@link TeleportError} on failure (see `errors.ts` for the kinds).
 */
import type {
  AccessMonitoringRule,
  AccessRequest,
  PingResult,
  PluginDataMap,
  RequestState,
  WatchEvent,
} from "./types.ts";

export interface CallOptions {
  signal?: AbortSignal;
}

export interface TeleportClient {
  /** How the connection was made, for logs: `direct`, `tls-routing`, `tls-routing-upgrade`, `tunnel`. */
  readonly connectionMode: string;

  ping(opts?: CallOptions): Promise<PingResult>;

  /**
   * Opens a `WatchEvents` stream for `kinds` with `AllowPartialSuccess`. The first yielded event
   * is the INIT. The iterator ends (or throws a `connection_problem` TeleportError) when the
   * stream is lost; aborting `signal` ends it quietly.
   */
  watchEvents(kinds: string[], opts?: CallOptions): AsyncIterable<WatchEvent>;

  /**
   * All access requests (every page), optionally only those in `state`; with `limit`, only the
   * first page of at most `limit` requests.
   */
  listAccessRequests(
    opts?: CallOptions & { state?: RequestState; limit?: number },
  ): Promise<AccessRequest[]>;

  /** The plugin's data on one access request; undefined when there is none. */
  getPluginData(
    requestId: string,
    plugin: string,
    opts?: CallOptions,
  ): Promise<PluginDataMap | undefined>;

  /** Every access request's plugin data for `plugin` (also for requests already deleted). */
  listPluginData(
    plugin: string,
    opts?: CallOptions,
  ): Promise<Array<{ requestId: string; data: PluginDataMap }>>;

  /**
   * Compare-and-swap write: every key of `expect` must equal the stored value (absent = "").
   * A `set` value of "" deletes that key. Throws a `compare_failed` TeleportError on mismatch.
   */
  updatePluginData(
    requestId: string,
    plugin: string,
    set: PluginDataMap,
    expect: PluginDataMap,
    opts?: CallOptions,
  ): Promise<void>;

  /** Rules for subject `access_request` and notification name `plugin` (every page). */
  listAccessMonitoringRules(plugin: string, opts?: CallOptions): Promise<AccessMonitoringRule[]>;

  close(): void;
}
