import assert from "node:assert/strict";
import tls from "node:tls";
import type net from "node:net";
import { TestCertificateAuthority } from "../../tests/helpers/ca.ts";
import { findProxy } from "./webapi.ts";

const ca = await TestCertificateAuthority.create({ clusterName: "webapi.example" });
const web = await ca.issueServerCert({ dnsNames: ["localhost"], signedBy: "web-ca" });

/** An HTTPS server on 127.0.0.1:0 answering every request with the raw `response`. */
async function withWebServer(
  response: string,
  fn: (target: { host: string; port: number }, heads: string[]) => Promise<void>,
): Promise<void> {
  const heads: string[] = [];
  const sockets = new Set<net.Socket>();
  const server = tls.createServer({ key: web.keyPem, cert: web.certPem }, (s) => {
    sockets.add(s);
    s.on("error", () => {});
    let head = "";
    s.on("data", (c: Uint8Array) => {
      head += new TextDecoder().decode(c);
      if (head.includes("\r\n\r\n")) {
        heads.push(head);
        s.end(response);
      }
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  try {
    await fn({ host: "127.0.0.1", port: (server.address() as net.AddressInfo).port }, heads);
  } finally {
    for (const s of sockets) s.destroy();
    await new Promise<void>((r) => server.close(() => r()));
  }
}

const opts = { env: {}, roots: [ca.webCaPem] };

Deno.test("findProxy() reads a chunked /webapi/find answer and sends Go's request line", async () => {
  const json = JSON.stringify({
    cluster_name: "webapi.example",
    proxy: { tls_routing_enabled: true },
  });
  const chunked = `${(10).toString(16)}\r\n${json.slice(0, 10)}\r\n` +
    `${(json.length - 10).toString(16)}\r\n${json.slice(10)}\r\n0\r\n\r\n`;
  await withWebServer(
    `HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n${chunked}`,
    async (target, heads) => {
      const found = await findProxy(target, opts);
      assert.equal(found.cluster_name, "webapi.example");
      assert.equal(found.proxy?.tls_routing_enabled, true);
      assert.match(heads[0], /^GET \/webapi\/find HTTP\/1\.1\r\n/);
      assert.match(heads[0], new RegExp(`\r\nhost: 127\\.0\\.0\\.1:${target.port}\r\n`, "i"));
    },
  );
});

Deno.test("findProxy() reports a non-200 answer, a non-JSON body and an untrusted certificate", async () => {
  await withWebServer("HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n", async (target) => {
    await assert.rejects(findProxy(target, opts), /\/webapi\/find answered 404 Not Found/);
  });
  await withWebServer("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", async (target) => {
    await assert.rejects(findProxy(target, opts), /did not return JSON \(not a Teleport Proxy\?\)/);
  });
  await withWebServer("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}", async (target) => {
    await assert.rejects(findProxy(target, { env: {}, roots: [ca.hostCaPem] }), (err: unknown) => {
      assert.ok((err as { code?: string }).code, String(err));
      return true;
    });
  });
});
