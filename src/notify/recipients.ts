/**
 * Who gets the emails of a request (the Go plugin's recipient computation, with fixes):
 *
 * 1. Access Monitoring Rules first: the `notification.recipients` of every matching rule, in
 *    rule-name order. Unlike Go, each must be a bare email address; invalid ones are dropped with
 *    the warning `Ignoring an access monitoring rule recipient with an invalid email address`
 *    (attributes `recipient`, `rule`). If any valid address remains, that is the whole list
 *    (`role_to_recipients` and suggested reviewers are ignored, as in Go). If the matching rules
 *    name no valid address, we fall back to role routing instead of sending nothing.
 * 2. Role routing: for each requested role, `role_to_recipients[role]` when non-empty, otherwise
 *    `role_to_recipients["*"]` (a per-role fallback); then the suggested reviewers. Addresses that
 *    are not bare email addresses are dropped with Go's warning
 *    `Failed to notify a suggested reviewer with an invalid email address` (attribute
 *    `reviewer`).
 * 3. Duplicates are removed comparing the domain part case-insensitively (Go compares exact
 *    strings); the first spelling is kept. The order is deterministic: configuration or rule
 *    order, then suggested reviewers (Go's order is random).
 * 4. With `notifyRequester`, the requester is added when their user name is a bare email address
 *    and they are not a recipient already.
 *
 * @module
 */
import { isBareEmailAddress } from "../email_address.ts";
import type { AccessRequest } from "../teleport/types.ts";
import type { AccessMonitoringRuleCache, WarnFn } from "./rules.ts";

/** Go's warning for an invalid role-routing recipient or suggested reviewer. */
export const INVALID_REVIEWER_WARNING =
  "Failed to notify a suggested reviewer with an invalid email address";
/** Our warning for an invalid Access Monitoring Rule recipient. */
export const INVALID_RULE_RECIPIENT_WARNING =
  "Ignoring an access monitoring rule recipient with an invalid email address";

/** Options of {@link computeRecipients}. */
export interface RecipientOptions {
  /** `[role_to_recipients]` from the configuration (with its `"*"` entry). */
  roleToRecipients: Record<string, string[]>;
  /** The Access Monitoring Rules cache. */
  rules: AccessMonitoringRuleCache;
  /** `delivery.notify_requester`: also email the requester when their user name is an address. */
  notifyRequester: boolean;
  /** `plugin.spec.name` for rule conditions; `email`. */
  pluginName?: "email";
  /** Structured warnings (invalid addresses, unusable rules). */
  warn?: WarnFn;
}

/** The result of {@link computeRecipients}. */
export interface Recipients {
  /** Bare, de-duplicated addresses in a deterministic order (the requester last, if added). */
  recipients: string[];
  /**
   * The requester's address, set when `notifyRequester` is on and the user name is a bare email
   * address. It is in `recipients` (added, or already there).
   */
  requester?: string;
  /** Whether the list came from Access Monitoring Rules or from role routing. */
  source: "rules" | "roles";
}

/**
 * The key two addresses are duplicates under: the local part as is, the domain lower-cased
 * (domains are case-insensitive; local parts formally are not).
 */
export function recipientKey(address: string): string {
  const at = address.lastIndexOf("@");
  if (at < 0) return address;
  return address.slice(0, at) + "@" + address.slice(at + 1).toLowerCase();
}

/** An ordered set of addresses de-duplicated by {@link recipientKey}. */
class AddressList {
  readonly #seen = new Set<string>();
  readonly items: string[] = [];

  add(address: string): boolean {
    const key = recipientKey(address);
    if (this.#seen.has(key)) return false;
    this.#seen.add(key);
    this.items.push(address);
    return true;
  }
}

/** Computes the recipients of a new request's emails. Pure: no I/O, only `opts.warn`. */
export function computeRecipients(req: AccessRequest, opts: RecipientOptions): Recipients {
  const warn = opts.warn ?? (() => {});
  const list = new AddressList();
  let source: "rules" | "roles" = "roles";

  for (const rule of opts.rules.match(req, opts.pluginName ?? "email")) {
    for (const recipient of rule.notification.recipients) {
      if (!isBareEmailAddress(recipient)) {
        warn(INVALID_RULE_RECIPIENT_WARNING, { recipient, rule: rule.name });
        continue;
      }
      list.add(recipient);
    }
  }
  if (list.items.length > 0) {
    source = "rules";
  } else {
    const candidates: string[] = [];
    const wildcard = opts.roleToRecipients["*"] ?? [];
    for (const role of req.roles) {
      const mapped = Object.hasOwn(opts.roleToRecipients, role)
        ? opts.roleToRecipients[role]
        : undefined;
      candidates.push(...(mapped !== undefined && mapped.length > 0 ? mapped : wildcard));
    }
    candidates.push(...req.suggestedReviewers);
    const warned = new Set<string>();
    for (const candidate of candidates) {
      if (!isBareEmailAddress(candidate)) {
        if (!warned.has(candidate)) {
          warned.add(candidate);
          warn(INVALID_REVIEWER_WARNING, { reviewer: candidate });
        }
        continue;
      }
      list.add(candidate);
    }
  }

  const result: Recipients = { recipients: list.items, source };
  if (opts.notifyRequester && isBareEmailAddress(req.user)) {
    list.add(req.user);
    result.requester = req.user;
  }
  return result;
}
