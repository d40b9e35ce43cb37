/**
 * A Teleport Proxy emulator for tests (runs under Deno), plus two small servers the dial tests
 * use: an mTLS "Auth" echo server and an HTTP CONNECT proxy.
 *
 * The emulator listens on 127.0.0.1:0 and routes each raw connection by the ALPN list of its TLS
 * ClientHello (parsed here from the first bytes), like Teleport's ALPN router:
 * - `teleport-auth@<hex(cluster)>.teleport.cluster.local` first → raw TCP passthrough to the
 *   Auth address (TLS stays end to end to Auth);
 * - `teleport-reversetunnel` → TLS terminated with the web certificate, then the
 *   {@link ProxyEmulatorOptions.onReverseTunnel} hook (B2's SSH tunnel server);
 * - anything else → the web server: `GET /webapi/find` and `GET /webapi/connectionupgrade`
 *   (WebSocket `alpn-ping` with server Pings; the inner stream is routed again by ALPN).
 *
 * `stripAlpn: true` emulates an L7 load balancer: every connection gets TLS terminated without
 * ALPN and only HTTP (find, upgrade) is served.
 *
 * The web certificate is signed by the test CA's "web PKI" root ({@link TestCertificateAuthority.webCaPem}),
 * not the host CA, like a real Proxy.
 */
import net from "node:net";
import tls from "node:tls";
import { Buffer } from "node:buffer";
import type { Duplex } from "node:stream";
import { parseHttpHead, readHttpHead } from "../../src/teleport/dial_net.ts";
import { webSocketAccept, WebSocketDuplex } from "./websocket_server.ts";
import type { TestCertificateAuthority } from "./ca.ts";

/** What a ClientHello offered. */
export interface ClientHelloInfo {
  alpn: string[];
  sni?: string;
}

/**
 * Parses a TLS ClientHello from the start of `buf` (possibly spread over several records).
 * Returns undefined when more bytes are needed; throws when it is not a TLS ClientHello.
 */
export function parseClientHello(buf: Uint8Array): ClientHelloInfo | undefined {
  const b = Buffer.from(buf);
  // Reassemble the handshake bytes from the records.
  const hs: Buffer[] = [];
  let o = 0, total = 0;
  let needed = -1;
  while (true) {
    if (b.length < o + 5) return undefined;
    if (b[o] !== 0x16) throw new Error("not a TLS handshake record");
    const len = b.readUInt16BE(o + 3);
    if (b.length < o + 5 + len) return undefined;
    hs.push(b.subarray(o + 5, o + 5 + len));
    total += len;
    o += 5 + len;
    const h = Buffer.concat(hs);
    if (needed < 0 && h.length >= 4) {
      if (h[0] !== 0x01) throw new Error("first handshake message is not a ClientHello");
      needed = 4 + h.readUIntBE(1, 3);
    }
    if (needed >= 0 && total >= needed) break;
  }
  const h = Buffer.concat(hs);
  let p = 4 + 2 + 32;
  p += 1 + h[p]; // session id
  p += 2 + h.readUInt16BE(p); // cipher suites
  p += 1 + h[p]; // compression methods
  const info: ClientHelloInfo = { alpn: [] };
  if (p + 2 > h.length) return info;
  const extEnd = p + 2 + h.readUInt16BE(p);
  p += 2;
  while (p + 4 <= extEnd) {
    const type = h.readUInt16BE(p), len = h.readUInt16BE(p + 2);
    const data = h.subarray(p + 4, p + 4 + len);
    if (type === 16) {
      let q = 2;
      while (q < data.length) {
        const l = data[q];
        info.alpn.push(data.subarray(q + 1, q + 1 + l).toString("latin1"));
        q += 1 + l;
      }
    } else if (type === 0 && data.length > 5) {
      info.sni = data.subarray(5, 5 + data.readUInt16BE(3)).toString("latin1");
    }
    p += 4 + len;
  }
  return info;
}

