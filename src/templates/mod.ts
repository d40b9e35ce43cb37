/**
 * The email templates: pure functions from request data to `{ subject, text, html }`.
 */
export type { EmailContent, EmailKind, RequestContext, ResolutionInfo } from "./common.ts";
export { formatRfc822, requestLink, subjectFor } from "./common.ts";
export { newRequestEmail } from "./new_request.ts";
export { resolutionEmail } from "./resolution.ts";
export { reviewEmail } from "./review.ts";
