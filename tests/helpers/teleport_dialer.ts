/**
 * A minimal direct-mode dialer for tests of the gRPC client against the test Auth server:
 * TCP + mTLS to `addr` with SNI `teleport.cluster.local`, ALPN `h2`, verified against the host
 * CA. Test-only; the product uses `src/teleport/dial.ts`.
 */
import tls from "node:tls";
import type { Duplex } from "node:stream";
import type { AuthDialerLike } from "../../src/teleport/grpc_client.ts";
import type { TestCertificateAuthority } from "./ca.ts";

/** Options of {@link testDialer}. */
export interface TestDialerOptions {
  /** Client key and certificate PEMs; omit both to connect without a client certificate. */
  keyPem?: string;
  certPem?: string;
  /** CA used to verify the server; default the test CA's host CA. */
  caPem?: string;
}

/** An `AuthDialer`-compatible direct dialer that counts its dials. */
export interface TestDialer extends AuthDialerLike {
  readonly addr: string;
  dials: number;
  /** Replace the client certificate for NEW connections (identity refresh). */
  setIdentity(keyPem: string, certPem: string): void;
}

/** A direct-mode mTLS dialer to `addr` (`host:port`). */
export function testDialer(
  addr: string,
  ca: TestCertificateAuthority,
  opts: TestDialerOptions = {},
): TestDialer {
  const i = addr.lastIndexOf(":");
  const host = addr.slice(0, i), port = Number(addr.slice(i + 1));
  let key = opts.keyPem, cert = opts.certPem;
  const dialer: TestDialer = {
    mode: "direct",
    addr,
    dials: 0,
    setIdentity(k, c) {
      key = k;
      cert = c;
    },
    dial({ signal } = {}) {
      dialer.dials++;
      return new Promise<Duplex>((resolve, reject) => {
        signal?.throwIfAborted();
        const s = tls.connect({
          host,
          port,
          servername: "teleport.cluster.local",
          ca: opts.caPem ?? ca.hostCaPem,
          key,
          cert,
          ALPNProtocols: ["h2"],
        }, () => {
          s.off("error", reject);
          resolve(s);
        });
        s.once("error", reject);
      });
    },
  };
  return dialer;
}
