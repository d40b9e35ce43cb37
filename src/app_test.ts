import assert from "node:assert/strict";
import { captureLogs } from "../tests/helpers/logs.ts";
import type { Config } from "./config/types.ts";
import { ConfigError, MailerError, TeleportEmailError } from "./errors.ts";
import { type AppDeps, MAX_PARALLEL_SENDS, type RunAppOptions, runAppWith } from "./app.ts";
import { FakeMailer, FakeTeleportClient, makeRequest, waitFor } from "../tests/helpers/fakes.ts";

function config(): Config {
  return {
    path: "/tmp/teleport-email.toml",
    teleport: {
      addr: "127.0.0.1:3025",
      identity: "/tmp/identity",
      refreshIdentity: false,
      refreshIdentityIntervalMs: 60_000,
      clientKey: "",
      clientCrt: "",
      rootCas: "",
    },
    smtp: {
      host: "127.0.0.1",
      port: 2525,
      username: "",
      password: "",
      passwordFile: "",
      starttlsPolicy: "disabled",
      caFile: "",
    },
    delivery: { sender: "noreply@example.com", notifyRequester: false },
    roleToRecipients: { "*": ["all@example.com"], "dev": ["dev@example.com"] },
    log: { output: "stderr", severity: "debug", format: "text" },
    warnings: [],
  };
}

function deps(client: FakeTeleportClient, mailer: FakeMailer, over: Partial<AppDeps> = {}) {
  let closed = 0;
  const d: AppDeps = {
    connect: async () => ({
      client,
      ping: await client.ping(),
      close: () => {
        closed++;
        client.close();
      },
    }),
    createMailer: () => Promise.resolve(mailer),
    ...over,
  };
  return { deps: d, closed: () => closed };
}

/**
 * Starts the app on fakes and waits until it is ready. `stop()` aborts it and waits for it
 * to end; if it never becomes ready it is stopped before the wait's error is rethrown.
 */
async function startApp(
  client: FakeTeleportClient,
  mailer: FakeMailer,
  over: Partial<AppDeps> = {},
  readyWhat = "ready",
  env: RunAppOptions["env"] = undefined,
) {
  let ready = false;
  const d = deps(client, mailer, { onReady: () => (ready = true), ...over });
  const ac = new AbortController();
  const app = runAppWith(config(), { signal: ac.signal, debug: false, env }, d.deps);
  const stop = async () => {
    ac.abort();
    await app;
  };
  try {
    await waitFor(() => ready, readyWhat);
  } catch (err) {
    await stop().catch(() => {});
    throw err;
  }
  return { app, closed: d.closed, abort: () => ac.abort(), stop };
}

Deno.test("runAppWith() starts, routes by role, sends, and shuts down on abort", async () => {
  await captureLogs(async (records) => {
    const client = new FakeTeleportClient();
    const mailer = new FakeMailer();
    const s = await startApp(client, mailer, {}, "the plugin to be ready");
    assert.equal(mailer.healthChecks, 1);
    client.putRequest(makeRequest({ id: "req-1", roles: ["dev"] }));
    await waitFor(() => mailer.sent.length === 1, "the new-request email");
    assert.equal(mailer.sent[0].to, "dev@example.com");
    // OSS cluster: tsh commands, no link.
    assert.ok(mailer.sent[0].text.includes("tsh request review --approve req-1"));
    await s.stop();
    assert.equal(mailer.closed, true);
    assert.equal(s.closed(), 1);
    const msgs = records.map((r) => r.rawMessage);
    for (
      const m of [
        "Starting client connection health check",
        "Client connection health check finished ok",
        "Plugin is ready",
        "Connected to Teleport",
      ]
    ) assert.ok(msgs.includes(m), m);
    const connected = records.find((r) => r.rawMessage === "Connected to Teleport");
    assert.equal(connected?.properties.cluster_name, "teleport.example.com");
    assert.equal(connected?.properties.connection_mode, "direct");
  });
});

Deno.test("runAppWith() links to the web UI only with AdvancedAccessWorkflows", async () => {
  const client = new FakeTeleportClient();
  client.ping_.advancedAccessWorkflows = true;
  client.ping_.proxyPublicAddr = "proxy.example.com:443";
  const mailer = new FakeMailer();
  const s = await startApp(client, mailer);
  try {
    client.putRequest(makeRequest({ id: "req-1" }));
    await waitFor(() => mailer.sent.length === 1, "an email");
    assert.ok(
      mailer.sent[0].text.includes("Link: https://proxy.example.com/web/requests/req-1"),
      mailer.sent[0].text,
    );
  } finally {
    await s.stop();
  }
});

