/**
 * End to end through every connection mode: the real CLI (`main.ts start`) as a child process
 * reaches the test Teleport Auth server directly, through the Proxy emulator's TLS routing, through
 * its WebSocket connection upgrade (behind an ALPN-stripping load balancer), through the SSH
 * reverse tunnel (directly and as advertised by a Proxy without TLS routing), and through an
 * HTTPS_PROXY. In each mode it must log the mode it chose and deliver a new-request email.
 * Also: identity refresh while connected, and credentials problems that must fail fast.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { X509Certificate } from "node:crypto";
import { parse, stringify } from "smol-toml";
import { E2eEnv } from "./helpers/e2e_env.ts";
import { ProxyEmulator, startConnectProxy } from "./helpers/proxy.ts";
import { startTunnelServer } from "./helpers/tunnel_server.ts";
import type { PluginProcess } from "./helpers/plugin_process.ts";

/** Rewrites keys of the `[teleport]` section of the environment's configuration file. */
async function setTeleport(env: E2eEnv, values: Record<string, unknown>): Promise<void> {
  const config = parse(await Deno.readTextFile(env.configPath)) as Record<string, unknown>;
  config.teleport = { ...(config.teleport as Record<string, unknown>), ...values };
  await Deno.writeTextFile(env.configPath, stringify(config) + "\n");
}

/** Writes the CA that signs the Proxy emulator's web certificate, for `SSL_CERT_FILE`. */
async function webCaFile(env: E2eEnv): Promise<string> {
  const path = join(env.dir, "web-ca.pem");
  await Deno.writeTextFile(path, env.ca.webCaPem);
  return path;
}

/** Serial number (hex, upper case, no separators) of the client certificate in an identity file. */
async function identitySerial(path: string): Promise<string> {
  const blocks = (await Deno.readTextFile(path)).match(
    /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g,
  );
  assert.ok(blocks && blocks.length >= 1, "identity file has a client certificate");
  return new X509Certificate(blocks[0]).serialNumber.toUpperCase();
}

/** Starts the plugin, checks the logged mode, then proves the path with one delivered email. */
async function deliversThrough(
  env: E2eEnv,
  mode: string,
  childEnv: Record<string, string> = {},
): Promise<PluginProcess> {
  const plugin = await env.startPlugin({ env: childEnv });
  const [connected] = await plugin.waitForLog((l) =>
    l.msg === "Connected to Teleport" && l.level === "INFO"
  );
  assert.equal(connected.connection_mode, mode);
  const req = env.teleport.createAccessRequest({
    user: "alice@example.com",
    roles: ["editor"],
    reason: `through ${mode}`,
  });
  const [mail] = await env.waitForEmails(1);
  assert.ok(mail.subject.endsWith(req.id));
  assert.match(mail.text, new RegExp(`Reason: through ${mode}`));
  return plugin;
}

Deno.test("e2e: direct to the Auth Service (mTLS, SNI teleport.cluster.local)", async () => {
  await using env = await E2eEnv.start();
  const plugin = await deliversThrough(env, "direct");
  assert.equal(await plugin.stop(), 0);
});

Deno.test("e2e: Proxy with TLS routing (ALPN teleport-auth@<hex cluster>, TLS end to end)", async () => {
  await using env = await E2eEnv.start();
  const proxy = await ProxyEmulator.start({ ca: env.ca, authAddr: env.teleport.addr });
  try {
    await setTeleport(env, { addr: proxy.addr });
    const plugin = await deliversThrough(env, "tls-routing", {
      SSL_CERT_FILE: await webCaFile(env),
    });
    assert.equal(await plugin.stop(), 0);
    assert.ok(proxy.stats.find >= 1, "the plugin asked /webapi/find");
    assert.ok(proxy.stats.authPassthrough >= 1, "the Proxy passed TLS through to Auth");
    const hex = [...new TextEncoder().encode(env.ca.clusterName)]
      .map((b) => b.toString(16).padStart(2, "0")).join("");
    assert.ok(
      proxy.stats.alpnSeen.some((alpn) =>
        alpn[0] === `teleport-auth@${hex}.teleport.cluster.local` && alpn[1] === "h2"
      ),
      `ALPN seen: ${JSON.stringify(proxy.stats.alpnSeen)}`,
    );
  } finally {
    await proxy.close();
  }
});

