/**
 * A {@link RequestHandler} on the in-memory fakes, shared by the `notify/` and watcher tests.
 *
 * @module
 */

import { type HandlerOptions, RequestHandler } from "../../src/notify/handler.ts";
import type { FakeMailer, FakeTeleportClient } from "./fakes.ts";

/** The recipient every request's new-request email goes to in {@link fakeHandler}. */
export const ALL = "all@example.com";

/**
 * A handler on `client` and `mailer` for cluster `teleport.example.com`, sending each request
 * to {@link ALL} and its suggested reviewers; `over` replaces any option.
 */
export function fakeHandler(
  client: FakeTeleportClient,
  mailer: FakeMailer,
  over: Partial<HandlerOptions> = {},
): RequestHandler {
  return new RequestHandler({
    client,
    mailer,
    clusterName: "teleport.example.com",
    recipients: (req) => [ALL, ...req.suggestedReviewers],
    ...over,
  });
}
