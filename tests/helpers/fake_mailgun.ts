/**
 * A fake Mailgun HTTP API for tests and the demo (`Deno.serve` on 127.0.0.1 port 0).
 *
 * - `POST {basePath}/{domain}/messages`: checks Basic auth (`api:<key>`), parses the multipart
 *   form, records the message and answers `{ id: "<uuid@domain>", message: "Queued. Thank you." }`
 *   (with angle brackets, like real Mailgun). `o:testmode=yes` is answered but not recorded.
 *   A form without `from` or `to` gets 400, like Mailgun.
 * - `GET {basePath}/domains/{domain}`: 200 with the domain for the account key; 401 for a
 *   domain sending key (which may only send) or a wrong key; 404 for an unknown domain.
 * - Anything outside `basePath` gets 401 "Forbidden", as real Mailgun does for a domain of the
 *   other region; so `basePath: "/eu/v3"` simulates an EU-only domain.
 */
import { bounded } from "./bounded.ts";

/** A message the fake accepted. */
export interface FakeMailgunMessage {
  /** The ID returned to the client, with angle brackets. */
  id: string;
  domain: string;
  from: string;
  /** The first `to`. */
  to: string;
  /** Every `to` value. */
  toAll: string[];
  subject: string;
  text: string;
  html?: string;
  /** `h:*` fields without the prefix, e.g. `In-Reply-To`, `References`. */
  headers: Record<string, string>;
  /** `o:*` fields with the prefix, e.g. `o:require-tls`. */
  options: Record<string, string>;
}

/** A recorded HTTP request (no credentials). */
export interface FakeMailgunRequest {
  method: string;
  path: string;
  /** User name of the Basic auth header (`api`), or undefined. */
  authUser?: string;
  /** Whether the password matched the account key or the sending key. */
  authOk: boolean;
  status: number;
}

/** Options of {@link FakeMailgun.start}. */
export interface FakeMailgunOptions {
  /** The account API key. Default `key-test`. */
  apiKey?: string;
  /** A domain sending key: may POST messages, may not read the domain. */
  sendingKey?: string;
  /** The one known domain. Default `mg.example.test`. */
  domain?: string;
  /** Path prefix of the API. Default `/v3`. */
  basePath?: string;
}

type ResolvedOptions = Required<Omit<FakeMailgunOptions, "sendingKey">> & { sendingKey?: string };

/** See the module documentation. */
export class FakeMailgun {
  /** Accepted messages, in arrival order. */
  readonly messages: FakeMailgunMessage[] = [];
  /** Every request, in arrival order. */
  readonly requests: FakeMailgunRequest[] = [];
  /** `http://127.0.0.1:<port>`. */
  readonly url: string;
  /** `url + basePath`: pass as `MailgunConfig.apiBase`. */
  readonly apiBase: string;
  readonly domain: string;
  /** Delay before answering, in ms; change at any time. */
  delayMs = 0;
  readonly #opts: ResolvedOptions;
  readonly #server: Deno.HttpServer;
  readonly #abort: AbortController;
  #failures: { remaining: number; status: number; body: string } | undefined;
  #waiters: (() => void)[] = [];

  private constructor(
    server: Deno.HttpServer,
    abort: AbortController,
    port: number,
    opts: ResolvedOptions,
  ) {
    this.#server = server;
    this.#abort = abort;
    this.#opts = opts;
    this.url = `http://127.0.0.1:${port}`;
    this.apiBase = `${this.url}${opts.basePath}`;
    this.domain = opts.domain;
  }

  /** Starts the fake on 127.0.0.1 with a free port. */
  static start(opts: FakeMailgunOptions = {}): Promise<FakeMailgun> {
    const full = {
      apiKey: opts.apiKey ?? "key-test",
      sendingKey: opts.sendingKey,
      domain: opts.domain ?? "mg.example.test",
      basePath: (opts.basePath ?? "/v3").replace(/\/+$/, ""),
    };
    const abort = new AbortController();
    // deno-lint-ignore prefer-const -- the handler closure needs it before it is assigned
    let fake: FakeMailgun | undefined;
    const server = Deno.serve(
      { hostname: "127.0.0.1", port: 0, signal: abort.signal, onListen: () => {} },
      (req) => fake ? fake.#handle(req) : new Response("starting", { status: 503 }),
    );
    fake = new FakeMailgun(server, abort, server.addr.port, full);
    return Promise.resolve(fake);
  }

  /** The next `n` requests (any route) get `status` with `body` (JSON `{message}` by default). */
  failNext(n: number, status: number, body?: string): void {
    const text = body ?? JSON.stringify({ message: `Injected failure ${status}` });
    this.#failures = { remaining: n, status, body: text };
  }

