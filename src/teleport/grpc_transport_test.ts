import assert from "node:assert/strict";
import * as grpc from "@grpc/grpc-js";
import { create } from "@bufbuild/protobuf";
import net from "node:net";
import { Duplex } from "node:stream";
import type { Buffer } from "node:buffer";
import {
  deserializer,
  DuplexCredentials,
  grpcServiceDefinition,
  serializer,
  startThrowawayTarget,
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

Deno.test("grpc-js still exposes the _createSecureConnector hook DuplexCredentials overrides", () => {
  // grpc-js is pinned (1.14.7); its subchannel asks credentials for a connector through this
  // internal method. If an upgrade renames it, this test and the next one fail.
  const insecure = grpc.credentials.createInsecure() as unknown as Record<string, unknown>;
  assert.equal(typeof insecure._createSecureConnector, "function");
  assert.equal(typeof DuplexCredentials.prototype._createSecureConnector, "function");
});

Deno.test("DuplexCredentials routes every grpc-js connection through the factory (with Deno unref shim)", async () => {
  const server = await startPingServer();
  const target = await startThrowawayTarget();
  let opened = 0;
  const creds = new DuplexCredentials(() =>
    new Promise<Duplex>((resolve, reject) => {
      const s = net.connect(server.port, "127.0.0.1", () => {
        opened++;
        resolve(jsDuplex(s));
      });
      s.once("error", reject);
    }), { secure: false });
  const client = new grpc.Client(target.target, creds);
  try {
    assert.equal(await ping(client), "h2c");
    assert.equal(await ping(client), "h2c");
    assert.equal(opened, 1);
    assert.equal(creds.opened, 1);
  } finally {
    client.close();
    target.close();
    server.close();
  }
});

Deno.test("DuplexCredentials surfaces a failing factory as UNAVAILABLE", async () => {
  const target = await startThrowawayTarget();
  const creds = new DuplexCredentials(() => Promise.reject(new Error("dial refused")));
  const client = new grpc.Client(target.target, creds);
  try {
    await assert.rejects(ping(client), (e: grpc.ServiceError) => {
      assert.equal(e.code, grpc.status.UNAVAILABLE);
      assert.match(e.details, /dial refused/);
      return true;
    });
  } finally {
    client.close();
    target.close();
  }
});

Deno.test("startThrowawayTarget() closes accepted connections at once", async () => {
  const target = await startThrowawayTarget();
  try {
    const [host, port] = target.target.split(":");
    const closed = await new Promise<boolean>((resolve, reject) => {
      const s = net.connect(Number(port), host);
      s.on("close", () => resolve(true));
      s.on("error", reject);
    });
    assert.equal(closed, true);
  } finally {
    target.close();
  }
});
