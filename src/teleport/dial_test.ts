import assert from "node:assert/strict";
import net from "node:net";
import type { Duplex } from "node:stream";
import { TeleportError } from "../errors.ts";
import { TestCertificateAuthority } from "../../tests/helpers/ca.ts";
import { startTunnelServer, type TunnelServer } from "../../tests/helpers/tunnel_server.ts";
import {
  ProxyEmulator,
  startConnectProxy,
  startTestAuthTls,
  type TestAuthTlsServer,
} from "../../tests/helpers/proxy.ts";
import type { CredentialsSource } from "./credentials.ts";
import { staticCredentials } from "../../tests/helpers/credentials.ts";
import { type Identity, readIdentityFile } from "./identity.ts";
import {
  authAlpn,
  type AuthDialer,
  resolveAuthDialer,
  type TunnelDialerFactory,
  type TunnelDialerOptions,
} from "./dial.ts";
import { parseHostPort } from "./dial_net.ts";
import { noProxyMatches, proxyForTarget } from "./http_proxy.ts";
import { webRootCas } from "./webapi.ts";

const ca = await TestCertificateAuthority.create({ clusterName: "dial.example" });
const tmp = await Deno.makeTempDir({ prefix: "dial_test" });
// Removed when the test module unloads, whatever order the tests ran in.
globalThis.addEventListener("unload", () => Deno.removeSync(tmp, { recursive: true }));
const webCaFile = `${tmp}/web-ca.pem`;
await Deno.writeTextFile(webCaFile, ca.webCaPem);

async function identityFor(
  user: string,
  opts: Partial<Parameters<TestCertificateAuthority["issueUser"]>[0]> = {},
  from: TestCertificateAuthority = ca,
): Promise<Identity> {
  const path = `${tmp}/${crypto.randomUUID()}`;
  await from.writeIdentityFile(path, { user, roles: ["plugin"], ...opts });
  return await readIdentityFile(path);
}

/** Mutable credentials: tests swap the identity between dials. */
function mutableCreds(id: Identity): CredentialsSource & { set(id: Identity): void } {
  let current = id;
  return { ...staticCredentials(id), current: () => current, set: (n) => (current = n) };
}

function readLine(s: Duplex): Promise<string> {
  return new Promise((resolve, reject) => {
    let buf = "";
    const timer = setTimeout(() => reject(new Error("timed out reading a line")), 5000);
    const onData = (c: Uint8Array) => {
      buf += new TextDecoder().decode(c);
      const i = buf.indexOf("\n");
      if (i >= 0) {
        clearTimeout(timer);
        s.off("data", onData);
        s.pause();
        resolve(buf.slice(0, i));
      }
    };
    s.on("data", onData);
    s.once("error", (e) => {
      clearTimeout(timer);
      reject(e);
    });
  });
}

/** Dials, checks the greeting and an echo round trip, closes. */
async function talk(s: Duplex, user: string): Promise<void> {
  try {
    assert.equal(await readLine(s), `HELLO ${user}`);
    s.write("echo me\n");
    s.resume();
    assert.equal(await readLine(s), "echo me");
  } finally {
    s.destroy();
  }
}

async function withAuth(fn: (auth: TestAuthTlsServer) => Promise<void>): Promise<void> {
  const auth = await startTestAuthTls(ca);
  try {
    await fn(auth);
  } finally {
    await auth.close();
  }
}

/** Runs `fn` with the test Auth server, a real SSH reverse tunnel in front of it, and credentials. */
async function withTunnel(
  fn: (
    env: { auth: TestAuthTlsServer; tunnel: TunnelServer; creds: CredentialsSource },
  ) => Promise<void>,
): Promise<void> {
  await withAuth(async (auth) => {
    const tunnel = await startTunnelServer({ ca, authAddr: auth.addr });
    try {
      const creds = staticCredentials(await identityFor("email", { keyType: "ed25519" }));
      await fn({ auth, tunnel, creds });
    } finally {
      await tunnel.close();
    }
  });
}

