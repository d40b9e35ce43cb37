/**
 * The `tunnel` connection mode: the Teleport Proxy's SSH reverse tunnel (Go `tunnelConnect`,
 * `proxyConnect`, `tlsRoutingConnect`).
 *
 * 1. TCP to the tunnel address (port 3024 by default; `HTTPS_PROXY` honoured), or with
 *    `viaTlsAlpn` TLS to the Proxy's web port with ALPN `teleport-reversetunnel` (the Proxy's
 *    public web certificate is verified; never skipped).
 * 2. SSH: user = the SSH certificate's first principal (else its key id), `publickey` auth with
 *    the identity's OpenSSH user certificate; the Proxy's host key must be an SSH host
 *    certificate signed by one of the identity's `@cert-authority` keys, valid now, listing the
 *    dialled host (when it lists principals), exactly as Go's `ssh.CertChecker`.
 * 3. Per `dial()`: channel `teleport-transport`, request `teleport-transport-dial` (want reply)
 *    with the raw JSON payload `{"address":"@remote-auth-server","conn_type":"node"}` (Go's
 *    `json.Marshal(DialReq)` passed to `Channel.SendRequest`); on refusal the reason is read
 *    from the channel's stderr.
 * 4. mTLS to the Auth Service inside the channel (SNI `teleport.cluster.local`, ALPN `h2`, the
 *    identity's host CAs, the client certificate). The TLS session is end to end.
 *
 * One SSH connection carries every dial (one channel each) and is re-opened when it dies or
 * when the identity changes (the old one closes once its channels have closed).
 *
 * @module
 */
import net from "node:net";
import tls from "node:tls";
import { Buffer } from "node:buffer";
import type { Duplex } from "node:stream";
import { errorMessage, TeleportError, type TeleportErrorKind } from "../errors.ts";
import type { CredentialsSource, Log } from "./credentials.ts";
import type { Identity } from "./identity.ts";
import type { AuthDialer } from "./dial_types.ts";
import type { Env } from "../config/env.ts";
import { DEFAULT_TUNNEL_PORT } from "./tunnel_addr.ts";
import { abortable } from "../async.ts";
import {
  connectAuthTls,
  DEFAULT_WEB_PORT,
  dialOuter,
  type HostPort,
  joinHostPort,
  parseHostPort,
  proveAccepted,
  tlsOver,
  tlsRejection,
  withSocketShims,
} from "./dial_net.ts";
import {
  checkSshCertificate,
  parseAuthorizedKey,
  parseCertAuthorityLine,
  parseSshCertificate,
  type SshCertificate,
} from "./ssh_cert.ts";
import {
  ChannelOpenError,
  HOST_CERT_ALGORITHMS,
  installSsh2Patches,
  openSshChannel,
  sendChannelRequest,
  type Ssh2Channel,
  ssh2Module,
  sshCertificateAuthKey,
} from "./ssh2_patches.ts";

/** ALPN protocol of the reverse tunnel behind a TLS-routing Proxy. */
export const TUNNEL_ALPN = "teleport-reversetunnel";
/** SSH channel type for transport (`constants.ChanTransport`). */
export const CHAN_TRANSPORT = "teleport-transport";
/** SSH channel request asking the Proxy to dial (`constants.ChanTransportDialReq`). */
export const CHAN_TRANSPORT_DIAL_REQ = "teleport-transport-dial";
/** The magic address of the Auth Service (`RemoteAuthServer`). */
export const REMOTE_AUTH_SERVER = "@remote-auth-server";
/** Default budget of {@link openTunnelDialer} and of each `dial()` (Go's `DialTimeout`). */
export const DEFAULT_TUNNEL_TIMEOUT_MS = 30_000;

