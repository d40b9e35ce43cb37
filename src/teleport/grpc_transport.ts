/**
 * grpc-js plumbing shared by the Teleport gRPC client and the test Auth server:
 *
 * - {@link DuplexCredentials}: `ChannelCredentials` whose connections are byte streams we open
 *   ourselves (a TLS socket to Auth from an `AuthDialer`), so grpc-js never does TLS or picks the
 *   route. It hooks grpc-js's internal `_createSecureConnector` (pinned grpc-js 1.14.7; a unit
 *   test fails if the hook disappears).
 * - {@link startThrowawayTarget}: grpc-js always opens a TCP connection to the channel target
 *   before asking the credentials for the real stream; the target is a loopback listener that
 *   closes every connection.
 * - {@link grpcServiceDefinition}: a grpc-js service definition from a protoc-gen-es descriptor.
 */
import * as grpc from "@grpc/grpc-js";
import type { DescMessage, DescService, MessageShape } from "@bufbuild/protobuf";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { Buffer } from "node:buffer";
import net from "node:net";
import type { Socket } from "node:net";
import type { Duplex } from "node:stream";

/** Opens one new byte stream to the server (e.g. an mTLS socket to Auth with h2 negotiated). */
export type DuplexFactory = (opts: { signal?: AbortSignal }) => Promise<Duplex>;

/** Methods grpc-js's http2 code (and Deno's http2) calls on the socket, added as no-ops if missing. */
const SOCKET_SHIMS = ["unref", "ref", "setNoDelay", "setTimeout", "setKeepAlive"] as const;

/**
 * Channel credentials whose transport is any `Duplex` from `open` (one call per connection).
 *
 * grpc-js still dials the channel target over TCP first; that socket is destroyed at once (point
 * the target at {@link startThrowawayTarget}). Deno's http2 calls `socket.unref()`
 * unconditionally, so no-op `unref`/`ref`/`setNoDelay`/`setTimeout` are added when the duplex
 * lacks them. `secure` must be true for `.compose(callCredentials)` to be allowed; set it when
 * the stream is itself encrypted (our mTLS socket).
 */
export class DuplexCredentials extends grpc.ChannelCredentials {
  readonly #open: DuplexFactory;
  readonly #secure: boolean;
  readonly #signal?: AbortSignal;
  /** Number of streams opened so far (for tests and logs). */
  opened = 0;

  constructor(open: DuplexFactory, opts: { secure?: boolean; signal?: AbortSignal } = {}) {
    super();
    this.#open = open;
    this.#secure = opts.secure ?? true;
    this.#signal = opts.signal;
  }

  _isSecure(): boolean {
    return this.#secure;
  }

  _equals(other: grpc.ChannelCredentials): boolean {
    return (other as unknown) === this;
  }

  _createSecureConnector(
    _channelTarget: unknown,
    _options: unknown,
    callCredentials?: grpc.CallCredentials,
  ): grpc.experimental.SecureConnector {
    return {
      connect: async (tcp: Socket) => {
        tcp.destroy(); // grpc-js always dials the (throwaway) target first
        const duplex = await this.#open({ signal: this.#signal });
        this.opened++;
        const d = duplex as unknown as Record<string, unknown>;
        for (const m of SOCKET_SHIMS) {
          if (typeof d[m] !== "function") d[m] = () => duplex;
        }
        return { socket: duplex as unknown as Socket, secure: this.#secure };
      },
      waitForReady: () => Promise.resolve(),
      getCallCredentials: () => callCredentials ?? grpc.CallCredentials.createEmpty(),
      destroy: () => {},
    };
  }
}

/** A loopback listener that accepts and immediately closes every connection. */
export interface ThrowawayTarget {
  /** `127.0.0.1:<port>`, usable as a grpc-js channel target. */
  readonly target: string;
  close(): void;
}

/** Starts a {@link ThrowawayTarget} on 127.0.0.1, port chosen by the OS. */
export function startThrowawayTarget(
  opts: { signal?: AbortSignal } = {},
): Promise<ThrowawayTarget> {
  return new Promise((resolve, reject) => {
    opts.signal?.throwIfAborted();
    const server = net.createServer((s) => s.destroy());
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const addr = server.address() as net.AddressInfo;
      let closed = false;
      resolve({
        target: `127.0.0.1:${addr.port}`,
        close: () => {
          if (closed) return;
          closed = true;
          server.close();
        },
      });
    });
  });
}

/** Serializes a protobuf-es message (or init object) for grpc-js. */
export function serializer<D extends DescMessage>(schema: D): (v: unknown) => Buffer {
  return (v) => Buffer.from(toBinary(schema, create(schema, v as MessageShape<D>)));
}

/** Deserializes grpc-js bytes into a protobuf-es message. */
export function deserializer<D extends DescMessage>(schema: D): (b: Buffer) => MessageShape<D> {
  return (b) => fromBinary(schema, b);
}

/** A grpc-js `ServiceDefinition` for a protoc-gen-es service descriptor (server side). */
export function grpcServiceDefinition(svc: DescService): grpc.ServiceDefinition {
  const def: Record<string, grpc.MethodDefinition<unknown, unknown>> = {};
  for (const m of svc.methods) {
    def[m.name] = {
      path: `/${svc.typeName}/${m.name}`,
      requestStream: m.methodKind === "client_streaming" || m.methodKind === "bidi_streaming",
      responseStream: m.methodKind === "server_streaming" || m.methodKind === "bidi_streaming",
      requestSerialize: serializer(m.input),
      requestDeserialize: deserializer(m.input),
      responseSerialize: serializer(m.output),
      responseDeserialize: deserializer(m.output),
      originalName: m.localName,
    };
  }
  return def as grpc.ServiceDefinition;
}