async function withProxy(
  opts: Omit<Parameters<typeof ProxyEmulator.start>[0], "ca">,
  fn: (p: ProxyEmulator) => Promise<void>,
): Promise<void> {
  const p = await ProxyEmulator.start({ ca, ...opts });
  try {
    await fn(p);
  } finally {
    await p.close();
  }
}

async function rejectsTeleport(
  p: Promise<unknown>,
  kind: string,
  fragments: (string | RegExp)[],
): Promise<TeleportError> {
  let caught: TeleportError | undefined;
  await assert.rejects(p, (err: unknown) => {
    assert.ok(err instanceof TeleportError, `expected TeleportError, got ${err}`);
    assert.equal(err.kind, kind, err.message);
    for (const f of fragments) {
      if (typeof f === "string") assert.ok(err.message.includes(f), err.message);
      else assert.match(err.message, f);
    }
    caught = err;
    return true;
  });
  return caught!;
}

const WEB_ENV = { SSL_CERT_FILE: webCaFile };

Deno.test("resolveAuthDialer() connects directly to an Auth address", async () => {
  await withAuth(async (auth) => {
    const creds = mutableCreds(await identityFor("email"));
    const dialer = await resolveAuthDialer(auth.addr, creds, { env: WEB_ENV });
    assert.equal(dialer.mode, "direct");
    assert.equal(dialer.addr, auth.addr);
    const s = await dialer.dial();
    assert.equal((s as unknown as { alpnProtocol: string }).alpnProtocol, "h2");
    await talk(s, "email");
    assert.deepEqual(auth.alpnSeen.at(-1), ["h2"]);

    // NEW connections use the CURRENT identity (refresh_identity).
    creds.set(await identityFor("email-renewed"));
    await talk(await dialer.dial(), "email-renewed");
    assert.deepEqual(auth.accepted.slice(-2), ["email", "email-renewed"]);
  });
});

Deno.test("resolveAuthDialer() uses Proxy TLS routing with the teleport-auth@ ALPN", async () => {
  await withAuth(async (auth) => {
    await withProxy({ authAddr: auth.addr }, async (proxy) => {
      const creds = staticCredentials(await identityFor("email"));
      const dialer = await resolveAuthDialer(proxy.addr, creds, { env: WEB_ENV });
      assert.equal(dialer.mode, "tls-routing");
      await talk(await dialer.dial(), "email");
      assert.ok(proxy.stats.find >= 1);
      assert.ok(proxy.stats.authPassthrough >= 2);
      assert.deepEqual(auth.alpnSeen.at(-1), [authAlpn("dial.example"), "h2"]);
      assert.equal(
        authAlpn("dial.example"),
        "teleport-auth@6469616c2e6578616d706c65.teleport.cluster.local",
      );
    });
  });
});

Deno.test("resolveAuthDialer() upgrades to WebSocket behind an ALPN-stripping load balancer", async () => {
  await withAuth(async (auth) => {
    await withProxy({ authAddr: auth.addr, stripAlpn: true, pingIntervalMs: 20 }, async (proxy) => {
      const creds = staticCredentials(await identityFor("email"));
      const dialer = await resolveAuthDialer(proxy.addr, creds, { env: WEB_ENV });
      assert.equal(dialer.mode, "tls-routing-upgrade");
      const s = await dialer.dial();
      try {
        assert.equal(await readLine(s), "HELLO email");
        // The client answers the Proxy's WebSocket Pings.
        const end = Date.now() + 5000;
        while (proxy.pongsReceived < 2 && Date.now() < end) {
          await new Promise((r) => setTimeout(r, 10));
        }
        assert.ok(proxy.pongsReceived >= 2, `pongs: ${proxy.pongsReceived}`);
        s.write("echo me\n");
        s.resume();
        assert.equal(await readLine(s), "echo me");
      } finally {
        s.destroy();
      }
      assert.ok(proxy.stats.upgrades >= 2);
      assert.deepEqual(auth.alpnSeen.at(-1), [authAlpn("dial.example"), "h2"]);
    });
  });
});

