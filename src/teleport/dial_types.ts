/**
 * The types shared by the mode chooser (`dial.ts`) and the modes it starts, the SSH reverse
 * tunnel (`dial_tunnel.ts`) among them. Types only: importing this file loads nothing.
 */
import type { Duplex } from "node:stream";
import type { Env } from "../config/env.ts";
import type { CredentialsSource, Log } from "./credentials.ts";

/** How connections reach the Auth Service. */
export type AuthDialMode = "direct" | "tls-routing" | "tls-routing-upgrade" | "tunnel";

/** Opens connections to the Auth Service in one mode (what the gRPC client consumes). */
export interface AuthDialer {
  readonly mode: AuthDialMode;
  /** The configured address (the tunnel address in `tunnel` mode). */
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

/** Options handed to a tunnel dialer factory. */
export interface TunnelDialerOptions {
  signal?: AbortSignal;
  log?: Log;
  /** `HTTPS_PROXY`, `NO_PROXY`, … for the outer dial. */
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
