/**
 * What the running plugin reports about itself, and the observer that records nothing. Apart
 * from `metrics.ts` (Prometheus, `npm:prom-client`), which `start` loads only with
 * `--diag-addr`.
 * @module
 */
import type { EmailKind } from "../mailers/mailer.ts";

/** Whether a failed send may pass (retried) or not (the recipient or message is refused). */
export type SendFailure = "temporary" | "permanent";

/** What the app, the watcher and the mailer wrapper tell about their work. */
export interface PluginObserver {
  /** The mailer's start-up health check passed. */
  mailerChecked(): void;
  /** An INIT event arrived on a (re)opened watch stream. */
  watching(): void;
  /** The watch stream was lost (or could not be opened); reconnecting. */
  reconnecting(reason: string): void;
  /** An event (INIT included) arrived from Teleport. */
  eventReceived(): void;
  /** One email was sent; `seconds` is how long the transport took. */
  emailSent(kind: EmailKind | undefined, seconds: number): void;
  /** One send attempt failed. */
  sendFailed(kind: EmailKind | undefined, reason: SendFailure, seconds: number): void;
  /** Read at scrape time: access request events queued or being handled. */
  trackInFlight(source: () => number): void;
  /** Read at scrape time: when the plugin's identity (certificate) expires. */
  trackIdentityExpiry(source: () => Date | undefined): void;
}

/** An observer that records nothing (diagnostics off). */
export const NOOP_OBSERVER: PluginObserver = {
  mailerChecked() {},
  watching() {},
  reconnecting() {},
  eventReceived() {},
  emailSent() {},
  sendFailed() {},
  trackInFlight() {},
  trackIdentityExpiry() {},
};
