/**
 * The first email of a thread, sent to each recipient of a new request.
 */
import type { EmailContent, RequestContext } from "./common.ts";
import { requestEmail } from "./request_body.ts";

/**
 * `You have a new Role Request:` with the request's facts, the `Link:` line (Enterprise) or the
 * `tsh request review` commands, and `Status: ⏳ PENDING`.
 */
export function newRequestEmail(ctx: RequestContext): EmailContent {
  return { ...requestEmail(ctx, "You have a new Role Request", undefined), kind: "new" };
}