Deno.test("resolveAuthDialer() honours TELEPORT_TLS_ROUTING_CONN_UPGRADE", async () => {
  await withAuth(async (auth) => {
    await withProxy({ authAddr: auth.addr }, async (proxy) => {
      const creds = staticCredentials(await identityFor("email"));
      const forced = await resolveAuthDialer(proxy.addr, creds, {
        env: { ...WEB_ENV, TELEPORT_TLS_ROUTING_CONN_UPGRADE: "true" },
      });
      assert.equal(forced.mode, "tls-routing-upgrade");
      await talk(await forced.dial(), "email");
      const off = await resolveAuthDialer(proxy.addr, creds, {
        env: { ...WEB_ENV, TELEPORT_TLS_ROUTING_CONN_UPGRADE: `other:1=yes,${proxy.addr}=no` },
      });
      assert.equal(off.mode, "tls-routing");
    });
  });
});

Deno.test("resolveAuthDialer() makes no ALPN test dial when TELEPORT_TLS_ROUTING_CONN_UPGRADE names only other addresses", async () => {
  await withAuth(async (auth) => {
    await withProxy({ authAddr: auth.addr }, async (proxy) => {
      const creds = staticCredentials(await identityFor("email"));
      const d = await resolveAuthDialer(proxy.addr, creds, {
        env: { ...WEB_ENV, TELEPORT_TLS_ROUTING_CONN_UPGRADE: "other.example.com:443=yes" },
        modes: ["tls-routing", "tls-routing-upgrade"],
      });
      assert.equal(d.mode, "tls-routing");
      // Go: the variable is set, so it decides ("no") and no test dial is made.
      const testDials = proxy.stats.alpnSeen.filter((a) => a.join() === "teleport-reversetunnel");
      assert.deepEqual(testDials, []);
    });
  });
});

Deno.test("resolveAuthDialer() dials through an HTTPS_PROXY CONNECT proxy", async () => {
  await withAuth(async (auth) => {
    await withProxy({ authAddr: auth.addr }, async (proxy) => {
      const connect = await startConnectProxy({ auth: "u:p w" });
      try {
        const creds = staticCredentials(await identityFor("email"));
        const env = { ...WEB_ENV, HTTPS_PROXY: connect.url.replace("//", "//u:p%20w@") };
        const viaProxy = await resolveAuthDialer(`proxy.test:${proxy.port}`, creds, { env });
        assert.equal(viaProxy.mode, "tls-routing");
        await talk(await viaProxy.dial(), "email");
        assert.ok(connect.requests.includes(`proxy.test:${proxy.port}`), connect.requests.join());

        const direct = await resolveAuthDialer(`auth.test:${auth.port}`, creds, {
          env,
          modes: ["direct"],
        });
        await talk(await direct.dial(), "email");
        assert.ok(connect.requests.includes(`auth.test:${auth.port}`));

        // A wrong proxy password is reported.
        await rejectsTeleport(
          resolveAuthDialer(`auth.test:${auth.port}`, creds, {
            env: { HTTPS_PROXY: connect.url.replace("//", "//u:bad@") },
            modes: ["direct"],
          }),
          "connection_problem",
          ["407"],
        );
      } finally {
        await connect.close();
      }
    });
  });
});