/** Options of {@link openTunnelDialer}. Compatible with `dial_types.ts`'s `TunnelDialerOptions`. */
export interface OpenTunnelDialerOptions {
  /** Aborts opening (not the returned dialer's life: use `close()` for that). */
  signal?: AbortSignal;
  log?: Log;
  /** `HTTPS_PROXY`/`NO_PROXY` (see `config/env.ts`); default none set. */
  env?: Env;
  /** Budget for opening: SSH connection plus one proven Auth handshake. Default 30 s. */
  timeoutMs?: number;
  /** Timeout of each later `dial()` (SSH reconnect included). Default 30 s. */
  dialTimeoutMs?: number;
  /**
   * Reach the tunnel through a TLS-routing Proxy: TLS with ALPN `teleport-reversetunnel` to
   * `addr` (default port 443) before SSH.
   */
  viaTlsAlpn?: boolean;
  /** With `viaTlsAlpn`: the TLS server name (SNI and verified name); default `addr`'s host. */
  proxyServerName?: string;
  /**
   * With `viaTlsAlpn`: the roots that verify the Proxy's web certificate. Default the system
   * roots.
   */
  proxyCaPems?: string[];
  /** With `viaTlsAlpn`: extra roots added to `proxyCaPems` (or to the system roots). */
  extraCaPems?: string[];
  /** After the first Auth handshake, how long to wait for the server's first bytes. Default 3 s. */
  proofTimeoutMs?: number;
  /** SSH keepalive interval (ms); 3 unanswered keepalives drop the connection. Default 30 s. */
  keepaliveIntervalMs?: number;
  /** The address asked for in `teleport-transport-dial`; for tests. Default `@remote-auth-server`. */
  dialRequestAddress?: string;
}

/** A `tunnel` mode {@link AuthDialer} with its SSH connection's lifecycle. */
export interface TunnelAuthDialer extends AuthDialer {
  readonly mode: "tunnel";
  /** How many SSH connections were opened so far (1 while the first one lives). */
  readonly sshConnections: number;
  /**
   * Stops new dials and releases the SSH connection: at once when no connection from `dial()`
   * is open, else when the last one closes (open connections are not affected). Idempotent.
   */
  close(): void;
  /** Like `close()`, but also ends the SSH connection now, cutting every open connection. */
  destroy(): void;
}

// deno-lint-ignore no-explicit-any
type Any = any;

