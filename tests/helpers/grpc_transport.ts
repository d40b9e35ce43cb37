/**
 * grpc-js plumbing of the tests: the test Auth server is a grpc-js server, and grpc-js clients
 * over the plugin's own dialers check it (and the wire) independently of the plugin's gRPC client
 * (`src/teleport/grpc_call.ts`):
 *
 * - {@link DuplexCredentials}: `ChannelCredentials` whose connections are byte streams we open
 *   ourselves (a TLS socket to Auth from an `AuthDialer`), so grpc-js never does TLS or picks the
 *   route. It hooks grpc-js's internal `_createSecureConnector`.
 * - {@link createDuplexClient}: a `grpc.Client` over such credentials. grpc-js would open a TCP
 *   connection to the channel target before asking the credentials for the real stream; a hook
 *   on its internal `Http2SubchannelConnector` skips that step for our credentials, so the
 *   target ({@link UNDIALED_TARGET}) is never dialed and nothing needs to listen on it.
 * - {@link grpcServiceDefinition}: a grpc-js service definition from a protoc-gen-es descriptor.
 *
 * The credentials also install `guardHttp2GoawayDestroy()` (`http2_goaway_guard.ts`). The hooks
 * touch grpc-js internals (pinned grpc-js 1.14.7); unit tests fail if they disappear.
 */
import * as grpc from "@grpc/grpc-js";
import { Http2SubchannelConnector } from "@grpc/grpc-js/build/src/transport.js";
import type { DescMessage, DescService, MessageShape } from "@bufbuild/protobuf";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { Buffer } from "node:buffer";
import type { Socket } from "node:net";
import { withSocketShims } from "../../src/teleport/dial_net.ts";
import type { DuplexFactory } from "../../src/teleport/h2_connection.ts";
import { guardHttp2GoawayDestroy } from "../../src/teleport/http2_goaway_guard.ts";

/**
 * The channel target of every {@link createDuplexClient} client. An IP literal (no DNS lookup)
 * on port 0 (nothing can listen there): the no-TCP hook means grpc-js never connects to it.
 */
export const UNDIALED_TARGET = "127.0.0.1:0";

/** Marks the secure connectors of {@link DuplexCredentials}: their subchannels open no TCP connection. */
const NO_TCP = Symbol.for("teleport-email.grpc.noTcp");

/**
 * Channel credentials whose transport is any `Duplex` from `open` (one call per connection).
 *
 * Use them through {@link createDuplexClient}. Deno's http2 calls `socket.unref()`
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
    installNoTcpHook();
    guardHttp2GoawayDestroy();
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
    const connector: grpc.experimental.SecureConnector = {
      // The argument is the hook's placeholder, not a socket: the stream comes from `open`.
      connect: async () => {
        const duplex = withSocketShims(await this.#open({ signal: this.#signal }));
        this.opened++;
        return { socket: duplex as unknown as Socket, secure: this.#secure };
      },
      waitForReady: () => Promise.resolve(),
      getCallCredentials: () => callCredentials ?? grpc.CallCredentials.createEmpty(),
      destroy: () => {},
    };
    return Object.assign(connector, { [NO_TCP]: true });
  }
}

/**
 * A `grpc.Client` whose every connection is a stream from `credentials`, on
 * {@link UNDIALED_TARGET}. grpc-js's own proxy support is off, or `grpc_proxy`/`https_proxy`
 * would make it resolve the proxy's host name: routing, proxies included, is the duplex
 * factory's job.
 */
export function createDuplexClient(
  credentials: DuplexCredentials,
  options: grpc.ChannelOptions = {},
): grpc.Client {
  return new grpc.Client(UNDIALED_TARGET, credentials, {
    ...options,
    "grpc.enable_http_proxy": 0,
  });
}

/** The parts of grpc-js's `Http2SubchannelConnector` (1.14.7, private) the hook relies on. */
interface ConnectorInternals {
  connect(address: unknown, secureConnector: object, options: unknown): Promise<unknown>;
  tcpConnect(address: unknown, options: unknown): Promise<unknown>;
}

const HOOKED = Symbol.for("teleport-email.grpc.noTcpHook");

/**
 * Makes grpc-js skip its TCP connection to the channel target for {@link DuplexCredentials}.
 *
 * `Http2SubchannelConnector.connect` runs `tcpConnect(address)` (a real `net.connect`) and hands
 * the socket to the credentials' secure connector. One connector instance serves one subchannel,
 * whose secure connector never changes, so for ours `tcpConnect` is replaced on the instance by
 * one that returns an inert placeholder. Other credentials keep grpc-js's behaviour.
 */
function installNoTcpHook(): void {
  const proto = Http2SubchannelConnector.prototype as unknown as
    & ConnectorInternals
    & Record<symbol, boolean>;
  if (proto[HOOKED]) return;
  if (typeof proto.connect !== "function" || typeof proto.tcpConnect !== "function") {
    throw new Error(
      "grpc-js has no Http2SubchannelConnector.tcpConnect: the no-TCP hook needs 1.14.7",
    );
  }
  const connect = proto.connect;
  proto.connect = function (this: ConnectorInternals, address, secureConnector, options) {
    if (NO_TCP in secureConnector) this.tcpConnect = noTcpConnect;
    return connect.call(this, address, secureConnector, options);
  };
  proto[HOOKED] = true;
}

/** Stands in for grpc-js's TCP socket: it only calls `setNoDelay()` and, on failure, `destroy()`. */
function noTcpConnect(): Promise<unknown> {
  return Promise.resolve({ setNoDelay: () => {}, destroy: () => {} });
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