Deno.test("proxyForTarget() follows HTTPS_PROXY and Go's NO_PROXY rules", () => {
  const env = {
    HTTPS_PROXY: "proxy:3128",
    NO_PROXY: "internal.example,.corp,10.0.0.0/8,x.test:444",
  };
  assert.equal(
    proxyForTarget({ host: "teleport.example.com", port: 443 }, env)?.host,
    "proxy:3128",
  );
  assert.equal(proxyForTarget({ host: "127.0.0.1", port: 443 }, env), undefined);
  assert.equal(proxyForTarget({ host: "localhost", port: 443 }, env), undefined);
  assert.equal(proxyForTarget({ host: "a.internal.example", port: 1 }, env), undefined);
  assert.equal(proxyForTarget({ host: "internal.example", port: 1 }, env), undefined);
  assert.equal(proxyForTarget({ host: "corp", port: 1 }, env)?.host, "proxy:3128");
  assert.equal(proxyForTarget({ host: "a.corp", port: 1 }, env), undefined);
  assert.equal(proxyForTarget({ host: "10.1.2.3", port: 1 }, env), undefined);
  assert.equal(proxyForTarget({ host: "x.test", port: 443 }, env)?.host, "proxy:3128");
  assert.equal(proxyForTarget({ host: "x.test", port: 444 }, env), undefined);
  assert.equal(proxyForTarget({ host: "x.test", port: 444 }, {}), undefined);
  assert.ok(noProxyMatches("*", { host: "anything", port: 1 }));
  assert.deepEqual(parseHostPort("[::1]:3025", 1), { host: "::1", port: 3025 });
  assert.deepEqual(parseHostPort("proxy.example.com", 443), {
    host: "proxy.example.com",
    port: 443,
  });
  assert.deepEqual(parseHostPort("https://p.example.com:3080/", 443), {
    host: "p.example.com",
    port: 3080,
  });
  assert.throws(() => parseHostPort("a:99999", 1), /invalid port/);
});

Deno.test("resolveAuthDialer() reports an Auth server of another cluster (wrong CA)", async () => {
  await withAuth(async (auth) => {
    const other = await TestCertificateAuthority.create({ clusterName: "other.example" });
    const creds = staticCredentials(await identityFor("email", {}, other));
    const err = await rejectsTeleport(
      resolveAuthDialer(auth.addr, creds, { env: WEB_ENV, timeoutMs: 5000 }),
      "connection_problem",
      [`"${auth.addr}"`, "direct:", "not trusted", "tls-routing:"],
    );
    assert.ok(err.hint);
  });
});

Deno.test("resolveAuthDialer() reports a client certificate the server refuses as access_denied", async () => {
  await withAuth(async (auth) => {
    for (
      const opts of [{ notAfter: new Date(Date.now() - 60_000) }, { signedBy: "foreign" as const }]
    ) {
      const creds = staticCredentials(await identityFor("email", opts));
      await rejectsTeleport(
        resolveAuthDialer(auth.addr, creds, { env: WEB_ENV, timeoutMs: 5000 }),
        "access_denied",
        [`"${auth.addr}"`, "direct:", "rejected the client certificate"],
      );
    }
    assert.equal(auth.accepted.length, 0);
    assert.equal(auth.refused.length, 2);
  });
});

Deno.test("resolveAuthDialer() fails fast on an unreachable address, naming the modes", async () => {
  const l = net.createServer();
  await new Promise<void>((r) => l.listen(0, "127.0.0.1", r));
  const port = (l.address() as net.AddressInfo).port;
  await new Promise<void>((r) => l.close(() => r()));
  const creds = staticCredentials(await identityFor("email"));
  await rejectsTeleport(
    resolveAuthDialer(`127.0.0.1:${port}`, creds, { env: WEB_ENV, timeoutMs: 5000 }),
    "connection_problem",
    [`"127.0.0.1:${port}"`, "direct:", "tls-routing:", /ECONNREFUSED|refused/i],
  );
});

Deno.test("resolveAuthDialer() gives up within its budget on a silent server", async () => {
  const sockets: net.Socket[] = [];
  const silent = net.createServer((s) => sockets.push(s));
  await new Promise<void>((r) => silent.listen(0, "127.0.0.1", r));
  const addr = `127.0.0.1:${(silent.address() as net.AddressInfo).port}`;
  try {
    const creds = staticCredentials(await identityFor("email"));
    const err = await rejectsTeleport(
      resolveAuthDialer(addr, creds, { env: WEB_ENV, timeoutMs: 300 }),
      "connection_problem",
      [
        `"${addr}"`,
        "timed out after 300 ms",
        "no connection mode succeeded in time",
        "direct:",
        "tls-routing:",
      ],
    );
    assert.match(err.hint ?? "", /check teleport\.addr/);
    const ac = new AbortController();
    const p = resolveAuthDialer(addr, creds, { env: WEB_ENV, signal: ac.signal });
    ac.abort();
    await rejectsTeleport(p, "canceled", ["canceled"]);
  } finally {
    for (const s of sockets) s.destroy();
    await new Promise<void>((r) => silent.close(() => r()));
  }
});