Deno.test("e2e: Proxy behind an L7 load balancer that strips ALPN (WebSocket connection upgrade)", async () => {
  await using env = await E2eEnv.start();
  const proxy = await ProxyEmulator.start({
    ca: env.ca,
    authAddr: env.teleport.addr,
    stripAlpn: true,
  });
  try {
    await setTeleport(env, { addr: proxy.addr });
    const plugin = await deliversThrough(env, "tls-routing-upgrade", {
      SSL_CERT_FILE: await webCaFile(env),
    });
    assert.equal(await plugin.stop(), 0);
    assert.ok(proxy.stats.upgrades >= 1, "the plugin used /webapi/connectionupgrade");
  } finally {
    await proxy.close();
  }
});

Deno.test("e2e: TELEPORT_TLS_ROUTING_CONN_UPGRADE=true forces the upgrade on a TLS-routing Proxy", async () => {
  await using env = await E2eEnv.start();
  const proxy = await ProxyEmulator.start({ ca: env.ca, authAddr: env.teleport.addr });
  try {
    await setTeleport(env, { addr: proxy.addr });
    const plugin = await deliversThrough(env, "tls-routing-upgrade", {
      SSL_CERT_FILE: await webCaFile(env),
      TELEPORT_TLS_ROUTING_CONN_UPGRADE: "true",
    });
    assert.equal(await plugin.stop(), 0);
    assert.ok(proxy.stats.upgrades >= 1);
  } finally {
    await proxy.close();
  }
});

Deno.test("e2e: SSH reverse tunnel, dialled directly and as advertised by a Proxy without TLS routing", async () => {
  await using env = await E2eEnv.start();
  const tunnel = await startTunnelServer({ ca: env.ca, authAddr: env.teleport.addr });
  const proxy = await ProxyEmulator.start({
    ca: env.ca,
    authAddr: env.teleport.addr,
    tlsRoutingEnabled: false,
    ssh: { ssh_tunnel_public_addr: tunnel.addr },
  });
  try {
    await setTeleport(env, { addr: tunnel.addr });
    let plugin = await deliversThrough(env, "tunnel");
    assert.equal(await plugin.stop(), 0);
    const dialsBefore = tunnel.dials.length;
    assert.ok(dialsBefore >= 1, "the tunnel server saw a teleport-transport-dial");

    await setTeleport(env, { addr: proxy.addr });
    plugin = await env.startPlugin({ env: { SSL_CERT_FILE: await webCaFile(env) } });
    const [connected] = await plugin.waitForLog((l) =>
      l.msg === "Connected to Teleport" && l.level === "INFO"
    );
    assert.equal(connected.connection_mode, "tunnel");
    const req = env.teleport.createAccessRequest({ user: "bob@example.com", roles: ["editor"] });
    const mails = await env.waitForEmails(2);
    assert.ok(mails[1].subject.endsWith(req.id));
    assert.equal(await plugin.stop(), 0);
    assert.ok(tunnel.dials.length > dialsBefore, "the second run went through the tunnel too");
  } finally {
    await proxy.close();
    await tunnel.close();
  }
});

Deno.test("e2e: HTTPS_PROXY carries the outer TCP connection (HTTP CONNECT)", async () => {
  await using env = await E2eEnv.start();
  const connect = await startConnectProxy();
  try {
    // `proxy.test` resolves only inside the CONNECT proxy, so a delivered email proves its use.
    await setTeleport(env, { addr: `proxy.test:${env.teleport.port}` });
    const plugin = await deliversThrough(env, "direct", { HTTPS_PROXY: connect.url });
    assert.equal(await plugin.stop(), 0);
    assert.ok(
      connect.requests.includes(`proxy.test:${env.teleport.port}`),
      connect.requests.join(),
    );
  } finally {
    await connect.close();
  }
});