/** A failure in one step; becomes a `TeleportError` naming the address. */
class StepFailure extends Error {
  constructor(readonly kind: TeleportErrorKind, message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}

/** Runs `fn` with a signal that aborts on `signal` or after `ms`; clears the timer afterwards. */
async function withDeadline<T>(
  ms: number,
  signal: AbortSignal | undefined,
  what: string,
  fn: (signal: AbortSignal) => Promise<T>,
): Promise<T> {
  const ctl = new AbortController();
  const timer = setTimeout(
    () => ctl.abort(new StepFailure("connection_problem", `timed out after ${ms} ms ${what}`)),
    ms,
  );
  const onAbort = () => ctl.abort(signal!.reason);
  if (signal?.aborted) onAbort();
  else signal?.addEventListener("abort", onAbort, { once: true });
  try {
    return await fn(ctl.signal);
  } catch (err) {
    if (ctl.signal.aborted && ctl.signal.reason instanceof StepFailure) throw ctl.signal.reason;
    throw err;
  } finally {
    clearTimeout(timer);
    signal?.removeEventListener("abort", onAbort);
  }
}

/** The SSH user name of a certificate: its first principal, else its key id (Go's rule). */
export function sshUserOf(cert: SshCertificate): string {
  return cert.principals[0] ?? cert.keyId;
}

/** The identity's SSH material, checked. */
function sshMaterial(identity: Identity): {
  cert: SshCertificate;
  certLine: string;
  authorities: Uint8Array[];
  badAuthorities: string[];
} {
  if (!identity.sshCert) {
    throw new StepFailure(
      "bad_parameter",
      `the credentials from "${identity.source}" have no SSH certificate (use an identity file, not the TLS files)`,
    );
  }
  let cert: SshCertificate;
  try {
    cert = parseSshCertificate(parseAuthorizedKey(identity.sshCert).blob);
  } catch (err) {
    throw new StepFailure(
      "bad_parameter",
      `the identity's SSH certificate is unusable: ${errorMessage(err)}`,
    );
  }
  const authorities: Uint8Array[] = [];
  const badAuthorities: string[] = [];
  for (const line of identity.sshCertAuthorities) {
    try {
      authorities.push(parseCertAuthorityLine(line).publicKey);
    } catch (err) {
      badAuthorities.push(errorMessage(err));
    }
  }
  if (authorities.length === 0) {
    throw new StepFailure(
      "bad_parameter",
      `the identity from "${identity.source}" has no usable SSH host CA (@cert-authority line)` +
        (badAuthorities.length ? `: ${badAuthorities.join("; ")}` : ""),
    );
  }
  return { cert, certLine: identity.sshCert, authorities, badAuthorities };
}

interface SshConn {
  client: import("ssh2").Client;
  identity: Identity;
  openChannels: number;
  dead: boolean;
  retired: boolean;
}

function tlsFailure(err: unknown, what: string): StepFailure {
  if (err instanceof StepFailure) return err;
  const e = err as { kind?: TeleportErrorKind; name?: string };
  if (e?.name === "AbortError") {
    return new StepFailure("canceled", `${what} was canceled`, { cause: err });
  }
  const rejected = tlsRejection(err);
  if (rejected) {
    return new StepFailure(rejected.kind, `${what}: ${rejected.reason}`, { cause: err });
  }
  return new StepFailure(e?.kind ?? "connection_problem", `${what}: ${errorMessage(err)}`, {
    cause: err,
  });
}

/**
 * Why the Proxy's host key `blob` is not trusted (Go's `ssh.CertChecker`): not a certificate,
 * or not a valid host certificate for `host` signed by one of `authorities`. Undefined when
 * trusted.
 */
function hostCertificateProblem(
  blob: Uint8Array,
  authorities: Uint8Array[],
  host: string,
): string | undefined {
  let cert: SshCertificate;
  try {
    cert = parseSshCertificate(blob);
  } catch (err) {
    return `the host key is not a certificate (${errorMessage(err)})`;
  }
  return checkSshCertificate(cert, { type: "host", authorities, principal: host });
}

class TunnelDialer implements TunnelAuthDialer {
  readonly mode = "tunnel" as const;
  readonly addr: string;
  sshConnections = 0;
  #target: HostPort;
  #creds: CredentialsSource;
  #opts: OpenTunnelDialerOptions;
  #env: Env;
  #conn?: SshConn;
  #connecting?: { identity: Identity; promise: Promise<SshConn> };
  #all = new Set<SshConn>();
  #closed = new AbortController();

  constructor(
    addr: string,
    target: HostPort,
    creds: CredentialsSource,
    opts: OpenTunnelDialerOptions,
  ) {
    this.addr = addr;
    this.#target = target;
    this.#creds = creds;
    this.#opts = opts;
    this.#env = opts.env ?? {};
  }

  get #dialTimeoutMs(): number {
    return this.#opts.dialTimeoutMs ?? DEFAULT_TUNNEL_TIMEOUT_MS;
  }

  close(): void {
    if (this.#closed.signal.aborted) return;
    this.#closed.abort(
      new TeleportError("canceled", `The reverse tunnel dialer for "${this.addr}" was closed`),
    );
    for (const c of this.#all) {
      c.retired = true;
      if (c.openChannels === 0) this.#end(c);
    }
    this.#conn = undefined;
  }

  destroy(): void {
    this.close();
    for (const c of this.#all) this.#end(c);
    this.#all.clear();
  }

  #end(c: SshConn): void {
    c.dead = true;
    try {
      c.client.end();
    } catch { /* already closed */ }
    // ssh2 waits for the server to close after DISCONNECT; do not keep the process alive for it.
    setTimeout(() => c.client.destroy(), 1000).unref?.();
  }

