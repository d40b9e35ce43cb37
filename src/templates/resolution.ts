/**
 * The reply sent to every thread when a request is approved, denied, expired (or deleted) or
 * promoted to an Access List.
 */
import type { EmailContent, RequestContext, ResolutionInfo } from "./common.ts";
import { requestEmail } from "./request_body.ts";

/**
 * `Role Request has been resolved:` with the facts stored at creation, the `Link:` line when
 * there is one (no tsh commands once resolved), and the status line, e.g.
 * `Status: ✅ APPROVED (finally okay)`. PROMOTED (not sent by the Go plugin) reads
 * `Status: 🎉 PROMOTED to Access List "<title>"`.
 */
export function resolutionEmail(ctx: RequestContext, resolution: ResolutionInfo): EmailContent {
  return { ...requestEmail(ctx, "Role Request has been resolved", resolution), kind: "resolution" };
}
