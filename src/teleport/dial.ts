/**
 * How the plugin reaches the Teleport Auth Service from the one configured `addr`, like the Go
 * API client (`api/client`): every candidate mode is tried in parallel and the first that
 * completes an mTLS handshake with the Auth Service (server verified by the identity's host CAs,
 * `h2` negotiated) wins. The winner's mode is reused for every new connection.
 *
 * Modes:
 * - `direct`: TCP to `addr` (default port 3025), TLS with SNI `teleport.cluster.local`, ALPN `h2`.
 * - `tls-routing`: `GET https://addr/webapi/find` (default port 443); if `tls_routing_enabled`,
 *   TLS to `addr` with ALPN `["teleport-auth@<hex(cluster)>.teleport.cluster.local", "h2"]`, which
 *   the Proxy forwards unopened to Auth (TLS is end to end).
 * - `tls-routing-upgrade`: the same inner TLS inside a WebSocket (`/webapi/connectionupgrade`,
 *   `alpn-ping`) when an L7 load balancer in front of the Proxy strips ALPN. Chosen by
 *   `TELEPORT_TLS_ROUTING_CONN_UPGRADE` (`true`/`false` or `addr=yes,addr2=no`), else by a test
 *   dial with ALPN `teleport-reversetunnel` that negotiates nothing.
 * - `tunnel`: the SSH reverse tunnel (`dial_tunnel.ts`): `addr` as a tunnel address (port 3024),
 *   the tunnel address `/webapi/find` advertises when the Proxy has no TLS routing, or ALPN
 *   `teleport-reversetunnel` when the `teleport-auth@` route fails. Needs the identity's SSH
 *   certificate.
 *
 * The outer TCP dial honours `HTTPS_PROXY`/`NO_PROXY` (HTTP CONNECT; loopback never proxied).
 * The Proxy's web certificate is verified as described in `webapi.ts` (system roots or
 * `SSL_CERT_FILE`, plus `DENO_CERT`, plus the identity's host CAs); never skipped.
 */
import type tls from "node:tls";
import { Buffer } from "node:buffer";
import type { Duplex } from "node:stream";
import { TeleportError, type TeleportErrorKind } from "../errors.ts";
import type { CredentialsSource, Log } from "./credentials.ts";
import type { Identity } from "./identity.ts";
import {
  API_DOMAIN,
  connectAuthTls,
  DEFAULT_WEB_PORT,
  DialFailure,
  dialOuter,
  type Env,
  type HostPort,
  joinHostPort,
  parseHostPort,
  processEnv,
  proveAccepted,
  SERVER_CERT_CODES,
  tlsRejection,
} from "./dial_net.ts";
import { connectWeb, findProxy, type FindResponse, webRootCas } from "./webapi.ts";
import { UpgradeNotSupportedError, upgradeWebSocket } from "./websocket.ts";
import { openTunnelDialer, tunnelAddrFromFind } from "./dial_tunnel.ts";

export { API_DOMAIN, connectAuthTls, DEFAULT_WEB_PORT } from "./dial_net.ts";
export { DEFAULT_TUNNEL_PORT, tunnelAddrFromFind } from "./dial_tunnel.ts";
/** Default Auth Service port. */
export const DEFAULT_AUTH_PORT = 3025;
/** Default overall budget of {@link resolveAuthDialer}. */
export const DEFAULT_RESOLVE_TIMEOUT_MS = 10_000;
/** Default timeout of each `dial()`. */
export const DEFAULT_DIAL_TIMEOUT_MS = 10_000;

/** How connections reach the Auth Service. */
export type AuthDialMode = "direct" | "tls-routing" | "tls-routing-upgrade" | "tunnel";

