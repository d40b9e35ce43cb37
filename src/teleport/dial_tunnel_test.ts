import assert from "node:assert/strict";
import tls from "node:tls";
import net from "node:net";
import { Buffer } from "node:buffer";
import type { Duplex } from "node:stream";
import { TeleportError } from "../errors.ts";
import { bounded } from "../../tests/helpers/bounded.ts";
import { type IssueUserOptions, TestCertificateAuthority } from "../../tests/helpers/ca.ts";
import {
  startTunnelServer,
  type TunnelServer,
  type TunnelServerOptions,
} from "../../tests/helpers/tunnel_server.ts";
import { TeleportTestServer } from "../../tests/helpers/teleport_server.ts";
import { ProxyEmulator } from "../../tests/helpers/proxy.ts";
import type { CredentialsSource } from "./credentials.ts";
import { staticCredentials } from "../../tests/helpers/credentials.ts";
import { type Identity, parseIdentityFile } from "./identity.ts";
import {
  openTunnelDialer,
  type OpenTunnelDialerOptions,
  type TunnelAuthDialer,
} from "./dial_tunnel.ts";
import { GrpcTeleportClient } from "./grpc_client.ts";
import { type AuthDialer, resolveAuthDialer } from "./dial.ts";

/** A TLS server playing Auth: host-CA certificate, ALPN h2, says "AUTH <cn>\n" then echoes. */
async function startEchoAuth(
  ca: TestCertificateAuthority,
  clientCa: TestCertificateAuthority = ca,
) {
  const { keyPem, certPem } = await ca.issueServerCert();
  const sockets = new Set<net.Socket>();
  const server = tls.createServer({
    key: keyPem,
    cert: certPem,
    ALPNProtocols: ["h2"],
    requestCert: true,
    // Checked below: a Deno node:tls server with rejectUnauthorized: true resets the clients.
    rejectUnauthorized: false,
  }, (s) => {
    sockets.add(s);
    s.on("close", () => sockets.delete(s));
    s.on("error", () => {});
    const peer = s.getPeerCertificate();
    const check = peer?.raw ? clientCa.verifyClientCert(peer.raw) : { error: "no certificate" };
    if ("error" in check) {
      s.destroy();
      return;
    }
    s.write(`AUTH ${check.user}\n`);
    s.pipe(s);
  });
  server.on("error", () => {});
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return {
    addr: `127.0.0.1:${(server.address() as net.AddressInfo).port}`,
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

async function identityFor(
  ca: TestCertificateAuthority,
  opts: IssueUserOptions,
): Promise<Identity> {
  const user = await ca.issueUser(opts);
  return parseIdentityFile(ca.identityFileText(user), { path: "/test/identity" });
}

/** Reads until `n` bytes arrived (bounded by a timeout). */
function readBytes(s: Duplex, n: number): Promise<string> {
  return new Promise((resolve, reject) => {
    let buf = Buffer.alloc(0);
    const timer = setTimeout(
      () => reject(new Error(`timed out reading ${n} bytes, got "${buf}"`)),
      10_000,
    );
    const onData = (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      if (buf.length >= n) {
        clearTimeout(timer);
        s.off("data", onData);
        resolve(buf.toString());
      }
    };
    s.on("data", onData);
  });
}

interface Env extends AsyncDisposable {
  ca: TestCertificateAuthority;
  auth: { addr: string };
  tunnel: TunnelServer;
}

async function setup(tunnelOpts: Partial<TunnelServerOptions> = {}): Promise<Env> {
  const ca = await TestCertificateAuthority.create();
  const auth = await startEchoAuth(ca);
  const tunnel = await startTunnelServer({ ca, authAddr: auth.addr, ...tunnelOpts });
  return {
    ca,
    auth,
    tunnel,
    async [Symbol.asyncDispose]() {
      await tunnel.close();
      await auth.close();
    },
  };
}

const FAST: OpenTunnelDialerOptions = { timeoutMs: 10_000, dialTimeoutMs: 10_000, env: {} };

for (const keyType of ["ed25519", "ec", "rsa"] as const) {
  Deno.test(`openTunnelDialer() reaches Auth through the reverse tunnel with a ${keyType} identity and reuses one SSH connection`, async () => {
    await using env = await setup();
    const identity = await identityFor(env.ca, {
      user: "access-plugin",
      roles: ["access-plugin"],
      keyType,
    });
    const dialer = await openTunnelDialer(env.tunnel.addr, staticCredentials(identity), FAST);
    try {
      assert.equal(dialer.mode, "tunnel");
      assert.equal(dialer.addr, env.tunnel.addr);
      for (let i = 0; i < 3; i++) {
        const s = await dialer.dial();
        assert.equal((s as tls.TLSSocket).alpnProtocol, "h2");
        assert.equal(await readBytes(s, "AUTH access-plugin\n".length), "AUTH access-plugin\n");
        s.write("ping" + i);
        assert.equal(await readBytes(s, 5), "ping" + i);
        // grpc-js under Deno calls these on the socket.
        for (const m of ["unref", "ref", "setNoDelay", "setTimeout"]) {
          assert.equal(typeof (s as unknown as Record<string, unknown>)[m], "function");
        }
        s.destroy();
      }
      assert.equal(env.tunnel.connections, 1);
      assert.equal(dialer.sshConnections, 1);
      assert.deepEqual(env.tunnel.authAlgorithms, [
        keyType === "ed25519"
          ? "ssh-ed25519-cert-v01@openssh.com"
          : keyType === "ec"
          ? "ecdsa-sha2-nistp256-cert-v01@openssh.com"
          : "rsa-sha2-256-cert-v01@openssh.com", // SHA-2 from the server's server-sig-algs
      ]);
      // The opening proof plus three dials, all to the Auth Service.
      assert.deepEqual(env.tunnel.dials, Array(4).fill("@remote-auth-server"));
    } finally {
      dialer.close();
    }
  });
}

Deno.test("openTunnelDialer() serves gRPC calls of the test Auth server through the tunnel", async () => {
  const ca = await TestCertificateAuthority.create();
  const server = await TeleportTestServer.start({ ca });
  const tunnel = await startTunnelServer({ ca, authAddr: server.addr });
  const identity = await identityFor(ca, { user: "access-plugin", roles: ["access-plugin"] });
  const dialer = await openTunnelDialer(tunnel.addr, staticCredentials(identity), FAST);
  const client = await GrpcTeleportClient.create(dialer, { callTimeoutMs: 10_000 });
  try {
    const pong = await client.ping();
    assert.equal(pong.clusterName, ca.clusterName);
    assert.equal(server.connections.at(-1)?.user, "access-plugin");
  } finally {
    client.close();
    dialer.close();
    await tunnel.close();
    await server.close();
  }
});

async function assertOpenFails(
  env: Env,
  identity: Identity,
  kind: string,
  fragment: RegExp,
  opts: OpenTunnelDialerOptions = {},
) {
  await assert.rejects(
    openTunnelDialer(env.tunnel.addr, staticCredentials(identity), { ...FAST, ...opts }),
    (e) => {
      assert.ok(e instanceof TeleportError, String(e));
      assert.equal(e.kind, kind, e.message);
      assert.match(
        e.message,
        /^Cannot connect to the Teleport Auth Service at "127\.0\.0\.1:\d+" \(tunnel mode\): /,
      );
      assert.match(e.message, fragment);
      return true;
    },
  );
}

Deno.test("openTunnelDialer() reports a user certificate from another user CA as access denied", async () => {
  await using env = await setup();
  const identity = await identityFor(env.ca, { user: "bot", roles: ["r"], signedBy: "foreign" });
  await assertOpenFails(env, identity, "access_denied", /SSH authentication as "bot" was refused/);
  assert.match(env.tunnel.authFailures.join("\n"), /signed by an unknown authority/);
});

Deno.test("openTunnelDialer() reports an expired SSH user certificate as access denied", async () => {
  await using env = await setup();
  const identity = await identityFor(env.ca, {
    user: "bot",
    roles: ["r"],
    notAfter: new Date(Date.now() - 60_000),
  });
  await assertOpenFails(env, identity, "access_denied", /SSH authentication as "bot" was refused/);
  assert.equal(env.tunnel.authFailures[0], "certificate has expired");
});

Deno.test("openTunnelDialer() reports a user certificate without roles as access denied", async () => {
  await using env = await setup();
  const identity = await identityFor(env.ca, { user: "bot", roles: [] });
  await assertOpenFails(env, identity, "access_denied", /was refused/);
  assert.match(env.tunnel.authFailures[0], /missing roles/);
});

Deno.test("openTunnelDialer() refuses a host certificate signed by an unknown CA", async () => {
  const ca = await TestCertificateAuthority.create();
  await using env = await setup({
    hostCert: ca.issueSshHostCert({ principals: ["127.0.0.1"], signedBy: "foreign" }),
  });
  const identity = await identityFor(env.ca, { user: "bot", roles: ["r"] });
  await assertOpenFails(
    env,
    identity,
    "connection_problem",
    /the Proxy's SSH host certificate is not trusted: certificate is signed by an unknown authority \(SHA256:/,
  );
  assert.equal(env.tunnel.authenticated, 0);
});

Deno.test("openTunnelDialer() refuses a host certificate that does not name the dialled host", async () => {
  await using env = await setup({ hostPrincipals: ["proxy.example.com"] });
  const identity = await identityFor(env.ca, { user: "bot", roles: ["r"] });
  await assertOpenFails(
    env,
    identity,
    "connection_problem",
    /"127\.0\.0\.1" is not a principal of the certificate/,
  );
});

Deno.test("openTunnelDialer() refuses an expired host certificate", async () => {
  const ca = await TestCertificateAuthority.create();
  await using env = await setup({
    hostCert: ca.issueSshHostCert({
      principals: ["127.0.0.1"],
      notAfter: new Date(Date.now() - 1000),
    }),
  });
  // The identity trusts `ca`'s host CA: the tunnel's certificate is by the right CA but expired.
  const identity = await identityFor(ca, { user: "bot", roles: ["r"] });
  await assertOpenFails(
    env,
    identity,
    "connection_problem",
    /host certificate is not trusted: certificate has expired/,
  );
});

Deno.test("openTunnelDialer() shows the Proxy's stderr text when the dial is refused", async () => {
  // Auth is unreachable: the Proxy refuses the dial and says why on stderr.
  const ca = await TestCertificateAuthority.create();
  const closed = net.createServer();
  await new Promise<void>((r) => closed.listen(0, "127.0.0.1", r));
  const deadAddr = `127.0.0.1:${(closed.address() as net.AddressInfo).port}`;
  await new Promise<void>((r) => closed.close(() => r()));
  const tunnel = await startTunnelServer({ ca, authAddr: deadAddr });
  try {
    const identity = await identityFor(ca, { user: "bot", roles: ["r"] });
    await assert.rejects(
      openTunnelDialer(tunnel.addr, staticCredentials(identity), FAST),
      (e) =>
        e instanceof TeleportError && e.kind === "connection_problem" &&
        e.message.endsWith(
          '(tunnel mode): the Proxy refused to dial the Auth Service: "failed to dial auth server"',
        ),
    );
  } finally {
    await tunnel.close();
  }
});

Deno.test("dial() of a non-auth address is refused with the Proxy's stderr text", async () => {
  await using env = await setup();
  const identity = await identityFor(env.ca, { user: "bot", roles: ["r"] });
  await assertOpenFails(
    env,
    identity,
    "connection_problem",
    /the Proxy refused to dial the Auth Service: "connection rejected: users may only dial @remote-auth-server, not \\"10\.0\.0\.1:3025\\""/,
    { dialRequestAddress: "10.0.0.1:3025" },
  );
  assert.deepEqual(env.tunnel.dials, ["10.0.0.1:3025"]);
});

Deno.test("openTunnelDialer() names the missing SSH material of TLS-only credentials", async () => {
  await using env = await setup();
  const identity = {
    ...(await identityFor(env.ca, { user: "bot", roles: ["r"] })),
    sshCert: undefined,
  };
  await assertOpenFails(env, identity, "bad_parameter", /have no SSH certificate/);
  const noCas = {
    ...(await identityFor(env.ca, { user: "bot", roles: ["r"] })),
    sshCertAuthorities: [],
  };
  await assertOpenFails(env, noCas, "bad_parameter", /no usable SSH host CA/);
  assert.equal(env.tunnel.connections, 0);
});

Deno.test("openTunnelDialer() explains a server that is not an SSH reverse tunnel", async () => {
  await using env = await setup();
  const identity = await identityFor(env.ca, { user: "bot", roles: ["r"] });
  // The Auth TLS port is not an SSH server.
  await assert.rejects(
    openTunnelDialer(env.auth.addr, staticCredentials(identity), FAST),
    (e) => e instanceof TeleportError && e.kind === "connection_problem" && /SSH/.test(e.message),
  );
  // Nothing listening.
  const closed = net.createServer();
  await new Promise<void>((r) => closed.listen(0, "127.0.0.1", r));
  const dead = `127.0.0.1:${(closed.address() as net.AddressInfo).port}`;
  await new Promise<void>((r) => closed.close(() => r()));
  await assert.rejects(
    openTunnelDialer(dead, staticCredentials(identity), FAST),
    (e) =>
      e instanceof TeleportError && e.kind === "connection_problem" &&
      e.message.includes(`cannot connect to ${dead}: `),
  );
});

Deno.test("openTunnelDialer() is canceled by its signal", async () => {
  await using env = await setup();
  const identity = await identityFor(env.ca, { user: "bot", roles: ["r"] });
  const ctl = new AbortController();
  ctl.abort(new DOMException("stop", "AbortError"));
  await assert.rejects(
    openTunnelDialer(env.tunnel.addr, staticCredentials(identity), { ...FAST, signal: ctl.signal }),
    (e) => e instanceof TeleportError && e.kind === "canceled",
  );
});

Deno.test("dial() reconnects SSH after the connection drops and after the identity changes", async () => {
  await using env = await setup();
  let identity = await identityFor(env.ca, { user: "bot", roles: ["r"] });
  const creds: CredentialsSource = { ...staticCredentials(identity), current: () => identity };
  const dialer: TunnelAuthDialer = await openTunnelDialer(env.tunnel.addr, creds, FAST);
  try {
    assert.equal(env.tunnel.connections, 1);
    const before = await dialer.dial();
    const beforeClosed = new Promise((r) => before.once("close", r));
    env.tunnel.dropConnections();
    // A connection over the dead SSH link closes (gRPC then redials).
    await bounded(beforeClosed, "the connection over the dropped SSH link closes");
    let s: Duplex | undefined;
    for (let i = 0; i < 20 && !s; i++) {
      // The drop may not have reached the client yet: the first dial can fail on the dead link.
      s = await dialer.dial().catch(() => undefined);
    }
    assert.ok(s);
    assert.equal(await readBytes(s, "AUTH bot\n".length), "AUTH bot\n");
    s.destroy();
    assert.equal(env.tunnel.connections, 2);
    identity = await identityFor(env.ca, { user: "bot2", roles: ["r"] });
    const s2 = await dialer.dial();
    assert.equal(await readBytes(s2, "AUTH bot2\n".length), "AUTH bot2\n");
    s2.destroy();
    assert.equal(env.tunnel.connections, 3);
  } finally {
    dialer.close();
  }
  await assert.rejects(dialer.dial(), (e) => e instanceof TeleportError && e.kind === "canceled");
});

/** A TLS front like the Proxy's ALPN router: `teleport-reversetunnel` goes to the tunnel server. */
async function startAlpnFront(ca: TestCertificateAuthority, tunnel: TunnelServer, alpn: string[]) {
  const { keyPem, certPem } = await ca.issueServerCert({
    signedBy: "web-ca",
    dnsNames: ["localhost"],
  });
  const sockets = new Set<net.Socket>();
  const server = tls.createServer({ key: keyPem, cert: certPem, ALPNProtocols: alpn }, (s) => {
    sockets.add(s);
    s.on("close", () => sockets.delete(s));
    s.on("error", () => {});
    if (s.alpnProtocol === "teleport-reversetunnel") tunnel.handleSocket(s);
    else s.destroy();
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return {
    port: (server.address() as net.AddressInfo).port,
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

Deno.test("openTunnelDialer() with viaTlsAlpn reaches the tunnel behind a TLS-routing Proxy", async () => {
  await using env = await setup({ hostPrincipals: ["localhost"] });
  const front = await startAlpnFront(env.ca, env.tunnel, ["teleport-reversetunnel", "h2"]);
  const identity = await identityFor(env.ca, { user: "bot", roles: ["r"] });
  try {
    const dialer = await openTunnelDialer(`localhost:${front.port}`, staticCredentials(identity), {
      ...FAST,
      viaTlsAlpn: true,
      proxyCaPems: [env.ca.webCaPem],
    });
    try {
      const s = await dialer.dial();
      assert.equal(await readBytes(s, "AUTH bot\n".length), "AUTH bot\n");
      s.destroy();
      assert.equal(env.tunnel.connections, 1);
    } finally {
      dialer.close();
    }
    // Without the web CA the Proxy's certificate is not trusted.
    await assert.rejects(
      openTunnelDialer(`localhost:${front.port}`, staticCredentials(identity), {
        ...FAST,
        viaTlsAlpn: true,
      }),
      (e) =>
        e instanceof TeleportError && e.kind === "connection_problem" &&
        /TLS to the Proxy at localhost:\d+ failed: the server's certificate is not trusted/.test(
          e.message,
        ),
    );
  } finally {
    await front.close();
  }
});

Deno.test("openTunnelDialer() with viaTlsAlpn explains a Proxy that does not route teleport-reversetunnel", async () => {
  await using env = await setup({ hostPrincipals: ["localhost"] });
  const front = await startAlpnFront(env.ca, env.tunnel, ["http/1.1"]);
  const identity = await identityFor(env.ca, { user: "bot", roles: ["r"] });
  try {
    await assert.rejects(
      openTunnelDialer(`localhost:${front.port}`, staticCredentials(identity), {
        ...FAST,
        viaTlsAlpn: true,
        proxyCaPems: [env.ca.webCaPem],
      }),
      (e) =>
        e instanceof TeleportError && e.kind === "connection_problem" &&
        /did not accept ALPN "teleport-reversetunnel"/.test(e.message),
    );
  } finally {
    await front.close();
  }
});

async function writeWebCa(
  ca: TestCertificateAuthority,
): Promise<{ env: Record<string, string>; dir: string }> {
  const dir = await Deno.makeTempDir();
  await Deno.writeTextFile(`${dir}/web-ca.pem`, ca.webCaPem);
  return { env: { DENO_CERT: `${dir}/web-ca.pem` }, dir };
}

Deno.test("resolveAuthDialer() reaches the test Auth server's gRPC API through the tunnel of a Proxy without TLS routing", async () => {
  const ca = await TestCertificateAuthority.create();
  const server = await TeleportTestServer.start({ ca });
  const tunnel = await startTunnelServer({ ca, authAddr: server.addr });
  const proxy = await ProxyEmulator.start({
    ca,
    tlsRoutingEnabled: false,
    ssh: { ssh_tunnel_public_addr: tunnel.addr },
  });
  const web = await writeWebCa(ca);
  const identity = await identityFor(ca, { user: "access-plugin", roles: ["access-plugin"] });
  let dialer: AuthDialer | undefined;
  let client: GrpcTeleportClient | undefined;
  try {
    dialer = await resolveAuthDialer(proxy.addr, staticCredentials(identity), {
      env: web.env,
      timeoutMs: 10_000,
    });
    assert.equal(dialer.mode, "tunnel");
    client = await GrpcTeleportClient.create(dialer, { callTimeoutMs: 10_000 });
    assert.equal((await client.ping()).clusterName, ca.clusterName);
    assert.equal(tunnel.connections, 1);
  } finally {
    client?.close();
    (dialer as TunnelAuthDialer | undefined)?.close?.();
    await proxy.close();
    await tunnel.close();
    await server.close();
    await Deno.remove(web.dir, { recursive: true });
  }
});

Deno.test("close() keeps open connections and ends the SSH connection after the last one; destroy() cuts them", async () => {
  await using env = await setup();
  const identity = await identityFor(env.ca, { user: "bot", roles: ["r"] });
  const waitFor = async (what: string, cond: () => boolean) => {
    for (let i = 0; i < 200 && !cond(); i++) await new Promise((r) => setTimeout(r, 25));
    assert.ok(cond(), what);
  };
  const dialer = await openTunnelDialer(env.tunnel.addr, staticCredentials(identity), FAST);
  const s = await dialer.dial();
  assert.equal(await readBytes(s, "AUTH bot\n".length), "AUTH bot\n");
  dialer.close();
  await assert.rejects(dialer.dial(), (e) => e instanceof TeleportError && e.kind === "canceled");
  s.write("still open");
  assert.equal(await readBytes(s, 10), "still open");
  const closed = new Promise((r) => s.once("close", r));
  s.destroy();
  await bounded(closed, "the connection closes");
  await waitFor("the SSH connection ends", () => env.tunnel.openConnections === 0);

  const d2 = await openTunnelDialer(env.tunnel.addr, staticCredentials(identity), FAST);
  const s2 = await d2.dial();
  assert.equal(await readBytes(s2, "AUTH bot\n".length), "AUTH bot\n");
  const closed2 = new Promise((r) => s2.once("close", r));
  d2.destroy();
  await bounded(closed2, "destroy() cuts the connection");
  await waitFor("the SSH connection ends", () => env.tunnel.openConnections === 0);
});

Deno.test("openTunnelDialer() reports a client certificate the Auth Service rejects as access denied", async () => {
  const ca = await TestCertificateAuthority.create();
  const other = await TestCertificateAuthority.create();
  const auth = await startEchoAuth(ca, other); // trusts another cluster's user CA
  const tunnel = await startTunnelServer({ ca, authAddr: auth.addr });
  try {
    const identity = await identityFor(ca, { user: "bot", roles: ["r"] });
    await assert.rejects(
      openTunnelDialer(tunnel.addr, staticCredentials(identity), FAST),
      (e) =>
        e instanceof TeleportError && e.kind === "access_denied" &&
        /\(tunnel mode\): .*(closed the connection right after the TLS handshake|rejected the client certificate)/
          .test(e.message),
    );
    assert.equal(tunnel.authenticated, 1); // SSH was fine; mTLS to Auth was not
  } finally {
    await tunnel.close();
    await auth.close();
  }
});
