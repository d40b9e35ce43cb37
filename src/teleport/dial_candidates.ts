/**
 * The candidate modes `resolveAuthDialer()` races, one builder each, as Go's `connect()` starts
 * them (`api/client/client.go`):
 * - {@link directCandidate}: `authConnect`, TCP + TLS to `addr` as an Auth Service;
 * - {@link tlsRoutingCandidate}: `/webapi/find`, then the `teleport-auth@` route (with the
 *   WebSocket connection upgrade when needed); when the Proxy has no TLS routing, `proxyConnect`
 *   (the reverse tunnel it advertises); when the `teleport-auth@` route fails,
 *   `tlsRoutingConnect` (ALPN `teleport-reversetunnel` to the tunnel address it advertises);
 * - {@link tunnelCandidate}: `tunnelConnect`, `addr` itself as a reverse tunnel address.
 *
 * The SSH stack (`dial_tunnel.ts`, ssh2) is imported only when a tunnel route is actually
 * tried; `tunnelCandidate` first checks that `addr` answers with an SSH greeting.
 */
import type { Log } from "./credentials.ts";
import type {
  AuthDialer,
  AuthDialMode,
  TunnelDialerFactory,
  TunnelDialerOptions,
} from "./dial_types.ts";
import { DialFailure, type HostPort, SERVER_CERT_CODES } from "./dial_net.ts";
import {
  classify,
  directOpener,
  type ModeSettings,
  proveMode,
  tlsRoutingOpener,
} from "./dial_modes.ts";
import { connUpgradeOverride, isConnUpgradeRequired } from "./conn_upgrade.ts";
import { findProxy, type FindResponse, webRootCas } from "./webapi.ts";
import { requirePort, tunnelAddrFromFind } from "./tunnel_addr.ts";
import { probeSshGreeting } from "./ssh_probe.ts";

/** One mode to try; `run` resolves with a proven dialer. */
export interface Candidate {
  label: string;
  run: (signal: AbortSignal) => Promise<AuthDialer>;
}

/** What the candidate builders share. */
export interface CandidateContext extends ModeSettings {
  log?: Log;
  /** The whole budget of `resolveAuthDialer()` (for messages and the tunnel's proof). */
  timeoutMs: number;
  authTarget: HostPort;
  webTarget: HostPort;
  allowed(mode: AuthDialMode): boolean;
  /** Whether the `tunnel` mode is allowed and the identity has an SSH certificate. */
  canTunnel(): boolean;
  tunnelDialer: TunnelDialerFactory;
}

/** The default tunnel factory: imports `dial_tunnel.ts` (and with it ssh2) on first use. */
export const lazyTunnelDialer: TunnelDialerFactory = async (addr, creds, opts) => {
  const { openTunnelDialer } = await import("./dial_tunnel.ts");
  return await openTunnelDialer(addr, creds, opts);
};

function tunnelOpts(
  c: CandidateContext,
  signal: AbortSignal,
  extra: Partial<TunnelDialerOptions> = {},
): TunnelDialerOptions {
  return {
    signal,
    log: c.log,
    env: c.env,
    timeoutMs: c.timeoutMs,
    dialTimeoutMs: c.dialTimeoutMs,
    proofTimeoutMs: c.proofTimeoutMs,
    ...extra,
  };
}

/** Go's `authConnect`: `addr` as an Auth Service. */
export function directCandidate(c: CandidateContext): Candidate {
  return {
    label: "direct",
    run: (signal) => proveMode("direct", c, directOpener(c.authTarget, c.env), signal),
  };
}

/**
 * Go's `tunnelConnect`: `addr` itself as a reverse tunnel address (default port 3024). With
 * `probe`, the tunnel dialer starts only once `addr` greets like an SSH server, so a race that
 * another mode wins (an Auth or Proxy address) never loads the SSH stack.
 */
export function tunnelCandidate(c: CandidateContext, probe = true): Candidate {
  return {
    label: "tunnel",
    run: async (signal) => {
      if (probe) await probeSshGreeting(c.addr, { env: c.env, signal });
      return await c.tunnelDialer(c.addr, c.creds, tunnelOpts(c, signal));
    },
  };
}

/** `/webapi/find` on the web port, failures explained. */
async function find(c: CandidateContext, roots: string[], signal: AbortSignal) {
  try {
    return await findProxy(c.webTarget, { env: c.env, roots, signal });
  } catch (err) {
    const code = (err as { code?: string }).code;
    const reason = code && SERVER_CERT_CODES.has(code)
      ? `the Proxy's web certificate is not trusted (${
        (err as Error).message
      }); if it is signed by a private CA, set SSL_CERT_FILE or DENO_CERT to that CA's PEM file`
      : classify(err, c.timeoutMs).message;
    throw new DialFailure("connection_problem", `GET /webapi/find failed: ${reason}`, {
      cause: err,
    });
  }
}