  /** Resolves once at least `n` messages arrived; rejects after `timeoutMs` (default 5000). */
  async waitFor(n: number, opts: { timeoutMs?: number } = {}): Promise<FakeMailgunMessage[]> {
    const timeoutMs = opts.timeoutMs ?? 5000;
    try {
      await bounded(
        (async () => {
          while (this.messages.length < n) {
            await new Promise<void>((resolve) => this.#waiters.push(resolve));
          }
        })(),
        () => `FakeMailgun: ${this.messages.length} of ${n} messages after ${timeoutMs} ms`,
        timeoutMs,
      );
    } finally {
      this.#wake();
    }
    return this.messages.slice(0, n);
  }

  /** Stops the server. */
  async close(): Promise<void> {
    this.#abort.abort();
    await this.#server.finished;
    this.#wake();
  }

  #wake() {
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const wake of waiters) wake();
  }

  async #handle(req: Request): Promise<Response> {
    const path = new URL(req.url).pathname;
    const { user, key } = parseBasic(req.headers.get("authorization"));
    const isAccountKey = user === "api" && key === this.#opts.apiKey;
    const isSendingKey = user === "api" && this.#opts.sendingKey !== undefined &&
      key === this.#opts.sendingKey;
    const record = (status: number) =>
      this.requests.push({
        method: req.method,
        path,
        authUser: user,
        authOk: isAccountKey || isSendingKey,
        status,
      });
    const reply = (status: number, body: unknown) => {
      record(status);
      return typeof body === "string"
        ? new Response(body, { status })
        : Response.json(body, { status });
    };
    if (this.delayMs > 0) await new Promise((r) => setTimeout(r, this.delayMs));
    const f = this.#failures;
    if (f && f.remaining > 0) {
      f.remaining--;
      await req.body?.cancel();
      record(f.status);
      return new Response(f.body, {
        status: f.status,
        headers: f.body.startsWith("{") ? { "content-type": "application/json" } : {},
      });
    }
    const base = this.#opts.basePath;
    if (!path.startsWith(`${base}/`)) {
      await req.body?.cancel();
      return reply(401, "Forbidden");
    }
    const rest = path.slice(base.length);
    const domainMatch = /^\/domains\/([^/]+)$/.exec(rest);
    if (req.method === "GET" && domainMatch) {
      if (!isAccountKey) return reply(401, "Forbidden");
      const name = decodeURIComponent(domainMatch[1]);
      if (name !== this.#opts.domain) return reply(404, { message: "Domain not found" });
      return reply(200, { domain: { name, state: "active" } });
    }
    const sendMatch = /^\/([^/]+)\/messages$/.exec(rest);
    if (req.method === "POST" && sendMatch) {
      if (!isAccountKey && !isSendingKey) {
        await req.body?.cancel();
        return reply(401, "Forbidden");
      }
      const domain = decodeURIComponent(sendMatch[1]);
      if (domain !== this.#opts.domain) {
        await req.body?.cancel();
        return reply(404, { message: `Domain not found: ${domain}` });
      }
      let form: FormData;
      try {
        form = await req.formData();
      } catch {
        return reply(400, { message: "Bad request: cannot parse form" });
      }
      const field = (name: string) => {
        const v = form.get(name);
        return typeof v === "string" ? v : undefined;
      };
      const from = field("from");
      const toAll = form.getAll("to").filter((v): v is string => typeof v === "string");
      if (!from) return reply(400, { message: "'from' parameter is missing" });
      if (toAll.length === 0) return reply(400, { message: "'to' parameter is missing" });
      const id = `<${crypto.randomUUID()}@${domain}>`;
      if (field("o:testmode") === "yes") return reply(200, { id, message: "Queued. Thank you." });
      const headers: Record<string, string> = {};
      const options: Record<string, string> = {};
      for (const [name, value] of form.entries()) {
        if (typeof value !== "string") continue;
        if (name.startsWith("h:")) headers[name.slice(2)] = value;
        if (name.startsWith("o:")) options[name] = value;
      }
      this.messages.push({
        id,
        domain,
        from,
        to: toAll[0],
        toAll,
        subject: field("subject") ?? "",
        text: field("text") ?? "",
        html: field("html"),
        headers,
        options,
      });
      this.#wake();
      return reply(200, { id, message: "Queued. Thank you." });
    }
    await req.body?.cancel();
    return reply(404, { message: "Not found" });
  }
}

function parseBasic(header: string | null): { user?: string; key?: string } {
  const match = header ? /^Basic\s+(\S+)$/i.exec(header) : null;
  if (!match) return {};
  try {
    const decoded = atob(match[1]);
    const colon = decoded.indexOf(":");
    return colon < 0 ? { user: decoded } : {
      user: decoded.slice(0, colon),
      key: decoded.slice(colon + 1),
    };
  } catch {
    return {};
  }
}
