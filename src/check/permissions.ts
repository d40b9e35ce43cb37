/**
 * `check`: the permissions of the plugin's Teleport role, each probed with a real call that
 * changes nothing, the way Teleport authorizes them (`lib/auth/auth_with_roles.go`):
 *
 * - `access_request` list, read: a WatchEvents of `access_request` (needs `read`; a denied kind
 *   is left out of INIT, or the watch fails), ListAccessRequests with limit 1 (a deny rule gives
 *   PERMISSION_DENIED; a missing allow rule gives no error, only the caller's own requests), and
 *   GetPluginData for a request that cannot exist (needs `list` and `read` on `access_request`
 *   or `access_plugin_data`);
 * - `access_plugin_data` update: UpdatePluginData for a request ID that cannot exist, with an
 *   expectation that cannot hold: NOT_FOUND when the role allows the update (also granted by
 *   `access_request` update), PERMISSION_DENIED when not;
 * - `access_monitoring_rule` list, read: ListAccessMonitoringRulesWithFilter; only a WARN, since
 *   the plugin then routes by `role_to_recipients` alone.
 *
 * A FAIL names the missing rule, and the role of the Teleport guide is printed once.
 * @module
 */
import { errorMessage, TeleportError } from "../errors.ts";
import type { TeleportClient } from "../teleport/client.ts";
import { KIND_ACCESS_REQUEST } from "../teleport/types.ts";
import type { CheckReport } from "./report.ts";

/** The plugin's role from the Teleport guide, with the optional routing-rules rule. */
export const GUIDE_ROLE_YAML = `kind: role
version: v7
metadata:
  name: access-plugin
spec:
  allow:
    rules:
      - resources: [access_request]
        verbs: [list, read]
      - resources: [access_plugin_data]
        verbs: [update]
      - resources: [access_monitoring_rule] # optional: routing by Access Monitoring Rules
        verbs: [list, read]
`;

/** A request ID no access request can have (Teleport's IDs are UUIDs). */
export const PROBE_REQUEST_ID = "teleport-email-check-nonexistent-request";
/** The plugin data key of the update probe, with an expected value that is never stored. */
const PROBE_KEY = "teleport_email_check";

/** Options of {@link checkPermissions}. */
export interface PermissionCheckOptions {
  /** The plugin name of plugin data and rules (`email`). */
  plugin: string;
  signal: AbortSignal;
  /** How long to wait for the watch's INIT, ms. */
  watchTimeoutMs: number;
}

/** What one probe found: allowed (with a note), denied (the server's words), or failed. */
type Outcome =
  | { result: "allowed"; note: string }
  | { result: "denied" | "error"; message: string };

function isDenial(err: unknown): boolean {
  return err instanceof TeleportError &&
    (err.kind === "access_denied" ||
      (err.kind === "bad_parameter" && /none of the requested kinds/.test(err.message)));
}

async function probe(call: () => Promise<string>): Promise<Outcome> {
  try {
    return { result: "allowed", note: await call() };
  } catch (err) {
    const message = errorMessage(err);
    return { result: isDenial(err) ? "denied" : "error", message };
  }
}

/** Opens a watch of `access_request` and reads its INIT; throws on a denied kind. */
async function probeWatch(client: TeleportClient, opts: PermissionCheckOptions): Promise<string> {
  const ac = new AbortController();
  const timeout = AbortSignal.timeout(opts.watchTimeoutMs);
  const signal = AbortSignal.any([opts.signal, ac.signal, timeout]);
  try {
    for await (const event of client.watchEvents([KIND_ACCESS_REQUEST], { signal })) {
      if (event.type !== "init") continue;
      if (event.kinds && !event.kinds.includes(KIND_ACCESS_REQUEST)) {
        throw new TeleportError(
          "access_denied",
          `the watch left out "${KIND_ACCESS_REQUEST}" (accepted: ${event.kinds.join(", ")})`,
        );
      }
      return "watch";
    }
    throw new TeleportError(
      "connection_problem",
      timeout.aborted
        ? `no INIT on the watch within ${opts.watchTimeoutMs} ms`
        : "the watch ended before its INIT",
    );
  } finally {
    ac.abort();
  }
}

/**
 * Runs the probes and prints one line per permission, then the guide's role when one FAILed.
 * Never throws.
 */
export async function checkPermissions(
  report: CheckReport,
  client: TeleportClient,
  opts: PermissionCheckOptions,
): Promise<void> {
  const call = { signal: opts.signal };
  const reads = [
    await probe(() => probeWatch(client, opts)),
    await probe(async () => {
      await client.listAccessRequests({ ...call, limit: 1 });
      return "ListAccessRequests (limit 1)";
    }),
    await probe(async () => {
      await client.getPluginData(PROBE_REQUEST_ID, opts.plugin, call);
      return "GetPluginData";
    }),
  ];
  let failed = reportRule(report, "access_request", "list, read", reads);

  const update = await probe(async () => {
    try {
      await client.updatePluginData(
        PROBE_REQUEST_ID,
        opts.plugin,
        { [PROBE_KEY]: "probe" },
        { [PROBE_KEY]: "never-stored" },
        call,
      );
    } catch (err) {
      // Allowed: the request does not exist (or, impossibly, the expectation did not hold).
      if (err instanceof TeleportError && err.kind === "not_found") return "UpdatePluginData";
      if (err instanceof TeleportError && err.kind === "compare_failed") return "UpdatePluginData";
      throw err;
    }
    return "UpdatePluginData";
  });
  failed = reportRule(report, "access_plugin_data", "update", [update]) || failed;

  const rules = await probe(async () => {
    const n = (await client.listAccessMonitoringRules(opts.plugin, call)).length;
    return `ListAccessMonitoringRules (${n} rule${n === 1 ? "" : "s"} for plugin "${opts.plugin}")`;
  });
  reportRule(report, "access_monitoring_rule", "list, read", [rules], { optional: true });

  if (failed) {
    report.block(
      "The plugin's role in the Teleport guide (tctl create -f access-plugin.yaml, and give the role to the plugin's user):\n" +
        GUIDE_ROLE_YAML,
    );
  }
}

/** Prints the line of one rule from its probes; returns whether it FAILed. */
function reportRule(
  report: CheckReport,
  resource: string,
  verbs: string,
  outcomes: Outcome[],
  opts: { optional?: boolean } = {},
): boolean {
  const name = `permission ${resource} ${verbs}`;
  const problem = outcomes.find((o) => o.result === "denied") ??
    outcomes.find((o) => o.result === "error");
  if (!problem || problem.result === "allowed") {
    const notes = outcomes.map((o) => o.result === "allowed" ? o.note : "").join(", ");
    report.ok(`${name}: allowed (${notes}; nothing changed)`);
    return false;
  }
  const fix = `add the rule "resources: [${resource}], verbs: [${verbs}]" to the plugin's role`;
  if (problem.result === "error") {
    report.fail(`${name}: could not be checked: ${problem.message}`, "see the connection line");
    return true;
  }
  if (opts.optional) {
    report.warn(
      `${name}: denied (${problem.message}); routing by Access Monitoring Rules is off, emails go by role_to_recipients`,
      `${fix} to use routing rules`,
    );
    return false;
  }
  report.fail(`${name}: denied (${problem.message})`, `${fix} (the guide's role is below)`);
  return true;
}