Deno.test("AuthDialer.dial() reports a vanished Auth server as connection_problem", async () => {
  const auth = await startTestAuthTls(ca);
  const creds = staticCredentials(await identityFor("email"));
  const dialer = await resolveAuthDialer(auth.addr, creds, { env: WEB_ENV });
  await auth.close();
  await rejectsTeleport(dialer.dial(), "connection_problem", [`"${auth.addr}" (direct mode)`]);
});

Deno.test("resolveAuthDialer() does not trust the Proxy's web certificate without its CA", async () => {
  await withAuth(async (auth) => {
    await withProxy({ authAddr: auth.addr }, async (proxy) => {
      const creds = staticCredentials(await identityFor("email"));
      await rejectsTeleport(
        resolveAuthDialer(proxy.addr, creds, { env: {}, timeoutMs: 5000 }),
        "connection_problem",
        ["tls-routing: GET /webapi/find failed"],
      );
    });
  });
});

/**
 * A tunnel dialer factory standing in for `openTunnelDialer`: records its calls and, for the
 * address `reachable`, returns a real direct dialer to `auth` reporting mode "tunnel".
 */
function recordingTunnel(
  auth: TestAuthTlsServer,
  reachable: (addr: string, opts: TunnelDialerOptions) => boolean,
) {
  const calls: { addr: string; opts: TunnelDialerOptions }[] = [];
  let closed = 0;
  const factory: TunnelDialerFactory = async (addr, creds, opts) => {
    calls.push({ addr, opts });
    if (!reachable(addr, opts)) throw new Error(`no tunnel at ${addr}`);
    const inner = await resolveAuthDialer(auth.addr, creds, { env: {}, modes: ["direct"] });
    const d: AuthDialer = {
      mode: "tunnel",
      addr,
      dial: (o) => inner.dial(o),
      close: () => closed++,
    };
    return d;
  };
  return { factory, calls, closed: () => closed };
}

Deno.test("resolveAuthDialer() uses the reverse tunnel a Proxy without TLS routing advertises", async () => {
  await withAuth(async (auth) => {
    await withProxy({
      authAddr: auth.addr,
      tlsRoutingEnabled: false,
      ssh: { ssh_tunnel_public_addr: "tunnel.test:3024" },
    }, async (proxy) => {
      const tunnel = recordingTunnel(auth, (a) => a === "tunnel.test:3024");
      const creds = staticCredentials(await identityFor("email"));
      const d = await resolveAuthDialer(proxy.addr, creds, {
        env: WEB_ENV,
        tunnelDialer: tunnel.factory,
      });
      assert.equal(d.mode, "tunnel");
      assert.equal(d.addr, "tunnel.test:3024");
      await talk(await d.dial(), "email");
      // tunnelConnect (addr itself) and proxyConnect (the advertised address) were both tried.
      assert.deepEqual(tunnel.calls.map((c) => c.addr).sort(), [proxy.addr, "tunnel.test:3024"]);
      assert.equal(tunnel.calls[0].opts.env, WEB_ENV);

      // Without the tunnel mode the error says why.
      await rejectsTeleport(
        resolveAuthDialer(proxy.addr, creds, {
          env: WEB_ENV,
          timeoutMs: 5000,
          modes: ["direct", "tls-routing", "tls-routing-upgrade"],
        }),
        "connection_problem",
        ["does not have TLS routing enabled"],
      );
    });
  });
});

