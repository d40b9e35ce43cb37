/**
 * How one mode opens a connection to the Auth Service, once chosen: the openers of the `direct`,
 * `tls-routing` and `tls-routing-upgrade` modes, the proof that the server accepted the client
 * certificate, and the {@link AuthDialer} wrapping an opener. The SSH `tunnel` mode lives in
 * `dial_tunnel.ts`.
 */
import type tls from "node:tls";
import { Buffer } from "node:buffer";
import { TeleportError } from "../errors.ts";
import type { Env } from "../config/env.ts";
import type { CredentialsSource } from "./credentials.ts";
import type { Identity } from "./identity.ts";
import type { AuthDialer, AuthDialMode } from "./dial_types.ts";
import {
  API_DOMAIN,
  connectAuthTls,
  DialFailure,
  dialOuter,
  type HostPort,
  joinHostPort,
  proveAccepted,
  tlsRejection,
} from "./dial_net.ts";
import { connectWeb, webRootCas } from "./webapi.ts";

/** ALPN value that makes the Proxy forward TLS to the Auth Service of `clusterName`. */
export function authAlpn(clusterName: string): string {
  return `teleport-auth@${Buffer.from(clusterName, "utf8").toString("hex")}.${API_DOMAIN}`;
}

/** `signal` combined with a timeout of `timeoutMs`. */
export function anySignal(signal: AbortSignal | undefined, timeoutMs: number): AbortSignal {
  const t = AbortSignal.timeout(timeoutMs);
  return signal ? AbortSignal.any([signal, t]) : t;
}

/** Turns any dial error into a short reason and a kind. */
export function classify(err: unknown, timeoutMs: number): DialFailure {
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

/** What every dialer of one `resolveAuthDialer()` shares. */
export interface ModeSettings {
  addr: string;
  creds: CredentialsSource;
  env: Env;
  dialTimeoutMs: number;
  proofTimeoutMs: number;
}

/** Opens one raw (not yet proven) Auth TLS socket in a mode. */
export type Opener = (identity: Identity, signal: AbortSignal) => Promise<tls.TLSSocket>;

/** The {@link AuthDialer} of `mode`: `open` with the current identity, errors named. */
export function makeDialer(mode: AuthDialMode, s: ModeSettings, open: Opener): AuthDialer {
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

/**
 * Opens one connection with `open` and waits for the server's first bytes (proof that it
 * accepted the client certificate), then returns the dialer of `mode`.
 */
export async function proveMode(
  mode: AuthDialMode,
  s: ModeSettings,
  open: Opener,
  signal: AbortSignal,
): Promise<AuthDialer> {
  const sock = await open(s.creds.current(), signal);
  await proveAccepted(sock, {
    timeoutMs: s.proofTimeoutMs,
    signal,
    onClose: () =>
      new DialFailure(
        "access_denied",
        "the server closed the connection right after the TLS handshake; it probably rejected the client certificate",
      ),
  });
  return makeDialer(mode, s, open);
}

/** Direct mode opener: TCP (or CONNECT) to `target`, TLS ALPN `h2`. */
export function directOpener(target: HostPort, env: Env): Opener {
  return async (identity, signal) => {
    const sock = await dialOuter(target, { env, signal });
    return await connectAuthTls(sock, identity, ["h2"], { signal });
  };
}

/** TLS routing opener, optionally inside the WebSocket connection upgrade. */
export function tlsRoutingOpener(
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
    // The WebSocket client (npm:ws) is loaded only by this mode.
    const websocket = await import("./websocket.ts");
    const roots = webRootCas(env, identity.caPems);
    const outer = await connectWeb(target, { env, roots, signal });
    try {
      const ws = await websocket.upgradeWebSocket(outer, { host: joinHostPort(target), signal });
      return await connectAuthTls(ws, identity, alpn, { signal });
    } catch (err) {
      outer.destroy();
      if (err instanceof websocket.UpgradeNotSupportedError) {
        throw new DialFailure("not_implemented", err.message, { cause: err });
      }
      throw err;
    }
  };
}
