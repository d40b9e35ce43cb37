/**
 * Go's `time.ParseDuration`, for `teleport.refresh_identity_interval`. Hand-written on purpose
 * and must keep matching Go exactly (accepted syntax, units, limits and error messages): the same
 * configuration file must mean the same to both plugins, and no library parses Go durations.
 */

const UNITS_NS: Record<string, number> = {
  ns: 1,
  us: 1e3,
  "\u00b5s": 1e3, // µs (micro sign)
  "\u03bcs": 1e3, // μs (Greek mu)
  ms: 1e6,
  s: 1e9,
  m: 60e9,
  h: 3600e9,
};

/** The largest Go `time.Duration`, in nanoseconds. */
const MAX_DURATION_NS = 9223372036854775807;

/**
 * Parses a Go duration string (`300ms`, `30s`, `5m`, `1h30m`, `1.5h`, `-2s`, `0`) into
 * nanoseconds. Throws an `Error` whose message is Go's exactly (`time: invalid duration "x"`,
 * `time: missing unit in duration "1"`, `time: unknown unit "d" in duration "1d"`).
 */
export function parseGoDuration(orig: string): number {
  let s = orig;
  const invalid = () => new Error(`time: invalid duration ${goQuote(orig)}`);
  let neg = false;
  if (s !== "" && (s[0] === "-" || s[0] === "+")) {
    neg = s[0] === "-";
    s = s.slice(1);
  }
  if (s === "0") return 0;
  if (s === "") throw invalid();
  let total = 0;
  while (s !== "") {
    if (!(s[0] === "." || isDigit(s[0]))) throw invalid();
    const intPart = /^[0-9]*/.exec(s)![0];
    s = s.slice(intPart.length);
    let fracPart = "";
    let post = false;
    if (s !== "" && s[0] === ".") {
      s = s.slice(1);
      fracPart = /^[0-9]*/.exec(s)![0];
      s = s.slice(fracPart.length);
      post = fracPart.length > 0;
    }
    if (intPart.length === 0 && !post) throw invalid();
    let i = 0;
    while (i < s.length && !(s[i] === "." || isDigit(s[i]))) i++;
    if (i === 0) throw new Error(`time: missing unit in duration ${goQuote(orig)}`);
    const unit = s.slice(0, i);
    s = s.slice(i);
    const scale = UNITS_NS[unit];
    if (scale === undefined) {
      throw new Error(`time: unknown unit ${goQuote(unit)} in duration ${goQuote(orig)}`);
    }
    total += Number(`${intPart || "0"}.${fracPart || "0"}`) * scale;
    if (total > MAX_DURATION_NS) throw invalid();
  }
  return neg ? -total : total;
}

function isDigit(c: string): boolean {
  return c >= "0" && c <= "9";
}

/** Go's `%q` for the printable strings we meet here. */
function goQuote(s: string): string {
  return JSON.stringify(s);
}
