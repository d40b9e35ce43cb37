/**
 * The reverse tunnel address a Proxy advertises in `/webapi/find`, by the rules of Go's
 * `webclient.ProxySettings.TunnelAddr`. Kept apart from `dial_tunnel.ts` so that choosing the
 * address never loads the SSH stack.
 */
import type { Env } from "../config/env.ts";
import { DEFAULT_WEB_PORT, joinHostPort, parseHostPort } from "./dial_net.ts";
import type { FindResponse } from "./webapi.ts";

/** Default port of the Proxy's reverse tunnel listener (`defaults.SSHProxyTunnelListenPort`). */
export const DEFAULT_TUNNEL_PORT = 3024;
/** Environment variable that overrides the discovered tunnel address (Go `TunnelPublicAddrEnvar`). */
export const TUNNEL_PUBLIC_ADDR_ENV = "TELEPORT_TUNNEL_PUBLIC_ADDR";

/** Whether `addr` names a port (`host:port`, `[v6]:port`, with or without a scheme). */
export function hasPort(addr: string): boolean {
  const a = addr.trim().replace(/^[a-z][a-z0-9+.-]*:\/\//i, "").replace(/\/.*$/, "");
  return a.startsWith("[") ? /\]:\d+$/.test(a) : /^[^:]*:\d+$/.test(a);
}

/** The port of `addr`, or `fallback` when it has none or a bad one (Go `getTunnelPort`/`getWebPort`). */
function portOr(addr: string | undefined, fallback: number): number {
  if (!addr || !hasPort(addr)) return fallback;
  try {
    return parseHostPort(addr, fallback).port;
  } catch {
    return fallback;
  }
}

/**
 * The reverse tunnel address by Go's `TunnelAddr` rules:
 * 1. `TELEPORT_TUNNEL_PUBLIC_ADDR` wins, as given: without a port it stays without one (Go's
 *    `parseAndJoinHostPort` with no default), and dialing it then fails as in Go;
 * 2. with TLS routing: `public_addr`, else `web_listen_addr` (default port: the port of
 *    `web_listen_addr`, else 443);
 * 3. otherwise the first that is set of `ssh_tunnel_public_addr` (default port: the tunnel
 *    port), `ssh_public_addr` and `public_addr` (host only, with the tunnel port),
 *    `tunnel_listen_addr` and `web_listen_addr` (default port: the tunnel port). The tunnel port
 *    is the port of `tunnel_listen_addr`, else 3024.
 * @throws {Error} when nothing usable is advertised, or an address does not parse.
 */
export function tunnelAddrFromFind(find: FindResponse, env: Env = {}): string {
  const override = env[TUNNEL_PUBLIC_ADDR_ENV];
  if (override) {
    if (!hasPort(override)) return parseHostPort(override, 1).host;
    return joinHostPort(parseHostPort(override, DEFAULT_TUNNEL_PORT));
  }
  const ssh = find.proxy?.ssh ?? {};
  if (find.proxy?.tls_routing_enabled) {
    const webPort = portOr(ssh.web_listen_addr, DEFAULT_WEB_PORT);
    const addr = ssh.public_addr || ssh.web_listen_addr;
    if (!addr) throw new Error("/webapi/find advertises no web address");
    return joinHostPort(parseHostPort(addr, webPort));
  }
  const tunnelPort = portOr(ssh.tunnel_listen_addr, DEFAULT_TUNNEL_PORT);
  const withDefaultPort = (a: string) => joinHostPort(parseHostPort(a, tunnelPort));
  const withTunnelPort = (a: string) =>
    joinHostPort({ host: parseHostPort(a, tunnelPort).host, port: tunnelPort });
  if (ssh.ssh_tunnel_public_addr) return withDefaultPort(ssh.ssh_tunnel_public_addr);
  if (ssh.ssh_public_addr) return withTunnelPort(ssh.ssh_public_addr);
  if (ssh.public_addr) return withTunnelPort(ssh.public_addr);
  if (ssh.tunnel_listen_addr) return withDefaultPort(ssh.tunnel_listen_addr);
  if (ssh.web_listen_addr) return withDefaultPort(ssh.web_listen_addr);
  throw new Error("/webapi/find advertises no reverse tunnel address");
}

/**
 * Throws Go's dial error for an address without a port (`address <a>: missing port in
 * address`), which only `TELEPORT_TUNNEL_PUBLIC_ADDR` can produce.
 */
export function requirePort(addr: string): void {
  if (!hasPort(addr)) throw new Error(`address ${addr}: missing port in address`);
}