/**
 * Resolves `proxy` without the direct mode, through a recording tunnel that only `tunnelAddr`
 * reached over TLS routing (viaTlsAlpn) answers; the dialer must be the tunnel. Returns the
 * tunnel's calls made over TLS routing.
 */
async function resolveViaAlpnTunnel(
  auth: TestAuthTlsServer,
  proxy: { addr: string },
  tunnelAddr: string,
) {
  const tunnel = recordingTunnel(auth, (a, o) => a === tunnelAddr && o.viaTlsAlpn === true);
  const creds = staticCredentials(await identityFor("email"));
  const d = await resolveAuthDialer(proxy.addr, creds, {
    env: WEB_ENV,
    tunnelDialer: tunnel.factory,
    modes: ["tls-routing", "tls-routing-upgrade", "tunnel"],
  });
  assert.equal(d.mode, "tunnel");
  return tunnel.calls.filter((c) => c.opts.viaTlsAlpn);
}

Deno.test("resolveAuthDialer() falls back to teleport-reversetunnel when the teleport-auth@ route fails", async () => {
  await withAuth(async (auth) => {
    // The Proxy knows no Auth server: the teleport-auth@ route is closed.
    await withProxy({}, async (proxy) => {
      const via = (await resolveViaAlpnTunnel(auth, proxy, proxy.addr))[0];
      assert.ok(via, "called with viaTlsAlpn");
      assert.ok(via.opts.proxyCaPems?.includes(ca.webCaPem));
    });
  });
});

Deno.test("resolveAuthDialer() falls back to teleport-reversetunnel at the tunnel address /webapi/find advertises", async () => {
  await withAuth(async (auth) => {
    // TLS routing on, teleport-auth@ closed, and a public address other than teleport.addr.
    await withProxy({ ssh: { public_addr: "tunnel.test:8443" } }, async (proxy) => {
      const viaAlpn = await resolveViaAlpnTunnel(auth, proxy, "tunnel.test:8443");
      assert.deepEqual(viaAlpn.map((c) => c.addr), ["tunnel.test:8443"]);
    });
  });
});

Deno.test("resolveAuthDialer() keeps Go's failure for a TELEPORT_TUNNEL_PUBLIC_ADDR without a port", async () => {
  await withAuth(async (auth) => {
    await withProxy({ tlsRoutingEnabled: false }, async (proxy) => {
      const tunnel = recordingTunnel(auth, () => false);
      const creds = staticCredentials(await identityFor("email"));
      await rejectsTeleport(
        resolveAuthDialer(proxy.addr, creds, {
          env: { ...WEB_ENV, TELEPORT_TUNNEL_PUBLIC_ADDR: "tunnel.test" },
          tunnelDialer: tunnel.factory,
          modes: ["tls-routing", "tunnel"],
        }),
        "connection_problem",
        ["reverse tunnel tunnel.test: address tunnel.test: missing port in address"],
      );
      assert.deepEqual(tunnel.calls.map((c) => c.addr), [proxy.addr]);
    });
  });
});

