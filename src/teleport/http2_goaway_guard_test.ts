import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import http2 from "node:http2";
import net from "node:net";
import { guardHttp2GoawayDestroy } from "./http2_goaway_guard.ts";

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
