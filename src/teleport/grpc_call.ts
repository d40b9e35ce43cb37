/**
 * One gRPC call on an {@link Http2Connection}: a POST of one length-prefixed request message,
 * then the response messages and the status from the trailers (or from the headers of a
 * "Trailers-Only" response), as gRPC over HTTP/2 specifies (`doc/PROTOCOL-HTTP2.md`).
 *
 * {@link GrpcCall} runs it and ends in one outcome: OK, or a {@link GrpcCallError} with the
 * server's status, or one the client sets (CANCELLED, DEADLINE_EXCEEDED, UNAVAILABLE when the
 * connection is lost, and the codes grpc-js gives a reset stream or an HTTP error).
 * {@link unaryCall} and {@link serverStreamCall} are the two shapes the Teleport client uses.
 * Messages are bytes here: encoding them is the caller's job.
 * @module
 */
import http2 from "node:http2";
import { errorMessage } from "../errors.ts";
import { frameMessage, FrameReader } from "./grpc_frames.ts";
import { decodeGrpcMessage, GrpcCallError, GrpcStatus, statusOfHttp } from "./grpc_status.ts";
import type { Http2Connection } from "./h2_connection.ts";

/** Options of one call. */
export interface GrpcCallOptions {
  /** Time the whole call may take, from its start (connecting included), in ms. */
  deadlineMs?: number;
  /** Cancels the call (CANCELLED). */
  signal?: AbortSignal;
  /** Largest response message accepted, in bytes (RESOURCE_EXHAUSTED above it). */
  maxReceiveLength: number;
}

const { NGHTTP2_CANCEL } = http2.constants;

/** The status grpc-js gives a stream reset by the server with this HTTP/2 error code. */
function statusOfReset(code: number): GrpcCallError {
  const c = http2.constants;
  switch (code) {
    case c.NGHTTP2_REFUSED_STREAM:
      return new GrpcCallError(GrpcStatus.UNAVAILABLE, "Stream refused by server");
    case c.NGHTTP2_ENHANCE_YOUR_CALM:
      return new GrpcCallError(
        GrpcStatus.RESOURCE_EXHAUSTED,
        "Bandwidth exhausted or memory limit exceeded",
      );
    case c.NGHTTP2_INADEQUATE_SECURITY:
      return new GrpcCallError(GrpcStatus.PERMISSION_DENIED, "Protocol not secure enough");
    default:
      return new GrpcCallError(GrpcStatus.INTERNAL, `Received RST_STREAM with code ${code}`);
  }
}

/** One call in flight. `done` settles once, with its outcome. */
export class GrpcCall {
  readonly done: Promise<void>;
  readonly #conn: Http2Connection;
  readonly #reader: FrameReader;
  readonly #onMessage: (message: Uint8Array) => void;
  readonly #signal?: AbortSignal;
  #settle!: (error?: GrpcCallError) => void;
  #settled = false;
  #stream?: http2.ClientHttp2Stream;
  /** The stream's session (a closed stream forgets it). */
  #session?: http2.ClientHttp2Session;
  #status?: GrpcCallError | null;
  /** Whether the server ended the stream (END_STREAM). */
  #ended = false;
  /** DATA received before the response headers were handled. */
  #early?: Uint8Array[] = [];
  #timer?: ReturnType<typeof setTimeout>;
  readonly #onAbort = () => this.cancel();

