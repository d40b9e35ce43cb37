import assert from "node:assert/strict";
import * as grpc from "@grpc/grpc-js";
import { create } from "@bufbuild/protobuf";
import http2 from "node:http2";
import net from "node:net";
import { Duplex } from "node:stream";
import { Buffer } from "node:buffer";
import { Http2SubchannelConnector } from "@grpc/grpc-js/build/src/transport.js";
import {
  createDuplexClient,
  deserializer,
  DuplexCredentials,
  grpcServiceDefinition,
  guardHttp2GoawayDestroy,
  serializer,
} from "./grpc_transport.ts";
import {
  AuthService,
  PingRequestSchema,
  PingResponseSchema,
} from "./gen/teleport/legacy/client/proto/authservice_pb.ts";

/** A plaintext (h2c) grpc-js server answering Ping, bound to 127.0.0.1:0. */
async function startPingServer(): Promise<{ port: number; close(): void }> {
  const server = new grpc.Server();
  server.addService(grpcServiceDefinition(AuthService), {
    Ping: (_call: unknown, cb: grpc.sendUnaryData<unknown>) =>
      cb(null, create(PingResponseSchema, { ClusterName: "h2c" })),
  });
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync(
      "127.0.0.1:0",
      grpc.ServerCredentials.createInsecure(),
      (err, p) => err ? reject(err) : resolve(p),
    )
  );
  return { port, close: () => server.forceShutdown() };
}

/** A pure-JS Duplex around a TCP socket: no unref/ref/setNoDelay (what the shim must add). */
function jsDuplex(sock: net.Socket): Duplex {
  const d = new Duplex({
    write(chunk, _enc, cb) {
      sock.write(chunk, cb);
    },
    final(cb) {
      sock.end();
      cb();
    },
    read() {},
    destroy(err, cb) {
      sock.destroy();
      cb(err);
    },
  });
  sock.on("data", (b: Buffer) => d.push(b));
  sock.on("end", () => d.push(null));
  sock.on("close", () => d.destroy());
  sock.on("error", (e) => d.destroy(e));
  return d;
}

function ping(client: grpc.Client): Promise<string> {
  return new Promise((resolve, reject) =>
    client.makeUnaryRequest(
      "/proto.AuthService/Ping",
      serializer(PingRequestSchema),
      deserializer(PingResponseSchema),
      create(PingRequestSchema),
      new grpc.Metadata(),
      { deadline: Date.now() + 5_000 },
      (err, res) => err ? reject(err) : resolve(res!.ClusterName),
    )
  );
}

/** A loopback listener counting the TCP connections it accepts (closes each at once). */
async function startCountingListener(): Promise<
  { port: number; accepted(): number; close(): void }
