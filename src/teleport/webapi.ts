/**
 * The Proxy's public web API, as the dialers need it: the TLS connection to the Proxy's web
 * listener and `GET /webapi/find` (cluster name, TLS routing, tunnel addresses).
 *
 * ## Which CAs verify the Proxy's web certificate
 *
 * Like the Go client, the Proxy's public web certificate is verified with the system trust store
 * (never skipped). Concretely the trusted roots are:
 * - the PEM bundle named by `SSL_CERT_FILE` when set, else the first system bundle found among
 *   the paths Go's `crypto/x509` reads on Linux (`/etc/ssl/certs/ca-certificates.crt`, ...), else
 *   the Mozilla root set built into the runtime (`tls.rootCertificates`);
 * - plus the PEM file named by `DENO_CERT` when set (Deno's own "extra CA" variable);
 * - plus the cluster's host CA certificates from the identity file (what Go falls back to for
 *   connection upgrades).
 * An operator whose Proxy uses a private CA sets `SSL_CERT_FILE` or `DENO_CERT` to its PEM.
 */
import tls from "node:tls";
import net from "node:net";
import { Buffer } from "node:buffer";
import {
  abortable,
  dialOuter,
  type Env,
  type HostPort,
  joinHostPort,
  parseHttpHead,
  readHttpHead,
  tlsOver,
} from "./dial_net.ts";

/** The parts of `/webapi/find`'s JSON the dialers use. */
export interface FindResponse {
  cluster_name?: string;
  server_version?: string;
  min_client_version?: string;
  proxy?: {
    tls_routing_enabled?: boolean;
    ssh?: {
      listen_addr?: string;
      tunnel_listen_addr?: string;
      web_listen_addr?: string;
      public_addr?: string;
      ssh_public_addr?: string;
      ssh_tunnel_public_addr?: string;
    };
  };
}

function readPemFile(path: string): string[] {
  const text = Deno.readTextFileSync(path);
  return [...text.matchAll(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g)].map((
    m,
  ) => m[0] + "\n");
}

/**
 * Trusted roots for the Proxy's web certificate (see the module doc): `SSL_CERT_FILE` or the
 * built-in roots, plus `DENO_CERT`, plus `extraPems` (the identity's host CAs). Throws `Error`
 * naming the variable when a named file cannot be read.
 */
export function webRootCas(env: Env, extraPems: readonly string[] = []): string[] {
  const roots: string[] = [];
  for (const name of ["SSL_CERT_FILE", "DENO_CERT"] as const) {
    const path = env[name];
    if (!path) continue;
    try {
      roots.push(...readPemFile(path));
    } catch (err) {
      throw new Error(`cannot read ${name} "${path}": ${(err as Error).message}`, { cause: err });
    }
  }
  if (!env.SSL_CERT_FILE) roots.push(...systemRoots());
  roots.push(...extraPems);
  return roots;
}

/** Go's `crypto/x509` system bundle locations on Linux, in its order. */
export const SYSTEM_CERT_FILES = [
  "/etc/ssl/certs/ca-certificates.crt",
  "/etc/pki/tls/certs/ca-bundle.crt",
  "/etc/ssl/ca-bundle.pem",
  "/etc/pki/tls/cacert.pem",
  "/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem",
  "/etc/ssl/cert.pem",
];

/** The first readable, non-empty system bundle, else the runtime's built-in Mozilla roots. */
function systemRoots(): string[] {
  for (const path of SYSTEM_CERT_FILES) {
    try {
      const pems = readPemFile(path);
      if (pems.length > 0) return pems;
    } catch {
      // missing or not readable (e.g. restricted --allow-read): try the next one
    }
  }
  return [...tls.rootCertificates];
}

/** TLS to the Proxy's web listener, verified with `roots` against the Proxy's host name. */
export async function connectWeb(
  target: HostPort,
  opts: { env: Env; roots: string[]; alpn?: string[]; signal?: AbortSignal },
): Promise<tls.TLSSocket> {
  const sock = await dialOuter(target, opts);
  return await tlsOver(sock, {
    host: target.host,
    servername: net.isIP(target.host) ? undefined : target.host,
    ca: opts.roots,
    ALPNProtocols: opts.alpn ?? ["http/1.1"],
  }, { signal: opts.signal });
}

function readAll(stream: tls.TLSSocket, first: Buffer, max: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks = [first];
    let size = first.length;
    stream.on("data", (c: Buffer) => {
      chunks.push(c);
      size += c.length;
      if (size > max) {
        stream.destroy();
        reject(new Error("response body too large"));
      }
    });
    stream.once("end", () => resolve(Buffer.concat(chunks)));
    stream.once("close", () => resolve(Buffer.concat(chunks)));
    stream.once("error", reject);
    stream.resume();
  });
}

function dechunk(body: Buffer): Buffer {
  const out: Buffer[] = [];
  let o = 0;
  for (;;) {
    const eol = body.indexOf("\r\n", o);
    if (eol < 0) throw new Error("truncated chunked body");
    const size = parseInt(body.subarray(o, eol).toString("latin1").split(";")[0], 16);
    if (!Number.isFinite(size)) throw new Error("bad chunk size");
    if (size === 0) return Buffer.concat(out);
    out.push(body.subarray(eol + 2, eol + 2 + size));
    o = eol + 2 + size + 2;
  }
}

/**
 * `GET https://<target>/webapi/find`. Throws `Error` with the HTTP status or the network/TLS
 * failure.
 */
export async function findProxy(
  target: HostPort,
  opts: { env: Env; roots: string[]; signal?: AbortSignal },
): Promise<FindResponse> {
  const s = await connectWeb(target, opts);
  try {
    s.write(
      `GET /webapi/find HTTP/1.1\r\nHost: ${joinHostPort(target)}\r\nAccept: application/json\r\n` +
        `User-Agent: teleport-email\r\nConnection: close\r\n\r\n`,
    );
    const { head, rest } = await readHttpHead(s, { signal: opts.signal });
    const { status, reason, headers } = parseHttpHead(head);
    let body = await abortable(readAll(s, rest, 1024 * 1024), opts.signal, () => s.destroy());
    if ((headers["transfer-encoding"] ?? "").toLowerCase().includes("chunked")) {
      body = dechunk(body);
    } else if (headers["content-length"]) {
      body = body.subarray(0, Number(headers["content-length"]));
    }
    if (status !== 200) throw new Error(`/webapi/find answered ${status} ${reason}`);
    try {
      return JSON.parse(body.toString("utf8")) as FindResponse;
    } catch {
      throw new Error("/webapi/find did not return JSON (not a Teleport Proxy?)");
    }
  } finally {
    s.destroy();
  }
}
