/**
 * Keys the Go plugin still accepts for compatibility, and what they turn into: Go field names
 * (`Host` for `host`), `delivery.recipients` (→ `role_to_recipients["*"]`) and
 * `teleport.auth_server` (→ `teleport.addr`). Each use leaves a warning, in the Go plugin's words.
 */
import type { LoadContext } from "./context.ts";

/**
 * go-toml v1 matches untagged struct fields by their Go name too (`Host` as well as `host`);
 * these are the Go plugin's untagged fields.
 */
export const GO_FIELD_NAMES: Readonly<Record<string, string>> = {
  domain: "Domain",
  host: "Host",
  port: "Port",
  username: "Username",
  password: "Password",
  sender: "Sender",
  recipients: "Recipients",
};

/** `teleport.addr` when neither `addr` nor `auth_server` is set. */
export const DEFAULT_TELEPORT_ADDR = "localhost:3025";

/**
 * Folds the deprecated `delivery.recipients` into `roleToRecipients["*"]` (in place), as Go's
 * `CheckAndSetDefaults` does.
 */
export function applyLegacyRecipients(
  ctx: LoadContext,
  recipients: string[] | undefined,
  roleToRecipients: Record<string, string[]>,
): void {
  if (recipients === undefined) return;
  ctx.warn(
    'The delivery.recipients config option is deprecated, set role_to_recipients["*"] instead for the same functionality',
  );
  if (recipients.length === 0) return;
  if (Object.keys(roleToRecipients).length > 0) {
    throw ctx.error(
      "delivery.recipients",
      "provide either delivery.recipients or role_to_recipients, not both",
    );
  }
  roleToRecipients["*"] = [...recipients];
}

/** `teleport.addr`, falling back to the deprecated `auth_server`, then to the default. */
export function resolveTeleportAddr(ctx: LoadContext, addr: string, authServer: string): string {
  if (addr === "" && authServer === "") return DEFAULT_TELEPORT_ADDR;
  if (addr === "") {
    ctx.warn("Configuration setting `auth_server` is deprecated, consider to change it to `addr`");
    return authServer;
  }
  if (authServer !== "") {
    ctx.warn(
      "Configuration setting `auth_server` is deprecated, consider to change it to `addr` (ignored because teleport.addr is set)",
    );
  }
  return addr;
}