> {
  let accepted = 0;
  const server = net.createServer((s) => {
    accepted++;
    s.destroy();
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    port: (server.address() as net.AddressInfo).port,
    accepted: () => accepted,
    close: () => server.close(),
  };
}

/** Credentials whose streams are plain TCP connections to `port` (a pure-JS Duplex). */
function tcpCredentials(port: number, opened: { count: number }): DuplexCredentials {
  return new DuplexCredentials(() =>
    new Promise<Duplex>((resolve, reject) => {
      const s = net.connect(port, "127.0.0.1", () => {
        opened.count++;
        resolve(jsDuplex(s));
      });
      s.once("error", reject);
    }), { secure: false });
}

Deno.test("grpc-js still has the internals DuplexCredentials hooks (_createSecureConnector, tcpConnect)", () => {
  // grpc-js is pinned (1.14.7); its subchannel asks credentials for a connector through
  // _createSecureConnector and dials the target in Http2SubchannelConnector.tcpConnect. If an
  // upgrade renames either, this test and the next ones fail.
  const insecure = grpc.credentials.createInsecure() as unknown as Record<string, unknown>;
  assert.equal(typeof insecure._createSecureConnector, "function");
  assert.equal(typeof DuplexCredentials.prototype._createSecureConnector, "function");
  const proto = Http2SubchannelConnector.prototype as unknown as Record<string, unknown>;
  assert.equal(typeof proto.tcpConnect, "function");
  assert.equal(typeof proto.connect, "function");
});

Deno.test("DuplexCredentials routes every grpc-js connection through the factory (with Deno unref shim)", async () => {
  const server = await startPingServer();
  const opened = { count: 0 };
  const creds = tcpCredentials(server.port, opened);
  const client = createDuplexClient(creds);
  try {
    assert.equal(await ping(client), "h2c");
    assert.equal(await ping(client), "h2c");
    assert.equal(opened.count, 1);
    assert.equal(creds.opened, 1);
  } finally {
    client.close();
    server.close();
  }
});

Deno.test("DuplexCredentials never opens a TCP connection to the channel target", async () => {
  // Point the channel target at a listener: grpc-js would dial it before asking the
  // credentials for the stream; with the hook it is never contacted.
  const server = await startPingServer();
  const target = await startCountingListener();
  const creds = tcpCredentials(server.port, { count: 0 });
  const client = new grpc.Client(`127.0.0.1:${target.port}`, creds, {
    "grpc.enable_http_proxy": 0,
  });
  try {
    assert.equal(await ping(client), "h2c");
    assert.equal(creds.opened, 1);
    assert.equal(target.accepted(), 0);
  } finally {
    client.close();
    target.close();
    server.close();
  }
});

Deno.test("Other grpc-js credentials still dial the target over TCP", async () => {
  const server = await startPingServer();
  const client = new grpc.Client(
    `127.0.0.1:${server.port}`,
    grpc.credentials.createInsecure(),
  );
  try {
    assert.equal(await ping(client), "h2c");
  } finally {
    client.close();
    server.close();
  }
});

Deno.test("DuplexCredentials surfaces a failing factory as UNAVAILABLE", async () => {
  const creds = new DuplexCredentials(() => Promise.reject(new Error("dial refused")));
  const client = createDuplexClient(creds);
  try {
    await assert.rejects(ping(client), (e: grpc.ServiceError) => {
      assert.equal(e.code, grpc.status.UNAVAILABLE);
      assert.match(e.details, /dial refused/);
      return true;
    });
  } finally {
    client.close();
  }
});

/** One HTTP/2 frame (9-byte header + payload). */
function h2Frame(type: number, flags: number, payload: Buffer): Buffer {
  const head = Buffer.alloc(9);
  head.writeUIntBE(payload.length, 0, 3);
  head[3] = type;
  head[4] = flags;
  return Buffer.concat([head, payload]);
}

/**
 * A raw HTTP/2 server on 127.0.0.1:0 that answers a client's preface with SETTINGS, SETTINGS ACK
 * and GOAWAY(last stream `last`, `code`, `data`), as a Go server draining an idle connection does.
 */
async function startGoawayServer(
  code: number,
  last: number,
  data = "",
): Promise<{ port: number; close(): void }> {
  const goaway = Buffer.alloc(8);
  goaway.writeUInt32BE(last, 0);
  goaway.writeUInt32BE(code, 4);
  const server = net.createServer((sock) => {
    sock.on("error", () => {});
    sock.write(h2Frame(4, 0, Buffer.alloc(0)));
    sock.once("data", () => {
      sock.write(Buffer.concat([
        h2Frame(4, 1, Buffer.alloc(0)),
        h2Frame(7, 0, Buffer.concat([goaway, Buffer.from(data)])),
      ]));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return { port: (server.address() as net.AddressInfo).port, close: () => server.close() };
}

for (
  const [name, code, last, data] of [
    ["NO_ERROR on an idle session (Go draining)", 0, 0x7fffffff, ""],
    ["ENHANCE_YOUR_CALM too_many_pings", 11, 0, "too_many_pings"],
  ] as const
) {
  Deno.test(`guardHttp2GoawayDestroy(): GOAWAY ${name} destroys the session after nghttp2 is done with the frame`, async () => {
    assert.equal(guardHttp2GoawayDestroy(), true, "Http2Session.prototype found and patched");
    const server = await startGoawayServer(code, last, data);
    try {
      const session = http2.connect(`http://127.0.0.1:${server.port}`);
      session.on("error", () => {});
      const closed = new Promise<void>((resolve) => session.once("close", resolve));
      // Without the guard, Deno's onGoawayData destroys the session (freeing the nghttp2 session)
      // right after this event, still inside nghttp2_session_mem_recv: a microtask sees it done.
      const destroyedInFrame = await new Promise<boolean>((resolve) =>
        session.once("goaway", () => queueMicrotask(() => resolve(session.destroyed)))
      );
      assert.equal(destroyedInFrame, false, "destroy() deferred past the GOAWAY frame");
      await closed;
      assert.equal(session.destroyed, true);
    } finally {
      server.close();
    }
  });
}
