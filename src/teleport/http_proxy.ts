/**
 * Which HTTP CONNECT proxy the outer TCP dial uses, by the rules of Go's
 * `golang.org/x/net/http/httpproxy` as Teleport's `api/client/proxy.GetProxyURL` applies them:
 * `HTTPS_PROXY` (else `https_proxy`), falling back to `HTTP_PROXY` (else `http_proxy`), each
 * skipped for targets `NO_PROXY` (else `no_proxy`) excludes. The first non-empty spelling of
 * each variable counts. Loopback targets (`localhost`, 127.0.0.0/8, ::1) are never proxied.
 *
 * `NO_PROXY` is a comma-separated list; each entry is `*` (nothing is proxied), an IPv4 or IPv6
 * CIDR range (`10.0.0.0/8`, `2002:db8:a::/64`), an IP address with an optional port
 * (`192.168.1.3:80`, `[2001:db8::1]:443`), or a domain with an optional port: `foo.com` matches
 * `foo.com` and its subdomains, `.foo.com` and `*.foo.com` only subdomains. Domains never match
 * IP targets. Malformed entries are ignored. This must keep matching Go: an operator's
 * environment means the same to both plugins.
 */
import type { Env } from "../config/env.ts";

/** A host and port. `host` has no brackets, even for IPv6. */
export interface HostPort {
  host: string;
  port: number;
}

/** The bytes of an IPv4 (4) or IPv6 (16) address; IPv4-mapped IPv6 becomes IPv4. */
export function parseIp(text: string): Uint8Array | undefined {
  const v4 = parseIpv4(text);
  if (v4) return v4;
  const v6 = parseIpv6(text);
  if (!v6) return undefined;
  const mapped = v6.subarray(0, 10).every((b) => b === 0) && v6[10] === 0xff && v6[11] === 0xff;
  return mapped ? v6.slice(12) : v6;
}

function parseIpv4(text: string): Uint8Array | undefined {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(text);
  if (!m) return undefined;
  const parts = m.slice(1).map(Number);
  // Go rejects leading zeros ("010.0.0.1") as ambiguous.
  if (parts.some((p, i) => p > 255 || (m[i + 1].length > 1 && m[i + 1][0] === "0"))) {
    return undefined;
  }
  return Uint8Array.from(parts);
}

function parseIpv6(text: string): Uint8Array | undefined {
  if (!text.includes(":") || /[^0-9a-f:.]/i.test(text)) return undefined;
  const halves = text.split("::");
  if (halves.length > 2) return undefined;
  const groups = (s: string): number[] | undefined => {
    if (s === "") return [];
    const out: number[] = [];
    const parts = s.split(":");
    for (const [i, p] of parts.entries()) {
      if (i === parts.length - 1 && p.includes(".")) {
        const v4 = parseIpv4(p);
        if (!v4) return undefined;
        out.push((v4[0] << 8) | v4[1], (v4[2] << 8) | v4[3]);
      } else if (/^[0-9a-f]{1,4}$/i.test(p)) {
        out.push(parseInt(p, 16));
      } else {
        return undefined;
      }
    }
    return out;
  };
  const head = groups(halves[0]);
  const tail = halves.length === 2 ? groups(halves[1]) : [];
  if (!head || !tail) return undefined;
  const missing = 8 - head.length - tail.length;
  if (halves.length === 2 ? missing < 1 : missing !== 0) return undefined;
  const all = [...head, ...new Array(halves.length === 2 ? missing : 0).fill(0), ...tail];
  const out = new Uint8Array(16);
  all.forEach((g, i) => {
    out[2 * i] = g >> 8;
    out[2 * i + 1] = g & 0xff;
  });
  return out;
}