/** Reads from `stream` until a whole ClientHello arrived; returns it and the bytes read. */
function peekClientHello(stream: Duplex): Promise<{ hello: ClientHelloInfo; buffered: Buffer }> {
  return new Promise((resolve, reject) => {
    let buf = Buffer.alloc(0);
    const cleanup = () => {
      stream.off("data", onData);
      stream.off("error", reject);
      stream.off("end", onEnd);
    };
    const onData = (c: Buffer) => {
      buf = Buffer.concat([buf, c]);
      try {
        const hello = parseClientHello(buf);
        if (hello) {
          cleanup();
          stream.pause();
          resolve({ hello, buffered: buf });
        } else if (buf.length > 64 * 1024) {
          throw new Error("ClientHello too large");
        }
      } catch (err) {
        cleanup();
        reject(err);
      }
    };
    const onEnd = () => {
      cleanup();
      reject(new Error("closed before a ClientHello"));
    };
    stream.on("data", onData);
    stream.once("error", reject);
    stream.once("end", onEnd);
    stream.resume();
  });
}

/**
 * No Nagle on a TCP socket of a forwarding path: TLS records, WebSocket frames and SSH packets
 * are small and latency-bound, and Nagle plus the peer's delayed ACK stalls each round trip by
 * ~40 ms (Go sets TCP_NODELAY by default).
 */
function noDelay(s: net.Socket): net.Socket {
  s.setNoDelay(true);
  return s;
}

function pipeBoth(a: Duplex, b: Duplex): void {
  a.pipe(b);
  b.pipe(a);
  const kill = () => {
    a.destroy();
    b.destroy();
  };
  a.once("error", kill).once("close", kill);
  b.once("error", kill).once("close", kill);
}

function listen(server: net.Server): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => resolve((server.address() as net.AddressInfo).port));
  });
}

function closeServer(server: net.Server): Promise<void> {
  return new Promise((resolve) => server.close(() => resolve()));
}

/** Options of {@link ProxyEmulator.start}. */
export interface ProxyEmulatorOptions {
  ca: TestCertificateAuthority;
  /** `host:port` of the Auth server for `teleport-auth@` passthrough (settable later). */
  authAddr?: string;
  /** Cluster name in `/webapi/find` and accepted in `teleport-auth@`; default the CA's. */
  clusterName?: string;
  /** `proxy.tls_routing_enabled` in `/webapi/find`; default true. */
  tlsRoutingEnabled?: boolean;
  /** Emulate an L7 load balancer that terminates TLS without ALPN and only forwards HTTP. */
  stripAlpn?: boolean;
  /** WebSocket Ping interval on upgraded connections; default 30 s like Teleport. */
  pingIntervalMs?: number;
  /** Web certificate DNS names; default `localhost`, `proxy.test`. */
  webDnsNames?: string[];
  /** `proxy.ssh` fields of `/webapi/find` (tunnel addresses for B2). */
  ssh?: Record<string, string>;
  /** HOOK (B2): gets the decrypted stream of each `teleport-reversetunnel` connection. */
  onReverseTunnel?: (conn: tls.TLSSocket) => void;
}

/** Counters of what the emulator did. */
export interface ProxyEmulatorStats {
  find: number;
  upgrades: number;
  authPassthrough: number;
  reverseTunnel: number;
  /** Pongs the emulator received for its WebSocket Pings. */
  pongs: number;
  /** ALPN lists seen on raw (outer and upgraded) connections, in order. */
  alpnSeen: string[][];
}

/** The Proxy emulator. */
export class ProxyEmulator {
  /** `127.0.0.1:<port>`. */
  readonly addr: string;
  readonly port: number;
  readonly stats: ProxyEmulatorStats = {
    find: 0,
    upgrades: 0,
    authPassthrough: 0,
    reverseTunnel: 0,
    pongs: 0,
    alpnSeen: [],
  };
  authAddr?: string;
  readonly #opts: ProxyEmulatorOptions;
  readonly #front: net.Server;
  readonly #web: tls.Server;
  readonly #tunnel: tls.Server;
  #webPort = 0;
  #tunnelPort = 0;
  readonly #sockets = new Set<Duplex>();
  readonly #websockets = new Set<WebSocketDuplex>();