  #fail(f: StepFailure): TeleportError {
    return new TeleportError(
      f.kind,
      `Cannot connect to the Teleport Auth Service at "${this.addr}" (tunnel mode): ${f.message}`,
      {
        cause: f.cause ?? f,
        hint: f.kind === "access_denied"
          ? "the SSH user certificate was refused: sign a new identity file for this cluster (tctl auth sign or tbot)"
          : undefined,
      },
    );
  }

  async dial(opts: { signal?: AbortSignal } = {}): Promise<Duplex> {
    return await this.dialWithin(this.#dialTimeoutMs, opts.signal);
  }

  /** `dial()` with an explicit budget. */
  async dialWithin(ms: number, signal?: AbortSignal): Promise<Duplex> {
    if (this.#closed.signal.aborted) throw this.#closed.signal.reason;
    try {
      return await withDeadline(
        ms,
        signal ? AbortSignal.any([signal, this.#closed.signal]) : this.#closed.signal,
        "dialing through the reverse tunnel",
        (s) => this.#dialOnce(s, true),
      );
    } catch (err) {
      if (err instanceof TeleportError) throw err;
      if (err instanceof StepFailure) throw this.#fail(err);
      if ((err as { name?: string })?.name === "AbortError" || signal?.aborted) {
        throw new TeleportError(
          "canceled",
          `Dialing "${this.addr}" through the reverse tunnel was canceled`,
          {
            cause: err,
          },
        );
      }
      throw this.#fail(new StepFailure("connection_problem", errorMessage(err), { cause: err }));
    }
  }

  async #dialOnce(signal: AbortSignal, mayRetry: boolean): Promise<Duplex> {
    const conn = await this.#getConn(signal);
    let ch: Ssh2Channel;
    try {
      ch = await openSshChannel(conn.client, CHAN_TRANSPORT, undefined, { signal });
    } catch (err) {
      const failure = this.#channelFailure(err, conn, signal);
      // The SSH connection died under us: one more try on a fresh one.
      if (mayRetry) return await this.#dialOnce(signal, false);
      throw failure;
    }
    conn.openChannels++;
    let counted = true;
    const release = () => {
      if (!counted) return;
      counted = false;
      conn.openChannels--;
      if (conn.retired && conn.openChannels === 0) this.#end(conn);
    };
    ch.once("close", release);
    try {
      await this.#requestDial(ch, signal);
      let sock: tls.TLSSocket;
      try {
        sock = await connectAuthTls(ch, conn.identity, ["h2"], { signal });
      } catch (err) {
        throw tlsFailure(err, "TLS to the Auth Service through the tunnel failed");
      }
      sock.once("close", () => {
        try {
          ch.close();
        } catch { /* closed */ }
      });
      ch.once("close", () => sock.destroy());
      return withSocketShims(sock);
    } catch (err) {
      try {
        ch.close();
      } catch { /* closed */ }
      release();
      throw err;
    }
  }

  /**
   * Why opening the transport channel failed. Throws when another try cannot help (refused,
   * aborted); otherwise marks `conn` dead and returns the failure to report if no retry is left.
   */
  #channelFailure(err: unknown, conn: SshConn, signal: AbortSignal): StepFailure {
    if (err instanceof ChannelOpenError) {
      throw new StepFailure(
        "connection_problem",
        `the Proxy refused the "${CHAN_TRANSPORT}" SSH channel (reason ${err.reason}${
          err.description ? `: ${JSON.stringify(err.description)}` : ""
        })`,
      );
    }
    if (signal.aborted) throw err;
    conn.dead = true;
    if (this.#conn === conn) this.#conn = undefined;
    return new StepFailure(
      "connection_problem",
      `opening the "${CHAN_TRANSPORT}" SSH channel failed: ${errorMessage(err)}`,
    );
  }

  /**
   * Sends `teleport-transport-dial` on `ch`; on refusal throws with the reason the Proxy wrote
   * to the channel's stderr before closing it (Go reads it to EOF).
   */
  async #requestDial(ch: Ssh2Channel, signal: AbortSignal): Promise<void> {
    const stderr: Buffer[] = [];
    const onStderr = (d: Buffer) => {
      if (stderr.reduce((n, b) => n + b.length, 0) < 8192) stderr.push(d);
    };
    ch.stderr.on("data", onStderr);
    const address = this.#opts.dialRequestAddress ?? REMOTE_AUTH_SERVER;
    const payload = Buffer.from(JSON.stringify({ address, conn_type: "node" }));
    const ok = await sendChannelRequest(ch, CHAN_TRANSPORT_DIAL_REQ, payload, true, { signal });
    if (ok) {
      ch.stderr.off("data", onStderr);
      ch.stderr.resume();
      return;
    }
    await abortable(
      new Promise<void>((resolve) => {
        if ((ch as Any).destroyed || (ch as Any).closed) return resolve();
        ch.once("close", () => resolve());
        ch.resume();
        setTimeout(resolve, 5000).unref?.();
      }),
      signal,
    );
    const text = Buffer.concat(stderr).toString("utf8").trim() ||
      `failed connecting to ${address}`;
    throw new StepFailure(
      "connection_problem",
      `the Proxy refused to dial the Auth Service: ${JSON.stringify(text)}`,
    );
  }

  async #getConn(signal: AbortSignal): Promise<SshConn> {
    const identity = this.#creds.current();
    const current = this.#conn;
    if (current && !current.dead && current.identity === identity) return current;
    if (current && current.identity !== identity) {
      // New credentials: new dials use a new SSH connection; the old one ends when idle.
      current.retired = true;
      if (current.openChannels === 0) this.#end(current);
      this.#conn = undefined;
    }
    if (!this.#connecting || this.#connecting.identity !== identity) {
      const promise = this.#connect(identity).finally(() => {
        if (this.#connecting?.promise === promise) this.#connecting = undefined;
      });
      promise.catch(() => {}); // observed by the callers below
      this.#connecting = { identity, promise };
    }
    return await abortable(this.#connecting.promise, signal);
  }

  /** Opens and authenticates one SSH connection (bounded by the dial timeout and close()). */
  async #connect(identity: Identity): Promise<SshConn> {
    return await withDeadline(
      this.#dialTimeoutMs,
      this.#closed.signal,
      "connecting to the reverse tunnel",
      async (signal) => {
        const { client, user } = await this.#sshHandshake(identity, signal);
        return this.#track(
          { client, identity, openChannels: 0, dead: false, retired: false },
          user,
        );
      },
    );
  }

  /** Steps 1 and 2: the outer connection, then SSH as the certificate's user. */
  async #sshHandshake(
    identity: Identity,
    signal: AbortSignal,
  ): Promise<{ client: import("ssh2").Client; user: string }> {
    const ssh = sshMaterial(identity);
    if (ssh.badAuthorities.length > 0) {
      this.#opts.log?.warn("Ignoring unusable @cert-authority lines of {source}: {errors}", {
        source: identity.source,
        errors: ssh.badAuthorities.join("; "),
      });
    }
    const user = sshUserOf(ssh.cert);
    let key;
    try {
      key = sshCertificateAuthKey(identity.keyPem, ssh.certLine);
    } catch (err) {
      throw new StepFailure("bad_parameter", errorMessage(err));
    }
    const stream = await this.#outer(signal);
    const client = new (ssh2Module().Client)();
    let hostProblem: string | undefined;
    const ready = new Promise<void>((resolve, reject) => {
      client.once("ready", () => resolve());
      client.once("error", (err: Error & { level?: string }) => reject(err));
      client.once(
        "close",
        () => reject(new Error("the connection closed during the SSH handshake")),
      );
    });
    client.connect({
      sock: stream as Any,
      username: user,
      readyTimeout: this.#dialTimeoutMs,
      keepaliveInterval: this.#opts.keepaliveIntervalMs ?? 30_000,
      keepaliveCountMax: 3,
      algorithms: { serverHostKey: [...HOST_CERT_ALGORITHMS] as Any },
      hostVerifier: (blob: Buffer) => {
        hostProblem = hostCertificateProblem(blob, ssh.authorities, this.#target.host);
        return hostProblem === undefined;
      },
      authHandler: [{ type: "publickey", username: user, key }] as Any,
    } as Any);
    try {
      await abortable(ready, signal, () => client.destroy());
    } catch (err) {
      client.destroy();
      stream.destroy();
      throw this.#sshFailure(err, hostProblem, user, signal);
    }
    return { client, user };
  }

  /** Keeps `conn` in the books until it closes; makes it current if the identity still is. */
  #track(conn: SshConn, user: string): SshConn {
    const client = conn.client;
    client.on("error", (err: Error) => {
      this.#opts.log?.debug("Reverse tunnel SSH connection to {addr} failed: {error}", {
        addr: this.addr,
        error: err.message,
      });
    });
    client.once("close", () => {
      conn.dead = true;
      this.#all.delete(conn);
      if (this.#conn === conn) this.#conn = undefined;
    });
    this.sshConnections++;
    this.#all.add(conn);
    if (this.#closed.signal.aborted) {
      this.#end(conn);
      throw this.#closed.signal.reason;
    }
    if (this.#creds.current() === conn.identity) this.#conn = conn;
    else conn.retired = true;
    this.#opts.log?.debug("Reverse tunnel SSH connection to {addr} established as {user}", {
      addr: this.addr,
      user,
    });
    return conn;
  }

  #sshFailure(
    err: unknown,
    hostProblem: string | undefined,
    user: string,
    signal: AbortSignal,
  ): unknown {
    if (signal.aborted) return signal.reason;
    const e = err as Error & { level?: string };
    const msg = errorMessage(err);
    if (hostProblem !== undefined) {
      return new StepFailure(
        "connection_problem",
        `the Proxy's SSH host certificate is not trusted: ${hostProblem}`,
        {
          cause: err,
        },
      );
    }
    if (e?.level === "client-authentication" || /authentication methods failed/i.test(msg)) {
      return new StepFailure(
        "access_denied",
        `SSH authentication as "${user}" was refused (the user certificate is expired, or not signed by this cluster's user CA)`,
        { cause: err },
      );
    }
    if (/no matching host key format/i.test(msg)) {
      return new StepFailure(
        "connection_problem",
        "the server did not offer an SSH host certificate; is this a Teleport reverse tunnel address?",
        { cause: err },
      );
    }
    if (e?.level === "protocol" || /protocol|identification|bad packet/i.test(msg)) {
      return new StepFailure(
        "connection_problem",
        `the server does not speak SSH (${msg}); is this the reverse tunnel port?`,
        {
          cause: err,
        },
      );
    }
    if (e?.level === "client-timeout") {
      return new StepFailure("connection_problem", "timed out during the SSH handshake", {
        cause: err,
      });
    }
    return new StepFailure("connection_problem", `the SSH handshake failed: ${msg}`, {
      cause: err,
    });
  }

  /** Step 1: TCP (through `HTTPS_PROXY` when set), plus TLS with ALPN `teleport-reversetunnel`. */
  async #outer(signal: AbortSignal): Promise<Duplex> {
    let sock: net.Socket;
    try {
      sock = await dialOuter(this.#target, { env: this.#env, signal });
    } catch (err) {
      if (signal.aborted) throw signal.reason;
      throw new StepFailure(
        "connection_problem",
        `cannot connect to ${joinHostPort(this.#target)}: ${errorMessage(err)}`,
        {
          cause: err,
        },
      );
    }
    // dialOuter's socket has TCP_NODELAY (see tcpConnect): SSH packets are latency-bound.
    if (!this.#opts.viaTlsAlpn) return sock;
    const name = this.#opts.proxyServerName ?? this.#target.host;
    let roots: string[] | undefined = this.#opts.proxyCaPems;
    if (this.#opts.extraCaPems?.length) {
      roots = [...(roots ?? tls.rootCertificates), ...this.#opts.extraCaPems];
    }
    let t: tls.TLSSocket | undefined;
    try {
      t = await tlsOver(sock, {
        host: name,
        servername: net.isIP(name) ? undefined : name,
        ...(roots ? { ca: roots } : {}),
        ALPNProtocols: [TUNNEL_ALPN],
      }, { signal });
    } catch (err) {
      if (signal.aborted) throw signal.reason;
      // A server without the protocol may abort the handshake (no_application_protocol).
      if (
        !/no.?application.?protocol/i.test(
          `${(err as { code?: string })?.code} ${errorMessage(err)}`,
        )
      ) {
        throw tlsFailure(err, `TLS to the Proxy at ${joinHostPort(this.#target)} failed`);
      }
    }
    if (!t || t.alpnProtocol !== TUNNEL_ALPN) {
      t?.destroy();
      throw new StepFailure(
        "connection_problem",
        `the Proxy at ${
          joinHostPort(this.#target)
        } did not accept ALPN "${TUNNEL_ALPN}" (negotiated "${
          t?.alpnProtocol || "none"
        }"): TLS routing is off, or a load balancer strips ALPN`,
      );
    }
    return t;
  }
}

/**
 * Opens the `tunnel` mode to `addr` (`host:port`; default port 3024, or 443 with `viaTlsAlpn`)
 * and proves it by completing one mTLS handshake with the Auth Service through it. The returned
 * dialer keeps the SSH connection open for later dials; call `close()` when done.
 *
 * Fits `dial.ts`'s `ResolveAuthDialerOptions.tunnelDialer` hook as is.
 * @throws {TeleportError} `connection_problem` (unreachable, not SSH, host certificate not
 *   trusted, dial refused), `access_denied` (SSH user certificate or TLS client certificate
 *   refused), `bad_parameter` (no SSH material in the credentials), `canceled`.
 */
export async function openTunnelDialer(
  addr: string,
  creds: CredentialsSource,
  opts: OpenTunnelDialerOptions = {},
): Promise<TunnelAuthDialer> {
  installSsh2Patches();
  let target: HostPort;
  try {
    target = parseHostPort(addr, opts.viaTlsAlpn ? DEFAULT_WEB_PORT : DEFAULT_TUNNEL_PORT);
  } catch (err) {
    throw new TeleportError("bad_parameter", `Cannot connect to Teleport: ${errorMessage(err)}`, {
      cause: err,
    });
  }
  const dialer = new TunnelDialer(addr, target, creds, opts);
  const budget = opts.timeoutMs ?? DEFAULT_TUNNEL_TIMEOUT_MS;
  try {
    const s = await dialer.dialWithin(budget, opts.signal);
    try {
      await proveAccepted(s, {
        timeoutMs: opts.proofTimeoutMs ?? 3000,
        signal: opts.signal,
        onError: (err) => tlsFailure(err, "the Auth Service ended the TLS session"),
        onClose: () =>
          new StepFailure(
            "access_denied",
            "the Auth Service closed the connection right after the TLS handshake; it probably rejected the client certificate",
          ),
      });
    } catch (err) {
      if (err instanceof StepFailure) {
        throw new TeleportError(
          err.kind,
          `Cannot connect to the Teleport Auth Service at "${addr}" (tunnel mode): ${err.message}`,
          { cause: err },
        );
      }
      throw err;
    }
  } catch (err) {
    dialer.destroy();
    throw err;
  }
  return dialer;
}
