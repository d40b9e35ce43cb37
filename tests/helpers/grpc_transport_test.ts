import assert from "node:assert/strict";
import * as grpc from "@grpc/grpc-js";
import { create } from "@bufbuild/protobuf";
import net from "node:net";
import { Duplex } from "node:stream";
import type { Buffer } from "node:buffer";
import { Http2SubchannelConnector } from "@grpc/grpc-js/build/src/transport.js";
import {
  createDuplexClient,
  deserializer,
  DuplexCredentials,
  grpcServiceDefinition,
  serializer,
} from "./grpc_transport.ts";
import {
  AuthService,
  PingRequestSchema,
  PingResponseSchema,
} from "../../src/teleport/gen/teleport/legacy/client/proto/authservice_pb.ts";

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
