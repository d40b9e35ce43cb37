/**
 * The email of `teleport-email check --send-test ADDRESS`: marked as a test in its subject and
 * its body, about no access request.
 * @module
 */
import type { OutgoingEmail } from "../mailers/mailer.ts";
import { escapeHtml, htmlPage } from "../templates/common.ts";

/** What the test email says about where it comes from. */
export interface TestEmailContext {
  /** The Teleport cluster, when the connection check got that far. */
  clusterName?: string;
  /** The host `check` runs on. */
  hostname: string;
  /** `teleport-email v0.1.0 …`. */
  version: string;
  /** `SMTP "mail.example.com:587"` or `Mailgun domain "mg.example.com"`. */
  transport: string;
  sentAt: Date;
}

/** Subject prefix of every test email. */
export const TEST_SUBJECT_PREFIX = "[TEST] teleport-email test message";

/** The test email to `to`: text and HTML, both saying it is a test. */
export function testEmail(to: string, ctx: TestEmailContext): OutgoingEmail {
  const cluster = ctx.clusterName ? ` for cluster ${ctx.clusterName}` : "";
  const subject = `${TEST_SUBJECT_PREFIX}${cluster}`;
  const paragraphs = [
    `This is a TEST message sent by "teleport-email check --send-test".`,
    `It is not about an access request and needs no action. If you can read it, ` +
    `teleport-email can deliver email to ${to} through ${ctx.transport}.`,
    `Sent ${ctx.sentAt.toISOString()} from host ${ctx.hostname}${cluster} by ${ctx.version}.`,
  ];
  return {
    to,
    subject,
    text: paragraphs.join("\n\n") + "\n",
    html: htmlPage(subject, paragraphs.map((p) => `<p>${escapeHtml(p)}</p>\n`).join("")),
  };
}