Deno.test("runAppWith() fails when the mailer health check fails, and closes the client", async () => {
  const client = new FakeTeleportClient();
  const mailer = new FakeMailer();
  mailer.healthError = new MailerError("Cannot connect to SMTP server", { retryable: true });
  const d = deps(client, mailer);
  await assert.rejects(
    runAppWith(config(), { signal: new AbortController().signal, debug: false }, d.deps),
    (err) =>
      err instanceof TeleportEmailError &&
      err.message === "client connection health check failed: Cannot connect to SMTP server",
  );
  assert.equal(d.closed(), 1);
  assert.equal(mailer.closed, true);
});

Deno.test("runAppWith() with fail-fast exits when the stream breaks", async () => {
  await captureLogs(async (records) => {
    const client = new FakeTeleportClient();
    const mailer = new FakeMailer();
    const s = await startApp(client, mailer, {}, "ready", { failFast: true });
    client.breakStreams();
    await assert.rejects(s.app, /Connection problem detected\. Exiting as fail fast is on\./);
    assert.equal(s.closed(), 1);
    assert.ok(!records.some((r) => r.rawMessage === "Plugin is not ready"));
  });
});

Deno.test("runAppWith() logs Plugin is not ready when the watcher fails before INIT", async () => {
  await captureLogs(async (records) => {
    const client = new FakeTeleportClient();
    client.acceptedKinds = [];
    const d = deps(client, new FakeMailer());
    await assert.rejects(
      runAppWith(config(), { signal: new AbortController().signal, debug: false }, d.deps),
      /none of the requested kinds can be watched/,
    );
    assert.ok(records.some((r) => r.rawMessage === "Plugin is not ready" && r.level === "error"));
  });
});

Deno.test("runAppWith() lets a running send finish on shutdown and records it", async () => {
  const client = new FakeTeleportClient();
  const mailer = new FakeMailer();
  let release!: () => void;
  mailer.gate = new Promise((r) => (release = r));
  const s = await startApp(client, mailer);
  client.putRequest(makeRequest({ id: "req-1" }));
  await waitFor(() => mailer.inFlight === 1, "a send in flight");
  s.abort();
  setTimeout(release, 20);
  await s.app;
  assert.equal(mailer.sent.length, 1);
  const raw = client.pluginData.get("req-1")?.get("email");
  assert.ok(raw?.email_threads?.startsWith("all@example.com/"), raw?.email_threads);
});

Deno.test("runAppWith() warns which emails a shutdown cut off and that the next start sends them", async () => {
  await captureLogs(async (records) => {
    const client = new FakeTeleportClient();
    const mailer = new FakeMailer();
    mailer.gate = new Promise(() => {}); // Sends never finish on their own.
    const s = await startApp(client, mailer, { drainTimeoutMs: 20 });
    client.putRequest(makeRequest({ id: "req-cut", roles: ["dev", "editor"] }));
    await waitFor(() => mailer.inFlight === 2, "two sends in flight");
    await s.stop();
    assert.equal(mailer.sent.length, 0);
    const cut = records.filter((r) => r.properties.request_id === "req-cut" && r.level !== "debug");
    assert.deepEqual(
      cut.filter((r) => r.level === "warning").map((r) => [r.properties.email, r.rawMessage])
        .sort(),
      ["all@example.com", "dev@example.com"].map((email) => [
        email,
        "Email not sent because the plugin is shutting down; the next start or another replica will send it",
      ]),
    );
    assert.deepEqual(cut.filter((r) => r.level === "error").map((r) => r.rawMessage), []);
    assert.ok(records.some((r) =>
      r.level === "warning" &&
      r.rawMessage ===
        "Some request handlers did not finish before shutdown; the next start or another replica will finish them"
    ));
    assert.ok(
      !records.some((r) => JSON.stringify(r.properties).includes("deadline exceeded")),
      "no deadline wording",
    );
    const data = client.pluginData.get("req-cut")?.get("email");
    assert.ok(!(data?.email_delivery ?? "").includes('"lock"'), "the lease was released");
  });
});

Deno.test("runAppWith() over SMTP sends at most the pool size of emails at once", async () => {
  const client = new FakeTeleportClient();
  const mailer = new FakeMailer();
  mailer.delayMs = 5;
  const s = await startApp(client, mailer);
  for (let i = 0; i < 6; i++) {
    client.putRequest(makeRequest({ id: `req-${i}`, roles: ["dev", "editor"] }));
  }
  await waitFor(() => mailer.sent.length === 12, "12 emails");
  await s.stop();
  assert.equal(mailer.maxInFlight, MAX_PARALLEL_SENDS.smtp);
  assert.equal(MAX_PARALLEL_SENDS.smtp, 5);
});

