/**
 * A Teleport Proxy reverse-tunnel listener for tests and the demo (an ssh2 `Server` under Deno).
 *
 * Like `lib/reversetunnel/srv.go` for a user identity:
 * - host key: an SSH **host certificate** signed by the test CA's SSH host CA (ssh2 cannot
 *   present one by itself; see `sshCertificateHostKeys` in `src/teleport/ssh2_patches.ts`);
 * - auth: `publickey` with an OpenSSH **user certificate** only: signed by the SSH user CA, type
 *   user, valid now, the SSH user among its principals, non-empty `teleport-roles`, and a valid
 *   signature by the certified key (ssh2 checks none of this; `ssh_cert.ts` does);
 * - channel `teleport-transport`, then request `teleport-transport-dial`: for
 *   `@remote-auth-server` the channel is piped to the Auth server's TCP address (raw bytes: TLS
 *   stays end to end); any other address is refused (reply false, reason on stderr), which is
 *   stricter than the newest Teleport (it routes every user dial to Auth). Other channel types
 *   are rejected with reason 2 and Teleport's message.
 *
 * Test-only.
 */
import net from "node:net";
import { Buffer } from "node:buffer";
import type { Duplex } from "node:stream";
import {
  acceptCustomChannels,
  ssh2Module,
  type Ssh2ServerChannel,
  sshCertificateHostKeys,
  withSocketShims,
} from "../../src/teleport/ssh2_patches.ts";
import {
  checkSshCertificate,
  isCertificateType,
  parseAuthorizedKey,
  parseSshCertificate,
  verifySshSignature,
} from "../../src/teleport/ssh_cert.ts";
import type { TestCertificateAuthority } from "./ca.ts";

/** What the tunnel server needs from the test CA. */
export type TunnelServerCa = Pick<
  TestCertificateAuthority,
  "sshUserCaPublicKey" | "issueSshHostCert"
>;

/** Options of {@link startTunnelServer}. */
export interface TunnelServerOptions {
  ca: TunnelServerCa;
  /** The Auth server's `host:port` that `@remote-auth-server` dials go to. */
  authAddr: string;
  /** Listen address; default 127.0.0.1 (loopback only). */
  host?: string;
  /** Listen port; default 0 (any free port). */
  port?: number;
  /** Principals of the generated host certificate; default `[host, "localhost"]`. */
  hostPrincipals?: string[];
  /** A host key and certificate to present instead of a generated one (wrong CA, expired...). */
  hostCert?: { keyPem: string; cert: string };
  /** Trusted SSH user CA keys (`<type> <b64>` lines); default the CA's SSH user CA. */
  userCaPublicKeys?: string[];
  /** Route every dial address to Auth (the newest Teleport's behaviour) instead of refusing. */
  routeAnyAddressToAuth?: boolean;
}

/** A running tunnel server. */
export interface TunnelServer {
  /** `127.0.0.1:<port>`: the address to configure (tunnel mode). */
  readonly addr: string;
  /**
   * Serves one already-accepted connection (a TCP socket, or the TLS socket of the Proxy
   * emulator's ALPN `teleport-reversetunnel` route, after the TLS handshake).
   */
  handleSocket(sock: Duplex): void;
  /** Closes the listener and every connection. */
  close(): Promise<void>;
  /** SSH connections accepted so far (handshake started), including `handleSocket` ones. */
  readonly connections: number;
  /** SSH connections open now. */
  readonly openConnections: number;
  /** Successful SSH authentications so far. */
  readonly authenticated: number;
  /** Why authentications were refused, in order (e.g. "certificate has expired"). */
  readonly authFailures: readonly string[];
  /** Key algorithms of the signed `publickey` requests, in order (`rsa-sha2-256-cert-v01@...`). */
  readonly authAlgorithms: readonly string[];
  /** Addresses of every `teleport-transport-dial` request, in order. */
  readonly dials: readonly string[];
  /** Closes every SSH connection now (the listener stays), to test reconnects. */
  dropConnections(): void;
}

const TRANSPORT = "teleport-transport";
const DIAL_REQ = "teleport-transport-dial";
const REMOTE_AUTH_SERVER = "@remote-auth-server";

/** Parses a dial request payload like Teleport's `parseDialReq` (JSON, else the bare address). */
function parseDialReq(payload: Uint8Array): { address: string } {
  const text = Buffer.from(payload).toString("utf8");
  try {
    const v = JSON.parse(text);
    if (v && typeof v === "object") {
      return { address: typeof v.address === "string" ? v.address : "" };
    }
  } catch { /* legacy: the payload is the address */ }
  return { address: text };
}

