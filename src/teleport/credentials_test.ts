import assert from "node:assert/strict";
import type { TeleportConfig } from "../config/types.ts";
import { ConfigError, TeleportError } from "../errors.ts";
import { TestCertificateAuthority } from "../../tests/helpers/ca.ts";
import { createCredentials, type Log, NO_VALID_CREDENTIALS_MESSAGE } from "./credentials.ts";

const ca = await TestCertificateAuthority.create({ clusterName: "creds.test" });

function config(over: Partial<TeleportConfig>): TeleportConfig {
  return {
    addr: "localhost:3025",
    identity: "",
    refreshIdentity: false,
    refreshIdentityIntervalMs: 60_000,
    clientKey: "",
    clientCrt: "",
    rootCas: "",
    ...over,
  };
}

function recordingLog(): Log & { lines: string[] } {
  const lines: string[] = [];
  const rec = (level: string) => (msg: unknown, props?: unknown) => {
    lines.push(`${level} ${String(msg)} ${JSON.stringify(props ?? {})}`);
  };
  return {
    lines,
    debug: rec("debug"),
    info: rec("info"),
    warn: rec("warn"),
    error: rec("error"),
  } as unknown as Log & { lines: string[] };
}

async function waitFor(what: string, cond: () => boolean, timeoutMs = 5000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

async function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "credentials_test" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("createCredentials() loads an identity file and logs the Go start-up message", async () => {
  await withDir(async (dir) => {
    const path = await ca.writeIdentityFile(`${dir}/id`, { user: "email", roles: ["plugin"] });
    const log = recordingLog();
    const creds = await createCredentials(config({ identity: path }), { log });
    try {
      assert.equal(creds.current().user, "email");
      assert.equal(creds.refreshing, false);
      assert.ok(
        log.lines.some((l) =>
          l.startsWith(
            "info At least one non-expired credential has been found, continuing startup",
          )
        ),
      );
    } finally {
      creds.close();
    }
  });
});

Deno.test("createCredentials() rejects expired credentials with the Go plugin's message", async () => {
  await withDir(async (dir) => {
    const path = await ca.writeIdentityFile(`${dir}/id`, {
      user: "email",
      notAfter: new Date(Date.now() - 1000),
    });
    await assert.rejects(
      createCredentials(config({ identity: path, refreshIdentity: true })),
      (err) => {
        assert.ok(err instanceof TeleportError);
        assert.equal(err.kind, "access_denied");
        assert.equal(err.message, NO_VALID_CREDENTIALS_MESSAGE);
        assert.match(err.hint ?? "", /expired at/);
        return true;
      },
    );
  });
});

Deno.test("createCredentials() reads the client_key/client_crt/root_cas triple", async () => {
  await withDir(async (dir) => {
    const f = await ca.writeTlsFiles(dir, { user: "tls-user", keyType: "ec-sec1" });
    const creds = await createCredentials(
      config({ clientKey: f.key, clientCrt: f.crt, rootCas: f.cas }),
    );
    assert.equal(creds.current().user, "tls-user");
    creds.close();
  });
});

Deno.test("createCredentials() rejects a configuration without credentials", async () => {
  await assert.rejects(createCredentials(config({ clientKey: "/k" })), (err) => {
    assert.ok(err instanceof ConfigError);
    assert.match(err.message, /No credentials configured/);
    return true;
  });
});

Deno.test("createCredentials() with refresh_identity picks up a rotated identity file", async () => {
  await withDir(async (dir) => {
    const path = await ca.writeIdentityFile(`${dir}/id`, { user: "email", roles: ["v1"] });
    const log = recordingLog();
    const creds = await createCredentials(
      config({ identity: path, refreshIdentity: true, refreshIdentityIntervalMs: 50 }),
      { log },
    );
    try {
      assert.equal(creds.refreshing, true);
      const first = creds.current();
      const changes: string[] = [];
      creds.onChange((id) => changes.push(id.roles.join(",")));

      // A half-written file keeps the previous identity, with a warning.
      const full = await Deno.readTextFile(path);
      await Deno.writeTextFile(path, full.slice(0, full.length / 2));
      await waitFor(
        "a reload warning",
        () => log.lines.some((l) => l.startsWith("warn Cannot reload")),
      );
      assert.equal(creds.current(), first);
      assert.ok(!log.lines.some((l) => l.includes("PRIVATE KEY")));

      // tbot renews: the new certificate becomes current.
      await ca.writeIdentityFile(`${dir}/id.new`, { user: "email", roles: ["v2"] });
      await Deno.rename(`${dir}/id.new`, path);
      await waitFor("the rotated identity", () => creds.current().roles[0] === "v2");
      assert.notEqual(creds.current().certPem, first.certPem);
      assert.deepEqual(changes, ["v2"]);

      // Still refreshing long after start-up (upstream bug #67629 stopped here).
      await ca.writeIdentityFile(`${dir}/id.new`, { user: "email", roles: ["v3"] });
      await Deno.rename(`${dir}/id.new`, path);
      await waitFor("the second rotation", () => creds.current().roles[0] === "v3");
    } finally {
      creds.close();
    }
  });
});

Deno.test("createCredentials() stops refreshing on close() and on abort", async () => {
  await withDir(async (dir) => {
    const path = await ca.writeIdentityFile(`${dir}/id`, { user: "email", roles: ["v1"] });
    const cfg = config({ identity: path, refreshIdentity: true, refreshIdentityIntervalMs: 20 });
    const ac = new AbortController();
    const a = await createCredentials(cfg, { signal: ac.signal });
    const b = await createCredentials(cfg);
    ac.abort();
    b.close();
    await ca.writeIdentityFile(path, { user: "email", roles: ["v2"] });
    await new Promise((r) => setTimeout(r, 150));
    assert.equal(a.current().roles[0], "v1");
    assert.equal(b.current().roles[0], "v1");
  });
});

Deno.test("CredentialsSource.reload() keeps the previous identity when the file is broken", async () => {
  await withDir(async (dir) => {
    const path = await ca.writeIdentityFile(`${dir}/id`, { user: "email", roles: ["v1"] });
    const creds = await createCredentials(config({ identity: path }));
    await Deno.writeTextFile(path, "garbage");
    await assert.rejects(creds.reload(), ConfigError);
    assert.equal(creds.current().roles[0], "v1");
    await ca.writeIdentityFile(path, { user: "email", roles: ["v2"] });
    assert.equal((await creds.reload()).roles[0], "v2");
    assert.equal(creds.current().roles[0], "v2");
    creds.close();
  });
});
