import assert from "node:assert/strict";
import net from "node:net";
import { probeSshGreeting } from "./ssh_probe.ts";

/** A TCP server on 127.0.0.1:0 running `onConn` for each connection; `fn` gets its address. */
async function withServer(
  onConn: (s: net.Socket, firstBytes: Promise<string>) => void,
  fn: (addr: string) => Promise<void>,
): Promise<void> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((s) => {
    sockets.add(s);
    s.on("error", () => {});
    onConn(s, new Promise((r) => s.once("data", (c) => r(String(c)))));
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  try {
    await fn(`127.0.0.1:${(server.address() as net.AddressInfo).port}`);
  } finally {
    for (const s of sockets) s.destroy();
    await new Promise<void>((r) => server.close(() => r()));
  }
}

const opts = () => ({ env: {}, signal: AbortSignal.timeout(5000) });

Deno.test("probeSshGreeting() sends an identification line and accepts the server's, after other lines", async () => {
  let got = "";
  await withServer((s, first) => {
    first.then((line) => {
      got = line;
      s.write("a banner line\r\nSSH-2.0-Teleport\r\n");
    });
  }, async (addr) => {
    await probeSshGreeting(addr, opts());
  });
  assert.match(got, /^SSH-2\.0-\S+\r\n$/);
});

Deno.test("probeSshGreeting() rejects a server that answers otherwise or closes", async () => {
  await withServer((s) => s.end("HTTP/1.1 400 Bad Request\r\n\r\n"), async (addr) => {
    await assert.rejects(probeSshGreeting(addr, opts()), /does not speak SSH/);
  });
  await withServer((s) => s.destroy(), async (addr) => {
    await assert.rejects(probeSshGreeting(addr, opts()), /does not speak SSH/);
  });
});

Deno.test("probeSshGreeting() stops when its signal aborts on a silent server", async () => {
  await withServer(() => {}, async (addr) => {
    const ac = new AbortController();
    const p = probeSshGreeting(addr, { env: {}, signal: ac.signal });
    ac.abort(new DOMException("stop", "AbortError"));
    await assert.rejects(p, (err: unknown) => (err as Error).name === "AbortError");
  });
});
