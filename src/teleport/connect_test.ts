import assert from "node:assert/strict";
import { TeleportError } from "../errors.ts";
import type { TeleportConfig } from "../config/types.ts";
import { TestCertificateAuthority } from "../../tests/helpers/ca.ts";
import {
  TeleportTestServer,
  type TeleportTestServerOptions,
} from "../../tests/helpers/teleport_server.ts";
import { testDialer } from "../../tests/helpers/teleport_dialer.ts";
import {
  assertServerVersion,
  compareSemVer,
  connectTeleport,
  connectWithDialer,
  parseSemVer,
} from "./connect.ts";

const ca = await TestCertificateAuthority.create({ clusterName: "connect.example.com" });
const plugin = await ca.issueUser({ user: "access-plugin", roles: ["access-plugin"] });

async function withServer(
  opts: Partial<TeleportTestServerOptions>,
  fn: (server: TeleportTestServer) => Promise<void>,
): Promise<void> {
  const server = await TeleportTestServer.start({ ca, ...opts });
  try {
    await fn(server);
  } finally {
    await server.close();
  }
}

function cmp(a: string, b: string): number {
  return compareSemVer(parseSemVer(a)!, parseSemVer(b)!);
}

Deno.test("compareSemVer() follows semver precedence including pre-releases", () => {
  const ordered = [
    "1.0.0-alpha",
    "1.0.0-alpha.1",
    "1.0.0-alpha.beta",
    "1.0.0-beta",
    "1.0.0-beta.2",
    "1.0.0-beta.11",
    "1.0.0-rc.1",
    "1.0.0",
    "6.1.0-beta.1",
    "6.1.0",
    "18.2.0",
  ];
  for (let i = 0; i < ordered.length - 1; i++) {
    assert.equal(cmp(ordered[i], ordered[i + 1]), -1, `${ordered[i]} < ${ordered[i + 1]}`);
    assert.equal(cmp(ordered[i + 1], ordered[i]), 1, `${ordered[i + 1]} > ${ordered[i]}`);
  }
  assert.equal(cmp("v1.2.3+build.5", "1.2.3"), 0);
  assert.equal(parseSemVer("1.2"), undefined);
  assert.equal(parseSemVer("01.2.3"), undefined);
});

Deno.test("assertServerVersion() accepts 6.1.0-beta.1 and newer and rejects older or invalid", () => {
  assertServerVersion("6.1.0-beta.1");
  assertServerVersion("6.1.0");
  assertServerVersion("18.2.0-dev.1");
  assert.throws(() => assertServerVersion("6.1.0-alpha.1"), (e: unknown) => {
    assert.ok(e instanceof TeleportError);
    assert.equal(e.message, "incompatible versions: 6.1.0-alpha.1 < 6.1.0-beta.1");
    return true;
  });
  assert.throws(
    () => assertServerVersion("6.0.9"),
    /incompatible versions: 6\.0\.9 < 6\.1\.0-beta\.1/,
  );
  assert.throws(() => assertServerVersion("banana"), (e: unknown) => {
    assert.ok(e instanceof TeleportError);
    assert.equal(e.kind, "bad_parameter");
    assert.match(e.message, /"banana"/);
    return true;
  });
});

Deno.test("connectWithDialer() pings and returns the client and cluster facts", async () => {
  await withServer({ serverVersion: "16.4.0", advancedAccessWorkflows: true }, async (server) => {
    const { client, ping } = await connectWithDialer(testDialer(server.addr, ca, plugin));
    try {
      assert.equal(ping.clusterName, "connect.example.com");
      assert.equal(ping.serverVersion, "16.4.0");
      assert.equal(ping.advancedAccessWorkflows, true);
      assert.deepEqual(await client.listAccessRequests(), []);
    } finally {
      client.close();
    }
  });
});

Deno.test("connectWithDialer() rejects a server older than 6.1.0-beta.1", async () => {
  await withServer({ serverVersion: "6.0.2" }, async (server) => {
    await assert.rejects(connectWithDialer(testDialer(server.addr, ca, plugin)), (e: unknown) => {
      assert.ok(e instanceof TeleportError);
      assert.equal(e.message, "incompatible versions: 6.0.2 < 6.1.0-beta.1");
      return true;
    });
  });
});

Deno.test("connectWithDialer() reports an UNIMPLEMENTED Ping as a too-old server", async () => {
  await withServer({ pingUnimplemented: true }, async (server) => {
    await assert.rejects(connectWithDialer(testDialer(server.addr, ca, plugin)), (e: unknown) => {
      assert.ok(e instanceof TeleportError);
      assert.equal(e.kind, "not_implemented");
      assert.equal(e.message, "server version must be at least 6.1.0-beta.1");
      return true;
    });
  });
});

Deno.test("connectWithDialer() logs and rethrows other Ping failures", async () => {
  const other = await ca.issueUser({ user: "bob", roles: ["editor"] });
  await withServer({}, async (server) => {
    const errors: string[] = [];
    const log = {
      debug() {},
      info() {},
      warn() {},
      error: (m: string) => errors.push(m),
    };
    await assert.rejects(
      connectWithDialer(testDialer(server.addr, ca, other), { log: log as never }),
      (e: unknown) => {
        assert.ok(e instanceof TeleportError);
        assert.equal(e.kind, "access_denied");
        return true;
      },
    );
    assert.deepEqual(errors, ["Unable to get Teleport server version"]);
  });
});

Deno.test("connectWithDialer() times out when Ping never answers", async () => {
  await withServer({}, async (server) => {
    const hang = server.hangNext("Ping");
    await assert.rejects(
      connectWithDialer(testDialer(server.addr, ca, plugin), { timeoutMs: 300 }),
      (e: unknown) => {
        assert.ok(e instanceof TeleportError);
        assert.equal(e.kind, "deadline_exceeded");
        assert.match(e.message, /timed out after 300 ms/);
        return true;
      },
    );
    hang.release();
  });
});

Deno.test("connectTeleport() connects from [teleport] with an identity file (direct mode)", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const identity = await ca.writeIdentityFile(`${dir}/identity`, {
      user: "access-plugin",
      roles: ["access-plugin"],
    });
    await withServer({}, async (server) => {
      const cfg: TeleportConfig = {
        addr: server.addr,
        identity,
        refreshIdentity: false,
        refreshIdentityIntervalMs: 60_000,
        clientKey: "",
        clientCrt: "",
        rootCas: "",
      };
      const conn = await connectTeleport(cfg);
      try {
        assert.equal(conn.ping.clusterName, "connect.example.com");
        assert.equal(conn.client.connectionMode, "direct");
        const { id } = server.createAccessRequest({ user: "a", roles: ["r"] });
        assert.deepEqual((await conn.client.listAccessRequests()).map((r) => r.id), [id]);
      } finally {
        conn.close();
      }
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