Deno.test("e2e: refresh_identity: a rotated identity file is used by the next connection", async () => {
  await using env = await E2eEnv.start();
  await setTeleport(env, { refresh_identity: true, refresh_identity_interval: "100ms" });
  const first = await identitySerial(env.identityPath);
  const plugin = await deliversThrough(env, "direct");
  assert.ok(env.teleport.connections.some((c) => c.serial.toUpperCase() === first));

  // Rotate the file as tbot does (a new certificate, for a distinguishable user name).
  const next = join(env.dir, "auth_id.new");
  await env.ca.writeIdentityFile(next, { user: "plugin-renewed", roles: ["access-plugin"] });
  await Deno.rename(next, env.identityPath);
  const second = await identitySerial(env.identityPath);
  assert.notEqual(first, second);
  // Give the refresh loop a few intervals, then cut every connection: the plugin reconnects.
  await new Promise((r) => setTimeout(r, 500));
  env.teleport.dropConnections();
  const deadline = Date.now() + 20_000;
  while (!env.teleport.connections.some((c) => c.serial.toUpperCase() === second)) {
    assert.ok(Date.now() < deadline, "no connection presented the renewed certificate");
    await new Promise((r) => setTimeout(r, 50));
  }
  assert.ok(env.teleport.connections.some((c) => c.cn === "plugin-renewed"));
  // The watch is back on the new connection: a new request is still notified.
  env.teleport.createAccessRequest({ user: "carol@example.com", roles: ["editor"] });
  await env.waitForEmails(2);
  assert.equal(await plugin.stop(), 0);
});

/** Runs `start` and expects exit 1 with a fatal error line matching `pattern`. */
async function failsToStart(
  env: E2eEnv,
  pattern: RegExp,
  childEnv: Record<string, string> = {},
): Promise<number> {
  const started = Date.now();
  const plugin = await env.startPlugin({ env: childEnv, waitReady: false });
  const code = await Promise.race([
    plugin.exited,
    new Promise<number>((r) => setTimeout(() => r(-1), 40_000)),
  ]);
  if (code === -1) plugin.kill();
  await plugin.exited;
  const output = plugin.stderrLines.join("\n");
  assert.equal(code, 1, `exit code; output:\n${output}`);
  assert.match(output, pattern);
  assert.doesNotMatch(output, /\n\s+at /, "no stack trace");
  assert.doesNotMatch(output, /PRIVATE KEY/);
  return Date.now() - started;
}

Deno.test("e2e: identity signed by a foreign CA, or expired, fails start-up within the budget", async () => {
  await using env = await E2eEnv.start();
  await env.ca.writeIdentityFile(env.identityPath, {
    user: "plugin",
    roles: ["access-plugin"],
    signedBy: "foreign",
  });
  const foreignMs = await failsToStart(
    env,
    /Terminating with fatal error.*Cannot connect to Teleport.*rejected the client certificate/,
  );
  assert.ok(foreignMs < 30_000, `took ${foreignMs} ms`);

  await env.ca.writeIdentityFile(env.identityPath, {
    user: "plugin",
    roles: ["access-plugin"],
    notAfter: new Date(Date.now() - 60_000),
  });
  await failsToStart(env, /No valid credentials found, this likely means credentials are expired/);
});

Deno.test("e2e: a server that never sends INIT: a clear error, and exit 1 with TELEPORT_PLUGIN_FAIL_FAST", async () => {
  await using env = await E2eEnv.start({ server: { sendInit: false } });
  await failsToStart(env, /watcher initialization timed out/, {
    TELEPORT_PLUGIN_FAIL_FAST: "true",
  });
});