function sameIp(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

function inRange(ip: Uint8Array, base: Uint8Array, bits: number): boolean {
  if (ip.length !== base.length) return false;
  for (let i = 0; i < ip.length; i++) {
    const take = Math.max(0, Math.min(8, bits - 8 * i));
    const mask = take === 0 ? 0 : (0xff << (8 - take)) & 0xff;
    if ((ip[i] & mask) !== (base[i] & mask)) return false;
  }
  return true;
}

function isLoopbackHost(host: string): boolean {
  if (host === "localhost") return true;
  const ip = parseIp(host);
  if (!ip) return false;
  return ip.length === 4 ? ip[0] === 127 : sameIp(ip, parseIpv6("::1")!);
}

/** Go's `net.SplitHostPort`: undefined where Go returns an error (no port, too many colons). */
function splitHostPort(s: string): { host: string; port: string } | undefined {
  if (s.startsWith("[")) {
    const m = /^\[([^\[\]]*)\]:([^\[\]:]*)$/.exec(s);
    return m ? { host: m[1], port: m[2] } : undefined;
  }
  const i = s.lastIndexOf(":");
  if (i < 0 || s.slice(0, i).includes(":") || /[\[\]]/.test(s)) return undefined;
  return { host: s.slice(0, i), port: s.slice(i + 1) };
}

/** One `NO_PROXY` entry, parsed as Go's `httpproxy` config does; undefined when ignored. */
type NoProxyMatcher =
  | { kind: "cidr"; base: Uint8Array; bits: number }
  | { kind: "ip"; ip: Uint8Array; port: string }
  | { kind: "domain"; suffix: string; matchHost: boolean; port: string };

function parseNoProxyEntry(entry: string): NoProxyMatcher | undefined {
  const slash = entry.indexOf("/");
  if (slash >= 0) {
    const base = parseIp(entry.slice(0, slash));
    const bitsText = entry.slice(slash + 1);
    const bits = /^\d{1,3}$/.test(bitsText) ? Number(bitsText) : -1;
    if (base && bits >= 0 && bits <= base.length * 8) return { kind: "cidr", base, bits };
  }
  let host = entry;
  let port = "";
  const split = splitHostPort(entry);
  if (split) {
    if (split.host === "") return undefined;
    host = split.host;
    port = split.port;
  }
  const ip = parseIp(host);
  if (ip) return { kind: "ip", ip, port };
  if (host === "") return undefined;
  let suffix = host.startsWith("*.") ? host.slice(1) : host;
  const matchHost = !suffix.startsWith(".");
  if (matchHost) suffix = "." + suffix;
  return { kind: "domain", suffix, matchHost, port };
}

function matches(m: NoProxyMatcher, host: string, port: string, ip?: Uint8Array): boolean {
  switch (m.kind) {
    case "cidr":
      return ip !== undefined && inRange(ip, m.base, m.bits);
    case "ip":
      return ip !== undefined && sameIp(m.ip, ip) && (m.port === "" || m.port === port);
    case "domain": {
      if (ip !== undefined) return false;
      const hit = host.endsWith(m.suffix) || (m.matchHost && host === m.suffix.slice(1));
      return hit && (m.port === "" || m.port === port);
    }
  }
}

/** Whether `NO_PROXY` (the variable's value) excludes `target` from proxying. */
export function noProxyMatches(noProxy: string, target: HostPort): boolean {
  const host = target.host.trim().toLowerCase();
  const ip = parseIp(host);
  for (const raw of noProxy.split(",")) {
    const entry = raw.trim().toLowerCase();
    if (entry === "") continue;
    if (entry === "*") return true;
    const m = parseNoProxyEntry(entry);
    if (m && matches(m, host, String(target.port), ip)) return true;
  }
  return false;
}

function firstSet(env: Env, ...names: string[]): string {
  for (const n of names) {
    const v = env[n];
    if (v) return v;
  }
  return "";
}

function parseProxyUrl(raw: string, name: string): URL {
  try {
    return new URL(/^[a-z][a-z0-9+.-]*:\/\//i.test(raw) ? raw : `http://${raw}`);
  } catch {
    throw new Error(`invalid ${name} "${raw}"`);
  }
}

/** The variable a proxy from {@link proxyForTarget} came from, for messages. */
export function proxyVariable(env: Env): "HTTPS_PROXY" | "HTTP_PROXY" {
  return firstSet(env, "HTTPS_PROXY", "https_proxy") ? "HTTPS_PROXY" : "HTTP_PROXY";
}

/**
 * The HTTP CONNECT proxy for a dial to `target`, or undefined (see the module doc). Throws
 * `Error` naming the variable when the proxy URL does not parse.
 */
export function proxyForTarget(target: HostPort, env: Env): URL | undefined {
  if (isLoopbackHost(target.host.toLowerCase())) return undefined;
  if (noProxyMatches(firstSet(env, "NO_PROXY", "no_proxy"), target)) return undefined;
  const https = firstSet(env, "HTTPS_PROXY", "https_proxy");
  if (https) return parseProxyUrl(https, "HTTPS_PROXY");
  const http = firstSet(env, "HTTP_PROXY", "http_proxy");
  if (http) return parseProxyUrl(http, "HTTP_PROXY");
  return undefined;
}
