/**
 * The client side of Teleport's ALPN connection upgrade (`alpn_conn_upgrade.go` upstream): on a
 * TLS connection to the Proxy (or the L7 load balancer in front of it), `GET
 * /webapi/connectionupgrade` with `Upgrade: websocket` and `Sec-WebSocket-Protocol: alpn-ping`,
 * then the WebSocket's binary messages carry the inner TLS bytes. The frames are RFC 6455,
 * done by the `ws` library over the socket we dialled; it also answers the Proxy's Pings (every
 * 30 s with `alpn-ping`).
 *
 * What must match Teleport exactly: the path, the subprotocol, and a 404 meaning a Proxy too
 * old to upgrade (Go's `NotImplemented`).
 */
import type net from "node:net";
import type { Duplex } from "node:stream";
import WebSocket, { createWebSocketStream } from "ws";
import { abortable } from "../async.ts";
import { withSocketShims } from "./dial_net.ts";

/** `constants.WebAPIConnUpgrade`. */
export const CONN_UPGRADE_PATH = "/webapi/connectionupgrade";
/** `constants.WebAPIConnUpgradeTypeALPNPing`: the Proxy pings, the client answers. */
export const CONN_UPGRADE_PROTOCOL = "alpn-ping";
/** Largest WebSocket message accepted (the inner TLS records are at most 16 KiB each). */
const MAX_PAYLOAD = 64 * 1024 * 1024;

/** Thrown by {@link upgradeWebSocket} when the server answers 404 (a Proxy too old to upgrade). */
export class UpgradeNotSupportedError extends Error {}

/** The operator-facing reason for a failed handshake, from `ws`'s error and the 101 response. */
function handshakeError(
  err: Error,
  res: { headers: Record<string, unknown> } | undefined,
  protocol: string,
) {
  const header = (name: string) => String(res?.headers[name] ?? "");
  if (/Sec-WebSocket-Accept/.test(err.message)) {
    return new Error("connection upgrade answered with a wrong Sec-WebSocket-Accept", {
      cause: err,
    });
  }
  if (/Upgrade header/.test(err.message)) {
    return new Error(`connection upgrade answered with "Upgrade: ${header("upgrade")}"`, {
      cause: err,
    });
  }
  if (/subprotocol/.test(err.message)) {
    return new Error(
      `connection upgrade selected protocol "${
        header("sec-websocket-protocol")
      }", not "${protocol}"`,
      { cause: err },
    );
  }
  return err;
}

/**
 * Client side of the WebSocket upgrade on an open (TLS) stream to `opts.host`: sends the
 * upgrade request, checks the `101`, `Sec-WebSocket-Accept` and the echoed protocol, and
 * returns the byte stream (binary messages in, binary messages out; the server's Close is EOF).
 */
export function upgradeWebSocket(
  socket: Duplex,
  opts: { host: string; path?: string; protocol?: string; signal?: AbortSignal },
): Promise<Duplex> {
  const path = opts.path ?? CONN_UPGRADE_PATH;
  const protocol = opts.protocol ?? CONN_UPGRADE_PROTOCOL;
  // ws:// because the connection is given: TLS (if any) is already on `socket`.
  const ws = new WebSocket(`ws://${opts.host}${path}`, [protocol], {
    createConnection: () => socket as net.Socket,
    headers: { "User-Agent": "teleport-email" },
    perMessageDeflate: false,
    followRedirects: false,
    maxPayload: MAX_PAYLOAD,
  });
  const opened = new Promise<Duplex>((resolve, reject) => {
    let response: { headers: Record<string, unknown> } | undefined;
    ws.once("upgrade", (res) => (response = res));
    ws.once("unexpected-response", (_req, res) => {
      res.resume();
      socket.destroy();
      reject(
        res.statusCode === 404
          ? new UpgradeNotSupportedError(
            `the Proxy answered 404 to ${path}: it does not support connection upgrades`,
          )
          : new Error(
            `connection upgrade refused: ${res.statusCode} ${res.statusMessage ?? ""}`.trim(),
          ),
      );
    });
    ws.once("error", (err) => reject(handshakeError(err, response, protocol)));
    ws.once("open", () => {
      ws.removeAllListeners("error");
      const stream = createWebSocketStream(ws);
      stream.on("error", () => {}); // reported to the TLS layer above as a close
      resolve(withSocketShims(stream));
    });
  });
  return abortable(opened, opts.signal, () => ws.terminate());
}