/** Opens connections to the Auth Service in one mode (what the gRPC client consumes). */
export interface AuthDialer {
  readonly mode: AuthDialMode;
  /** The configured address. */
  readonly addr: string;
  /**
   * Opens a NEW connection to the Auth Service: a TLS socket (mTLS with the CURRENT identity,
   * SNI `teleport.cluster.local`, verified against the identity's CA PEMs, ALPN negotiated to
   * `h2`) ready for HTTP/2. Rejects with `TeleportError`.
   */
  dial(opts?: { signal?: AbortSignal }): Promise<Duplex>;
  /**
   * Releases what the dialer keeps between dials (the `tunnel` mode's SSH connection). Open
   * connections from `dial()` are not affected. Optional; idempotent.
   */
  close?(): void;
}

/** Options handed to a tunnel dialer factory (see {@link ResolveAuthDialerOptions.tunnelDialer}). */
export interface TunnelDialerOptions {
  signal?: AbortSignal;
  log?: Log;
  env: Env;
  /** Budget for proving the mode (the factory resolves once it reached Auth once). */
  timeoutMs: number;
  /** Timeout of each later `dial()`. */
  dialTimeoutMs: number;
  /** Reach the tunnel with TLS ALPN `teleport-reversetunnel` through a TLS-routing Proxy. */
  viaTlsAlpn?: boolean;
  /** With `viaTlsAlpn`: the roots that verify the Proxy's web certificate (see `webapi.ts`). */
  proxyCaPems?: string[];
  /** After the first Auth handshake, how long to wait for the server's first bytes. */
  proofTimeoutMs?: number;
}

/** `openTunnelDialer` of `dial_tunnel.ts`: resolves to a proven `tunnel` dialer or rejects. */
export type TunnelDialerFactory = (
  addr: string,
  creds: CredentialsSource,
  opts: TunnelDialerOptions,
) => Promise<AuthDialer>;

/** Options of {@link resolveAuthDialer}. */
export interface ResolveAuthDialerOptions {
  signal?: AbortSignal;
  log?: Log;
  /** Environment for `HTTPS_PROXY`, `NO_PROXY`, `TELEPORT_TLS_ROUTING_CONN_UPGRADE`, `SSL_CERT_FILE`, `DENO_CERT`; default the process's. */
  env?: Env;
  /** Overall budget for choosing the mode; default 10 s. */
  timeoutMs?: number;
  /** Timeout of each `dial()` of the returned dialer; default 10 s. */
  dialTimeoutMs?: number;
  /**
   * After the handshake, how long to wait for the server's first bytes (its HTTP/2 SETTINGS) to
   * prove it accepted the client certificate (TLS 1.3 reports rejection after the handshake).
   * On timeout the candidate still counts as connected. Default 3 s.
   */
  proofTimeoutMs?: number;
  /** Restricts the candidate modes (default: all that fit). */
  modes?: AuthDialMode[];
  /**
   * The SSH reverse-tunnel mode; default `openTunnelDialer` from `./dial_tunnel.ts`. When the
   * identity has an SSH certificate (identity files do), it is used like Go's `tunnelConnect` (`addr`
   * as a tunnel address, in parallel with the others), `proxyConnect` (the tunnel address from
   * `/webapi/find` when the Proxy has no TLS routing) and `tlsRoutingConnect` (ALPN
   * `teleport-reversetunnel`, when the `teleport-auth@` route fails).
   */
  tunnelDialer?: TunnelDialerFactory;
}

/** ALPN value that makes the Proxy forward TLS to the Auth Service of `clusterName`. */
export function authAlpn(clusterName: string): string {
  return `teleport-auth@${Buffer.from(clusterName, "utf8").toString("hex")}.${API_DOMAIN}`;
}

const TRUE_WORDS = new Set(["1", "t", "true", "y", "yes", "yeah", "on"]);
const FALSE_WORDS = new Set(["0", "f", "false", "n", "no", "nope", "off"]);

function parseBoolWord(v: string): boolean | undefined {
  const w = v.trim().toLowerCase();
  return TRUE_WORDS.has(w) ? true : FALSE_WORDS.has(w) ? false : undefined;
}

