/**
 * Whether to reach a TLS-routing Proxy through the WebSocket connection upgrade
 * (`/webapi/connectionupgrade`), as Go's `IsALPNConnUpgradeRequired` decides: the
 * `TELEPORT_TLS_ROUTING_CONN_UPGRADE` variable when set, else a test dial.
 *
 * The variable's parsing must keep matching Go's `isALPNConnUpgradeRequiredByEnv` exactly (an
 * operator's environment means the same to both plugins): conditions separated by `;` or `,`;
 * `<addr>=<bool>` decides for an address when the condition CONTAINS `<addr>=` (Go's
 * `strings.Cut`, a substring match) and the first such condition wins; a bare `<bool>` is the
 * default for other addresses (the last one wins); without a default the answer is "no". Once
 * the variable is set it always decides: no test dial. Booleans are Go's `utils.ParseBool`
 * words; an unknown word counts as false.
 */
import type { Env } from "../config/env.ts";
import { type HostPort, joinHostPort } from "./dial_net.ts";
import type { Log } from "./credentials.ts";
import { connectWeb } from "./webapi.ts";

/** The variable Go reads (`defaults.TLSRoutingConnUpgradeEnvVar`). */
export const CONN_UPGRADE_ENV = "TELEPORT_TLS_ROUTING_CONN_UPGRADE";

/** Go's `utils.ParseBool` (case-insensitive, no trimming); undefined for other words. */
export function parseGoBool(value: string): boolean | undefined {
  switch (value.toLowerCase()) {
    case "yes":
    case "yeah":
    case "y":
    case "true":
    case "1":
    case "on":
      return true;
    case "no":
    case "nope":
    case "n":
    case "false":
    case "0":
    case "off":
      return false;
    default:
      return undefined;
  }
}

/** Go's `isALPNConnUpgradeRequiredByEnv(addr, value)`. */
export function connUpgradeRequiredByEnv(addr: string, value: string): boolean {
  let forAll = false;
  for (const token of value.split(/[;,]/)) {
    if (token === "") continue;
    if (token.includes("=")) {
      const i = token.indexOf(`${addr}=`);
      if (i >= 0) return parseGoBool(token.slice(i + addr.length + 1)) ?? false;
    } else {
      const b = parseGoBool(token);
      if (b !== undefined) forAll = b;
    }
  }
  return forAll;
}

/**
 * `TELEPORT_TLS_ROUTING_CONN_UPGRADE`'s answer for `addr` (the configured address, as Go passes
 * it); undefined when the variable is unset or empty (then a test dial decides).
 */
export function connUpgradeOverride(addr: string, env: Env): boolean | undefined {
  const value = env[CONN_UPGRADE_ENV];
  if (!value) return undefined;
  return connUpgradeRequiredByEnv(addr, value);
}

/**
 * Whether a load balancer in front of the Proxy strips ALPN (Go `IsALPNConnUpgradeRequired`
 * without the variable): a test TLS dial offering only `teleport-reversetunnel` negotiates no
 * protocol, or is refused with `no_application_protocol` or an unadvertised protocol. Other
 * failures mean "no".
 */
export async function isConnUpgradeRequired(
  target: HostPort,
  opts: { env: Env; roots: string[]; signal?: AbortSignal; timeoutMs?: number; log?: Log },
): Promise<boolean> {
  const t = AbortSignal.timeout(opts.timeoutMs ?? 5000);
  const signal = opts.signal ? AbortSignal.any([opts.signal, t]) : t;
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
