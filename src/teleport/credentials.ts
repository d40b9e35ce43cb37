/**
 * The plugin's Teleport credentials for its whole life: loads them from `[teleport]`, refuses
 * expired ones at start-up (with the Go plugin's message), and with `refresh_identity` re-reads
 * the identity file every `refresh_identity_interval` until closed, so NEW connections use the
 * newest certificate (tbot renewals). Unlike the Go plugin (upstream bug #67629) the refresh does
 * not stop after start-up.
 */
import type { Logger } from "@logtape/logtape";
import type { TeleportConfig } from "../config/types.ts";
import { ConfigError, TeleportEmailError, TeleportError } from "../errors.ts";
import { type Identity, readIdentityFile, readTlsFiles } from "./identity.ts";

/** The logging methods credentials and dialers use (a LogTape `Logger` fits). */
export type Log = Pick<Logger, "debug" | "info" | "warn" | "error">;

/** Default `refresh_identity_interval`: one minute. */
export const DEFAULT_REFRESH_INTERVAL_MS = 60_000;

/** The Go plugin's start-up error when every credential has expired. */
export const NO_VALID_CREDENTIALS_MESSAGE =
  "No valid credentials found, this likely means credentials are expired. In this case, please sign new credentials and increase their TTL if needed.";

/** Where the current credentials come from; `current()` always returns the newest good one. */
export interface CredentialsSource {
  /** The newest successfully read identity. */
  current(): Identity;
  /**
   * Re-reads the credentials now (for example after repeated connection failures). On failure the
   * previous identity stays current and the error is thrown.
   */
  reload(opts?: { signal?: AbortSignal }): Promise<Identity>;
  /** Calls `listener` whenever a different identity becomes current. Returns an unsubscribe function. */
  onChange(listener: (identity: Identity) => void): () => void;
  /** Whether the identity file is re-read periodically. */
  readonly refreshing: boolean;
  /** Stops the periodic refresh. Idempotent. */
  close(): void;
}

/** Options of {@link createCredentials}. */
export interface CreateCredentialsOptions {
  /** Aborting stops the initial read and the periodic refresh. */
  signal?: AbortSignal;
  log?: Log;
  /** Clock, for tests. */
  now?: () => Date;
}

function sameIdentity(a: Identity, b: Identity): boolean {
  return a.certPem === b.certPem && a.keyPem === b.keyPem &&
    a.caPems.join("") === b.caPems.join("") &&
    a.sshCert === b.sshCert && a.sshCertAuthorities.join("\n") === b.sshCertAuthorities.join("\n");
}

function describe(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/**
 * Loads the credentials `[teleport]` names (an identity file, or the `client_key`/`client_crt`/
 * `root_cas` triple) and checks they have not expired. Throws `ConfigError` when they cannot be
 * read and `TeleportError` (`access_denied`, the Go plugin's "No valid credentials found..."
 * message) when they have expired.
 */
export async function createCredentials(
  cfg: TeleportConfig,
  opts: CreateCredentialsOptions = {},
): Promise<CredentialsSource> {
  const now = opts.now ?? (() => new Date());
  const log = opts.log;
  let read: (signal?: AbortSignal) => Promise<Identity>;
  if (cfg.identity) {
    read = (signal) => readIdentityFile(cfg.identity, { signal });
  } else if (cfg.clientKey && cfg.clientCrt && cfg.rootCas) {
    read = (signal) =>
      readTlsFiles({ clientKey: cfg.clientKey, clientCrt: cfg.clientCrt, rootCas: cfg.rootCas }, {
        signal,
      });
  } else {
    throw new ConfigError(
      "teleport.identity",
      'No credentials configured: set "teleport.identity", or all of "teleport.client_key", "teleport.client_crt" and "teleport.root_cas"',
    );
  }

  let current = await read(opts.signal);
  if (now().getTime() >= current.notAfter.getTime()) {
    throw new TeleportError("access_denied", NO_VALID_CREDENTIALS_MESSAGE, {
      hint: `the certificate in "${current.source}" expired at ${current.notAfter.toISOString()}`,
    });
  }
  log?.info("At least one non-expired credential has been found, continuing startup", {
    source: current.source,
    user: current.user,
    expires: current.notAfter.toISOString(),
  });

  const listeners = new Set<(identity: Identity) => void>();
  const closer = new AbortController();
  const signal = opts.signal ? AbortSignal.any([opts.signal, closer.signal]) : closer.signal;

  const adopt = (next: Identity): Identity => {
    if (sameIdentity(current, next)) return current;
    const nowMs = now().getTime();
    if (nowMs >= next.notAfter.getTime() && nowMs < current.notAfter.getTime()) {
      log?.warn("Identity file {source} holds an expired certificate, keeping the previous one", {
        source: next.source,
        expired: next.notAfter.toISOString(),
      });
      return current;
    }
    current = next;
    log?.info("Reloaded credentials from {source}, new certificate valid until {expires}", {
      source: next.source,
      expires: next.notAfter.toISOString(),
    });
    for (const l of listeners) {
      try {
        l(next);
      } catch (err) {
        log?.error("Credentials change listener failed: {error}", { error: describe(err) });
      }
    }
    return current;
  };

  const refreshing = Boolean(cfg.identity && cfg.refreshIdentity);
  const intervalMs = cfg.refreshIdentityIntervalMs > 0
    ? cfg.refreshIdentityIntervalMs
    : DEFAULT_REFRESH_INTERVAL_MS;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const schedule = () => {
    if (signal.aborted) return;
    const t = setTimeout(tick, intervalMs);
    Deno.unrefTimer(t);
    timer = t;
  };
  const tick = async () => {
    timer = undefined;
    try {
      adopt(await read(signal));
    } catch (err) {
      if (signal.aborted) return;
      log?.warn("Cannot reload credentials, keeping the previous ones: {error}", {
        error: err instanceof TeleportEmailError ? err.message : describe(err),
      });
    }
    schedule();
  };
  const stop = () => {
    if (timer !== undefined) clearTimeout(timer);
    timer = undefined;
  };
  signal.addEventListener("abort", stop, { once: true });
  if (refreshing) {
    log?.debug("Re-reading identity file {source} every {interval} ms", {
      source: current.source,
      interval: intervalMs,
    });
    schedule();
  }

  return {
    current: () => current,
    reload: async (o = {}) => {
      const s = o.signal ? AbortSignal.any([o.signal, signal]) : signal;
      return adopt(await read(s));
    },
    onChange(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    refreshing,
    close() {
      closer.abort();
      stop();
    },
  };
}

/** A fixed `CredentialsSource` around one identity (tests, tools). `reload()` returns it unchanged. */
export function staticCredentials(identity: Identity): CredentialsSource {
  return {
    current: () => identity,
    reload: () => Promise.resolve(identity),
    onChange: () => () => {},
    refreshing: false,
    close() {},
  };
}
