/**
 * The diagnostics HTTP endpoint of `start --diag-addr=HOST:PORT` (off by default: without the
 * flag nothing listens). It binds exactly the address given and answers:
 *
 * - `GET /healthz`: `200 ok` while the process runs (answering at all shows its event loop does);
 * - `GET /readyz`: `200 ready`, or `503 not ready: <reason>` (one line, see `readiness.ts`);
 * - `GET /metrics`: the Prometheus text format (see `metrics.ts`);
 * - anything else (other paths, other methods): `404`.
 *
 * It serves no secret: metrics carry bounded labels only, and the only free text is the one-line
 * reason of a lost watch stream (the connection error, which names Teleport's address at most).
 * @module
 */
import type { Logger } from "@logtape/logtape";
import { ConfigError, formatError, UsageError } from "../errors.ts";
import { settledWithin } from "../async.ts";
import type { PromMetrics } from "./metrics.ts";

/** How long {@link DiagServer.close} waits for running requests. */
const CLOSE_TIMEOUT_MS = 2000;

/** The flag, as errors name it. */
export const DIAG_ADDR_FLAG = "--diag-addr";

/** A parsed `--diag-addr`: `hostname` without brackets (`::1`), `port` 0..65535 (0: any). */
export interface DiagAddr {
  hostname: string;
  port: number;
}

/**
 * Parses `HOST:PORT` (`127.0.0.1:3000`, `localhost:3000`, `[::1]:3000`, `0.0.0.0:3000`).
 * Throws {@link UsageError} naming the flag for anything else, including an empty host: the
 * endpoint binds only where it is told.
 */
export function parseDiagAddr(value: string): DiagAddr {
  const bad = (why: string) =>
    new UsageError(
      `invalid value "${value}" for flag '${DIAG_ADDR_FLAG}': ${why} (e.g. 127.0.0.1:3000)`,
    );
  const m = /^(?:\[([0-9A-Fa-f:.%\w-]+)\]|([^\[\]:\s]+)):([0-9]{1,5})$/.exec(value);
  if (!m) {
    throw bad(
      value.includes(":") && !value.startsWith("[") && value.split(":").length > 2
        ? "put an IPv6 address in brackets"
        : /^:/.test(value)
        ? "expected HOST:PORT with a host"
        : "expected HOST:PORT",
    );
  }
  const port = Number(m[3]);
  if (port > 65535) throw bad("the port must be at most 65535");
  return { hostname: m[1] ?? m[2], port };
}

/** `HOST:PORT` as written in logs (`[::1]:3000` for IPv6). */
export function formatAddr(addr: DiagAddr): string {
  return addr.hostname.includes(":")
    ? `[${addr.hostname}]:${addr.port}`
    : `${addr.hostname}:${addr.port}`;
}

/** A running diagnostics server. */
export interface DiagServer {
  /** Where it listens (the real port when 0 was asked for). */
  readonly addr: DiagAddr;
  /** Stops listening and closes open connections. */
  close(): Promise<void>;
}

/** Answers one request (exported for tests). */
export async function handleDiagRequest(req: Request, metrics: PromMetrics): Promise<Response> {
  const path = new URL(req.url).pathname;
  if (req.method !== "GET" && req.method !== "HEAD") return notFound();
  const text = (status: number, body: string, type = "text/plain; charset=utf-8") =>
    new Response(req.method === "HEAD" ? null : body, {
      status,
      headers: { "content-type": type, "cache-control": "no-store" },
    });
  switch (path) {
    case "/healthz":
      return text(200, "ok\n");
    case "/readyz": {
      const s = metrics.readiness.status();
      return s.ready ? text(200, "ready\n") : text(503, `not ready: ${s.reason}\n`);
    }
    case "/metrics":
      return text(200, await metrics.render(), metrics.contentType);
    default:
      return notFound();
  }
}

function notFound(): Response {
  return new Response("404 page not found\n", {
    status: 404,
    headers: { "content-type": "text/plain; charset=utf-8" },
  });
}

/**
 * Starts listening on `addr` and logs `Serving diagnostics` with the address. Throws
 * {@link ConfigError} naming the flag when the address cannot be bound (in use, not local,
 * not permitted).
 */
export function startDiagServer(
  addr: DiagAddr,
  metrics: PromMetrics,
  opts: { log?: Logger } = {},
): DiagServer {
  const ac = new AbortController();
  let server: Deno.HttpServer<Deno.NetAddr>;
  try {
    server = Deno.serve({
      hostname: addr.hostname,
      port: addr.port,
      signal: ac.signal,
      onListen: () => {},
      onError: (err) => {
        opts.log?.warn("Diagnostics request failed", { error: formatError(err) });
        return new Response("internal error\n", { status: 500 });
      },
    }, (req) => handleDiagRequest(req, metrics));
  } catch (err) {
    throw new ConfigError(
      DIAG_ADDR_FLAG,
      `Cannot listen on ${DIAG_ADDR_FLAG} "${formatAddr(addr)}": ${formatError(err)}`,
      { cause: err },
    );
  }
  const bound = { hostname: addr.hostname, port: server.addr.port };
  opts.log?.info("Serving diagnostics", { address: formatAddr(bound) });
  return {
    addr: bound,
    close: async () => {
      ac.abort();
      // Graceful: running requests finish. Bounded, so a stuck client cannot hold the exit.
      await settledWithin(server.finished, CLOSE_TIMEOUT_MS, undefined);
    },
  };
}