Deno.test("runAppWith() announces a request created and approved after start whose PENDING event was missed", async () => {
  const client = new FakeTeleportClient();
  const mailer = new FakeMailer();
  // Resolved before the plugin started: stays silent.
  client.putRequest(makeRequest({ id: "req-old", state: "APPROVED", resolveReason: "old" }), false);
  const s = await startApp(client, mailer);
  try {
    await waitFor(() => (client.calls.get("listAccessRequests") ?? 0) >= 1, "catch-up");
    client.putRequest(
      makeRequest({ id: "req-new", created: new Date(), state: "APPROVED", resolveReason: "ok" }),
    );
    await waitFor(() => mailer.sent.length >= 2, "new-request and resolution emails");
    // Let anything extra (a duplicate) show up before stopping.
    await new Promise((r) => setTimeout(r, 100));
  } finally {
    await s.stop();
  }
  assert.equal(mailer.sent.filter((e) => e.subject.endsWith("req-old")).length, 0);
  const mine = mailer.sent.filter((e) => e.subject.endsWith("req-new"));
  assert.equal(mine.length, 2);
  assert.deepEqual(mine.map((e) => e.to), ["all@example.com", "all@example.com"]);
  assert.ok(mine[0].text.includes("You have a new Role Request"), mine[0].text);
  assert.ok(mine[1].text.includes("APPROVED (ok)"), mine[1].text);
});

/** Deps whose SIGHUP is `hup()` and whose configuration file is `file.config` (or an error). */
function reloadable(file: { config: Config | Error; loads?: number; gate?: Promise<void> }) {
  let listener = () => {};
  const results: Array<{ changes: string[] } | { error: unknown }> = [];
  const over: Partial<AppDeps> = {
    onReloadSignal: (l) => {
      listener = l;
      return () => (listener = () => {});
    },
    loadConfig: async () => {
      file.loads = (file.loads ?? 0) + 1;
      await file.gate;
      if (file.config instanceof Error) throw file.config;
      return structuredClone(file.config);
    },
    onReload: (r) => results.push(r as (typeof results)[number]),
  };
  /** Sends SIGHUP and waits for the outcome of that one reload. */
  const reload = async () => {
    const n = results.length;
    listener();
    await waitFor(() => results.length === n + 1, "the reload");
  };
  return { over, hup: () => listener(), reload, results };
}

/** Starts the app with mailer `first`; a SIGHUP reloads `next`, whose mailer is `second`. */
async function startWithMailers(
  client: FakeTeleportClient,
  first: FakeMailer,
  second: FakeMailer,
  next: Config,
) {
  const r = reloadable({ config: next });
  let built = 0;
  const s = await startApp(client, first, {
    ...r.over,
    createMailer: () => Promise.resolve(++built === 1 ? first : second),
  });
  return { r, s };
}

Deno.test("runAppWith() on SIGHUP sends the next request to the reloaded role_to_recipients", async () => {
  await captureLogs(async (records) => {
    const client = new FakeTeleportClient();
    const mailer = new FakeMailer();
    const next = config();
    next.roleToRecipients = { "*": ["new@example.com"] };
    const r = reloadable({ config: next });
    let connects = 0;
    const s = await startApp(client, mailer, {
      ...r.over,
      connect: async () => {
        connects++;
        return { client, ping: await client.ping(), close: () => {} };
      },
    });
    try {
      await r.reload();
      assert.deepEqual(r.results[0], { changes: ["role_to_recipients"] });
      client.putRequest(makeRequest({ id: "req-after", roles: ["dev"] }));
      await waitFor(() => mailer.sent.length === 1, "an email");
      assert.equal(mailer.sent[0].to, "new@example.com");
      assert.equal(connects, 1, "recipients change in place, on the same connection");
      const done = records.find((x) => x.rawMessage === "Configuration reloaded");
      assert.equal(done?.properties.changed, "role_to_recipients");
    } finally {
      await s.stop();
    }
  });
});

