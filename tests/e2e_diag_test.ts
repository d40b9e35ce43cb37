/**
 * End-to-end diagnostics endpoint (`start --diag-addr`): the real CLI against the test Teleport
 * server and the real SMTP server, queried over real HTTP. `/readyz` follows the plugin's state
 * (starting, watching, Teleport down, back), the counters match the emails the SMTP server
 * received, unknown paths are 404, and without the flag the process has no listening socket.
 */
import assert from "node:assert/strict";
import { E2eEnv } from "./helpers/e2e_env.ts";
import type { PluginProcess } from "./helpers/plugin_process.ts";

const OSS = "requester-oss@example.com";
const R1 = "reviewer1@example.com";

/** Starts the plugin with `--diag-addr=127.0.0.1:0` and returns it with the served base URL. */
async function startWithDiag(
  env: E2eEnv,
  waitReady = true,
): Promise<{ plugin: PluginProcess; base: string }> {
  const plugin = await env.startPlugin({
    waitReady,
    args: ["start", "-c", env.configPath, "--diag-addr=127.0.0.1:0"],
  });
  const [line] = await plugin.waitForLog((l) => l.msg === "Serving diagnostics");
  return { plugin, base: `http://${line.address}` };
}

async function get(base: string, path: string, method = "GET") {
  const res = await fetch(base + path, { method });
  return { status: res.status, body: await res.text(), type: res.headers.get("content-type") };
}

/** Polls `/readyz` until its status is `status` (and its body matches `body`); bounded. */
async function waitForReadyz(base: string, status: number, body?: RegExp, timeoutMs = 30_000) {
  const deadline = Date.now() + timeoutMs;
  let last = { status: 0, body: "" };
  while (Date.now() < deadline) {
    last = await get(base, "/readyz");
    if (last.status === status && (body === undefined || body.test(last.body))) return last;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(`timed out waiting for /readyz ${status}; last: ${last.status} ${last.body}`);
}

/** Parses the Prometheus text format into `name{labels}` → value. */
function parseMetrics(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split("\n")) {
    if (line === "" || line.startsWith("#")) continue;
    const m = /^(\S+?(?:\{.*\})?) (\S+)$/.exec(line);
    if (!m) throw new Error(`bad metrics line: ${line}`);
    out.set(m[1], Number(m[2]));
  }
  return out;
}

async function metrics(base: string): Promise<Map<string, number>> {
  const res = await get(base, "/metrics");
  assert.equal(res.status, 200);
  assert.match(res.type ?? "", /^text\/plain; version=0\.0\.4/);
  return parseMetrics(res.body);
}

