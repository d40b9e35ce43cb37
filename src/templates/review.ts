/**
 * The reply sent to every thread for each new review of a request.
 */
import type { AccessReview } from "../teleport/types.ts";
import {
  type EmailContent,
  escapeHtml,
  formatRfc822,
  htmlMultiline,
  htmlPage,
  subjectFor,
  textValue,
} from "./common.ts";

/**
 * Go's review reply, byte for byte for ordinary input:
 *
 * ```text
 * <author> reviewed the request at 24 Nov 26 05:00 UTC.
 * Resolution: ✅ APPROVED.
 * Reason: <reason>.
 * ```
 *
 * The emoji is ✅ for APPROVED, ❌ for DENIED and empty otherwise (leaving two spaces). Without
 * a reason the body ends with the second line's newline.
 */
export function reviewEmail(
  ctx: { clusterName: string; requestId: string },
  review: AccessReview,
): EmailContent {
  const emoji = review.proposedState === "APPROVED"
    ? "✅"
    : review.proposedState === "DENIED"
    ? "❌"
    : "";
  const created = formatRfc822(review.created);
  let text = `${textValue(review.author)} reviewed the request at ${created}.\n` +
    `Resolution: ${emoji} ${review.proposedState}.\n`;
  if (review.reason !== "") text += `Reason: ${textValue(review.reason)}.`;

  let body =
    `<p style="margin:0 0 8px 0"><strong>${
      escapeHtml(review.author)
    }</strong> reviewed the request at ${created}.</p>\n` +
    `<p style="margin:0 0 8px 0">Resolution: ${emoji} <strong>${
      escapeHtml(review.proposedState)
    }</strong>.</p>\n`;
  if (review.reason !== "") {
    body += `<p style="margin:0 0 8px 0">Reason: ${htmlMultiline(review.reason)}.</p>\n`;
  }
  const subject = subjectFor(ctx.clusterName, ctx.requestId);
  return { subject, text, html: htmlPage(subject, body), kind: "review" };
}
