/**
 * The Proxy's public web API, as the dialers need it: the TLS connection to the Proxy's web
 * listener and `GET /webapi/find` (cluster name, TLS routing, tunnel addresses), the latter by
 * `node:http` over that connection.
 *
 * Not `fetch` with `Deno.createHttpClient`: its client applies the runtime's own reading of
 * `HTTPS_PROXY`/`NO_PROXY` whenever no proxy is given (it proxies loopback addresses, which Go
 * never does, and cannot be told "direct"), and adds our roots to the runtime's instead of
 * using them alone (`SSL_CERT_FILE` would no longer replace the system roots as in Go).
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
import http from "node:http";
import { Buffer } from "node:buffer";
import { abortable } from "../async.ts";
import { dialOuter, type Env, type HostPort, joinHostPort, tlsOver } from "./dial_net.ts";

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

/** The body of `res`, at most `max` bytes. */
async function readBody(res: http.IncomingMessage, max: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of res) {
    size += (chunk as Buffer).length;
    if (size > max) throw new Error("response body too large");
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks);
}

/**
 * `GET https://<target>/webapi/find`, by `node:http` over {@link connectWeb}'s connection (so
 * the proxy decision and the roots are ours). Throws `Error` with the HTTP status or the
 * network/TLS failure.
 */
export async function findProxy(
  target: HostPort,
  opts: { env: Env; roots: string[]; signal?: AbortSignal },
): Promise<FindResponse> {
  const sock = await connectWeb(target, opts);
  try {
    const response = new Promise<{ status: number; reason: string; body: Buffer }>(
      (resolve, reject) => {
        const req = http.request({
          method: "GET",
          path: "/webapi/find",
          headers: {
            Host: joinHostPort(target),
            Accept: "application/json",
            "User-Agent": "teleport-email",
            Connection: "close",
          },
          createConnection: () => sock,
        }, (res) => {
          readBody(res, 1024 * 1024).then(
            (body) =>
              resolve({ status: res.statusCode ?? 0, reason: res.statusMessage ?? "", body }),
            reject,
          );
        });
        req.once("error", reject);
        req.end();
      },
    );
    const { status, reason, body } = await abortable(response, opts.signal, () => sock.destroy());
    if (status !== 200) throw new Error(`/webapi/find answered ${status} ${reason}`);
    try {
      return JSON.parse(body.toString("utf8")) as FindResponse;
    } catch {
      throw new Error("/webapi/find did not return JSON (not a Teleport Proxy?)");
    }
  } finally {
    sock.destroy();
  }
}