Deno.test("runAppWith() keeps the configuration in force when the reloaded file is invalid, naming the key", async () => {
  await captureLogs(async (records) => {
    const client = new FakeTeleportClient();
    const mailer = new FakeMailer();
    const r = reloadable({
      config: new ConfigError("role_to_recipients", 'Invalid "role_to_recipients": not a table'),
    });
    const s = await startApp(client, mailer, r.over);
    try {
      await r.reload();
      const failed = records.find((x) => x.level === "error");
      assert.equal(
        failed?.rawMessage,
        "Configuration not reloaded; the previous configuration stays in force",
      );
      assert.equal(failed?.properties.key, "role_to_recipients");
      client.putRequest(makeRequest({ id: "req-old-rules", roles: ["dev"] }));
      await waitFor(() => mailer.sent.length === 1, "an email");
      assert.equal(mailer.sent[0].to, "dev@example.com");
    } finally {
      await s.stop();
    }
  });
});

Deno.test("runAppWith() queues a SIGHUP that arrives during a reload and applies the newest file", async () => {
  const client = new FakeTeleportClient();
  const mailer = new FakeMailer();
  let release!: () => void;
  const file: Parameters<typeof reloadable>[0] = {
    config: config(),
    gate: new Promise((resolve) => (release = resolve)),
  };
  const r = reloadable(file);
  const s = await startApp(client, mailer, r.over);
  try {
    r.hup();
    await waitFor(() => file.loads === 1, "the first reload reading the file");
    const second = config();
    second.roleToRecipients = { "*": ["second@example.com"] };
    file.config = second;
    r.hup();
    r.hup(); // Coalesced with the previous one.
    release();
    await waitFor(() => r.results.length === 2, "two reloads");
    assert.equal(file.loads, 2);
    client.putRequest(makeRequest({ id: "req-2" }));
    await waitFor(() => mailer.sent.length === 1, "an email");
    assert.equal(mailer.sent[0].to, "second@example.com");
  } finally {
    await s.stop();
  }
});

Deno.test("runAppWith() on SIGHUP replaces a changed mailer after its health check; the old one closes", async () => {
  const client = new FakeTeleportClient();
  const first = new FakeMailer();
  const second = new FakeMailer();
  const next = config();
  next.delivery.sender = "Teleport <other@example.com>";
  const { r, s } = await startWithMailers(client, first, second, next);
  try {
    await r.reload();
    assert.deepEqual(r.results[0], { changes: ["delivery.sender"] });
    assert.equal(second.healthChecks, 1);
    assert.equal(first.closed, true);
    client.putRequest(makeRequest({ id: "req-3" }));
    await waitFor(() => second.sent.length === 1, "an email through the new mailer");
    assert.equal(first.sent.length, 0);
  } finally {
    await s.stop();
  }
});

Deno.test("runAppWith() on SIGHUP with a failing new mailer keeps the old one", async () => {
  const client = new FakeTeleportClient();
  const first = new FakeMailer();
  const second = new FakeMailer();
  second.healthError = new MailerError('Cannot connect to SMTP server "x:25": refused', {
    retryable: true,
  });
  const next = config();
  next.smtp!.host = "x";
  const { r, s } = await startWithMailers(client, first, second, next);
  try {
    await r.reload();
    assert.match(String((r.results[0] as { error: Error }).error), /health check failed/);
    assert.equal(second.closed, true);
    client.putRequest(makeRequest({ id: "req-4" }));
    await waitFor(() => first.sent.length === 1, "an email through the old mailer");
  } finally {
    await s.stop();
  }
});

Deno.test("runAppWith() on SIGHUP with a changed [teleport] hands over to a new connection", async () => {
  await captureLogs(async (records) => {
    const oldClient = new FakeTeleportClient();
    const newClient = new FakeTeleportClient();
    const mailer = new FakeMailer();
    const next = config();
    next.teleport.addr = "127.0.0.1:3080";
    const r = reloadable({ config: next });
    const closed: FakeTeleportClient[] = [];
    const s = await startApp(oldClient, mailer, {
      ...r.over,
      connect: async (cfg) => {
        const client = cfg.addr === next.teleport.addr ? newClient : oldClient;
        return { client, ping: await client.ping(), close: () => closed.push(client) };
      },
    });
    try {
      await r.reload();
      assert.deepEqual(r.results[0], { changes: ["teleport"] });
      assert.deepEqual(closed, [oldClient]);
      newClient.putRequest(makeRequest({ id: "req-new-conn" }));
      await waitFor(() => mailer.sent.length === 1, "an email via the new connection");
      assert.ok(
        records.some((x) =>
          x.rawMessage === "Reconnected to Teleport with the reloaded configuration" &&
          x.properties.connection_mode === "direct"
        ),
      );
    } finally {
      await s.stop();
    }
    assert.deepEqual(closed, [oldClient, newClient]);
  });
});
