import assert from "node:assert/strict";
import http2 from "node:http2";
import {
  answer,
  type H2TestServer,
  serverAndConnection,
  type StreamHandler,
} from "../../tests/helpers/h2_server.ts";
import { GrpcCall, serverStreamCall, unaryCall } from "./grpc_call.ts";
import { frameMessage } from "./grpc_frames.ts";
import { GrpcCallError, GrpcStatus } from "./grpc_status.ts";

const OPTS = { maxReceiveLength: 1024, deadlineMs: 5_000 };
const bytes = (...b: number[]) => new Uint8Array(b);

const setup = (handler: StreamHandler) => serverAndConnection(handler);

/** Asserts that `p` rejects with a GrpcCallError of `code` (and `details` when given). */
async function rejectsWith(p: Promise<unknown>, code: number, details?: string | RegExp) {
  await assert.rejects(p, (e: unknown) => {
    assert.ok(e instanceof GrpcCallError, String(e));
    assert.equal(e.code, code, e.message);
    if (typeof details === "string") assert.equal(e.details, details);
    else if (details) assert.match(e.details, details);
    return true;
  });
}

/** Resolves when the server's stream `n` (0-based) has closed, with its RST_STREAM code. */
async function serverStreamClosed(server: H2TestServer, n: number): Promise<number> {
  const { stream } = (await server.streams(n + 1))[n];
  if (!stream.closed) await new Promise((r) => stream.once("close", r));
  return stream.rstCode ?? 0;
}

/** The bytes of `b` (a Buffer or a Uint8Array), to compare. */
const list = (b: Uint8Array) => Array.from(b);

Deno.test("unaryCall() POSTs one framed message with gRPC's headers and returns the reply", async () => {
  await using env = await setup(async ({ stream, body }) => {
    const request = (await body).subarray(5);
    answer(stream, [request.map((b) => b * 2)]);
  });
  const reply = await unaryCall(env.conn, "/pkg.Svc/Method", bytes(1, 2, 3), OPTS);
  assert.deepEqual(list(reply), [2, 4, 6]);
  const { headers, body } = env.server.received[0];
  assert.deepEqual(list(await body), list(frameMessage(bytes(1, 2, 3))));
  assert.equal(headers[":method"], "POST");
  assert.equal(headers[":path"], "/pkg.Svc/Method");
  assert.equal(headers[":authority"], "auth.example.test");
  assert.equal(headers["content-type"], "application/grpc");
  assert.equal(headers["te"], "trailers");
  assert.match(String(headers["grpc-timeout"]), /^(5000|4\d{3})m$/); // the time left, in ms
});

Deno.test("unaryCall() reassembles a reply the server writes byte by byte", async () => {
  const message = new Uint8Array(300).map((_, i) => i % 251);
  await using env = await setup(({ stream }) => {
    stream.respond({ ":status": 200, "content-type": "application/grpc" }, {
      waitForTrailers: true,
    });
    stream.on("wantTrailers", () => stream.sendTrailers({ "grpc-status": "0" }));
    const framed = frameMessage(message);
    for (const b of framed) stream.write(bytes(b));
    stream.end();
  });
  assert.deepEqual(list(await unaryCall(env.conn, "/a.B/C", bytes(), OPTS)), list(message));
});

Deno.test("unaryCall() fails with the server's status, from the trailers or a Trailers-Only reply", async () => {
  await using env = await setup(({ stream, headers }) => {
    if (headers[":path"] === "/a.B/Trailers") {
      answer(stream, [bytes(1)], { code: GrpcStatus.FAILED_PRECONDITION, message: "k: né" });
    } else {
      stream.respond({
        ":status": 200,
        "content-type": "application/grpc",
        "grpc-status": "5",
        "grpc-message": "access%20request%20%22x%22%20is%20not%20found",
      }, { endStream: true });
    }
  });
  await rejectsWith(
    unaryCall(env.conn, "/a.B/Trailers", bytes(), OPTS),
    GrpcStatus.FAILED_PRECONDITION,
    "k: né",
  );
  await rejectsWith(
    unaryCall(env.conn, "/a.B/Only", bytes(), OPTS),
    GrpcStatus.NOT_FOUND,
    'access request "x" is not found',
  );
});

