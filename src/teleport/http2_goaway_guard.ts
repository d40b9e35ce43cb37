/**
 * A workaround for a Deno 2.9 `node:http2` bug that aborts the process on some GOAWAY frames
 * (see {@link guardHttp2GoawayDestroy}). Installed by the plugin's HTTP/2 connection
 * (`h2_connection.ts`) and by the test Teleport server. Remove it once the bug is fixed.
 * @module
 */
import http2 from "node:http2";
import type { Socket } from "node:net";
import { Duplex } from "node:stream";

const IN_GOAWAY = Symbol("teleport-email.inGoaway");
type GuardedSession = http2.Http2Session & { [IN_GOAWAY]?: boolean };
let goawayGuardInstalled = false;

/**
 * Works around a Deno 2.9 `node:http2` bug that aborts the whole process when a session receives
 * a GOAWAY and has no open stream (or receives one with an error code): denoland/deno#36788,
 * "Deno crashes inside nghttp2 when a GOAWAY closes a long idle `node:http2` session", open for
 * 2.9.6. Its `onGoawayData` emits `goaway` and then calls `session.close()` (no stream left: an
 * immediate `destroy()`) or `session.destroy()`, synchronously, from inside
 * `nghttp2_session_mem_recv`; Deno's `destroy` op frees the nghttp2 session at once, and nghttp2
 * then walks the freed stream map (`session_close_stream_on_goaway`): "Assertion
 * `stream->closed_next == NULL' failed" (exit 134) or a segfault (139). This hits a client when a
 * Go server drains its connections (GOAWAY NO_ERROR; `too_many_pings` is ENHANCE_YOUR_CALM) and
 * a server when a client closes its channel. Here `destroy()` called while a `goaway` event is
 * being dispatched runs one macrotask later, once nghttp2 is done with the frame.
 *
 * Patches `Http2Session.prototype` (client and server sessions) once per process; idempotent.
 * Returns whether the guard is installed (false if this runtime's `node:http2` has no such class).
 */
export function guardHttp2GoawayDestroy(): boolean {
  if (goawayGuardInstalled) return true;
  const proto = http2SessionPrototype();
  if (!proto || !Object.hasOwn(proto, "destroy")) return false;
  const emit = proto.emit as (
    this: GuardedSession,
    event: string | symbol,
    ...a: unknown[]
  ) => boolean;
  const destroy = proto.destroy as (this: GuardedSession, ...a: unknown[]) => void;
  proto.emit = function (this: GuardedSession, event: string | symbol, ...args: unknown[]) {
    if (event === "goaway") {
      this[IN_GOAWAY] = true; // onGoawayData calls close()/destroy() right after this event
      setImmediate(() => this[IN_GOAWAY] = false);
    }
    return emit.call(this, event, ...args);
  };
  proto.destroy = function (this: GuardedSession, ...args: unknown[]) {
    if (!this[IN_GOAWAY] || this.destroyed) return destroy.apply(this, args);
    setImmediate(() => destroy.apply(this, args));
  } as typeof proto.destroy;
  goawayGuardInstalled = true;
  return true;
}

/** `Http2Session.prototype` (not exported by `node:http2`), from a throwaway client session. */
function http2SessionPrototype(): http2.Http2Session | undefined {
  const sink = new Duplex({ read() {}, write: (_c, _e, cb) => cb() });
  const session = http2.connect("http://127.0.0.1", { createConnection: () => sink as Socket });
  session.on("error", () => {});
  session.destroy();
  sink.destroy();
  const client = Object.getPrototypeOf(session); // ClientHttp2Session.prototype
  return client ? Object.getPrototypeOf(client) ?? undefined : undefined;
}
