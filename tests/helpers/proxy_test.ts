import assert from "node:assert/strict";
import net from "node:net";
import tls from "node:tls";
import { Buffer } from "node:buffer";
import { TestCertificateAuthority } from "./ca.ts";
import { parseClientHello, ProxyEmulator } from "./proxy.ts";

/** Captures the first bytes a real `node:tls` client sends (its ClientHello). */
async function captureClientHello(opts: tls.ConnectionOptions): Promise<Buffer> {
  let resolveBytes: (b: Buffer) => void;
  const got = new Promise<Buffer>((r) => (resolveBytes = r));
  const sockets: net.Socket[] = [];
  const server = net.createServer((s) => {
    sockets.push(s);
    let buf = Buffer.alloc(0);
    s.on("data", (c: Buffer) => {
      buf = Buffer.concat([buf, c]);
      if (buf.length >= 5 && buf.length >= 5 + buf.readUInt16BE(3)) resolveBytes(buf);
    });
    s.on("error", () => {});
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const client = tls.connect({
    host: "127.0.0.1",
    port: (server.address() as net.AddressInfo).port,
    ...opts,
  });
  client.on("error", () => {});
  try {
    return await got;
  } finally {
    client.destroy();
    for (const s of sockets) s.destroy();
    await new Promise<void>((r) => server.close(() => r()));
  }
}

Deno.test("parseClientHello() reads ALPN and SNI from a real ClientHello, in pieces", async () => {
  const hello = await captureClientHello({
    servername: "teleport.cluster.local",
    ALPNProtocols: ["teleport-auth@6162.teleport.cluster.local", "h2"],
  });
  assert.deepEqual(parseClientHello(hello), {
    alpn: ["teleport-auth@6162.teleport.cluster.local", "h2"],
    sni: "teleport.cluster.local",
  });
  assert.equal(parseClientHello(hello.subarray(0, 3)), undefined);
  assert.equal(parseClientHello(hello.subarray(0, hello.length - 1)), undefined);
  assert.throws(
    () => parseClientHello(Buffer.from("GET / HTTP/1.1\r\n\r\n")),
    /not a TLS handshake/,
  );
  const none = await captureClientHello({ servername: "x.test" });
  assert.deepEqual(parseClientHello(none), { alpn: [], sni: "x.test" });
});

Deno.test("ProxyEmulator routes by ALPN and serves /webapi/find with the web certificate", async () => {
  const ca = await TestCertificateAuthority.create({ clusterName: "px.test" });
  const tunnels: string[] = [];
  const proxy = await ProxyEmulator.start({
    ca,
    onReverseTunnel: (s) => {
      tunnels.push(String(s.alpnProtocol));
      s.end("tunnel\n");
    },
  });
  try {
    const open = (alpn: string[]) =>
      new Promise<tls.TLSSocket>((resolve, reject) => {
        const s = tls.connect({
          host: "127.0.0.1",
          port: proxy.port,
          ca: ca.webCaPem,
          ALPNProtocols: alpn,
        }, () => resolve(s));
        s.once("error", reject);
      });
    // Reverse tunnel route: TLS terminated with the web cert, then the hook.
    const t = await open(["teleport-reversetunnel"]);
    assert.equal(t.alpnProtocol, "teleport-reversetunnel");
    const line = await new Promise<string>((r) => t.once("data", (c) => r(String(c))));
    assert.equal(line, "tunnel\n");
    t.destroy();
    assert.deepEqual(tunnels, ["teleport-reversetunnel"]);

    // Web route.
    const w = await open(["http/1.1"]);
    w.write("GET /webapi/find HTTP/1.1\r\nHost: x\r\n\r\n");
    const body = await new Promise<string>((resolve) => {
      let text = "";
      w.on("data", (c) => (text += c));
      w.once("end", () => resolve(text));
    });
    w.destroy();
    const json = JSON.parse(body.slice(body.indexOf("\r\n\r\n") + 4));
    assert.equal(json.cluster_name, "px.test");
    assert.equal(json.proxy.tls_routing_enabled, true);
    assert.equal(proxy.stats.find, 1);

    // teleport-auth@ with no Auth server configured: closed.
    await assert.rejects(open(["teleport-auth@7078.teleport.cluster.local", "h2"]));
    assert.deepEqual(proxy.stats.alpnSeen.map((a) => a[0]), [
      "teleport-reversetunnel",
      "http/1.1",
      "teleport-auth@7078.teleport.cluster.local",
    ]);
  } finally {
    await proxy.close();
  }
});
