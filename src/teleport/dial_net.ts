/**
 * Network building blocks for the Teleport dialers: address parsing, the outer TCP dial (direct,
 * or through the HTTP CONNECT proxy `http_proxy.ts` picks),
 * TLS over an existing stream, a tiny HTTP/1.1 response-head reader, and abort/timeout helpers.
 */
import net from "node:net";
import tls from "node:tls";
import { Buffer } from "node:buffer";
import type { Duplex } from "node:stream";
import { abortable } from "../async.ts";
import type { TeleportErrorKind } from "../errors.ts";
import type { Env } from "../config/env.ts";
import type { Identity } from "./identity.ts";
import { type HostPort, proxyForTarget, proxyVariable } from "./http_proxy.ts";

/** SNI and verified name of the Auth Service (`constants.APIDomain`). */
export const API_DOMAIN = "teleport.cluster.local";
/** Default Proxy web port used when an address has no port (`defaults.StandardHTTPSPort`). */
export const DEFAULT_WEB_PORT = 443;

export type { Env } from "../config/env.ts";
export type { HostPort } from "./http_proxy.ts";

/**
 * Parses `host:port`, `[v6]:port`, `host` (port = `defaultPort`) or a URL-ish `https://host:port`.
 * Throws `Error` on a bad port.
 */
