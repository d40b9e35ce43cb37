/**
 * The cache of Access Monitoring Rules used for routing, like the Go plugin's
 * `accessmonitoring.RuleHandler`:
 *
 * - only rules whose `spec.subjects` include `access_request` are kept; a PUT of a rule that no
 *   longer applies removes it;
 * - when `notification.name` is set, the condition becomes
 *   `plugin.spec.name == "<name>" && (<condition>)`. Go writes it without the parentheses,
 *   which changes the meaning of a condition containing `||`; ours keeps the condition whole;
 * - `spec.states` is ignored, as in Go (the reference plugin never reads it);
 * - conditions are compiled once per rule version and cached;
 * - a rule whose condition does not compile, or fails to evaluate for a request, does not match;
 *   the Go warning `Failed to parse access monitoring notification rule` (attributes `error`,
 *   `rule`) is reported through the `warn` callback each time it is skipped.
 *
 * @module
 */
import {
  type AccessMonitoringRule,
  type AccessRequest,
  KIND_ACCESS_REQUEST,
} from "../teleport/types.ts";
import { goRegexpLoaded, loadGoRegexp } from "./go_regexp.ts";
import {
  accessRequestEnv,
  type CompiledPredicate,
  compilePredicate,
  PredicateError,
} from "./predicate.ts";

/** A structured warning sink (a LogTape logger's `warn` fits). */
export type WarnFn = (msg: string, attrs: Record<string, unknown>) => void;

/** Go's warning for a rule that cannot be used. */
export const RULE_PARSE_WARNING = "Failed to parse access monitoring notification rule";

interface CachedRule {
  rule: AccessMonitoringRule;
  /** The condition actually evaluated (after the notification-name rewrite). */
  condition: string;
  predicate?: CompiledPredicate;
  error?: PredicateError;
}

/** Whether the plugin should keep `rule` (its subjects include `access_request`). */
export function ruleApplies(rule: AccessMonitoringRule): boolean {
  return rule.subjects.includes(KIND_ACCESS_REQUEST);
}

/**
 * The condition to evaluate for `rule`: the notification-name rewrite applied when
 * `notification.name` is set.
 */
export function effectiveCondition(rule: AccessMonitoringRule): string {
  const name = rule.notification.name;
  if (name === "") return rule.condition;
  if (rule.condition.trim() === "") return rule.condition; // still "empty expression"
  return `plugin.spec.name == ${JSON.stringify(name)} && (${rule.condition})`;
}

function compileRule(rule: AccessMonitoringRule): CachedRule {
  const condition = effectiveCondition(rule);
  try {
    return { rule, condition, predicate: compilePredicate(condition) };
  } catch (e) {
    if (e instanceof PredicateError) return { rule, condition, error: e };
    throw e;
  }
}

/** Access Monitoring Rules by name, with compiled conditions. Not thread-safe (JS needs none). */
export class AccessMonitoringRuleCache {
  #rules = new Map<string, CachedRule>();
  #warn: WarnFn;

  /** `warn` receives the skipped-rule warnings; by default they are dropped. */
  constructor(opts: { warn?: WarnFn } = {}) {
    this.#warn = opts.warn ?? (() => {});
  }

  /**
   * Adds or replaces `rule` (a PUT); removes it instead when it does not apply to requests. The
   * rule is in the cache on return; the promise resolves once it can be evaluated (a condition
   * that calls `regexp.replace` waits for `re2js` to load, and is not matched until then).
   */
  set(rule: AccessMonitoringRule): Promise<void> {
    if (!ruleApplies(rule)) {
      this.#rules.delete(rule.name);
      return Promise.resolve();
    }
    const cached = compileRule(rule);
    this.#rules.set(rule.name, cached);
    return cached.predicate?.usesRegexp ? loadGoRegexp() : Promise.resolve();
  }

  /** Removes the rule called `name` (a DELETE); unknown names are ignored. */
  delete(name: string): void {
    this.#rules.delete(name);
  }

  /**
   * Replaces the whole cache, e.g. with the list read at start-up or after a reconnect; resolves
   * as {@link set} does.
   */
  async replaceAll(rules: Iterable<AccessMonitoringRule>): Promise<void> {
    this.#rules.clear();
    await Promise.all([...rules].map((rule) => this.set(rule)));
  }

  /** How many rules are cached. */
  get size(): number {
    return this.#rules.size;
  }

  /** The cached rules (as received), sorted by name. */
  rules(): AccessMonitoringRule[] {
    return [...this.#rules.values()].map((c) => c.rule).sort((a, b) =>
      compareNames(a.name, b.name)
    );
  }

  /**
   * The rules whose condition matches `req` for the plugin `pluginName`, sorted by rule name
   * (Go iterates a map, in random order). Rules that fail to compile or evaluate are skipped
   * with a warning.
   */
  match(req: AccessRequest, pluginName = "email"): AccessMonitoringRule[] {
    if (this.#rules.size === 0) return [];
    const env = accessRequestEnv(req, pluginName);
    const matched: AccessMonitoringRule[] = [];
    const sorted = [...this.#rules.values()].sort((a, b) => compareNames(a.rule.name, b.rule.name));
    for (const cached of sorted) {
      // Still loading `re2js`: as if the rule had not arrived yet (the watcher waits for the
      // load before it hands on another event).
      if (cached.predicate?.usesRegexp && !goRegexpLoaded()) continue;
      let error = cached.error;
      let ok = false;
      if (cached.predicate !== undefined) {
        try {
          ok = cached.predicate(env);
        } catch (e) {
          if (!(e instanceof PredicateError)) throw e;
          error = e;
        }
      }
      if (error !== undefined) {
        this.#warn(RULE_PARSE_WARNING, { error: error.message, rule: cached.rule.name });
        continue;
      }
      if (ok) matched.push(cached.rule);
    }
    return matched;
  }
}

function compareNames(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
