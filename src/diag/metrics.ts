/**
 * What the running plugin reports about itself ({@link PluginObserver}), and its Prometheus
 * implementation ({@link PromMetrics}, `npm:prom-client`) behind `GET /metrics` and
 * `GET /readyz`. Without `start --diag-addr` the plugin uses {@link NOOP_OBSERVER}.
 *
 * Label values are bounded (`kind`: new, review, resolution, other; `reason`: temporary,
 * permanent): never a recipient, request ID or error text, so no secret or address can reach a
 * scrape.
 *
 * Process metrics: prom-client's defaults, except the ones it reads from `/proc/self`, which Deno
 * only opens under `--allow-all` (the daemon does not have it; they would read 0):
 * `process_resident_memory_bytes` comes from `Deno.memoryUsage()` instead, and the virtual
 * memory, heap and file descriptor gauges are left out.
 * @module
 */
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from "prom-client";
import type { EmailKind } from "../mailers/mailer.ts";
import { VERSION } from "../version.ts";
import { Readiness } from "./readiness.ts";

export { NOOP_OBSERVER, type PluginObserver, type SendFailure } from "./observer.ts";
import type { PluginObserver, SendFailure } from "./observer.ts";

/** The `kind` label values. */
export const KIND_LABELS = ["new", "review", "resolution", "other"] as const;
/** The `reason` label values. */
export const REASON_LABELS: readonly SendFailure[] = ["temporary", "permanent"];
/** Buckets of `teleport_email_send_duration_seconds`. */
export const SEND_DURATION_BUCKETS = [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

/** prom-client's default metrics that read `/proc/self` (0 without `--allow-all`). */
const PROC_METRICS = [
  "process_resident_memory_bytes",
  "process_virtual_memory_bytes",
  "process_heap_bytes",
  "process_open_fds",
  "process_max_fds",
];

function kindLabel(kind: EmailKind | undefined): (typeof KIND_LABELS)[number] {
  return kind === "new" || kind === "review" || kind === "resolution" ? kind : "other";
}

/** Options of {@link PromMetrics}. */
export interface PromMetricsOptions {
  /** Defaults to a new {@link Readiness}. */
  readiness?: Readiness;
  /** Register the process and runtime metrics; default true. */
  processMetrics?: boolean;
  /** Clock in ms since the epoch, for tests. */
  now?: () => number;
}

/** The Prometheus registry of the plugin's metrics, fed as a {@link PluginObserver}. */
export class PromMetrics implements PluginObserver {
  readonly registry = new Registry();
  readonly readiness: Readiness;
  readonly #now: () => number;
  #inFlight: () => number = () => 0;
  #identityExpiry: () => Date | undefined = () => undefined;
  readonly #sent: Counter<"kind">;
  readonly #failed: Counter<"kind" | "reason">;
  readonly #duration: Histogram;
  readonly #reconnects: Counter;
  readonly #lastEvent: Gauge;

  constructor(opts: PromMetricsOptions = {}) {
    this.readiness = opts.readiness ?? new Readiness();
    this.#now = opts.now ?? Date.now;
    const registers = [this.registry];
    if (opts.processMetrics ?? true) this.#processMetrics();
    this.#sent = new Counter({
      name: "teleport_email_emails_sent_total",
      help: "Emails sent, by kind (new: a thread's first email; review; resolution).",
      labelNames: ["kind"],
      registers,
    });
    this.#failed = new Counter({
      name: "teleport_email_send_failures_total",
      help: "Failed send attempts, by kind and reason (temporary: retried; permanent: not).",
      labelNames: ["kind", "reason"],
      registers,
    });
    for (const kind of KIND_LABELS) {
      this.#sent.inc({ kind }, 0);
      for (const reason of REASON_LABELS) this.#failed.inc({ kind, reason }, 0);
    }
    this.#duration = new Histogram({
      name: "teleport_email_send_duration_seconds",
      help: "Time one send attempt took in the mail transport (SMTP or Mailgun), in seconds.",
      buckets: SEND_DURATION_BUCKETS,
      registers,
    });
    this.#reconnects = new Counter({
      name: "teleport_email_watch_reconnects_total",
      help: "Times the watch stream was lost or could not be reopened, and a reconnect followed.",
      registers,
    });
    this.#lastEvent = new Gauge({
      name: "teleport_email_last_event_timestamp_seconds",
      help: "Unix time of the last event (INIT included) received from Teleport; 0 before any.",
      registers,
    });
    this.#gauges(registers);
  }

  #gauges(registers: Registry[]): void {
    const inFlight = () => this.#inFlight();
    const expiry = () => this.#identityExpiry();
    const ready = () => this.readiness.status().ready;
    new Gauge({
      name: "teleport_email_requests_in_flight",
      help: "Access request events queued or being handled.",
      registers,
      collect() {
        this.set(inFlight());
      },
    });
    new Gauge({
      name: "teleport_email_identity_expiry_timestamp_seconds",
      help: "Unix time at which the plugin's current identity certificate expires; 0 before known.",
      registers,
      collect() {
        const at = expiry();
        this.set(at === undefined ? 0 : at.getTime() / 1000);
      },
    });
    new Gauge({
      name: "teleport_email_ready",
      help: "1 when /readyz answers 200 (connected, watching, mailer working), else 0.",
      registers,
      collect() {
        this.set(ready() ? 1 : 0);
      },
    });
    new Gauge({
      name: "teleport_email_build_info",
      help: "Always 1; the version label is the running teleport-email version.",
      labelNames: ["version"],
      registers,
    }).set({ version: VERSION }, 1);
  }

  #processMetrics(): void {
    collectDefaultMetrics({ register: this.registry });
    for (const name of PROC_METRICS) this.registry.removeSingleMetric(name);
    new Gauge({
      name: "process_resident_memory_bytes",
      help: "Resident memory size in bytes.",
      registers: [this.registry],
      collect() {
        this.set(Deno.memoryUsage().rss);
      },
    });
  }

  /** The metrics in the Prometheus text format. */
  render(): Promise<string> {
    return this.registry.metrics();
  }

  /** The `Content-Type` of {@link render}'s text. */
  get contentType(): string {
    return this.registry.contentType;
  }

  mailerChecked(): void {
    this.readiness.mailerChecked();
  }

  watching(): void {
    this.readiness.watching();
  }

  reconnecting(reason: string): void {
    this.#reconnects.inc();
    this.readiness.reconnecting(reason);
  }

  eventReceived(): void {
    this.#lastEvent.set(this.#now() / 1000);
  }

  emailSent(kind: EmailKind | undefined, seconds: number): void {
    this.#sent.inc({ kind: kindLabel(kind) });
    this.#duration.observe(seconds);
    this.readiness.sendSucceeded();
  }

  sendFailed(kind: EmailKind | undefined, reason: SendFailure, seconds: number): void {
    this.#failed.inc({ kind: kindLabel(kind), reason });
    this.#duration.observe(seconds);
    this.readiness.sendFailed(reason);
  }

  trackInFlight(source: () => number): void {
    this.#inFlight = source;
  }

  trackIdentityExpiry(source: () => Date | undefined): void {
    this.#identityExpiry = source;
  }
}
