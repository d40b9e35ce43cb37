import assert from "node:assert/strict";
import { ConfigError, UsageError } from "../errors.ts";
import { PromMetrics } from "./metrics.ts";
import { formatAddr, handleDiagRequest, parseDiagAddr, startDiagServer } from "./server.ts";

Deno.test("parseDiagAddr() accepts HOST:PORT, bracketed IPv6 and port 0", () => {
  assert.deepEqual(parseDiagAddr("127.0.0.1:3000"), { hostname: "127.0.0.1", port: 3000 });
  assert.deepEqual(parseDiagAddr("localhost:0"), { hostname: "localhost", port: 0 });
  assert.deepEqual(parseDiagAddr("0.0.0.0:65535"), { hostname: "0.0.0.0", port: 65535 });
  assert.deepEqual(parseDiagAddr("[::1]:3000"), { hostname: "::1", port: 3000 });
  assert.equal(formatAddr({ hostname: "::1", port: 3000 }), "[::1]:3000");
  assert.equal(formatAddr({ hostname: "localhost", port: 1 }), "localhost:1");
});

Deno.test("parseDiagAddr() rejects anything else with a usage error naming the flag", () => {
  for (
    const [value, why] of [
      ["localhost", "expected HOST:PORT"],
      [":3000", "expected HOST:PORT with a host"],
      ["::1:3000", "put an IPv6 address in brackets"],
      ["127.0.0.1:65536", "the port must be at most 65535"],
      ["127.0.0.1:http", "expected HOST:PORT"],
      ["127.0.0.1:", "expected HOST:PORT"],
      ["a b:1", "expected HOST:PORT"],
      ["", "expected HOST:PORT"],
    ]
  ) {
    assert.throws(
      () => parseDiagAddr(value),
      (err: unknown) =>
        err instanceof UsageError &&
        err.message ===
          `invalid value "${value}" for flag '--diag-addr': ${why} (e.g. 127.0.0.1:3000)`,
      value,
    );
  }
});

Deno.test("handleDiagRequest() answers the three paths and 404 for anything else", async () => {
  const m = new PromMetrics({ processMetrics: false });
  const ask = async (path: string, method = "GET") => {
    const res = await handleDiagRequest(new Request(`http://x${path}`, { method }), m);
    return { status: res.status, body: await res.text() };
  };
  assert.deepEqual(await ask("/healthz"), { status: 200, body: "ok\n" });
  assert.deepEqual(await ask("/healthz", "HEAD"), { status: 200, body: "" });
  assert.deepEqual(await ask("/readyz"), {
    status: 503,
    body: "not ready: starting: connecting to Teleport and checking the mailer\n",
  });
  m.mailerChecked();
  m.watching();
  assert.deepEqual(await ask("/readyz"), { status: 200, body: "ready\n" });
  assert.match((await ask("/metrics")).body, /^teleport_email_ready 1$/m);
  for (const [path, method] of [["/"], ["/metrics/"], ["/healthz?x=1", "POST"], ["/x"]]) {
    assert.equal((await ask(path, method)).status, 404, `${method ?? "GET"} ${path}`);
  }
  assert.equal((await ask("/healthz?verbose=1")).status, 200, "a query string is ignored");
});

Deno.test("startDiagServer() serves over real HTTP where told, and closes", async () => {
  const m = new PromMetrics({ processMetrics: false });
  const server = startDiagServer({ hostname: "127.0.0.1", port: 0 }, m);
  try {
    assert.notEqual(server.addr.port, 0);
    const res = await fetch(`http://127.0.0.1:${server.addr.port}/healthz`);
    assert.equal(await res.text(), "ok\n");
  } finally {
    await server.close();
  }
  await assert.rejects(fetch(`http://127.0.0.1:${server.addr.port}/healthz`));
});

Deno.test("startDiagServer() on a busy port throws a ConfigError naming the flag", () => {
  using busy = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  assert.throws(
    () =>
      startDiagServer(
        { hostname: "127.0.0.1", port: busy.addr.port },
        new PromMetrics({ processMetrics: false }),
      ),
    (err: unknown) =>
      err instanceof ConfigError && err.key === "--diag-addr" &&
      err.message.startsWith(`Cannot listen on --diag-addr "127.0.0.1:${busy.addr.port}": `),
  );
});