Deno.test("unaryCall() maps an HTTP error, a wrong content type, a missing status", async () => {
  await using env = await setup(({ stream, headers }) => {
    const path = headers[":path"];
    if (path === "/http/503") stream.respond({ ":status": 503 }, { endStream: true });
    else if (path === "/http/404") stream.respond({ ":status": 404 }, { endStream: true });
    else if (path === "/html") {
      stream.respond({ ":status": 200, "content-type": "text/html" });
      stream.end("<html>");
    } else {
      stream.respond({ ":status": 200, "content-type": "application/grpc" });
      stream.end(frameMessage(bytes(1)));
    }
  });
  await rejectsWith(unaryCall(env.conn, "/http/503", bytes(), OPTS), GrpcStatus.UNAVAILABLE);
  await rejectsWith(unaryCall(env.conn, "/http/404", bytes(), OPTS), GrpcStatus.UNIMPLEMENTED);
  await rejectsWith(unaryCall(env.conn, "/html", bytes(), OPTS), GrpcStatus.UNKNOWN, /text\/html/);
  await rejectsWith(
    unaryCall(env.conn, "/no-status", bytes(), OPTS),
    GrpcStatus.UNKNOWN,
    "No status received",
  );
});

Deno.test("unaryCall() wants exactly one whole message before an OK status", async () => {
  await using env = await setup(({ stream, headers }) => {
    const path = headers[":path"];
    if (path === "/none") return answer(stream, []);
    if (path === "/two") return answer(stream, [bytes(1), bytes(2)]);
    stream.respond({ ":status": 200, "content-type": "application/grpc" }, {
      waitForTrailers: true,
    });
    stream.on("wantTrailers", () => stream.sendTrailers({ "grpc-status": "0" }));
    stream.end(frameMessage(bytes(1, 2, 3)).subarray(0, 6)); // cut inside the message
  });
  await rejectsWith(unaryCall(env.conn, "/none", bytes(), OPTS), GrpcStatus.UNIMPLEMENTED);
  await rejectsWith(unaryCall(env.conn, "/two", bytes(), OPTS), GrpcStatus.UNIMPLEMENTED);
  await rejectsWith(unaryCall(env.conn, "/cut", bytes(), OPTS), GrpcStatus.INTERNAL);
});

Deno.test("unaryCall() refuses an oversized reply and resets its stream", async () => {
  await using env = await setup(({ stream }) => answer(stream, [new Uint8Array(2048)]));
  const closed = serverStreamClosed(env.server, 0);
  await rejectsWith(
    unaryCall(env.conn, "/a.B/C", bytes(), OPTS),
    GrpcStatus.RESOURCE_EXHAUSTED,
    "received message larger than max (2048 vs. 1024)",
  );
  await closed;
});

Deno.test("unaryCall() maps a stream the server resets as grpc-js does", async () => {
  const codes: Record<string, number> = {
    "/refused": http2.constants.NGHTTP2_REFUSED_STREAM,
    "/internal": http2.constants.NGHTTP2_INTERNAL_ERROR,
    "/calm": http2.constants.NGHTTP2_ENHANCE_YOUR_CALM,
  };
  await using env = await setup(({ stream, headers }) => stream.close(codes[headers[":path"]!]));
  await rejectsWith(unaryCall(env.conn, "/refused", bytes(), OPTS), GrpcStatus.UNAVAILABLE);
  await rejectsWith(
    unaryCall(env.conn, "/internal", bytes(), OPTS),
    GrpcStatus.INTERNAL,
    "Received RST_STREAM with code 2",
  );
  await rejectsWith(unaryCall(env.conn, "/calm", bytes(), OPTS), GrpcStatus.RESOURCE_EXHAUSTED);
});

Deno.test("a call past its deadline fails DEADLINE_EXCEEDED and resets its stream", async () => {
  await using env = await setup(() => {}); // never answers
  const closed = serverStreamClosed(env.server, 0);
  await rejectsWith(
    unaryCall(env.conn, "/a.B/C", bytes(), { ...OPTS, deadlineMs: 50 }),
    GrpcStatus.DEADLINE_EXCEEDED,
  );
  assert.equal(await closed, http2.constants.NGHTTP2_CANCEL);
  assert.match(String(env.server.received[0].headers["grpc-timeout"]), /^\d\d?m$/);
});

