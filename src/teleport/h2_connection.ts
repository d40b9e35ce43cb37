/**
 * The plugin's HTTP/2 connection to the Auth Service, under its own gRPC client
 * (`grpc_call.ts`, `grpc_client.ts`).
 *
 * {@link Http2Connection} opens a `node:http2` client session over a byte stream from the
 * `AuthDialer` (an mTLS socket to Auth with `h2` negotiated, whichever route it took) when the first
 * call needs one, and keeps it for every later call. A session that is told to go away (GOAWAY),
 * fails or closes is dropped: its open streams run to their end and the next call dials again.
 * After a failed dial, calls fail at once for a backoff (200 ms, doubling to 2 s) instead of each
 * dialing, as grpc-js does. Keepalive: a PING every `keepaliveTimeMs`, and a session whose PING is
 * not acknowledged within `keepaliveTimeoutMs` is destroyed.
 * @module
 */
import http2 from "node:http2";
import type { Socket } from "node:net";
import type { Duplex } from "node:stream";
import { abortable } from "../async.ts";
import { errorMessage } from "../errors.ts";
import { withSocketShims } from "./dial_net.ts";
import { GrpcCallError, GrpcStatus } from "./grpc_status.ts";
import { guardHttp2GoawayDestroy } from "./http2_goaway_guard.ts";

/** Opens one new byte stream to the server (e.g. an mTLS socket to Auth with h2 negotiated). */
export type DuplexFactory = (opts: { signal?: AbortSignal }) => Promise<Duplex>;

/** Options of {@link Http2Connection}. */
export interface Http2ConnectionOptions {
  /** The `:authority` of every request, e.g. `teleport.cluster.local`. */
  authority: string;
  /** PING interval in ms (default 60 000, as the Go client). */
  keepaliveTimeMs?: number;
  /** How long a PING may go unacknowledged before the session is destroyed (default 180 000). */
  keepaliveTimeoutMs?: number;
  /** First wait after a failed dial, in ms (default 200); it doubles up to `maxBackoffMs`. */
  initialBackoffMs?: number;
  /** Longest wait after failed dials, in ms (default 2 000). */
  maxBackoffMs?: number;
}

/** One dial and, once it succeeds, its session. */
interface Attempt {
  ready: Promise<http2.ClientHttp2Session>;
  /** The session, once the dial succeeded. */
  session?: http2.ClientHttp2Session;
  /** False once the session went away, failed or closed, or the dial failed. */
  usable: boolean;
}

/** A lazily dialed, self-replacing HTTP/2 client session. */
export class Http2Connection {
  /** Byte streams opened so far. */
  opened = 0;
  readonly #dial: DuplexFactory;
  readonly #opts: Required<Http2ConnectionOptions>;
  /** Open sessions and the stop of their keepalive. */
  readonly #sessions = new Map<http2.ClientHttp2Session, () => void>();
  readonly #closing = new AbortController();
  #current?: Attempt;
  /** Sessions that failed, were destroyed for a late PING ack, or closed. */
  readonly #lost = new WeakSet<http2.Http2Session>();
  #failure?: { error: GrpcCallError; until: number; backoffMs: number };