/** Starts the server. Always `close()` it. */
export async function startTunnelServer(opts: TunnelServerOptions): Promise<TunnelServer> {
  const host = opts.host ?? "127.0.0.1";
  const hostCert = opts.hostCert ??
    opts.ca.issueSshHostCert({ principals: opts.hostPrincipals ?? [host, "localhost"] });
  const userCas = (opts.userCaPublicKeys ?? [opts.ca.sshUserCaPublicKey]).map((l) =>
    parseAuthorizedKey(l).blob
  );
  const authIdx = opts.authAddr.lastIndexOf(":");
  const authHost = opts.authAddr.slice(0, authIdx).replace(/^\[|\]$/g, "");
  const authPort = Number(opts.authAddr.slice(authIdx + 1));

  const conns = new Set<{ end(): void }>();
  const sockets = new Set<Duplex>();
  const stats = { connections: 0, authenticated: 0 };
  const authFailures: string[] = [];
  const authAlgorithms: string[] = [];
  const dials: string[] = [];

  const server = new (ssh2Module().Server)(
    { hostKeys: sshCertificateHostKeys(hostCert.keyPem, hostCert.cert) as never },
    (conn) => {
      stats.connections++;
      conns.add(conn);
      // No Nagle: SSH packets are small and latency-bound.
      (conn as unknown as { setNoDelay(on: boolean): void }).setNoDelay(true);
      conn.on("close", () => conns.delete(conn));
      conn.on("error", () => {});
      acceptCustomChannels(conn, [TRANSPORT, "session", "direct-tcpip"], (open) => {
        if (open.type !== TRANSPORT) {
          return open.reject(
            2,
            open.type === "session"
              ? "Cannot open new SSH session on reverse tunnel. Are you connecting to the right port?"
              : `reversetunnel received unknown channel request ${open.type}`,
          );
        }
        serveTransport(open.accept());
      });
      conn.on("authentication", (ctx) => {
        const refuse = (why: string) => {
          authFailures.push(why);
          ctx.reject(["publickey"]);
        };
        if (ctx.method !== "publickey") return ctx.reject(["publickey"]);
        if (!isCertificateType(ctx.key.algo)) {
          return refuse("server doesn't support provided key type");
        }
        let cert;
        try {
          cert = parseSshCertificate(ctx.key.data);
        } catch (err) {
          return refuse((err as Error).message);
        }
        const problem = checkSshCertificate(cert, {
          type: "user",
          authorities: userCas,
          principal: ctx.username,
          supportedCriticalOptions: ["source-address"],
        });
        if (problem) return refuse(problem);
        if (!cert.principals.includes(ctx.username)) {
          return refuse(`"${ctx.username}" is not a principal of the certificate`);
        }
        let roles: unknown = [];
        try {
          roles = JSON.parse(cert.extensions["teleport-roles"] ?? "{}").roles;
        } catch { /* refused below */ }
        if (!Array.isArray(roles) || roles.length === 0) {
          return refuse('certificate missing roles in "teleport-roles" extension');
        }
        if (!ctx.signature) return ctx.accept(); // "publickey -- check": the key is acceptable
        authAlgorithms.push(ctx.key.algo);
        if (!verifySshSignature(cert.publicKey, ctx.signature, ctx.blob!)) {
          return refuse("bad signature");
        }
        stats.authenticated++;
        ctx.accept();
      });
    },
  );
  server.on("error", () => {});

  function serveTransport(ch: Ssh2ServerChannel): void {
    ch.on("error", () => {});
    // Older Teleport versions push a space into stderr first; clients must cope.
    ch.stderr.write(" ");
    let handled = false;
    ch.on(
      "channel-request",
      (req: { type: string; data: Uint8Array; reply(ok: boolean): void }) => {
        if (req.type !== DIAL_REQ || handled) return req.reply(false);
        handled = true;
        const { address } = parseDialReq(req.data);
        dials.push(address);
        const refuse = (text: string) => {
          ch.stderr.write(text);
          req.reply(false);
          ch.close();
        };
        if (address !== REMOTE_AUTH_SERVER && !opts.routeAnyAddressToAuth) {
          return refuse(
            `connection rejected: users may only dial ${REMOTE_AUTH_SERVER}, not "${address}"`,
          );
        }
        const up = net.connect({ host: authHost, port: authPort });
        up.setNoDelay(true);
        let connected = false;
        sockets.add(up);
        up.once("close", () => sockets.delete(up));
        up.once("error", () => {
          if (!connected) refuse("failed to dial auth server");
          else ch.close();
        });
        up.once("connect", () => {
          connected = true;
          req.reply(true);
          ch.pipe(up);
          up.pipe(ch);
          up.once("close", () => ch.close());
          ch.once("close", () => up.destroy());
        });
      },
    );
  }

  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(opts.port ?? 0, host, () => {
      server.off("error", reject);
      resolve();
    });
  });
  const port = (server.address() as net.AddressInfo).port;

  return {
    addr: `${host.includes(":") ? `[${host}]` : host}:${port}`,
    handleSocket(sock: Duplex) {
      sockets.add(sock);
      sock.once("close", () => sockets.delete(sock));
      server.injectSocket(withSocketShims(sock) as net.Socket);
    },
    get connections() {
      return stats.connections;
    },
    get openConnections() {
      return conns.size;
    },
    get authenticated() {
      return stats.authenticated;
    },
    authFailures,
    authAlgorithms,
    dials,
    dropConnections() {
      for (const c of conns) (c as unknown as { _sock?: Duplex })._sock?.destroy();
      for (const s of sockets) s.destroy();
    },
    async close() {
      for (const c of conns) (c as unknown as { _sock?: Duplex })._sock?.destroy();
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
