/**
 * The role-rule checks of the test Teleport server, as Teleport makes them
 * (`lib/services/role.go` `CheckAccessToRule`, `lib/auth/auth_with_roles.go` `action`):
 * a deny rule matching the kind and verb denies explicitly; otherwise an allow rule must match;
 * `*` matches any resource or verb. A denial reads
 * `access denied to perform action "<verb>" on "<kind>"`; several verbs checked at once are
 * reported together, joined with ", " (trace's aggregate error).
 */

/** One `rules:` entry of a Teleport role. */
export interface RoleRule {
  resources: string[];
  verbs: string[];
}

/** The `spec.allow.rules` and `spec.deny.rules` of the plugin's role. */
export interface TestRole {
  allow: RoleRule[];
  deny?: RoleRule[];
}

/**
 * The role of the Teleport guide for this plugin (`access-plugin`), with the optional
 * `access_monitoring_rule` rule: the test server's default.
 */
export const GUIDE_ROLE: TestRole = {
  allow: [
    { resources: ["access_request"], verbs: ["list", "read"] },
    { resources: ["access_plugin_data"], verbs: ["update"] },
    { resources: ["access_monitoring_rule"], verbs: ["list", "read"] },
  ],
};

/** A denial: Teleport's message, and whether a deny rule (not a missing allow) caused it. */
export interface Denial {
  message: string;
  explicit: boolean;
}

function matches(rules: RoleRule[] | undefined, kind: string, verb: string): boolean {
  return (rules ?? []).some((r) =>
    (r.resources.includes("*") || r.resources.includes(kind)) &&
    (r.verbs.includes("*") || r.verbs.includes(verb))
  );
}

/** Teleport's `action(namespace, kind, ...verbs)`: undefined when every verb is allowed. */
export function checkAction(role: TestRole, kind: string, ...verbs: string[]): Denial | undefined {
  const denials: Denial[] = [];
  for (const verb of verbs) {
    const message = `access denied to perform action "${verb}" on "${kind}"`;
    if (matches(role.deny, kind, verb)) denials.push({ message, explicit: true });
    else if (!matches(role.allow, kind, verb)) denials.push({ message, explicit: false });
  }
  if (denials.length === 0) return undefined;
  return {
    message: denials.map((d) => d.message).join(", "),
    explicit: denials.some((d) => d.explicit),
  };
}

/** `role` without any rule for `kinds` (the server's older `deniedKinds` knob). */
export function withoutKinds(role: TestRole, kinds: readonly string[]): TestRole {
  if (kinds.length === 0) return role;
  return {
    allow: role.allow.map((r) => ({
      resources: r.resources.filter((k) => !kinds.includes(k)),
      verbs: r.verbs,
    })),
    deny: [...(role.deny ?? []), { resources: [...kinds], verbs: ["*"] }],
  };
}