  constructor(dial: DuplexFactory, opts: Http2ConnectionOptions) {
    guardHttp2GoawayDestroy();
    this.#dial = dial;
    this.#opts = {
      authority: opts.authority,
      keepaliveTimeMs: opts.keepaliveTimeMs ?? 60_000,
      keepaliveTimeoutMs: opts.keepaliveTimeoutMs ?? 180_000,
      initialBackoffMs: opts.initialBackoffMs ?? 200,
      maxBackoffMs: opts.maxBackoffMs ?? 2_000,
    };
  }

  /** Whether {@link close} was called. */
  get closed(): boolean {
    return this.#closing.signal.aborted;
  }

  /** The `:authority` requests carry. */
  get authority(): string {
    return this.#opts.authority;
  }

  /**
   * The current session, dialing one if there is none. Rejects with an UNAVAILABLE
   * {@link GrpcCallError} when the dial fails (or failed within the backoff), with `signal`'s
   * reason when it aborts first.
   */
  session(signal?: AbortSignal): Promise<http2.ClientHttp2Session> {
    if (this.closed) return Promise.reject(this.#closing.signal.reason);
    if (!this.#usable(this.#current)) {
      const failure = this.#failure;
      if (failure && Date.now() < failure.until) return Promise.reject(failure.error);
      this.#current = this.#connect();
    }
    return abortable(this.#current.ready, signal);
  }

  /** Makes the next {@link session} dial anew if `session` is the current one (it refused a stream). */
  discard(session: http2.ClientHttp2Session): void {
    if (this.#current?.session === session) this.#current.usable = false;
  }

  /** Whether `session` failed or closed (or is being destroyed for a late keepalive ack). */
  lost(session: http2.Http2Session): boolean {
    return session.destroyed || this.#lost.has(session);
  }

  #usable(attempt: Attempt | undefined): attempt is Attempt {
    const s = attempt?.session;
    return attempt !== undefined && attempt.usable && !s?.closed && !s?.destroyed;
  }

  /** Closes every session (open streams are reset) and fails later calls. */
  close(): void {
    this.#closing.abort(new GrpcCallError(GrpcStatus.CANCELLED, "connection closed"));
    for (const [session, stopKeepalive] of this.#sessions) {
      stopKeepalive();
      session.destroy();
    }
    this.#sessions.clear();
  }

  #connect(): Attempt {
    const attempt: Attempt = { usable: true, ready: Promise.resolve(undefined!) };
    attempt.ready = this.#open(attempt).then(
      (session) => {
        this.#failure = undefined;
        return session;
      },
      (err) => {
        attempt.usable = false;
        throw this.#failed(err);
      },
    );
    attempt.ready.catch(() => {}); // a dial nobody waits for any more must not go unhandled
    return attempt;
  }

  async #open(attempt: Attempt): Promise<http2.ClientHttp2Session> {
    const signal = this.#closing.signal;
    const duplex = withSocketShims(await this.#dial({ signal }));
    this.opened++;
    if (signal.aborted) {
      duplex.destroy();
      throw signal.reason;
    }
    const session = http2.connect(`https://${this.#opts.authority}`, {
      createConnection: () => duplex as Socket,
    });
    attempt.session = session;
    this.#track(session, attempt);
    return session;
  }

  #track(session: http2.ClientHttp2Session, attempt: Attempt): void {
    const stopKeepalive = this.#keepalive(session);
    this.#sessions.set(session, stopKeepalive);
    const lose = () => {
      attempt.usable = false;
      this.#lost.add(session);
    };
    session.on("goaway", () => attempt.usable = false);
    session.on("error", lose); // its streams fail with their own errors
    session.on("close", () => {
      lose();
      stopKeepalive();
      this.#sessions.delete(session);
    });
  }

  /** Pings every `keepaliveTimeMs`; destroys the session when an ack is late. Returns the stop. */
  #keepalive(session: http2.ClientHttp2Session): () => void {
    const { keepaliveTimeMs, keepaliveTimeoutMs } = this.#opts;
    let deadline: ReturnType<typeof setTimeout> | undefined;
    const drop = (err: Error) => {
      this.#lost.add(session);
      if (!session.destroyed) session.destroy(err);
    };
    const acked = (err: Error | null) => {
      clearTimeout(deadline);
      deadline = undefined;
      if (err) drop(err);
    };
    const interval = setInterval(() => {
      if (session.destroyed || deadline !== undefined) return;
      deadline = setTimeout(() => {
        drop(new Error(`keepalive ping not acknowledged within ${keepaliveTimeoutMs} ms`));
      }, keepaliveTimeoutMs);
      try {
        if (!session.ping(acked)) acked(null); // not sent (too many unacknowledged): next time
      } catch { // the session is closing: its "close" stops this timer
        acked(null);
      }
    }, keepaliveTimeMs);
    return () => {
      clearInterval(interval);
      clearTimeout(deadline);
    };
  }

  /** The error for a failed dial; calls within the backoff that follows get it at once. */
  #failed(err: unknown): GrpcCallError {
    if (this.closed) return this.#closing.signal.reason;
    const error = new GrpcCallError(
      GrpcStatus.UNAVAILABLE,
      `No connection established. Last error: ${errorMessage(err)}`,
      { cause: err },
    );
    const { initialBackoffMs, maxBackoffMs } = this.#opts;
    const last = this.#failure?.backoffMs;
    const backoffMs = last === undefined ? initialBackoffMs : Math.min(last * 2, maxBackoffMs);
    this.#failure = { error, until: Date.now() + backoffMs, backoffMs };
    return error;
  }
}
