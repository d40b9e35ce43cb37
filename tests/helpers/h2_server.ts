/**
 * A bare HTTP/2 server on loopback (cleartext, prior knowledge) whose streams a test answers by
 * hand, for the plugin's own gRPC client (`src/teleport/grpc_call.ts`, `h2_connection.ts`): the
 * frames, statuses, resets and GOAWAYs a real server can send. {@link H2TestServer.dial} opens
 * a TCP connection to it, the way an `AuthDialer` hands the client its byte stream; a connection
 * can be muted (the network stops delivering the server's bytes, nothing is closed).
 * @module
 */
import http2 from "node:http2";
import net from "node:net";
import { Duplex } from "node:stream";
import { frameMessage } from "../../src/teleport/grpc_frames.ts";
import { Http2Connection, type Http2ConnectionOptions } from "../../src/teleport/h2_connection.ts";

/** A stream the server received: its request headers and body, and the stream to answer. */
export interface ReceivedStream {
  headers: http2.IncomingHttpHeaders;
  stream: http2.ServerHttp2Stream;
  /** The request body, once the client ended it. */
  body: Promise<Uint8Array>;
}

/** Answers a stream the client opened. */
export type StreamHandler = (received: ReceivedStream) => void;

/** The byte stream a dial returns, which a test can mute. */
export interface MutableDuplex extends Duplex {
  /** From now on the server's bytes are dropped before the client sees them. */
  mute(): void;
}

/** Answers with `messages` and then `grpc-status: 0` (or `status` and its message). */
export function answer(
  stream: http2.ServerHttp2Stream,
  messages: Uint8Array[],
  status: { code: number; message?: string } = { code: 0 },
): void {
  stream.respond({ ":status": 200, "content-type": "application/grpc" }, {
    waitForTrailers: true,
  });
  stream.on("wantTrailers", () => {
    const trailers: http2.OutgoingHttpHeaders = { "grpc-status": String(status.code) };
    if (status.message !== undefined) trailers["grpc-message"] = encodeURI(status.message);
    stream.sendTrailers(trailers);
  });
  for (const m of messages) stream.write(frameMessage(m));
  stream.end();
}

export class H2TestServer {
  /** Streams received, in order. */
  readonly received: ReceivedStream[] = [];
  /** Server sessions open now. */
  readonly sessions = new Set<http2.ServerHttp2Session>();
  /** Connections opened by {@link dial}. */
  readonly dialed: MutableDuplex[] = [];
  handler: StreamHandler;
  readonly #server: http2.Http2Server;
  readonly #waiting: Array<{ count: number; resolve: () => void }> = [];
  readonly #port: number;

  private constructor(server: http2.Http2Server, port: number, handler: StreamHandler) {
    this.#server = server;
    this.#port = port;
    this.handler = handler;
    server.on("session", (s: http2.ServerHttp2Session) => {
      this.sessions.add(s);
      s.on("error", () => {});
      s.on("close", () => this.sessions.delete(s));
    });
    server.on("stream", (stream, headers) => {
      stream.on("error", () => {});
      const chunks: Uint8Array[] = [];
      stream.on("data", (c: Uint8Array) => chunks.push(c));
      const body = new Promise<Uint8Array>((resolve) => {
        stream.on("end", () => resolve(new Uint8Array(Buffer.concat(chunks))));
      });
      const received = { headers, stream, body };
      this.received.push(received);
      this.handler(received);
      for (const w of this.#waiting.filter((w) => w.count <= this.received.length)) {
        this.#waiting.splice(this.#waiting.indexOf(w), 1);
        w.resolve();
      }
    });
  }

  /**
   * Starts a server on 127.0.0.1 whose streams `handler` answers (it can be swapped later), with
   * the HTTP/2 `settings` it announces (e.g. `maxConcurrentStreams`).
   */
  static async start(
    handler: StreamHandler,
    settings: http2.Settings = {},
  ): Promise<H2TestServer> {
    const server = http2.createServer({ settings });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const port = (server.address() as net.AddressInfo).port;
    return new H2TestServer(server, port, handler);
  }

  /** Opens a TCP connection to the server (an `AuthDialer`'s `dial`). */
  readonly dial = (): Promise<MutableDuplex> =>
    new Promise((resolve, reject) => {
      const socket = net.connect(this.#port, "127.0.0.1", () => {
        socket.off("error", reject);
        const d = relay(socket);
        this.dialed.push(d);
        resolve(d);
      });
      socket.once("error", reject);
    });

  /** Resolves once the server has received `count` streams in all. */
  streams(count: number): Promise<ReceivedStream[]> {
    const done = () => this.received.slice(0, count);
    if (this.received.length >= count) return Promise.resolve(done());
    return new Promise((resolve) => this.#waiting.push({ count, resolve: () => resolve(done()) }));
  }

  /** Sends GOAWAY (NO_ERROR, last stream 2^31-1) on every session. */
  goAway(): void {
    for (const s of this.sessions) s.goaway(0, 0x7fffffff);
  }

  async close(): Promise<void> {
    for (const s of this.sessions) s.destroy();
    for (const d of this.dialed) d.destroy();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }
}

/**
 * A server (announcing `settings`), and an {@link Http2Connection} that dials it; disposing
 * closes both.
 */
export async function serverAndConnection(
  handler: StreamHandler,
  opts: Partial<Http2ConnectionOptions> = {},
  settings: http2.Settings = {},
): Promise<{ server: H2TestServer; conn: Http2Connection } & AsyncDisposable> {
  const server = await H2TestServer.start(handler, settings);
  const conn = new Http2Connection(server.dial, { authority: "auth.example.test", ...opts });
  return {
    server,
    conn,
    async [Symbol.asyncDispose]() {
      conn.close();
      await server.close();
    },
  };
}

/** A duplex over `socket` that forwards both ways until muted. */
function relay(socket: net.Socket): MutableDuplex {
  let muted = false;
  const d = new Duplex({
    read() {},
    write(chunk, _enc, cb) {
      socket.write(chunk, cb);
    },
    final(cb) {
      socket.end(cb);
    },
    destroy(err, cb) {
      socket.destroy();
      cb(err);
    },
  }) as MutableDuplex;
  socket.on("data", (c) => muted || d.push(c));
  socket.on("end", () => d.push(null));
  socket.on("error", (e) => d.destroy(e));
  socket.on("close", () => d.destroy());
  d.mute = () => muted = true;
  return d;
}