Deno.test("e2e diag: /readyz is 503 until INIT, 200 when watching, 503 while Teleport is down, 200 after", async () => {
  // No INIT at first: the plugin connects and checks the mailer, then waits on the stream.
  await using env = await E2eEnv.start({ server: { sendInit: false } });
  const { plugin, base } = await startWithDiag(env, false);
  await waitForReadyz(base, 503, /^not ready: starting: waiting for the watch stream's INIT/);
  assert.deepEqual(await get(base, "/healthz"), {
    status: 200,
    body: "ok\n",
    type: "text/plain; charset=utf-8",
  });
  assert.equal((await metrics(base)).get("teleport_email_ready"), 0);

  env.teleport.sendInit = true;
  env.teleport.dropStreams(); // the plugin reconnects and now gets its INIT
  await plugin.ready();
  assert.deepEqual(await waitForReadyz(base, 200), {
    status: 200,
    body: "ready\n",
    type: "text/plain; charset=utf-8",
  });
  const up = await metrics(base);
  assert.equal(up.get("teleport_email_ready"), 1);
  assert.ok(up.get("teleport_email_last_event_timestamp_seconds")! > 0);
  const reconnects = up.get("teleport_email_watch_reconnects_total")!;
  assert.ok(reconnects >= 1, "the dropped stream was counted");

  await env.teleport.stop();
  const down = await waitForReadyz(base, 503, /^not ready: reconnecting to Teleport/);
  assert.equal(down.body.split("\n").length, 2, "one line");
  assert.equal((await get(base, "/healthz")).status, 200, "alive while not ready");
  const during = await metrics(base);
  assert.equal(during.get("teleport_email_ready"), 0);
  assert.ok(during.get("teleport_email_watch_reconnects_total")! > reconnects);

  await env.teleport.restart();
  await waitForReadyz(base, 200);
  assert.equal((await metrics(base)).get("teleport_email_ready"), 1);
  assert.equal(await plugin.stop(), 0);
});

for (const mailer of ["smtp", "mailgun"] as const) {
  Deno.test(`e2e diag ${mailer}: the counters rise by exactly the emails delivered, by kind`, async () => {
    await countersTest(mailer);
  });
}

async function countersTest(mailer: "smtp" | "mailgun"): Promise<void> {
  await using env = await E2eEnv.start({ mailer });
  const { plugin, base } = await startWithDiag(env);
  const before = await metrics(base);
  for (const kind of ["new", "review", "resolution"]) {
    assert.equal(before.get(`teleport_email_emails_sent_total{kind="${kind}"}`), 0, kind);
  }
  assert.equal(before.get("teleport_email_requests_in_flight"), 0);
  const expiry = before.get("teleport_email_identity_expiry_timestamp_seconds")!;
  assert.ok(expiry > Date.now() / 1000, `identity expiry ${expiry} is in the future`);

  const t = env.teleport;
  const a = t.createAccessRequest({ user: OSS, roles: ["editor"], suggestedReviewers: [R1] });
  const b = t.createAccessRequest({ user: OSS, roles: ["editor"] });
  const c = t.createAccessRequest({
    user: OSS,
    roles: ["editor"],
    thresholds: { approve: 2, deny: 2 },
  });
  await env.waitForEmailsFor(a.id, 2);
  await env.waitForEmailsFor(b.id, 1);
  await env.waitForEmailsFor(c.id, 1);
  t.submitReview(c.id, { author: R1, proposedState: "APPROVED", reason: "fine" });
  t.setState(a.id, "APPROVED", "ok");
  t.setState(b.id, "DENIED", "no");
  await env.waitForEmailsFor(c.id, 2);
  await env.waitForEmailsFor(a.id, 4);
  await env.waitForEmailsFor(b.id, 2);
  const emails = await env.waitForNoMoreEmails();

  const count = (re: RegExp) => emails.filter((e) => re.test(e.text)).length;
  const sent = {
    new: count(/^You have a new Role Request:/),
    review: count(/ reviewed the request at /),
    resolution: count(/^Role Request has been resolved:/),
  };
  assert.deepEqual(sent, { new: 4, review: 1, resolution: 3 });
  const after = await metrics(base);
  for (const [kind, n] of Object.entries(sent)) {
    assert.equal(after.get(`teleport_email_emails_sent_total{kind="${kind}"}`), n, kind);
  }
  assert.equal(after.get('teleport_email_emails_sent_total{kind="other"}'), 0);
  assert.equal(after.get("teleport_email_send_duration_seconds_count"), emails.length);
  for (const [key, value] of after) {
    if (key.startsWith("teleport_email_send_failures_total")) assert.equal(value, 0, key);
  }
  assert.equal(after.get("teleport_email_requests_in_flight"), 0);
  assert.ok(after.get("process_resident_memory_bytes")! > 0, "memory from Deno.memoryUsage()");
  assert.ok(after.has("nodejs_eventloop_lag_seconds"));
  // Bounded labels only: no recipient address, request ID or password in the scrape.
  const text = (await get(base, "/metrics")).body;
  for (const secret of [OSS, R1, "all@example.com", a.id, "e2e-smtp-secret", "e2e-mailgun-key"]) {
    assert.equal(text.includes(secret), false, secret);
  }
  assert.equal(await plugin.stop(), 0);
}

/** Polls `/metrics` until `series` reaches `value`; bounded. */
async function waitForMetric(base: string, series: string, value: number, timeoutMs = 30_000) {
  const deadline = Date.now() + timeoutMs;
  let last: number | undefined;
  while (Date.now() < deadline) {
    last = (await metrics(base)).get(series);
    if (last === value) return;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(`timed out waiting for ${series} = ${value}; last: ${last}`);
}

Deno.test("e2e diag: rejected sends are counted as permanent; 5 in a row make /readyz 503 until one succeeds", async () => {
  await using env = await E2eEnv.start({
    mailer: "smtp",
    roleToRecipients: { "*": ["bad@example.com"] },
  });
  env.smtp!.rejectRecipients.set("bad@example.com", { code: 550, message: "No such user" });
  const { plugin, base } = await startWithDiag(env);
  await waitForReadyz(base, 200);
  const failed = 'teleport_email_send_failures_total{kind="new",reason="permanent"}';
  for (let i = 0; i < 5; i++) env.teleport.createAccessRequest({ user: OSS, roles: ["editor"] });
  await waitForMetric(base, failed, 5);
  const notReady = await waitForReadyz(base, 503);
  assert.equal(
    notReady.body,
    "not ready: the last 5 email send attempts all failed (last failure: permanent)\n",
  );
  const m = await metrics(base);
  assert.equal(m.get('teleport_email_send_failures_total{kind="new",reason="temporary"}'), 0);
  assert.equal(m.get('teleport_email_emails_sent_total{kind="new"}'), 0);
  assert.equal(m.get("teleport_email_ready"), 0);
  assert.equal((await get(base, "/metrics")).body.includes("bad@example.com"), false);

  env.smtp!.rejectRecipients.clear();
  const ok = env.teleport.createAccessRequest({ user: OSS, roles: ["editor"] });
  await env.waitForEmailsFor(ok.id, 1);
  await waitForReadyz(base, 200);
  await waitForMetric(base, 'teleport_email_emails_sent_total{kind="new"}', 1);
  assert.equal((await metrics(base)).get(failed), 5, "permanent failures are not retried");
  assert.equal(await plugin.stop(), 0);
});

Deno.test("e2e diag: unknown paths and methods are 404", async () => {
  await using env = await E2eEnv.start();
  const { plugin, base } = await startWithDiag(env);
  for (
    const [path, method] of [
      ["/", "GET"],
      ["/metricsx", "GET"],
      ["/readyz/", "GET"],
      [
        "/debug/pprof",
        "GET",
      ],
      ["/healthz", "POST"],
      ["/metrics", "DELETE"],
    ]
  ) {
    const res = await get(base, path, method);
    assert.equal(res.status, 404, `${method} ${path}`);
  }
  assert.equal((await get(base, "/healthz")).status, 200);
  assert.equal(await plugin.stop(), 0);
});

/** `HEX_IP:HEX_PORT` of /proc/net/tcp* as `a.b.c.d:port` (IPv4) or `[hex]:port` (IPv6). */
function procAddress(local: string): string {
  const [hexIp, hexPort] = local.split(":");
  const port = parseInt(hexPort, 16);
  if (hexIp.length !== 8) return `[${hexIp}]:${port}`;
  return `${hexIp.match(/../g)!.reverse().map((b) => parseInt(b, 16)).join(".")}:${port}`;
}

/**
 * The listening sockets process `pid` holds: TCP in LISTEN state (st `0A` in net/tcp, net/tcp6)
 * and Unix sockets accepting connections (flag `__SO_ACCEPTCON` in net/unix). The tables list
 * the whole network namespace, so only the inodes of the process's own fds count.
 */
async function listeners(pid: number): Promise<string[]> {
  const inodes = new Set<string>();
  for await (const fd of Deno.readDir(`/proc/${pid}/fd`)) {
    const target = await Deno.readLink(`/proc/${pid}/fd/${fd.name}`).catch(() => "");
    const m = /^socket:\[(\d+)\]$/.exec(target);
    if (m) inodes.add(m[1]);
  }
  const found: string[] = [];
  for (const table of ["tcp", "tcp6"]) {
    const text = await Deno.readTextFile(`/proc/${pid}/net/${table}`);
    for (const row of text.split("\n").slice(1)) {
      // sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode
      const f = row.trim().split(/\s+/);
      if (f.length > 9 && f[3] === "0A" && inodes.has(f[9])) found.push(procAddress(f[1]));
    }
  }
  const unix = await Deno.readTextFile(`/proc/${pid}/net/unix`);
  for (const row of unix.split("\n").slice(1)) {
    // Num RefCount Protocol Flags Type St Inode [Path]; Flags 00010000 = __SO_ACCEPTCON
    const f = row.trim().split(/\s+/);
    if (f.length > 6 && (parseInt(f[3], 16) & 0x10000) !== 0 && inodes.has(f[6])) {
      found.push(`unix:${f[7] ?? "(unnamed)"}`);
    }
  }
  return found.sort();
}

/** Whether something answers HTTP on 127.0.0.1:`port`. */
async function servesHttp(port: number): Promise<boolean> {
  try {
    await (await fetch(`http://127.0.0.1:${port}/healthz`)).body?.cancel();
    return true;
  } catch {
    return false;
  }
}

/**
 * The listeners of process `pid` other than its liveness socket (a Unix socket in the runtime
 * directory that a restarted process on the same host connects to, to learn that a lease holder
 * has exited; never a network port). Asserts that the liveness socket is there, in `dir`.
 */
async function listenersBesidesLiveness(pid: number, dir: string): Promise<string[]> {
  const all = await listeners(pid);
  const liveness = all.filter((l) => l.startsWith(`unix:${dir}/teleport-email-${pid}-`));
  assert.equal(liveness.length, 1, `one liveness socket in ${dir}: ${all.join(", ")}`);
  return all.filter((l) => l !== liveness[0]);
}

Deno.test("e2e diag: without --diag-addr the process listens on no port (only its liveness socket); with it, only on the endpoint", async () => {
  await using env = await E2eEnv.start();
  // Ready means connected to Teleport over gRPC, watching, and the mailer checked.
  const plain = await env.startPlugin();
  assert.deepEqual(await listenersBesidesLiveness(plain.pid, env.dir), []);
  assert.equal(plain.logs.some((l) => l.msg === "Serving diagnostics"), false);
  assert.equal(await plain.stop(), 0);

  // The same check sees the endpoint when the flag is given (so the empty answer above means it).
  const { plugin, base } = await startWithDiag(env);
  const diagPort = Number(new URL(base).port);
  assert.deepEqual(await listenersBesidesLiveness(plugin.pid, env.dir), [`127.0.0.1:${diagPort}`]);
  assert.equal(await servesHttp(diagPort), true);
  assert.equal(await plugin.stop(), 0);
});

Deno.test("e2e diag: a bad --diag-addr is a usage error and a busy one a one-line error, both naming the flag", async () => {
  await using env = await E2eEnv.start();
  const bad = await env.startPlugin({
    waitReady: false,
    args: ["start", "-c", env.configPath, "--diag-addr=localhost"],
  });
  assert.equal(await bad.exited, 2);
  assert.match(
    bad.stderrLines[0],
    /^teleport-email: error: invalid value "localhost" for flag '--diag-addr': expected HOST:PORT/,
  );

  using busy = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const taken = await env.startPlugin({
    waitReady: false,
    args: ["start", "-c", env.configPath, `--diag-addr=127.0.0.1:${busy.addr.port}`],
  });
  assert.equal(await taken.exited, 1);
  const fatal = taken.logs.find((l) => l.msg === "Terminating with fatal error");
  assert.match(
    String(fatal?.error),
    new RegExp(`^Cannot listen on --diag-addr "127\\.0\\.0\\.1:${busy.addr.port}": `),
  );
  assert.equal(taken.logs.some((l) => l.msg === "Plugin is ready"), false);
});