/**
 * `TELEPORT_TLS_ROUTING_CONN_UPGRADE` for `addr`: one boolean for every address, or
 * `addr=yes,addr2=no`. Undefined when it does not decide.
 */
export function connUpgradeOverride(addr: string, env: Env): boolean | undefined {
  const value = env.TELEPORT_TLS_ROUTING_CONN_UPGRADE;
  if (!value) return undefined;
  const all = parseBoolWord(value);
  if (all !== undefined) return all;
  for (const item of value.split(",")) {
    const parts = item.split("=");
    if (parts.length === 2 && parts[0].trim() === addr) return parseBoolWord(parts[1]);
  }
  return undefined;
}

/**
 * Whether a load balancer in front of the Proxy strips ALPN (Go `IsALPNConnUpgradeRequired`): a
 * test TLS dial offering only `teleport-reversetunnel` negotiates no protocol or is refused with
 * `no_application_protocol`. Other failures mean "no".
 */
export async function isConnUpgradeRequired(
  target: HostPort,
  opts: { env: Env; roots: string[]; signal?: AbortSignal; timeoutMs?: number; log?: Log },
): Promise<boolean> {
  const signal = anySignal(opts.signal, opts.timeoutMs ?? 5000);
  try {
    const s = await connectWeb(target, { ...opts, signal, alpn: ["teleport-reversetunnel"] });
    const negotiated = s.alpnProtocol;
    s.destroy();
    return !negotiated;
  } catch (err) {
    const text = `${(err as { code?: string }).code ?? ""} ${(err as Error).message}`;
    if (/NO_APPLICATION_PROTOCOL|NoApplicationProtocol|unadvertised ALPN/i.test(text)) return true;
    opts.log?.debug("ALPN upgrade test dial to {addr} failed: {error}", {
      addr: joinHostPort(target),
      error: (err as Error).message,
    });
    return false;
  }
}

function anySignal(signal: AbortSignal | undefined, timeoutMs: number): AbortSignal {
  const t = AbortSignal.timeout(timeoutMs);
  return signal ? AbortSignal.any([signal, t]) : t;
}

/** Turns any dial error into a short reason and a kind. */
function classify(err: unknown, timeoutMs: number): DialFailure {
  if (err instanceof DialFailure) return err;
  if (err instanceof TeleportError) {
    // Drop the "Cannot connect to ... (tunnel mode): " prefix of a nested dialer's error.
    const reason = err.message.replace(/^Cannot connect to .*? \([a-z-]+ mode\): /, "");
    return new DialFailure(err.kind, reason, { cause: err });
  }
  const e = err as { name?: string; code?: string; message?: string };
  const msg = e?.message ?? String(err);
  if (e?.name === "TimeoutError") {
    return new DialFailure("connection_problem", `timed out after ${timeoutMs} ms`, { cause: err });
  }
  if (e?.name === "AbortError") return new DialFailure("canceled", "canceled", { cause: err });
  const rejected = tlsRejection(err);
  if (rejected?.kind === "connection_problem") {
    return new DialFailure(
      rejected.kind,
      `${rejected.reason}; it is not an Auth Service of the identity's cluster`,
      { cause: err },
    );
  }
  if (rejected) return new DialFailure(rejected.kind, rejected.reason, { cause: err });
  return new DialFailure("connection_problem", msg, { cause: err });
}

interface ModeSettings {
  addr: string;
  creds: CredentialsSource;
  env: Env;
  dialTimeoutMs: number;
}

/** Opens one raw (not yet proven) Auth TLS socket in `mode`. */
type Opener = (identity: Identity, signal: AbortSignal) => Promise<tls.TLSSocket>;