Deno.test("a call whose signal aborts fails CANCELLED and resets its stream", async () => {
  await using env = await setup(() => {});
  const ac = new AbortController();
  const call = unaryCall(env.conn, "/a.B/C", bytes(), { ...OPTS, signal: ac.signal });
  const closed = serverStreamClosed(env.server, 0);
  await env.server.streams(1);
  ac.abort();
  await rejectsWith(call, GrpcStatus.CANCELLED, "Cancelled on client");
  assert.equal(await closed, http2.constants.NGHTTP2_CANCEL);
  const aborted = AbortSignal.abort();
  await rejectsWith(unaryCall(env.conn, "/a.B/C", bytes(), { ...OPTS, signal: aborted }), 1);
  assert.equal(env.server.received.length, 1, "an aborted signal sends nothing");
});

Deno.test("calls share one connection; a lost connection fails its calls UNAVAILABLE", async () => {
  await using env = await setup(({ stream, headers }) => {
    if (headers[":path"] === "/hang") return;
    answer(stream, [bytes(1)]);
  });
  await Promise.all([1, 2, 3].map(() => unaryCall(env.conn, "/ok", bytes(), OPTS)));
  assert.equal(env.conn.opened, 1);
  const hanging = unaryCall(env.conn, "/hang", bytes(), OPTS);
  await env.server.streams(4);
  for (const d of env.server.dialed) d.destroy();
  await rejectsWith(hanging, GrpcStatus.UNAVAILABLE);
  assert.deepEqual(list(await unaryCall(env.conn, "/ok", bytes(), OPTS)), [1]);
  assert.equal(env.conn.opened, 2);
});

Deno.test("serverStreamCall() yields every message in order and ends on OK", async () => {
  const N = 500;
  await using env = await setup(({ stream }) => {
    answer(stream, Array.from({ length: N }, (_, i) => bytes(i >> 8, i & 255)));
  });
  const got: number[] = [];
  for await (const m of serverStreamCall(env.conn, "/a.B/Stream", bytes(), OPTS)) {
    got.push(m[0] * 256 + m[1]);
    // A slow reader: the call pauses at its high-water mark and resumes.
    if (got.length % 100 === 0) await new Promise((r) => setTimeout(r, 10));
  }
  assert.deepEqual(got, Array.from({ length: N }, (_, i) => i));
});

Deno.test("serverStreamCall() throws the status that ends the stream; leaving early cancels", async () => {
  await using env = await setup(({ stream, headers }) => {
    if (headers[":path"] === "/fails") {
      return answer(stream, [bytes(1)], { code: GrpcStatus.UNAVAILABLE, message: "dropped" });
    }
    stream.respond({ ":status": 200, "content-type": "application/grpc" });
    stream.write(frameMessage(bytes(7))); // and never ends
  });
  const seen: Uint8Array[] = [];
  await rejectsWith(
    (async () => {
      for await (const m of serverStreamCall(env.conn, "/fails", bytes(), OPTS)) seen.push(m);
    })(),
    GrpcStatus.UNAVAILABLE,
    "dropped",
  );
  assert.deepEqual(seen.map(list), [[1]]);

  const closed = serverStreamClosed(env.server, 1);
  for await (const m of serverStreamCall(env.conn, "/open", bytes(), OPTS)) {
    assert.deepEqual(list(m), [7]);
    break;
  }
  assert.equal(await closed, http2.constants.NGHTTP2_CANCEL);
});

Deno.test("GrpcCall.pause() holds messages back until resume()", async () => {
  const N = 200; // 200 kB: more than HTTP/2's initial window of 64 KiB
  await using env = await setup(({ stream }) => {
    answer(stream, Array.from({ length: N }, () => new Uint8Array(1000)));
  });
  let count = 0;
  let atResume = -1;
  const call: GrpcCall = new GrpcCall(env.conn, "/a.B/C", bytes(), OPTS, () => {
    if (++count > 1) return;
    call.pause();
    // Long enough for the server to send all it is let to; the chunk in hand is still read.
    setTimeout(() => {
      atResume = count;
      call.resume();
    }, 100);
  });
  await call.done;
  // Paused, the client grants no more credit than HTTP/2's initial window (65,535 bytes).
  const window = Math.ceil(65_535 / (5 + 1000));
  assert.ok(atResume > 0 && atResume <= window, `${atResume} messages read while paused`);
  assert.equal(count, N);
});
