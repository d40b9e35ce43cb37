/**
 * The body shared by the new-request and resolution emails (Go's `buildBody`).
 */
import {
  type EmailContent,
  escapeHtml,
  extraLines,
  htmlExtras,
  htmlPage,
  htmlRequestFacts,
  htmlStatus,
  type RequestContext,
  requestLink,
  type StatusInfo,
  statusLineText,
  subjectFor,
  textField,
} from "./common.ts";

/**
 * Renders a request email. `heading` is Go's first line without the colon; `status` undefined
 * means pending.
 */
export function requestEmail(
  ctx: RequestContext,
  heading: string,
  status: StatusInfo,
): EmailContent {
  let text = `${heading}:\n\n`;
  text += textField("ID", ctx.requestId);
  text += textField("Cluster", ctx.clusterName);
  if (ctx.user !== "") text += textField("User", ctx.user);
  if (ctx.roles.length > 0) text += textField("Role(s)", ctx.roles.join(","));
  if (ctx.requestReason !== "") text += textField("Reason", ctx.requestReason);
  const link = requestLink(ctx.webProxyAddr, ctx.requestId);
  if (link !== undefined) {
    text += textField("Link", link);
  } else if (status === undefined) {
    text += textField("Approve", `tsh request review --approve ${ctx.requestId}`);
    text += textField("Deny", `tsh request review --deny ${ctx.requestId}`);
  }
  text += "\n" + statusLineText(status);
  const extras = extraLines(ctx);
  if (extras.length > 0) text += "\n\n" + extras.join("\n");

  const html = htmlPage(
    subjectFor(ctx.clusterName, ctx.requestId),
    `<p style="margin:0 0 16px 0">${escapeHtml(heading)}:</p>\n` +
      htmlRequestFacts(ctx, status !== undefined) +
      htmlStatus(status) +
      htmlExtras(ctx),
  );
  return { subject: subjectFor(ctx.clusterName, ctx.requestId), text, html };
}