function makeDialer(mode: AuthDialMode, s: ModeSettings, open: Opener): AuthDialer {
  return {
    mode,
    addr: s.addr,
    async dial(opts = {}) {
      const signal = anySignal(opts.signal, s.dialTimeoutMs);
      try {
        return await open(s.creds.current(), signal);
      } catch (err) {
        const f = classify(err, s.dialTimeoutMs);
        throw new TeleportError(
          f.kind,
          `Cannot connect to the Teleport Auth Service at "${s.addr}" (${mode} mode): ${f.message}`,
          { cause: err },
        );
      }
    },
  };
}

/** Direct mode opener: TCP (or CONNECT) to `target`, TLS ALPN `h2`. */
function directOpener(target: HostPort, env: Env): Opener {
  return async (identity, signal) => {
    const sock = await dialOuter(target, { env, signal });
    return await connectAuthTls(sock, identity, ["h2"], { signal });
  };
}

/** TLS routing opener, optionally inside the WebSocket connection upgrade. */
function tlsRoutingOpener(
  target: HostPort,
  env: Env,
  clusterName: string,
  upgrade: boolean,
): Opener {
  const alpn = [authAlpn(clusterName), "h2"];
  return async (identity, signal) => {
    if (!upgrade) {
      const sock = await dialOuter(target, { env, signal });
      return await connectAuthTls(sock, identity, alpn, { signal });
    }
    const roots = webRootCas(env, identity.caPems);
    const outer = await connectWeb(target, { env, roots, signal });
    try {
      const ws = await upgradeWebSocket(outer, { host: joinHostPort(target), signal });
      return await connectAuthTls(ws, identity, alpn, { signal });
    } catch (err) {
      outer.destroy();
      if (err instanceof UpgradeNotSupportedError) {
        throw new DialFailure("not_implemented", err.message, { cause: err });
      }
      throw err;
    }
  };
}

interface Candidate {
  label: string;
  run: (signal: AbortSignal) => Promise<AuthDialer>;
}

/**
 * Chooses how to reach the Auth Service at `addr` (see the module doc) and returns a dialer for
 * that mode. Rejects within `timeoutMs` with a `TeleportError` (`connection_problem`, or
 * `access_denied` when a server rejected the client certificate) naming the address and the
 * modes tried.
 */