/** Go's `proxyConnect`: the reverse tunnel a Proxy without TLS routing advertises. */
async function proxyTunnel(
  c: CandidateContext,
  found: FindResponse,
  signal: AbortSignal,
): Promise<AuthDialer> {
  let tunnelAddr: string | undefined;
  try {
    tunnelAddr = tunnelAddrFromFind(found, c.env);
  } catch {
    // nothing usable advertised: say only that TLS routing is off
  }
  if (!c.canTunnel() || !tunnelAddr) {
    throw new DialFailure(
      "not_implemented",
      "the Proxy does not have TLS routing enabled" +
        (tunnelAddr ? ` and the SSH tunnel mode (${tunnelAddr}) is not available` : ""),
    );
  }
  c.log?.debug("Proxy {addr} has no TLS routing; trying its reverse tunnel {tunnel}", {
    addr: c.addr,
    tunnel: tunnelAddr,
  });
  try {
    requirePort(tunnelAddr);
    return await c.tunnelDialer(tunnelAddr, c.creds, tunnelOpts(c, signal));
  } catch (err) {
    const f = classify(err, c.timeoutMs);
    throw new DialFailure(f.kind, `reverse tunnel ${tunnelAddr}: ${f.message}`, { cause: err });
  }
}

/**
 * Go's `tlsRoutingConnect`, our fallback when the `teleport-auth@` route failed with `first`:
 * TLS with ALPN `teleport-reversetunnel` to the tunnel address `/webapi/find` advertises
 * (`public_addr`, else `web_listen_addr`), then SSH.
 */
async function alpnTunnel(
  c: CandidateContext,
  found: FindResponse,
  roots: string[],
  first: DialFailure,
  signal: AbortSignal,
): Promise<AuthDialer> {
  c.log?.debug("teleport-auth@ route failed ({error}); trying teleport-reversetunnel", {
    error: first.message,
  });
  try {
    const tunnelAddr = tunnelAddrFromFind(found, c.env);
    requirePort(tunnelAddr);
    const opts = tunnelOpts(c, signal, { viaTlsAlpn: true, proxyCaPems: roots });
    return await c.tunnelDialer(tunnelAddr, c.creds, opts);
  } catch (err) {
    const second = classify(err, c.timeoutMs);
    throw new DialFailure(
      first.kind === "access_denied" ? first.kind : second.kind,
      `${first.message}; then via teleport-reversetunnel: ${second.message}`,
      { cause: err },
    );
  }
}

/** The `teleport-auth@` route through a TLS-routing Proxy, upgraded when required. */
async function tlsRouting(
  c: CandidateContext,
  found: FindResponse,
  roots: string[],
  signal: AbortSignal,
): Promise<AuthDialer> {
  if (!found.cluster_name) {
    throw new DialFailure("connection_problem", "/webapi/find returned no cluster_name");
  }
  const upgrade = connUpgradeOverride(c.addr, c.env) ??
    await isConnUpgradeRequired(c.webTarget, { env: c.env, roots, signal, log: c.log });
  const mode: AuthDialMode = upgrade ? "tls-routing-upgrade" : "tls-routing";
  if (!c.allowed(mode)) throw new DialFailure("not_implemented", `mode ${mode} is not allowed`);
  c.log?.debug("Proxy {addr} serves cluster {cluster} with TLS routing; trying {mode}", {
    addr: c.addr,
    cluster: found.cluster_name,
    mode,
  });
  try {
    const open = tlsRoutingOpener(c.webTarget, c.env, found.cluster_name, upgrade);
    return await proveMode(mode, c, open, signal);
  } catch (err) {
    if (upgrade || !c.canTunnel() || signal.aborted) throw err;
    return await alpnTunnel(c, found, roots, classify(err, c.timeoutMs), signal);
  }
}

/** `/webapi/find`, then the TLS routing modes or the advertised reverse tunnel. */
export function tlsRoutingCandidate(c: CandidateContext): Candidate {
  return {
    label: "tls-routing",
    run: async (signal) => {
      const roots = webRootCas(c.env, c.creds.current().caPems);
      const found = await find(c, roots, signal);
      if (!found.proxy?.tls_routing_enabled) return await proxyTunnel(c, found, signal);
      return await tlsRouting(c, found, roots, signal);
    },
  };
}

/** The candidates `opts.modes` allows, in Go's order. */
export function candidates(c: CandidateContext): Candidate[] {
  const out: Candidate[] = [];
  if (c.allowed("direct")) out.push(directCandidate(c));
  if (c.allowed("tls-routing") || c.allowed("tls-routing-upgrade")) {
    out.push(tlsRoutingCandidate(c));
  }
  if (c.canTunnel()) out.push(tunnelCandidate(c, c.tunnelDialer === lazyTunnelDialer));
  return out;
}