  private constructor(
    opts: ProxyEmulatorOptions,
    keyPem: string,
    certPem: string,
    port: number,
    front: net.Server,
  ) {
    this.#opts = opts;
    this.authAddr = opts.authAddr;
    this.port = port;
    this.addr = `127.0.0.1:${port}`;
    this.#front = front;
    const webOpts: tls.TlsOptions = { key: keyPem, cert: certPem };
    if (!opts.stripAlpn) {
      (webOpts as Record<string, unknown>).ALPNCallback = (
        { protocols }: { protocols: string[] },
      ) => protocols[0];
    }
    this.#web = tls.createServer(webOpts, (s) => {
      this.#track(s);
      this.#serveHttp(s).catch(() => s.destroy());
    });
    this.#web.on("connection", noDelay);
    this.#tunnel = tls.createServer(
      { key: keyPem, cert: certPem, ALPNProtocols: ["teleport-reversetunnel"] },
      (s) => {
        this.#track(s);
        this.stats.reverseTunnel++;
        if (this.#opts.onReverseTunnel) this.#opts.onReverseTunnel(s);
        else s.destroy();
      },
    );
    this.#tunnel.on("connection", noDelay);
    front.on("connection", (s: net.Socket) => {
      noDelay(s);
      this.#track(s);
      this.#route(s).catch(() => s.destroy());
    });
  }

  /** Starts the emulator on 127.0.0.1:0. */
  static async start(opts: ProxyEmulatorOptions): Promise<ProxyEmulator> {
    const { keyPem, certPem } = await opts.ca.issueServerCert({
      dnsNames: opts.webDnsNames ?? ["localhost", "proxy.test"],
      signedBy: "web-ca",
    });
    const front = net.createServer();
    const port = await listen(front);
    const p = new ProxyEmulator(opts, keyPem, certPem, port, front);
    p.#webPort = await listen(p.#web);
    p.#tunnelPort = await listen(p.#tunnel);
    return p;
  }

  get clusterName(): string {
    return this.#opts.clusterName ?? this.#opts.ca.clusterName;
  }

  #track(s: Duplex) {
    this.#sockets.add(s);
    s.once("close", () => this.#sockets.delete(s));
  }

  #forward(stream: Duplex, buffered: Buffer, port: number, host = "127.0.0.1") {
    const out = noDelay(net.connect({ host, port }));
    this.#track(out);
    out.once("connect", () => {
      out.write(buffered);
      pipeBoth(stream, out);
      stream.resume();
    });
    out.once("error", () => stream.destroy());
  }

  /** Routes a raw stream (TCP, or the inside of a WebSocket) by its ClientHello's ALPN. */
  async #route(stream: Duplex, allowStrip = true) {
    if (this.#opts.stripAlpn && allowStrip) {
      // The "load balancer" terminates TLS itself: hand the bytes to the ALPN-less web server.
      stream.pause();
      this.#forward(stream, Buffer.alloc(0), this.#webPort);
      return;
    }
    const { hello, buffered } = await peekClientHello(stream);
    this.stats.alpnSeen.push(hello.alpn);
    const first = hello.alpn[0] ?? "";
    if (first.startsWith("teleport-auth@")) {
      const hex = first.slice("teleport-auth@".length).replace(/\.teleport\.cluster\.local$/, "");
      const cluster = Buffer.from(hex, "hex").toString("utf8");
      if (cluster !== this.clusterName || !this.authAddr) {
        stream.destroy();
        return;
      }
      this.stats.authPassthrough++;
      const i = this.authAddr.lastIndexOf(":");
      this.#forward(
        stream,
        buffered,
        Number(this.authAddr.slice(i + 1)),
        this.authAddr.slice(0, i),
      );
    } else if (hello.alpn.includes("teleport-reversetunnel")) {
      this.#forward(stream, buffered, this.#tunnelPort);
    } else {
      this.#forward(stream, buffered, this.#webPort);
    }
  }

  /** The `/webapi/find` document. */
  findResponse(): Record<string, unknown> {
    return {
      proxy: {
        kube: { enabled: false },
        ssh: {
          listen_addr: "0.0.0.0:3023",
          tunnel_listen_addr: "0.0.0.0:3024",
          web_listen_addr: "0.0.0.0:3080",
          public_addr: this.addr,
          ...this.#opts.ssh,
        },
        db: {},
        tls_routing_enabled: this.#opts.tlsRoutingEnabled ?? true,
        assist_enabled: false,
      },
      server_version: "18.0.0",
      min_client_version: "17.0.0-aa",
      cluster_name: this.clusterName,
      automatic_upgrades: false,
    };
  }

  async #serveHttp(s: tls.TLSSocket) {
    const { head, rest } = await readHttpHead(s);
    const [requestLine, ...headerLines] = head.split("\r\n");
    const [method, path] = requestLine.split(" ");
    const { headers } = parseHttpHead(`HTTP/1.1 200 OK\r\n${headerLines.join("\r\n")}`);
    const reply = (status: string, type: string, body: string) => {
      s.end(
        `HTTP/1.1 ${status}\r\nContent-Type: ${type}\r\nContent-Length: ${
          Buffer.byteLength(body)
        }\r\n` +
          `Connection: close\r\n\r\n${body}`,
      );
    };
    if (method === "GET" && path === "/webapi/find") {
      this.stats.find++;
      reply("200 OK", "application/json", JSON.stringify(this.findResponse()));
      return;
    }
    if (
      method === "GET" && path === "/webapi/connectionupgrade" &&
      (headers["upgrade"] ?? "").toLowerCase() === "websocket"
    ) {
      const protocols = (headers["sec-websocket-protocol"] ?? "").split(",").map((p) => p.trim());
      const protocol = protocols.find((p) => p === "alpn-ping" || p === "alpn");
      const key = headers["sec-websocket-key"];
      if (!protocol || !key) {
        reply("400 Bad Request", "text/plain", "bad upgrade request");
        return;
      }
      this.stats.upgrades++;
      s.write(
        `HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
          `Sec-WebSocket-Accept: ${
            webSocketAccept(key)
          }\r\nSec-WebSocket-Protocol: ${protocol}\r\n\r\n`,
      );
      const ws = new WebSocketDuplex(s, {
        role: "server",
        initial: rest,
        pingIntervalMs: protocol === "alpn-ping" ? this.#opts.pingIntervalMs ?? 30_000 : 0,
      });
      this.#websockets.add(ws);
      this.#track(ws);
      ws.once("close", () => {
        this.stats.pongs += ws.pongsReceived;
        this.#websockets.delete(ws);
      });
      this.#route(ws, false).catch(() => ws.destroy());
      return;
    }
    reply("404 Not Found", "text/plain", "not found");
  }

  /** Pongs received so far on open and closed upgraded connections. */
  get pongsReceived(): number {
    let n = this.stats.pongs;
    for (const ws of this.#websockets) n += ws.pongsReceived;
    return n;
  }

  /** Stops listening and destroys every connection. */
  async close(): Promise<void> {
    for (const s of this.#sockets) s.destroy();
    await Promise.all([
      closeServer(this.#front),
      closeServer(this.#web),
      closeServer(this.#tunnel),
    ]);
  }
}

/** A test "Auth Service": mTLS server with the host-CA-signed Auth cert, ALPN `h2`. */
export interface TestAuthTlsServer {
  readonly addr: string;
  readonly port: number;
  /** Users whose client certificates were accepted, in order. */
  readonly accepted: string[];
  /** Reasons client certificates were refused. */
  readonly refused: string[];
  /** ALPN lists offered by clients. */
  readonly alpnSeen: string[][];
  close(): Promise<void>;
}

/**
 * Starts an mTLS echo server standing in for the Auth Service until the gRPC test server is used:
 * Deno's `node:tls` cannot verify client certificates itself, so it requests them without
 * rejecting and verifies them with `ca.verifyClientCert`, destroying refused connections. An
 * accepted connection gets `HELLO <user>\n` at once (like HTTP/2 SETTINGS), then an echo.
 */
export async function startTestAuthTls(ca: TestCertificateAuthority): Promise<TestAuthTlsServer> {
  const { keyPem, certPem } = await ca.issueServerCert();
  const accepted: string[] = [], refused: string[] = [], alpnSeen: string[][] = [];
  const sockets = new Set<Duplex>();
  const server = tls.createServer({
    key: keyPem,
    cert: certPem,
    requestCert: true,
    rejectUnauthorized: false,
    ALPNCallback: ({ protocols }: { protocols: string[] }) => {
      alpnSeen.push(protocols);
      return protocols.includes("h2") ? "h2" : undefined;
    },
  } as tls.TlsOptions, (s) => {
    sockets.add(s);
    s.once("close", () => sockets.delete(s));
    s.on("error", () => s.destroy());
    const peer = s.getPeerCertificate(true);
    const result = peer?.raw
      ? ca.verifyClientCert(new Uint8Array(peer.raw))
      : { error: "no client certificate" };
    if ("error" in result) {
      refused.push(result.error);
      s.destroy();
      return;
    }
    accepted.push(result.user);
    s.write(`HELLO ${result.user}\n`);
    s.pipe(s);
  });
  server.on("connection", (s: net.Socket) => {
    noDelay(s);
    sockets.add(s);
    s.once("close", () => sockets.delete(s));
  });
  const port = await listen(server);
  return {
    addr: `127.0.0.1:${port}`,
    port,
    accepted,
    refused,
    alpnSeen,
    async close() {
      for (const s of sockets) s.destroy();
      await closeServer(server);
    },
  };
}

/** A tiny HTTP CONNECT proxy (see {@link startConnectProxy}). */
export interface ConnectProxy {
  /** `http://127.0.0.1:<port>` (for `HTTPS_PROXY`). */
  readonly url: string;
  /** `CONNECT` targets requested, in order. */
  readonly requests: string[];
  close(): Promise<void>;
}

/**
 * Starts an HTTP CONNECT proxy on 127.0.0.1:0. Every target host name resolves to 127.0.0.1, so
 * tests can dial names like `proxy.test:<port>` (which clients never proxy-exempt as loopback).
 * With `auth`, requests without `Proxy-Authorization: Basic <auth>` get 407.
 */
export async function startConnectProxy(opts: { auth?: string } = {}): Promise<ConnectProxy> {
  const requests: string[] = [];
  const sockets = new Set<Duplex>();
  const server = net.createServer(async (s) => {
    noDelay(s);
    sockets.add(s);
    s.once("close", () => sockets.delete(s));
    s.on("error", () => s.destroy());
    try {
      const { head, rest } = await readHttpHead(s);
      const [requestLine, ...lines] = head.split("\r\n");
      const [method, target] = requestLine.split(" ");
      requests.push(target);
      const authLine = lines.find((l) => /^proxy-authorization:/i.test(l));
      if (
        opts.auth &&
        authLine?.split(/:\s*/)[1] !== `Basic ${Buffer.from(opts.auth).toString("base64")}`
      ) {
        s.end("HTTP/1.1 407 Proxy Authentication Required\r\nContent-Length: 0\r\n\r\n");
        return;
      }
      if (method !== "CONNECT") {
        s.end("HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\n\r\n");
        return;
      }
      const port = Number(target.slice(target.lastIndexOf(":") + 1));
      const out = noDelay(net.connect({ host: "127.0.0.1", port }));
      sockets.add(out);
      out.once("close", () => sockets.delete(out));
      out.once("error", () => {
        s.end("HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n");
      });
      out.once("connect", () => {
        s.write("HTTP/1.1 200 Connection established\r\n\r\n");
        if (rest.length) out.write(rest);
        pipeBoth(s, out);
        s.resume();
      });
    } catch {
      s.destroy();
    }
  });
  const port = await listen(server);
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    async close() {
      for (const s of sockets) s.destroy();
      await closeServer(server);
    },
  };
}
