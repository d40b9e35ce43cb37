/**
 * Go's `regexp` package as Teleport's predicate language uses it: RE2 syntax (`(?i)`, `(?P<name>…)`,
 * `\pL`, `\Q…\E`, no backreferences or lookaround) through `re2js`, and Go's
 * `Regexp.ReplaceAllString` with its `$1`, `${1}`, `$name`, `${name}`, `$$` template.
 *
 * @module
 */
import type { RE2JS } from "re2js";

/** `re2js`'s engine, once {@link loadGoRegexp} has loaded it. */
let engine: typeof RE2JS | undefined;

/**
 * Loads `re2js`. Only a rule whose condition calls `regexp.replace` needs it (most have none),
 * and it is ~0.7 MiB of resident memory, so it is loaded when such a rule arrives.
 */
export async function loadGoRegexp(): Promise<void> {
  engine ??= (await import("re2js")).RE2JS;
}

/** Whether {@link loadGoRegexp} has loaded the engine. */
export function goRegexpLoaded(): boolean {
  return engine !== undefined;
}

/**
 * A compiled RE2 pattern, or the syntax error Go's `regexp.Compile` would report. Needs
 * {@link loadGoRegexp} first.
 */
export function compileGoRegexp(pattern: string): RE2JS {
  if (engine === undefined) throw new Error("internal error: re2js is needed and was not loaded");
  return engine.compile(pattern);
}

/** Go's `Regexp.MatchString`: whether the pattern matches anywhere in `s`. */
export function goMatchString(re: RE2JS, s: string): boolean {
  return re.matcher(s).find();
}

/** A name character of Go's template expansion: a letter, a digit or `_`. */
const NAME_CHAR = /[\p{L}\p{Nd}_]/u;

/** A match's groups, by index and by name, as Go's `Expand` reads them. */
interface Submatches {
  byIndex: Array<string | undefined>;
  byName: Record<string, number>;
}

function groupValue(name: string, m: Submatches): string {
  if (/^[0-9]+$/.test(name)) return m.byIndex[Number(name)] ?? "";
  const index = m.byName[name];
  return index === undefined ? "" : m.byIndex[index] ?? "";
}

/**
 * Go's `Regexp.Expand`: `$name` takes the longest run of name characters (`$1x` is the group named
 * `1x`), `${name}` is braced, `$$` is a `$`, and any other `$` is kept as it is.
 */
export function goExpand(template: string, m: Submatches): string {
  let out = "";
  let i = 0;
  while (i < template.length) {
    const dollar = template.indexOf("$", i);
    if (dollar < 0) return out + template.slice(i);
    out += template.slice(i, dollar);
    i = dollar + 1;
    if (template[i] === "$") {
      out += "$";
      i++;
      continue;
    }
    let name = "";
    let end = i;
    if (template[i] === "{") {
      const close = template.indexOf("}", i + 1);
      name = close < 0 ? "" : template.slice(i + 1, close);
      if (name === "" || ![...name].every((c) => NAME_CHAR.test(c))) name = "";
      end = close + 1;
    } else {
      for (const c of template.slice(i)) {
        if (!NAME_CHAR.test(c)) break;
        name += c;
      }
      end = i + name.length;
    }
    if (name === "") {
      out += "$"; // not a reference: Go writes the dollar sign and goes on
      continue;
    }
    out += groupValue(name, m);
    i = end;
  }
  return out;
}

/**
 * Go's `Regexp.ReplaceAllString`: successive non-overlapping matches, an empty match right after a
 * match is not replaced, and the search always advances by at least one character.
 */
export function goReplaceAll(re: RE2JS, src: string, template: string): string {
  const matcher = re.matcher(src);
  const byName = re.namedGroups() as Record<string, number>;
  const groups = re.groupCount();
  let out = "";
  let lastMatchEnd = 0;
  let searchPos = 0;
  while (searchPos <= src.length && matcher.find(searchPos)) {
    const start = matcher.start(0);
    const end = matcher.end(0);
    out += src.slice(lastMatchEnd, start);
    if (end > lastMatchEnd || start === 0) {
      const byIndex: Array<string | undefined> = [];
      for (let g = 0; g <= groups; g++) byIndex.push(matcher.group(g) ?? undefined);
      out += goExpand(template, { byIndex, byName });
    }
    lastMatchEnd = end;
    const width = (src.codePointAt(searchPos) ?? 0) > 0xffff ? 2 : 1;
    searchPos = searchPos + width > end ? searchPos + width : end;
  }
  return out + src.slice(lastMatchEnd);
}