export function parseHostPort(addr: string, defaultPort: number): HostPort {
  let a = addr.trim().replace(/^[a-z][a-z0-9+.-]*:\/\//i, "").replace(/\/.*$/, "");
  let port = defaultPort;
  let host: string;
  if (a.startsWith("[")) {
    const end = a.indexOf("]");
    host = a.slice(1, end);
    a = a.slice(end + 1);
    if (a.startsWith(":")) port = Number(a.slice(1));
  } else {
    const i = a.lastIndexOf(":");
    if (i >= 0 && a.indexOf(":") === i) {
      host = a.slice(0, i);
      port = Number(a.slice(i + 1));
    } else {
      host = a;
    }
  }
  if (!Number.isInteger(port) || port < 1 || port > 65535) {
    throw new Error(`invalid port in address "${addr}"`);
  }
  return { host: host || "localhost", port };
}

/** `host:port` with brackets for IPv6. */
export function joinHostPort({ host, port }: HostPort): string {
  return host.includes(":") ? `[${host}]:${port}` : `${host}:${port}`;
}

/**
 * Opens a TCP connection with TCP_NODELAY (like Go; TLS records, WebSocket frames and SSH packets
 * are small and latency-bound, and with Nagle's algorithm a small write waits for the peer's
 * delayed ACK of the previous one) and TCP keepalive. Rejects with the socket error (e.g.
 * `ECONNREFUSED`).
 */
export function tcpConnect(
  target: HostPort,
  opts: { signal?: AbortSignal } = {},
): Promise<net.Socket> {
  const sock = net.connect({ host: target.host, port: target.port });
  const p = new Promise<net.Socket>((resolve, reject) => {
    sock.once("connect", () => {
      sock.off("error", reject);
      sock.setNoDelay(true);
      sock.setKeepAlive(true, 60_000);
      resolve(sock);
    });
    sock.once("error", reject);
  });
  return abortable(p, opts.signal, () => sock.destroy());
}

/**
 * Reads an HTTP/1.1 response (or request) head from `stream`, up to `\r\n\r\n`. Returns the head
 * text and any bytes read past it. The stream is left paused with no `data` listener. Rejects
 * when the head exceeds `maxBytes` (default 16 KiB).
 */
export function readHttpHead(
  stream: Duplex,
  opts: { signal?: AbortSignal; maxBytes?: number } = {},
): Promise<{ head: string; rest: Buffer }> {
  const maxBytes = opts.maxBytes ?? 16 * 1024;
  let buf = Buffer.alloc(0);
  let cleanup = () => {};
  const p = new Promise<{ head: string; rest: Buffer }>((resolve, reject) => {
    const onData = (chunk: Buffer) => {
      buf = Buffer.concat([buf, chunk]);
      const end = buf.indexOf("\r\n\r\n");
      if (end >= 0) {
        cleanup();
        stream.pause();
        resolve({ head: buf.subarray(0, end).toString("latin1"), rest: buf.subarray(end + 4) });
      } else if (buf.length > maxBytes) {
        cleanup();
        reject(new Error("HTTP response head is too large"));
      }
    };
    const onEnd = () => {
      cleanup();
      reject(new Error("connection closed before an HTTP response"));
    };
    const onError = (err: Error) => {
      cleanup();
      reject(err);
    };
    cleanup = () => {
      stream.off("data", onData);
      stream.off("end", onEnd);
      stream.off("close", onEnd);
      stream.off("error", onError);
    };
    stream.on("data", onData);
    stream.once("end", onEnd);
    stream.once("close", onEnd);
    stream.once("error", onError);
    stream.resume();
  });
  return abortable(p, opts.signal, () => {
    cleanup();
    stream.destroy();
  });
}

/** Status code and lower-cased headers of an HTTP head. */
export function parseHttpHead(head: string): {
  status: number;
  reason: string;
  headers: Record<string, string>;
} {
  const [first, ...lines] = head.split("\r\n");
  const m = /^HTTP\/1\.[01] (\d{3}) ?(.*)$/.exec(first);
  if (!m) throw new Error(`not an HTTP response: "${first.slice(0, 40)}"`);
  const headers: Record<string, string> = {};
  for (const line of lines) {
    const i = line.indexOf(":");
    if (i > 0) {
      const name = line.slice(0, i).trim().toLowerCase();
      const value = line.slice(i + 1).trim();
      headers[name] = headers[name] === undefined ? value : `${headers[name]}, ${value}`;
    }
  }
  return { status: Number(m[1]), reason: m[2], headers };
}

/**
 * The outer TCP dial: straight to `target`, or through the HTTP CONNECT proxy `http_proxy.ts` picks
 * (with `Proxy-Authorization: Basic` when the proxy URL has credentials).
 */
export async function dialOuter(
  target: HostPort,
  opts: { env: Env; signal?: AbortSignal },
): Promise<net.Socket> {
  const proxy = proxyForTarget(target, opts.env);
  if (!proxy) return await tcpConnect(target, { signal: opts.signal });
  const name = proxyVariable(opts.env);
  if (proxy.protocol !== "http:") {
    throw new Error(`unsupported ${name} scheme "${proxy.protocol}" (only http:// proxies)`);
  }
  const proxyAddr = {
    host: proxy.hostname.replace(/^\[|\]$/g, ""),
    port: Number(proxy.port || 80),
  };
  let sock: net.Socket;
  try {
    sock = await tcpConnect(proxyAddr, { signal: opts.signal });
  } catch (err) {
    throw new Error(
      `cannot reach ${name} ${joinHostPort(proxyAddr)}: ${(err as Error).message}`,
      { cause: err },
    );
  }
  const authority = joinHostPort(target);
  let req = `CONNECT ${authority} HTTP/1.1\r\nHost: ${authority}\r\n`;
  if (proxy.username || proxy.password) {
    const cred = `${decodeURIComponent(proxy.username)}:${decodeURIComponent(proxy.password)}`;
    req += `Proxy-Authorization: Basic ${Buffer.from(cred).toString("base64")}\r\n`;
  }
  sock.write(req + "\r\n");
  try {
    const { head, rest } = await readHttpHead(sock, { signal: opts.signal });
    const { status, reason } = parseHttpHead(head);
    if (status < 200 || status > 299) {
      throw new Error(
        `${name} ${joinHostPort(proxyAddr)} refused CONNECT ${authority}: ${status} ${reason}`,
      );
    }
    if (rest.length > 0) sock.unshift(rest);
    return sock;
  } catch (err) {
    sock.destroy();
    throw err;
  }
}

/** Starts TLS over `socket` and resolves once the handshake completed and the peer is verified. */
export function tlsOver(
  socket: Duplex,
  options: tls.ConnectionOptions,
  opts: { signal?: AbortSignal } = {},
): Promise<tls.TLSSocket> {
  const s = tls.connect({ ...options, socket: socket as net.Socket, rejectUnauthorized: true });
  const p = new Promise<tls.TLSSocket>((resolve, reject) => {
    const onClose = () => reject(new Error("connection closed during the TLS handshake"));
    s.once("secureConnect", () => {
      s.off("error", reject);
      s.off("close", onClose);
      if (!s.authorized) {
        s.destroy();
        reject(s.authorizationError ?? new Error("server certificate not verified"));
        return;
      }
      resolve(s);
    });
    s.once("error", reject);
    s.once("close", onClose);
  });
  return abortable(p, opts.signal, () => {
    s.destroy();
    socket.destroy();
  });
}

/** A failure with its kind, before it is wrapped in a `TeleportError`. */
export class DialFailure extends Error {
  constructor(readonly kind: TeleportErrorKind, message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}

/** `node:tls` error codes meaning the server's certificate did not verify. */
export const SERVER_CERT_CODES: ReadonlySet<string> = new Set([
  "UNABLE_TO_VERIFY_LEAF_SIGNATURE",
  "UNABLE_TO_GET_ISSUER_CERT",
  "UNABLE_TO_GET_ISSUER_CERT_LOCALLY",
  "SELF_SIGNED_CERT_IN_CHAIN",
  "DEPTH_ZERO_SELF_SIGNED_CERT",
  "CERT_SIGNATURE_FAILURE",
  "CERT_HAS_EXPIRED",
  "CERT_NOT_YET_VALID",
  "ERR_TLS_CERT_ALTNAME_INVALID",
]);

/**
 * The two TLS failures worth explaining: the server's certificate did not verify
 * (`connection_problem`), or the server refused the client certificate with an alert
 * (`access_denied`). Undefined for any other error.
 */
export function tlsRejection(
  err: unknown,
): { kind: "connection_problem" | "access_denied"; reason: string } | undefined {
  const e = err as { code?: string; message?: string } | undefined;
  const msg = e?.message ?? String(err);
  if (e?.code && SERVER_CERT_CODES.has(e.code)) {
    return {
      kind: "connection_problem",
      reason: `the server's certificate is not trusted (${msg})`,
    };
  }
  if (/alert.*(certificate|unknown ?ca|access ?denied|decrypt)/i.test(`${e?.code ?? ""} ${msg}`)) {
    return { kind: "access_denied", reason: `the server rejected the client certificate (${msg})` };
  }
  return undefined;
}

/** Options of {@link proveAccepted}. */
export interface ProveAcceptedOptions {
  /** How long to wait for the first bytes; on timeout the connection counts as accepted. */
  timeoutMs: number;
  signal?: AbortSignal;
  /** The rejection when the server closes the connection first. */
  onClose: () => unknown;
  /** Maps a socket error to the rejection; default the error itself. */
  onError?: (err: Error) => unknown;
}

/**
 * Waits for the server's first bytes after a TLS handshake (its HTTP/2 SETTINGS) to prove it
 * accepted the client certificate (TLS 1.3 reports a refusal only after the handshake, as an
 * alert or a close), then destroys `s`. Resolves on data or after `timeoutMs`; rejects on a
 * close, an error or an abort (with `signal.reason`).
 */
export function proveAccepted(s: Duplex, opts: ProveAcceptedOptions): Promise<void> {
  const { signal } = opts;
  return new Promise<void>((resolve, reject) => {
    const done = (err?: unknown) => {
      clearTimeout(timer);
      signal?.removeEventListener("abort", onAbort);
      s.off("data", onData);
      s.off("error", onError);
      s.off("close", onClose);
      s.destroy();
      if (err) reject(err);
      else resolve();
    };
    const onData = () => done();
    const onError = (err: Error) => done(opts.onError ? opts.onError(err) : err);
    const onClose = () => done(opts.onClose());
    const onAbort = () => done(signal!.reason);
    const timer = setTimeout(() => done(), opts.timeoutMs);
    s.on("data", onData);
    s.once("error", onError);
    s.once("close", onClose);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

/** Inner TLS to the Auth Service over `stream` with the identity; requires `h2`. */
export async function connectAuthTls(
  stream: Duplex,
  identity: Identity,
  alpn: string[],
  opts: { signal?: AbortSignal } = {},
): Promise<tls.TLSSocket> {
  const s = await tlsOver(stream, {
    servername: API_DOMAIN,
    host: API_DOMAIN,
    ca: identity.caPems,
    key: identity.keyPem,
    cert: identity.certPem,
    ALPNProtocols: alpn,
  }, opts);
  if (s.alpnProtocol !== "h2") {
    s.destroy();
    throw new DialFailure(
      "connection_problem",
      `the server negotiated ALPN "${s.alpnProtocol || "none"}" instead of "h2"`,
    );
  }
  return s;
}

/** Adds the no-op socket methods Deno's http2 calls on a connection's socket. */
export function withSocketShims<T extends Duplex>(d: T): T {
  const any = d as unknown as Record<string, unknown>;
  for (const m of ["unref", "ref", "setNoDelay", "setKeepAlive", "setTimeout"]) {
    if (typeof any[m] !== "function") any[m] = () => d;
  }
  return d;
}