Deno.test("resolveAuthDialer() closes a tunnel dialer that connected after another mode won", async () => {
  await withAuth(async (auth) => {
    const tunnel = recordingTunnel(auth, () => true);
    const slow: TunnelDialerFactory = async (a, c, o) => {
      await new Promise((r) => setTimeout(r, 300));
      return await tunnel.factory(a, c, o);
    };
    const creds = staticCredentials(await identityFor("email"));
    const d = await resolveAuthDialer(auth.addr, creds, { env: WEB_ENV, tunnelDialer: slow });
    assert.equal(d.mode, "direct");
    const end = Date.now() + 5000;
    while (tunnel.closed() === 0 && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
    assert.equal(tunnel.closed(), 1);
  });
});

Deno.test("resolveAuthDialer() reaches Auth through the real SSH reverse tunnel in each tunnel route", async () => {
  await withTunnel(async ({ auth, tunnel, creds }) => {
    // tunnelConnect: addr is the tunnel listener.
    const direct = await resolveAuthDialer(tunnel.addr, creds, { env: WEB_ENV });
    assert.equal(direct.mode, "tunnel");
    await talk(await direct.dial(), "email");
    direct.close?.();

    // proxyConnect: a Proxy without TLS routing advertises the tunnel address.
    await withProxy({
      authAddr: auth.addr,
      tlsRoutingEnabled: false,
      ssh: { ssh_tunnel_public_addr: tunnel.addr },
    }, async (proxy) => {
      const d = await resolveAuthDialer(proxy.addr, creds, { env: WEB_ENV });
      assert.equal(d.mode, "tunnel");
      await talk(await d.dial(), "email");
      d.close?.();
    });

    // tlsRoutingConnect: teleport-auth@ refused, teleport-reversetunnel to the same port.
    await withProxy({ onReverseTunnel: (s) => tunnel.handleSocket(s) }, async (proxy) => {
      const d = await resolveAuthDialer(proxy.addr, creds, { env: WEB_ENV });
      assert.equal(d.mode, "tunnel");
      await talk(await d.dial(), "email");
      d.close?.();
      assert.ok(proxy.stats.reverseTunnel >= 1);
    });
    assert.ok(tunnel.dials.length >= 3);
  });
});

Deno.test("resolveAuthDialer() follows /webapi/find once to the tunnel of a Proxy without TLS routing, and names every mode when all fail", async () => {
  await withTunnel(async ({ tunnel, creds }) => {
    await withProxy({
      tlsRoutingEnabled: false,
      ssh: { ssh_tunnel_public_addr: tunnel.addr },
    }, async (proxy) => {
      const d = await resolveAuthDialer(proxy.addr, creds, { env: WEB_ENV });
      try {
        assert.equal(d.mode, "tunnel");
        assert.equal(proxy.stats.find, 1);
        assert.equal(proxy.stats.reverseTunnel, 0);
        assert.equal(tunnel.connections, 1);
      } finally {
        d.close?.();
      }
      // Without trust in the Proxy's web certificate every mode fails: one error naming each.
      await rejectsTeleport(
        resolveAuthDialer(proxy.addr, creds, { env: {} }),
        "connection_problem",
        [
          /\(tried direct, tls-routing, tunnel\): direct: .*; tls-routing: GET \/webapi\/find failed: .*; tunnel: /,
        ],
      );
    });
  });
});

Deno.test("resolveAuthDialer() reaches the tunnel behind a TLS-routing Proxy trusted through DENO_CERT over one SSH connection", async () => {
  await withTunnel(async ({ tunnel, creds }) => {
    await withProxy({ onReverseTunnel: (s) => tunnel.handleSocket(s) }, async (proxy) => {
      const d = await resolveAuthDialer(proxy.addr, creds, { env: { DENO_CERT: webCaFile } });
      try {
        assert.equal(d.mode, "tunnel");
        await talk(await d.dial(), "email");
        assert.equal(tunnel.dials.length, 2); // the proof, then this dial
        // The ALPN test dial of the upgrade check, then the tunnel itself.
        assert.equal(proxy.stats.reverseTunnel, 2);
        assert.equal(tunnel.authenticated, 1);
      } finally {
        d.close?.();
      }
    });
  });
});

Deno.test("webRootCas() uses SSL_CERT_FILE instead of the system roots, plus DENO_CERT and the identity CAs", () => {
  const only = webRootCas({ SSL_CERT_FILE: webCaFile }, [ca.hostCaPem]);
  assert.deepEqual(only, [ca.webCaPem, ca.hostCaPem]);
  const system = webRootCas({ DENO_CERT: webCaFile });
  assert.equal(system[0], ca.webCaPem);
  assert.ok(system.length > 10, "system or built-in roots included");
  assert.throws(
    () => webRootCas({ SSL_CERT_FILE: `${tmp}/missing.pem` }),
    /cannot read SSL_CERT_FILE/,
  );
});
