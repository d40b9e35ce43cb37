import assert from "node:assert/strict";
import type http2 from "node:http2";
import { answer, serverAndConnection } from "../../tests/helpers/h2_server.ts";
import { unaryCall } from "./grpc_call.ts";
import { GrpcCallError, GrpcStatus } from "./grpc_status.ts";
import { Http2Connection, type Http2ConnectionOptions } from "./h2_connection.ts";

const OPTS = { maxReceiveLength: 1024, deadlineMs: 5_000 };
const NONE = new Uint8Array(0);

/** A server that answers `/ok` at once and holds `/hang` until the test answers it. */
function setup(opts: Partial<Http2ConnectionOptions> = {}) {
  return serverAndConnection(({ stream, headers }) => {
    if (headers[":path"] === "/ok") answer(stream, [new Uint8Array([1])]);
  }, opts);
}

function isGrpcError(code: number, details?: RegExp) {
  return (e: unknown) => {
    assert.ok(e instanceof GrpcCallError, String(e));
    assert.equal(e.code, code, e.message);
    if (details) assert.match(e.details, details);
    return true;
  };
}

Deno.test("Http2Connection dials on the first call only, once for concurrent calls", async () => {
  await using env = await setup();
  assert.equal(env.server.dialed.length, 0);
  const sessions = await Promise.all([1, 2, 3].map(() => env.conn.session()));
  assert.ok(sessions.every((s) => s === sessions[0]));
  await unaryCall(env.conn, "/ok", NONE, OPTS);
  assert.equal(env.conn.opened, 1);
  assert.equal(env.server.dialed.length, 1);
});

Deno.test("Http2Connection: calls beyond the server's concurrent-stream limit wait their turn", async () => {
  // Teleport announces a limit (1,000 streams); a burst of plugin-data writes may exceed it.
  await using env = await serverAndConnection(
    ({ stream }) => {
      setTimeout(() => answer(stream, [new Uint8Array([1])]), 5);
    },
    {},
    { maxConcurrentStreams: 2 },
  );
  const { server, conn } = env;
  await unaryCall(conn, "/first", NONE, OPTS); // the server's SETTINGS are in
  let open = 0, most = 0;
  server.handler = ({ stream }) => {
    most = Math.max(most, ++open);
    setTimeout(() => {
      open--;
      answer(stream, [new Uint8Array([1])]);
    }, 5);
  };
  const replies = await Promise.all(
    Array.from({ length: 20 }, () => unaryCall(conn, "/burst", NONE, OPTS)),
  );
  assert.equal(replies.length, 20);
  assert.equal(server.received.length, 21);
  assert.ok(most <= 2, `${most} streams open at once`);
  assert.equal(conn.opened, 1);
});

Deno.test("Http2Connection: after a GOAWAY new calls go to a new connection, open ones finish", async () => {
  await using env = await setup();
  const old = await env.conn.session();
  const hanging = unaryCall(env.conn, "/hang", NONE, OPTS);
  const [held] = await env.server.streams(1);
  const goaway = new Promise((r) => old.once("goaway", r));
  env.server.goAway();
  await goaway;
  const fresh = await env.conn.session();
  assert.notEqual(fresh, old);
  assert.equal(env.conn.opened, 2);
  await unaryCall(env.conn, "/ok", NONE, OPTS);
  answer(held.stream, [new Uint8Array([9])]);
  assert.deepEqual(Array.from(await hanging), [9]);
});

Deno.test("a session that refuses new streams fails the call UNAVAILABLE and is replaced", async () => {
  await using env = await setup();
  const session = await env.conn.session();
  session.request = () => {
    throw new Error("New streams cannot be created after receiving a GOAWAY");
  };
  await assert.rejects(
    unaryCall(env.conn, "/ok", NONE, OPTS),
    isGrpcError(GrpcStatus.UNAVAILABLE, /after receiving a GOAWAY/),
  );
  await unaryCall(env.conn, "/ok", NONE, OPTS);
  assert.equal(env.conn.opened, 2);
});