  constructor(
    conn: Http2Connection,
    path: string,
    request: Uint8Array,
    opts: GrpcCallOptions,
    onMessage: (message: Uint8Array) => void,
  ) {
    this.#conn = conn;
    this.#reader = new FrameReader(opts.maxReceiveLength);
    this.#onMessage = onMessage;
    this.#signal = opts.signal;
    this.done = new Promise((resolve, reject) => {
      this.#settle = (error) => error ? reject(error) : resolve();
    });
    if (opts.signal?.aborted) {
      this.cancel();
      return;
    }
    opts.signal?.addEventListener("abort", this.#onAbort, { once: true });
    if (opts.deadlineMs !== undefined) {
      this.#timer = setTimeout(() => {
        this.#finish(new GrpcCallError(GrpcStatus.DEADLINE_EXCEEDED, "Deadline exceeded"));
      }, opts.deadlineMs);
    }
    const deadline = opts.deadlineMs === undefined ? undefined : Date.now() + opts.deadlineMs;
    this.#start(path, request, deadline).catch((err) => this.#finish(this.#failure(err)));
  }

  /** Ends the call with CANCELLED and resets its stream. */
  cancel(): void {
    this.#finish(new GrpcCallError(GrpcStatus.CANCELLED, "Cancelled on client"));
  }

  /** Stops reading responses (HTTP/2 flow control holds the server back) until {@link resume}. */
  pause(): void {
    this.#stream?.pause();
  }

  resume(): void {
    this.#stream?.resume();
  }

  /** Opens the stream once there is a session; `deadline` is a `Date.now()` time. */
  async #start(path: string, request: Uint8Array, deadline?: number): Promise<void> {
    const session = await this.#conn.session(this.#signal);
    if (this.#settled) return;
    const headers: http2.OutgoingHttpHeaders = {
      ":method": "POST",
      ":path": path,
      ":authority": this.#conn.authority,
      "content-type": "application/grpc",
      "te": "trailers",
    };
    if (deadline !== undefined) headers["grpc-timeout"] = `${Math.max(1, deadline - Date.now())}m`;
    let stream: http2.ClientHttp2Stream;
    try {
      stream = session.request(headers);
    } catch (err) { // the session is unusable: the next call dials anew
      this.#conn.discard(session);
      throw err;
    }
    this.#stream = stream;
    this.#session = session;
    stream.on("response", (h) => this.#onHeaders(h));
    stream.on("trailers", (t) => this.#onTrailers(t));
    stream.on("data", (chunk: Uint8Array) => this.#onData(chunk));
    stream.on("end", () => this.#ended = true);
    stream.on("error", (err) => this.#finish(this.#status ?? this.#failure(err)));
    stream.on("close", () => this.#onClose());
    stream.end(frameMessage(request));
  }

  #onHeaders(h: http2.IncomingHttpHeaders): void {
    const early = this.#early;
    this.#early = undefined;
    if (h["grpc-status"] !== undefined) return this.#onTrailers(h); // Trailers-Only
    const httpStatus = Number(h[":status"]);
    const type = String(h["content-type"] ?? "");
    if (httpStatus !== 200) {
      const details = `Received HTTP status code ${httpStatus}`;
      this.#finish(new GrpcCallError(statusOfHttp(httpStatus), details));
    } else if (!type.startsWith("application/grpc")) {
      this.#finish(new GrpcCallError(GrpcStatus.UNKNOWN, `Unexpected content-type "${type}"`));
    }
    for (const chunk of early ?? []) this.#onData(chunk);
  }

  #onTrailers(t: http2.IncomingHttpHeaders): void {
    if (this.#status) return;
    const code = Number(t["grpc-status"]);
    if (!Number.isInteger(code)) {
      this.#status = new GrpcCallError(GrpcStatus.UNKNOWN, "No status received");
    } else if (code === GrpcStatus.OK) {
      this.#status = null;
    } else {
      this.#status = new GrpcCallError(code, decodeGrpcMessage(String(t["grpc-message"] ?? "")));
    }
  }

  #onData(chunk: Uint8Array): void {
    if (this.#settled) return;
    if (this.#early) return void this.#early.push(chunk); // Deno can emit DATA before "response"
    try {
      for (const message of this.#reader.push(chunk)) this.#onMessage(message);
    } catch (err) {
      this.#finish(err instanceof GrpcCallError ? err : this.#failure(err));
    }
  }

  #onClose(): void {
    if (this.#status === null && this.#reader.buffered > 0) {
      this.#finish(new GrpcCallError(GrpcStatus.INTERNAL, "Stream ended within a message"));
    } else if (this.#status !== undefined) {
      this.#finish(this.#status ?? undefined);
    } else {
      this.#finish(this.#failure(new Error("Connection dropped")));
    }
  }

  /**
   * The outcome of a stream that ended without a status: CANCELLED once the connection was
   * closed or the signal aborted; UNAVAILABLE when the connection was lost (a CANCEL reset too,
   * which is also how a lost connection ends its streams: grpc-js would say CANCELLED, which is
   * not retried); the reset code's status when the server reset the stream; UNKNOWN when it ended
   * the stream without trailers.
   */
  #failure(err: unknown): GrpcCallError {
    if (this.#conn.closed || this.#signal?.aborted) {
      return new GrpcCallError(GrpcStatus.CANCELLED, "Cancelled on client");
    }
    if (err instanceof GrpcCallError) return err;
    const reset = this.#stream?.rstCode ?? 0;
    if (this.#session && !this.#conn.lost(this.#session) && reset !== NGHTTP2_CANCEL) {
      if (reset) return statusOfReset(reset);
      if (this.#ended) return new GrpcCallError(GrpcStatus.UNKNOWN, "No status received");
    }
    return new GrpcCallError(GrpcStatus.UNAVAILABLE, errorMessage(err), { cause: err });
  }

  #finish(error?: GrpcCallError): void {
    if (this.#settled) return;
    this.#settled = true;
    clearTimeout(this.#timer);
    this.#signal?.removeEventListener("abort", this.#onAbort);
    const stream = this.#stream;
    if (stream && !stream.closed && !stream.destroyed) stream.close(NGHTTP2_CANCEL);
    this.#settle(error);
  }
}

/** A unary call: the one response message, or a rejection with a {@link GrpcCallError}. */
export async function unaryCall(
  conn: Http2Connection,
  path: string,
  request: Uint8Array,
  opts: GrpcCallOptions,
): Promise<Uint8Array> {
  const messages: Uint8Array[] = [];
  await new GrpcCall(conn, path, request, opts, (m) => messages.push(m)).done;
  if (messages.length !== 1) {
    const details = messages.length ? "Too many responses received" : "No message received";
    throw new GrpcCallError(GrpcStatus.UNIMPLEMENTED, details);
  }
  return messages[0];
}

/** Buffered responses of a stream above which reading pauses, and below which it resumes. */
const HIGH_WATER = 64, LOW_WATER = 16;

/**
 * A server-streaming call: yields each response message; ends when the server ends it with OK,
 * throws its {@link GrpcCallError} otherwise. Leaving the loop early cancels the call.
 */
export async function* serverStreamCall(
  conn: Http2Connection,
  path: string,
  request: Uint8Array,
  opts: GrpcCallOptions,
): AsyncGenerator<Uint8Array, void> {
  const queue: Uint8Array[] = [];
  let wake: (() => void) | undefined;
  const call = new GrpcCall(conn, path, request, opts, (m) => {
    if (queue.push(m) >= HIGH_WATER) call.pause();
    wake?.();
  });
  let outcome: { error?: GrpcCallError } | undefined;
  call.done.then(() => outcome = {}, (error) => outcome = { error }).finally(() => wake?.());
  try {
    while (true) {
      const message = queue.shift();
      if (message) {
        if (queue.length === LOW_WATER) call.resume();
        yield message;
      } else if (outcome) {
        if (outcome.error) throw outcome.error;
        return;
      } else {
        await new Promise<void>((resolve) => wake = resolve);
        wake = undefined;
      }
    }
  } finally {
    call.cancel();
  }
}
