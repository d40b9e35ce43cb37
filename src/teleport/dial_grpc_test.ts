import assert from "node:assert/strict";
import type { TeleportConfig } from "../config/types.ts";
import { TestCertificateAuthority } from "../../tests/helpers/ca.ts";
import { ProxyEmulator } from "../../tests/helpers/proxy.ts";
import { TeleportTestServer } from "../../tests/helpers/teleport_server.ts";
import { connectTeleport } from "./connect.ts";

// gRPC (grpc-js over the dialer's sockets) against the test Auth server, through each mode.

const ca = await TestCertificateAuthority.create({ clusterName: "grpc.example" });

async function withSetup(
  fn: (env: { identity: string; auth: TeleportTestServer; webCaFile: string }) => Promise<void>,
): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "dial_grpc_test" });
  const auth = await TeleportTestServer.start({ ca });
  try {
    const identity = await ca.writeIdentityFile(`${dir}/identity`, {
      user: "email-plugin",
      roles: ["access-plugin"],
    });
    const webCaFile = `${dir}/web-ca.pem`;
    await Deno.writeTextFile(webCaFile, ca.webCaPem);
    await fn({ identity, auth, webCaFile });
  } finally {
    await auth.close();
    await Deno.remove(dir, { recursive: true });
  }
}

function cfg(addr: string, identity: string): TeleportConfig {
  return {
    addr,
    identity,
    refreshIdentity: false,
    refreshIdentityIntervalMs: 60_000,
    clientKey: "",
    clientCrt: "",
    rootCas: "",
  };
}

for (
  const [mode, proxyOpts] of [
    ["direct", undefined],
    ["tls-routing", {}],
    ["tls-routing-upgrade", { stripAlpn: true }],
  ] as const
) {
  Deno.test(`connectTeleport() pings the test Auth server in ${mode} mode`, async () => {
    await withSetup(async ({ identity, auth, webCaFile }) => {
      const proxy = proxyOpts
        ? await ProxyEmulator.start({ ca, authAddr: auth.addr, ...proxyOpts })
        : undefined;
      try {
        const conn = await connectTeleport(cfg(proxy?.addr ?? auth.addr, identity), {
          dialer: { env: { SSL_CERT_FILE: webCaFile } },
        });
        try {
          assert.equal(conn.ping.clusterName, "grpc.example");
          assert.ok(auth.calls.Ping >= 1);
          assert.equal(auth.connections.at(-1)?.user, "email-plugin");
          if (mode === "tls-routing-upgrade") assert.ok(proxy!.stats.upgrades >= 1);
          if (mode === "tls-routing") assert.ok(proxy!.stats.authPassthrough >= 1);
        } finally {
          conn.close();
        }
      } finally {
        await proxy?.close();
      }
    });
  });
}