Deno.test("Http2Connection: a failed dial is UNAVAILABLE, and calls within the backoff do not dial", async () => {
  let dials = 0;
  const refuse = () => {
    dials++;
    return Promise.reject(new Error("connect ECONNREFUSED 127.0.0.1:1"));
  };
  const slow = new Http2Connection(refuse, { authority: "a", initialBackoffMs: 60_000 });
  const lastError = /^No connection established\. Last error: connect ECONNREFUSED/;
  await assert.rejects(slow.session(), isGrpcError(GrpcStatus.UNAVAILABLE, lastError));
  await assert.rejects(slow.session(), isGrpcError(GrpcStatus.UNAVAILABLE, lastError));
  assert.equal(dials, 1);
  slow.close();

  const eager = new Http2Connection(refuse, { authority: "a", initialBackoffMs: 0 });
  await assert.rejects(eager.session(), isGrpcError(GrpcStatus.UNAVAILABLE));
  await assert.rejects(eager.session(), isGrpcError(GrpcStatus.UNAVAILABLE));
  assert.equal(dials, 3);
  eager.close();
});

Deno.test("Http2Connection: a dial that succeeds after a failure ends the backoff", async () => {
  await using env = await setup();
  let fail = true;
  const conn = new Http2Connection(
    () => fail ? Promise.reject(new Error("no route")) : env.server.dial(),
    { authority: "a", initialBackoffMs: 0 },
  );
  try {
    await assert.rejects(unaryCall(conn, "/ok", NONE, OPTS), isGrpcError(GrpcStatus.UNAVAILABLE));
    fail = false;
    await unaryCall(conn, "/ok", NONE, OPTS);
    assert.equal(conn.opened, 1);
  } finally {
    conn.close();
  }
});

Deno.test("Http2Connection: answered keepalive PINGs keep the session", async () => {
  await using env = await setup({ keepaliveTimeMs: 10, keepaliveTimeoutMs: 50 });
  await unaryCall(env.conn, "/ok", NONE, OPTS);
  const session = await env.conn.session();
  const [server] = env.server.sessions;
  // 8 PINGs span more than the 50 ms timeout: an ack not taken would have dropped the session
  // (which also ends the wait).
  await new Promise<void>((resolve) => {
    let pings = 0;
    server.on("ping", () => ++pings === 8 && resolve());
    session.once("close", resolve);
  });
  assert.ok(!session.destroyed);
  await unaryCall(env.conn, "/ok", NONE, OPTS);
  assert.equal(env.conn.opened, 1);
});

Deno.test("Http2Connection: an unanswered keepalive PING drops the session and its calls", async () => {
  await using env = await setup({ keepaliveTimeMs: 20, keepaliveTimeoutMs: 50 });
  const session: http2.ClientHttp2Session = await env.conn.session();
  const hanging = unaryCall(env.conn, "/hang", NONE, { ...OPTS, deadlineMs: 10_000 });
  await env.server.streams(1);
  env.server.dialed[0].mute(); // the network stops delivering: no PING ACK comes back
  await assert.rejects(hanging, isGrpcError(GrpcStatus.UNAVAILABLE));
  assert.ok(session.destroyed);
  await unaryCall(env.conn, "/ok", NONE, OPTS);
  assert.equal(env.conn.opened, 2);
});

Deno.test("Http2Connection.close() cancels open calls and fails later ones", async () => {
  await using env = await setup();
  const hanging = unaryCall(env.conn, "/hang", NONE, OPTS);
  await env.server.streams(1);
  env.conn.close();
  await assert.rejects(hanging, isGrpcError(GrpcStatus.CANCELLED));
  await assert.rejects(env.conn.session(), isGrpcError(GrpcStatus.CANCELLED));
  await assert.rejects(unaryCall(env.conn, "/ok", NONE, OPTS), isGrpcError(GrpcStatus.CANCELLED));
  assert.ok(env.conn.closed);
});