export async function resolveAuthDialer(
  addr: string,
  creds: CredentialsSource,
  opts: ResolveAuthDialerOptions = {},
): Promise<AuthDialer> {
  const env = opts.env ?? processEnv();
  const timeoutMs = opts.timeoutMs ?? DEFAULT_RESOLVE_TIMEOUT_MS;
  const dialTimeoutMs = opts.dialTimeoutMs ?? DEFAULT_DIAL_TIMEOUT_MS;
  const proofTimeoutMs = opts.proofTimeoutMs ?? 3000;
  const log = opts.log;
  const settings: ModeSettings = { addr, creds, env, dialTimeoutMs };
  const allowed = (m: AuthDialMode) => !opts.modes || opts.modes.includes(m);
  let authTarget: HostPort, webTarget: HostPort;
  try {
    authTarget = parseHostPort(addr, DEFAULT_AUTH_PORT);
    webTarget = parseHostPort(addr, DEFAULT_WEB_PORT);
  } catch (err) {
    throw new TeleportError(
      "bad_parameter",
      `Cannot connect to Teleport: ${(err as Error).message}`,
      {
        cause: err,
      },
    );
  }

  const tunnelFactory: TunnelDialerFactory = opts.tunnelDialer ?? openTunnelDialer;
  const canTunnel = () => Boolean(allowed("tunnel") && creds.current().sshCert);
  const tunnelOpts = (signal: AbortSignal, extra: Partial<TunnelDialerOptions> = {}) => ({
    signal,
    log,
    env,
    timeoutMs,
    dialTimeoutMs,
    proofTimeoutMs,
    ...extra,
  });

  const prove = async (mode: AuthDialMode, open: Opener, signal: AbortSignal) => {
    const s = await open(creds.current(), signal);
    await proveAccepted(s, {
      timeoutMs: proofTimeoutMs,
      signal,
      onClose: () =>
        new DialFailure(
          "access_denied",
          "the server closed the connection right after the TLS handshake; it probably rejected the client certificate",
        ),
    });
    return makeDialer(mode, settings, open);
  };

  const candidates: Candidate[] = [];
  if (allowed("direct")) {
    candidates.push({
      label: "direct",
      run: (signal) => prove("direct", directOpener(authTarget, env), signal),
    });
  }
  if (allowed("tls-routing") || allowed("tls-routing-upgrade")) {
    candidates.push({
      label: "tls-routing",
      run: async (signal) => {
        const roots = webRootCas(env, creds.current().caPems);
        let find: FindResponse;
        try {
          find = await findProxy(webTarget, { env, roots, signal });
        } catch (err) {
          const code = (err as { code?: string }).code;
          const reason = code && SERVER_CERT_CODES.has(code)
            ? `the Proxy's web certificate is not trusted (${
              (err as Error).message
            }); if it is signed by a private CA, set SSL_CERT_FILE or DENO_CERT to that CA's PEM file`
            : classify(err, timeoutMs).message;
          throw new DialFailure("connection_problem", `GET /webapi/find failed: ${reason}`, {
            cause: err,
          });
        }
        if (!find.proxy?.tls_routing_enabled) {
          // Go's proxyConnect: the Proxy advertises a separate reverse tunnel listener.
          let tunnelAddr: string | undefined;
          try {
            tunnelAddr = tunnelAddrFromFind(find, env);
          } catch {
            // nothing usable advertised: say only that TLS routing is off
          }
          if (!canTunnel() || !tunnelAddr) {
            throw new DialFailure(
              "not_implemented",
              "the Proxy does not have TLS routing enabled" +
                (tunnelAddr ? ` and the SSH tunnel mode (${tunnelAddr}) is not available` : ""),
            );
          }
          log?.debug("Proxy {addr} has no TLS routing; trying its reverse tunnel {tunnel}", {
            addr,
            tunnel: tunnelAddr,
          });
          try {
            return await tunnelFactory(tunnelAddr, creds, tunnelOpts(signal));
          } catch (err) {
            const f = classify(err, timeoutMs);
            throw new DialFailure(f.kind, `reverse tunnel ${tunnelAddr}: ${f.message}`, {
              cause: err,
            });
          }
        }
        if (!find.cluster_name) {
          throw new DialFailure("connection_problem", "/webapi/find returned no cluster_name");
        }
        let upgrade = connUpgradeOverride(addr, env);
        if (upgrade === undefined) {
          upgrade = await isConnUpgradeRequired(webTarget, { env, roots, signal, log });
        }
        const mode: AuthDialMode = upgrade ? "tls-routing-upgrade" : "tls-routing";
        if (!allowed(mode)) throw new DialFailure("not_implemented", `mode ${mode} is not allowed`);
        log?.debug("Proxy {addr} serves cluster {cluster} with TLS routing; trying {mode}", {
          addr,
          cluster: find.cluster_name,
          mode,
        });
        try {
          return await prove(
            mode,
            tlsRoutingOpener(webTarget, env, find.cluster_name, upgrade),
            signal,
          );
        } catch (err) {
          // Go's own route through a TLS-routing Proxy: ALPN teleport-reversetunnel, then SSH.
          if (upgrade || !canTunnel() || signal.aborted) throw err;
          const first = classify(err, timeoutMs);
          log?.debug("teleport-auth@ route failed ({error}); trying teleport-reversetunnel", {
            error: first.message,
          });
          try {
            return await tunnelFactory(
              joinHostPort(webTarget),
              creds,
              tunnelOpts(signal, { viaTlsAlpn: true, proxyCaPems: roots }),
            );
          } catch (err2) {
            const second = classify(err2, timeoutMs);
            throw new DialFailure(
              first.kind === "access_denied" ? first.kind : second.kind,
              `${first.message}; then via teleport-reversetunnel: ${second.message}`,
              { cause: err2 },
            );
          }
        }
      },
    });
  }
  // Go's tunnelConnect: `addr` itself as a reverse tunnel address (default port 3024).
  if (canTunnel()) {
    candidates.push({
      label: "tunnel",
      run: (signal) => tunnelFactory(addr, creds, tunnelOpts(signal)),
    });
  }
  if (candidates.length === 0) {
    throw new TeleportError(
      "bad_parameter",
      `Cannot connect to Teleport at "${addr}": no connection mode allowed`,
    );
  }

  const budget = anySignal(opts.signal, timeoutMs);
  const losers = new AbortController();
  const signal = AbortSignal.any([budget, losers.signal]);
  const failures: { index: number; label: string; failure: DialFailure }[] = [];
  const dialer = await new Promise<AuthDialer | undefined>((resolve) => {
    let pending = candidates.length;
    let won = false;
    for (const [index, c] of candidates.entries()) {
      c.run(signal).then(
        (d) => {
          if (won) {
            d.close?.(); // a slower mode also connected: release it (e.g. an SSH connection)
            return;
          }
          won = true;
          losers.abort(new DOMException("another mode connected first", "AbortError"));
          resolve(d);
        },
        (err) => {
          if (!won) failures.push({ index, label: c.label, failure: classify(err, timeoutMs) });
          if (--pending === 0 && !won) resolve(undefined);
        },
      );
    }
  });
  if (dialer) {
    log?.info("Connected to the Teleport Auth Service at {addr} in {mode} mode", {
      addr,
      mode: dialer.mode,
    });
    for (const { label, failure } of failures) {
      log?.debug("Connection mode {label} failed: {error}", { label, error: failure.message });
    }
    return dialer;
  }
  failures.sort((a, b) => a.index - b.index);
  if (budget.aborted) {
    const reason = opts.signal?.aborted ? opts.signal.reason : budget.reason;
    const timedOut = (reason as { name?: string })?.name === "TimeoutError" ||
      (reason instanceof TeleportError && reason.kind === "deadline_exceeded");
    if (!timedOut) {
      throw new TeleportError("canceled", `Connecting to Teleport at "${addr}" was canceled`, {
        cause: reason,
      });
    }
    // The start-up budget ran out: say which modes never answered and how the others failed.
    const failed = new Set(failures.map((f) => f.index));
    const silent = candidates.filter((_, i) => !failed.has(i)).map((c) => `${c.label}: no answer`);
    const detail = [...failures.map((f) => `${f.label}: ${f.failure.message}`), ...silent];
    throw new TeleportError(
      "connection_problem",
      `Cannot connect to Teleport at "${addr}": no connection mode succeeded in time (tried ${
        candidates.map((c) => c.label).join(", ")
      }): ${detail.join("; ")}`,
      {
        cause: reason,
        hint: "check teleport.addr and that the Auth Service or Proxy answers there " +
          "(a firewall that drops packets, or a service that is not Teleport)",
      },
    );
  }
  const kind: TeleportErrorKind = failures.some((f) => f.failure.kind === "access_denied")
    ? "access_denied"
    : "connection_problem";
  const detail = failures.map((f) => `${f.label}: ${f.failure.message}`).join("; ");
  throw new TeleportError(
    kind,
    `Cannot connect to Teleport at "${addr}" (tried ${
      failures.map((f) => f.label).join(", ")
    }): ${detail}`,
    {
      hint: kind === "access_denied"
        ? "the identity was rejected: sign new credentials for this cluster (tctl auth sign or tbot)"
        : "check teleport.addr (an Auth Service address like auth:3025 or a Proxy address like proxy:443), network access and the identity's cluster",
    },
  );
}
