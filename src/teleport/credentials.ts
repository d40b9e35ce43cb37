/**
 * The plugin's Teleport credentials for its whole life: loads them from `[teleport]`, refuses
 * expired ones at start-up (with the Go plugin's message), and with `refresh_identity` re-reads
 * the identity file every `refresh_identity_interval` until closed, so NEW connections use the
 * newest certificate (tbot renewals). Unlike the Go plugin, whose refresh ends once start-up is
 * over, the refresh goes on for the daemon's whole life.
 */
import type { Logger } from "@logtape/logtape";
import type { TeleportConfig } from "../config/types.ts";
import { ConfigError, errorMessage, TeleportEmailError, TeleportError } from "../errors.ts";
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

/** How to (re-)read the credentials `[teleport]` names. Throws `ConfigError` when it names none. */
function identityReader(cfg: TeleportConfig): (signal?: AbortSignal) => Promise<Identity> {
  if (cfg.identity) return (signal) => readIdentityFile(cfg.identity, { signal });
  if (cfg.clientKey && cfg.clientCrt && cfg.rootCas) {
    const files = { clientKey: cfg.clientKey, clientCrt: cfg.clientCrt, rootCas: cfg.rootCas };
    return (signal) => readTlsFiles(files, { signal });
  }
  throw new ConfigError(
    "teleport.identity",
    'No credentials configured: set "teleport.identity", or all of "teleport.client_key", "teleport.client_crt" and "teleport.root_cas"',
  );
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
  const read = identityReader(cfg);
  const first = await read(opts.signal);
  if (now().getTime() >= first.notAfter.getTime()) {
    throw new TeleportError("access_denied", NO_VALID_CREDENTIALS_MESSAGE, {
      hint: `the certificate in "${first.source}" expired at ${first.notAfter.toISOString()}`,
    });
  }
  opts.log?.info("At least one non-expired credential has been found, continuing startup", {
    source: first.source,
    user: first.user,
    expires: first.notAfter.toISOString(),
  });
  const intervalMs = cfg.refreshIdentityIntervalMs > 0
    ? cfg.refreshIdentityIntervalMs
    : DEFAULT_REFRESH_INTERVAL_MS;
  const creds = new RefreshingCredentials(first, read, { ...opts, now, intervalMs });
  if (cfg.identity && cfg.refreshIdentity) creds.startRefresh();
  return creds;
}

/**
 * The identity read at start-up, replaced by newer good ones from `reload()` and, once
 * `startRefresh()` was called, from a re-read every `intervalMs`.
 */
class RefreshingCredentials implements CredentialsSource {
  #refreshing = false;
  #current: Identity;
  #read: (signal?: AbortSignal) => Promise<Identity>;
  #log?: Log;
  #now: () => Date;
  #intervalMs: number;
  #listeners = new Set<(identity: Identity) => void>();
  #closer = new AbortController();
  #signal: AbortSignal;
  #timer?: ReturnType<typeof setTimeout>;

  constructor(
    first: Identity,
    read: (signal?: AbortSignal) => Promise<Identity>,
    opts: { signal?: AbortSignal; log?: Log; now: () => Date; intervalMs: number },
  ) {
    this.#current = first;
    this.#read = read;
    this.#log = opts.log;
    this.#now = opts.now;
    this.#intervalMs = opts.intervalMs;
    this.#signal = opts.signal
      ? AbortSignal.any([opts.signal, this.#closer.signal])
      : this.#closer.signal;
    this.#signal.addEventListener("abort", () => this.#stop(), { once: true });
  }

  get refreshing(): boolean {
    return this.#refreshing;
  }

  current(): Identity {
    return this.#current;
  }

  async reload(o: { signal?: AbortSignal } = {}): Promise<Identity> {
    const s = o.signal ? AbortSignal.any([o.signal, this.#signal]) : this.#signal;
    return this.#adopt(await this.#read(s));
  }

  onChange(listener: (identity: Identity) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  close(): void {
    this.#closer.abort();
    this.#stop();
  }

  /** Starts re-reading the identity file every `intervalMs` (`refresh_identity`). */
  startRefresh(): void {
    this.#refreshing = true;
    this.#log?.debug("Re-reading identity file {source} every {interval} ms", {
      source: this.#current.source,
      interval: this.#intervalMs,
    });
    this.#schedule();
  }

  /** Makes `next` current unless it is the same or expired while the current one is not. */
  #adopt(next: Identity): Identity {
    const current = this.#current;
    if (sameIdentity(current, next)) return current;
    const nowMs = this.#now().getTime();
    if (nowMs >= next.notAfter.getTime() && nowMs < current.notAfter.getTime()) {
      this.#log?.warn(
        "Identity file {source} holds an expired certificate, keeping the previous one",
        { source: next.source, expired: next.notAfter.toISOString() },
      );
      return current;
    }
    this.#current = next;
    this.#log?.info("Reloaded credentials from {source}, new certificate valid until {expires}", {
      source: next.source,
      expires: next.notAfter.toISOString(),
    });
    for (const l of this.#listeners) {
      try {
        l(next);
      } catch (err) {
        this.#log?.error("Credentials change listener failed: {error}", {
          error: errorMessage(err),
        });
      }
    }
    return next;
  }

  #schedule(): void {
    if (this.#signal.aborted) return;
    const t = setTimeout(() => this.#tick(), this.#intervalMs);
    Deno.unrefTimer(t);
    this.#timer = t;
  }

  async #tick(): Promise<void> {
    this.#timer = undefined;
    try {
      this.#adopt(await this.#read(this.#signal));
    } catch (err) {
      if (this.#signal.aborted) return;
      this.#log?.warn("Cannot reload credentials, keeping the previous ones: {error}", {
        error: err instanceof TeleportEmailError ? err.message : errorMessage(err),
      });
    }
    this.#schedule();
  }

  #stop(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
  }
}
