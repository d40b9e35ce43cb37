/**
 * How the plugin reaches the Teleport Auth Service from the one configured `addr`, like the Go
 * API client (`api/client`): every candidate mode is tried in parallel and the first that
 * completes an mTLS handshake with the Auth Service (server verified by the identity's host CAs,
 * `h2` negotiated) wins. The winner's mode is reused for every new connection.
 *
 * Modes (one builder each in `dial_candidates.ts`):
 * - `direct`: TCP to `addr` (default port 3025), TLS with SNI `teleport.cluster.local`, ALPN `h2`.
 * - `tls-routing`: `GET https://addr/webapi/find` (default port 443); if `tls_routing_enabled`,
 *   TLS to `addr` with ALPN `["teleport-auth@<hex(cluster)>.teleport.cluster.local", "h2"]`, which
 *   the Proxy forwards unopened to Auth (TLS is end to end).
 * - `tls-routing-upgrade`: the same inner TLS inside a WebSocket (`/webapi/connectionupgrade`,
 *   `alpn-ping`) when an L7 load balancer in front of the Proxy strips ALPN. Chosen by
 *   `TELEPORT_TLS_ROUTING_CONN_UPGRADE` (see `conn_upgrade.ts`), else by a test dial with ALPN
 *   `teleport-reversetunnel` that negotiates nothing.
 * - `tunnel`: the SSH reverse tunnel (`dial_tunnel.ts`, loaded only when tried): `addr` as a
 *   tunnel address (port 3024), the tunnel address `/webapi/find` advertises when the Proxy has
 *   no TLS routing, or ALPN `teleport-reversetunnel` to the advertised address when the
 *   `teleport-auth@` route fails. Needs the identity's SSH certificate.
 *
 * The outer TCP dial honours `HTTPS_PROXY`/`HTTP_PROXY`/`NO_PROXY` as Go does (`http_proxy.ts`).
 * The Proxy's web certificate is verified as described in `webapi.ts` (system roots or
 * `SSL_CERT_FILE`, plus `DENO_CERT`, plus the identity's host CAs); never skipped.
 */
import { TeleportError, type TeleportErrorKind } from "../errors.ts";
import type { Env } from "../config/env.ts";
import type { CredentialsSource, Log } from "./credentials.ts";
import type { AuthDialer, AuthDialMode, TunnelDialerFactory } from "./dial_types.ts";
import { DEFAULT_WEB_PORT, type DialFailure, type HostPort, parseHostPort } from "./dial_net.ts";
import { anySignal, classify } from "./dial_modes.ts";
import {
  type Candidate,
  type CandidateContext,
  candidates as candidatesOf,
  lazyTunnelDialer,
} from "./dial_candidates.ts";

export type {
  AuthDialer,
  AuthDialMode,
  TunnelDialerFactory,
  TunnelDialerOptions,
} from "./dial_types.ts";
export { authAlpn } from "./dial_modes.ts";
export { connUpgradeOverride, isConnUpgradeRequired } from "./conn_upgrade.ts";
export { API_DOMAIN, connectAuthTls, DEFAULT_WEB_PORT } from "./dial_net.ts";
export { DEFAULT_TUNNEL_PORT, tunnelAddrFromFind } from "./tunnel_addr.ts";

/** Default Auth Service port. */
export const DEFAULT_AUTH_PORT = 3025;
/** Default overall budget of {@link resolveAuthDialer}. */
export const DEFAULT_RESOLVE_TIMEOUT_MS = 10_000;
/** Default timeout of each `dial()`. */
export const DEFAULT_DIAL_TIMEOUT_MS = 10_000;
/** Default wait for the server's first bytes after the handshake. */
export const DEFAULT_PROOF_TIMEOUT_MS = 3000;

/** Options of {@link resolveAuthDialer}. */
export interface ResolveAuthDialerOptions {
  signal?: AbortSignal;
  log?: Log;
  /**
   * `HTTPS_PROXY`, `NO_PROXY`, `TELEPORT_TLS_ROUTING_CONN_UPGRADE`, `TELEPORT_TUNNEL_PUBLIC_ADDR`,
   * `SSL_CERT_FILE`, `DENO_CERT` (see `config/env.ts`); default none set.
   */
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
   * The SSH reverse-tunnel mode; default `openTunnelDialer` of `./dial_tunnel.ts`, imported on
   * first use. When the identity has an SSH certificate (identity files do), it is used like
   * Go's `tunnelConnect`, `proxyConnect` and `tlsRoutingConnect` (see the module doc).
   */
  tunnelDialer?: TunnelDialerFactory;
}

