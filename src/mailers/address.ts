/** Address and header-text helpers shared by the SMTP and Mailgun mailers. */

import { isIP } from "node:net";
import { MailerError } from "../errors.ts";

/** True for `localhost`, `127.0.0.0/8` and `::1`. */
export function isLoopbackHost(host: string): boolean {
  const h = host.trim().toLowerCase().replace(/^\[|\]$/g, "");
  if (h === "localhost" || h.endsWith(".localhost")) return true;
  if (isIP(h) === 4) return h.startsWith("127.");
  if (isIP(h) === 6) return h === "::1" || h === "0:0:0:0:0:0:0:1";
  return false;
}

/** The bare address of a `From` value: `Teleport <noreply@x.org>` → `noreply@x.org`. */
export function addressOf(sender: string): string {
  const match = /<([^<>]*)>\s*$/.exec(sender);
  return (match ? match[1] : sender).trim();
}

const RECIPIENT = /^[^\s,;<>()"'\\]+@[^\s,;<>()"'\\@]+$/;

/** Throws a permanent MailerError unless `to` is one plain address (no list, no CR/LF). */
export function checkRecipient(to: string): void {
  if (!RECIPIENT.test(to)) {
    throw new MailerError(`Invalid recipient address ${JSON.stringify(to)}`, {
      recipient: to,
      code: "EINVALIDRECIPIENT",
      retryable: false,
    });
  }
}

/** One line: CR and LF (which could start a new header) become spaces. */
export function oneLine(text: string): string {
  return text.replace(/[\r\n]+/g, " ");
}
