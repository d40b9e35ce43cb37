import assert from "node:assert/strict";
import net from "node:net";
import crypto from "node:crypto";
import { Buffer } from "node:buffer";
import type { Duplex } from "node:stream";
import { readHttpHead } from "./dial_net.ts";
import { UpgradeNotSupportedError, upgradeWebSocket } from "./websocket.ts";
import {
  encodeFrame,
  webSocketAccept,
  WebSocketDuplex,
} from "../../tests/helpers/websocket_server.ts";

/** A TCP server on 127.0.0.1:0 whose connections go to `onConn`; closes everything at the end. */
async function withServer(
  onConn: (s: net.Socket) => void,
  fn: (port: number) => Promise<void>,
): Promise<void> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((s) => {
    sockets.add(s);
    s.once("close", () => sockets.delete(s));
    s.on("error", () => {});
    onConn(s);
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  try {
    await fn((server.address() as net.AddressInfo).port);
  } finally {
    for (const s of sockets) s.destroy();
    await new Promise<void>((r) => server.close(() => r()));
  }
}

function connect(port: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ host: "127.0.0.1", port }, () => resolve(s));
    s.once("error", reject);
  });
}

function readExactly(s: Duplex, n: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const timer = setTimeout(
      () => reject(new Error(`timed out after ${size} of ${n} bytes`)),
      5000,
    );
    const onData = (c: Buffer) => {
      chunks.push(c);
      size += c.length;
      if (size >= n) {
        clearTimeout(timer);
        s.off("data", onData);
        resolve(Buffer.concat(chunks));
      }
    };
    s.on("data", onData);
  });
}

/** Server side of the handshake: answers 101 with `protocol` (or `status`), returns the stream. */
function acceptUpgrade(
  s: net.Socket,
  opts: { protocol?: string; status?: string; badAccept?: boolean; pingIntervalMs?: number } = {},
): Promise<WebSocketDuplex | undefined> {
  return readHttpHead(s).then(({ head, rest }) => {
    const key = /sec-websocket-key: (.*)/i.exec(head)?.[1] ?? "";
    if (opts.status) {
      s.end(`HTTP/1.1 ${opts.status}\r\nContent-Length: 0\r\n\r\n`);
      return undefined;
    }
    s.write(
      `HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
        `Sec-WebSocket-Accept: ${opts.badAccept ? "x" : webSocketAccept(key)}\r\n` +
        `Sec-WebSocket-Protocol: ${opts.protocol ?? "alpn-ping"}\r\n\r\n`,
    );
    return new WebSocketDuplex(s, {
      role: "server",
      initial: rest,
      pingIntervalMs: opts.pingIntervalMs,
    });
  });
}

Deno.test("upgradeWebSocket() carries bytes both ways, large frames included, and answers pings", async () => {
  let server: WebSocketDuplex | undefined;
  const big = crypto.randomBytes(200_000);
  await withServer((s) => {
    acceptUpgrade(s, { pingIntervalMs: 10 }).then((ws) => {
      server = ws;
      ws!.on("data", (c: Buffer) => ws!.write(c)); // echo
    });
  }, async (port) => {
    const sock = await connect(port);
    const ws = await upgradeWebSocket(sock, { host: `127.0.0.1:${port}` });
    try {
      ws.write(Buffer.from("hello"));
      assert.equal((await readExactly(ws, 5)).toString(), "hello");
      ws.write(big);
      assert.ok((await readExactly(ws, big.length)).equals(big));
      const end = Date.now() + 5000;
      while ((server?.pongsReceived ?? 0) < 2 && Date.now() < end) {
        await new Promise((r) => setTimeout(r, 10));
      }
      assert.ok(server!.pongsReceived >= 2);

      // Close frame from the server = EOF for the client.
      const ended = new Promise<void>((r) => ws.once("end", r));
      ws.resume();
      server!.end();
      await ended;
    } finally {
      ws.destroy();
    }
  });
});

Deno.test("upgradeWebSocket() sends Teleport's upgrade request and reads frames split across reads", async () => {
  let head = "";
  await withServer((s) => {
    readHttpHead(s).then((h) => {
      head = h.head;
      const key = /sec-websocket-key: (.*)/i.exec(h.head)?.[1] ?? "";
      s.write(
        `HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
          `Sec-WebSocket-Accept: ${
            webSocketAccept(key)
          }\r\nSec-WebSocket-Protocol: alpn-ping\r\n\r\n`,
      );
      // A server (unmasked) frame delivered one byte at a time.
      const f = encodeFrame(0x2, Buffer.from("split"), false);
      let i = 0;
      const t = setInterval(() => {
        if (i >= f.length) return clearInterval(t);
        s.write(f.subarray(i, ++i));
      }, 1);
      s.once("close", () => clearInterval(t));
    });
  }, async (port) => {
    const ws = await upgradeWebSocket(await connect(port), { host: `127.0.0.1:${port}` });
    try {
      assert.equal((await readExactly(ws, 5)).toString(), "split");
      assert.match(head, /^GET \/webapi\/connectionupgrade HTTP\/1\.1\r\n/);
      assert.match(head, /\r\nupgrade: websocket/i);
      assert.match(head, /\r\nsec-websocket-protocol: alpn-ping/i);
      assert.match(head, /\r\nsec-websocket-version: 13/i);
      assert.match(head, new RegExp(`\\r\\nhost: 127\\.0\\.0\\.1:${port}`, "i"));
    } finally {
      ws.destroy();
    }
  });
});

Deno.test("upgradeWebSocket() rejects 404, a wrong accept key and a wrong protocol", async () => {
  for (
    const [opts, check] of [
      [{ status: "404 Not Found" }, (e: unknown) => e instanceof UpgradeNotSupportedError],
      [{ status: "502 Bad Gateway" }, /connection upgrade refused: 502/],
      [{ badAccept: true }, /wrong Sec-WebSocket-Accept/],
      [{ protocol: "alpn" }, /selected protocol "alpn", not "alpn-ping"/],
    ] as const
  ) {
    await withServer((s) => {
      acceptUpgrade(s, opts).catch(() => s.destroy());
    }, async (port) => {
      const sock = await connect(port);
      try {
        await assert.rejects(upgradeWebSocket(sock, { host: "x" }), check as RegExp);
      } finally {
        sock.destroy();
      }
    });
  }
});