interface Failure {
  index: number;
  label: string;
  failure: DialFailure;
}

/** The context of the candidate builders for `addr`; throws `bad_parameter` on a bad address. */
function candidateContext(
  addr: string,
  creds: CredentialsSource,
  opts: ResolveAuthDialerOptions,
): CandidateContext {
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
  const allowed = (m: AuthDialMode) => !opts.modes || opts.modes.includes(m);
  return {
    addr,
    creds,
    env: opts.env ?? {},
    log: opts.log,
    timeoutMs: opts.timeoutMs ?? DEFAULT_RESOLVE_TIMEOUT_MS,
    dialTimeoutMs: opts.dialTimeoutMs ?? DEFAULT_DIAL_TIMEOUT_MS,
    proofTimeoutMs: opts.proofTimeoutMs ?? DEFAULT_PROOF_TIMEOUT_MS,
    authTarget,
    webTarget,
    allowed,
    canTunnel: () => Boolean(allowed("tunnel") && creds.current().sshCert),
    tunnelDialer: opts.tunnelDialer ?? lazyTunnelDialer,
  };
}

/**
 * Runs every candidate; resolves with the first dialer (closing any later winner) or with
 * `undefined` once all failed. `failures` collects the failures seen before the winner.
 */
function race(
  list: Candidate[],
  signal: AbortSignal,
  losers: AbortController,
  timeoutMs: number,
  failures: Failure[],
): Promise<AuthDialer | undefined> {
  return new Promise((resolve) => {
    let pending = list.length;
    let won = false;
    for (const [index, c] of list.entries()) {
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
}

/** The error when the budget ran out or the caller aborted before any mode connected. */
function outOfTime(addr: string, list: Candidate[], failures: Failure[], reason: unknown) {
  const timedOut = (reason as { name?: string })?.name === "TimeoutError" ||
    (reason instanceof TeleportError && reason.kind === "deadline_exceeded");
  if (!timedOut) {
    return new TeleportError("canceled", `Connecting to Teleport at "${addr}" was canceled`, {
      cause: reason,
    });
  }
  // The start-up budget ran out: say which modes never answered and how the others failed.
  const failed = new Set(failures.map((f) => f.index));
  const silent = list.filter((_, i) => !failed.has(i)).map((c) => `${c.label}: no answer`);
  const detail = [...failures.map((f) => `${f.label}: ${f.failure.message}`), ...silent];
  return new TeleportError(
    "connection_problem",
    `Cannot connect to Teleport at "${addr}": no connection mode succeeded in time (tried ${
      list.map((c) => c.label).join(", ")
    }): ${detail.join("; ")}`,
    {
      cause: reason,
      hint: "check teleport.addr and that the Auth Service or Proxy answers there " +
        "(a firewall that drops packets, or a service that is not Teleport)",
    },
  );
}

/** The error when every mode failed. */
function allFailed(addr: string, failures: Failure[]): TeleportError {
  const kind: TeleportErrorKind = failures.some((f) => f.failure.kind === "access_denied")
    ? "access_denied"
    : "connection_problem";
  const detail = failures.map((f) => `${f.label}: ${f.failure.message}`).join("; ");
  return new TeleportError(
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
  const c = candidateContext(addr, creds, opts);
  const list = candidatesOf(c);
  if (list.length === 0) {
    throw new TeleportError(
      "bad_parameter",
      `Cannot connect to Teleport at "${addr}": no connection mode allowed`,
    );
  }
  const budget = anySignal(opts.signal, c.timeoutMs);
  const losers = new AbortController();
  const signal = AbortSignal.any([budget, losers.signal]);
  const failures: Failure[] = [];
  const dialer = await race(list, signal, losers, c.timeoutMs, failures);
  if (dialer) {
    c.log?.info("Connected to the Teleport Auth Service at {addr} in {mode} mode", {
      addr,
      mode: dialer.mode,
    });
    for (const { label, failure } of failures) {
      c.log?.debug("Connection mode {label} failed: {error}", { label, error: failure.message });
    }
    return dialer;
  }
  failures.sort((a, b) => a.index - b.index);
  if (budget.aborted) {
    throw outOfTime(
      addr,
      list,
      failures,
      opts.signal?.aborted ? opts.signal.reason : budget.reason,
    );
  }
  throw allFailed(addr, failures);
}
