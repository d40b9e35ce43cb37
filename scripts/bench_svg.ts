/**
 * The latency chart of `deno task bench`: a hand-written SVG (no browser, no library) with one
 * cumulative distribution per measured checkout — request created → last recipient's email
 * accepted, requests one at a time — and its p50 and p95 marked.
 * @module
 */

/** One line of the chart: a label and its latencies in ms (any order). */
export interface LatencySeries {
  label: string;
  latenciesMs: number[];
}

const WIDTH = 720;
/** Height with two legend lines; each further series adds {@link LEGEND_LINE}. */
const BASE_HEIGHT = 420;
const LEGEND_LINE = 16;
const PAD = { left: 64, right: 24, top: 48, bottom: 96 };
const COLOURS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e"];

function esc(s: string): string {
  return s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;")
    .replace(/"/g, "&quot;");
}

/** A "nice" axis step (1, 2 or 5 × 10^k) giving about `ticks` ticks up to `max`. */
function niceStep(max: number, ticks: number): number {
  const raw = max / ticks;
  const pow = 10 ** Math.floor(Math.log10(raw));
  const m = raw / pow;
  return (m <= 1 ? 1 : m <= 2 ? 2 : m <= 5 ? 5 : 10) * pow;
}

function pct(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

/**
 * The SVG document (UTF-8 text). The x axis ends at 1.5 × the largest p95 of all series (the
 * slowest few requests run off the right edge; the legend gives their maximum).
 */
export function latencySvg(series: LatencySeries[], title: string): string {
  const HEIGHT = BASE_HEIGHT + LEGEND_LINE * Math.max(0, series.length - 2);
  const sorted = series.map((s) => [...s.latenciesMs].sort((a, b) => a - b));
  const edge = 1.5 * Math.max(1, ...sorted.filter((s) => s.length > 0).map((s) => pct(s, 95)));
  const step = niceStep(edge, 8);
  const xMax = Math.ceil(edge / step) * step;
  const plotW = WIDTH - PAD.left - PAD.right;
  const plotH = BASE_HEIGHT - PAD.top - PAD.bottom;
  const x = (ms: number) => PAD.left + (Math.min(ms, xMax) / xMax) * plotW;
  const y = (f: number) => PAD.top + (1 - f) * plotH;
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${HEIGHT}" ` +
    `viewBox="0 0 ${WIDTH} ${HEIGHT}" font-family="sans-serif" font-size="12">`,
    `<rect width="${WIDTH}" height="${HEIGHT}" fill="white"/>`,
    `<text x="${WIDTH / 2}" y="24" text-anchor="middle" font-size="15">${esc(title)}</text>`,
  ];
  for (let v = 0; v <= xMax + 1e-9; v += step) {
    out.push(
      `<line x1="${x(v)}" y1="${PAD.top}" x2="${x(v)}" y2="${PAD.top + plotH}" stroke="#ddd"/>`,
      `<text x="${x(v)}" y="${PAD.top + plotH + 16}" text-anchor="middle">${+v.toFixed(3)}</text>`,
    );
  }
  for (let f = 0; f <= 1.0001; f += 0.25) {
    out.push(
      `<line x1="${PAD.left}" y1="${y(f)}" x2="${PAD.left + plotW}" y2="${y(f)}" stroke="#ddd"/>`,
      `<text x="${PAD.left - 6}" y="${y(f) + 4}" text-anchor="end">${Math.round(f * 100)}%</text>`,
    );
  }
  out.push(
    `<rect x="${PAD.left}" y="${PAD.top}" width="${plotW}" height="${plotH}" fill="none" stroke="#444"/>`,
    `<text x="${PAD.left + plotW / 2}" y="${PAD.top + plotH + 36}" text-anchor="middle">` +
      `latency, ms (request created → last recipient's email accepted)</text>`,
    `<text transform="translate(16 ${PAD.top + plotH / 2}) rotate(-90)" text-anchor="middle">` +
      `requests at or below</text>`,
  );
  sorted.forEach((s, i) => {
    if (s.length === 0) return;
    const colour = COLOURS[i % COLOURS.length];
    let d = `M ${x(s[0]).toFixed(1)} ${y(0).toFixed(1)}`;
    s.forEach((ms, k) => {
      d += ` L ${x(ms).toFixed(1)} ${y(k / s.length).toFixed(1)}`;
      d += ` L ${x(ms).toFixed(1)} ${y((k + 1) / s.length).toFixed(1)}`;
    });
    out.push(`<path d="${d}" fill="none" stroke="${colour}" stroke-width="2"/>`);
    for (const p of [50, 95]) {
      const v = pct(s, p);
      out.push(
        `<circle cx="${x(v).toFixed(1)}" cy="${y(p / 100).toFixed(1)}" r="3.5" fill="${colour}"/>`,
      );
    }
    const ly = PAD.top + plotH + 56 + i * LEGEND_LINE;
    out.push(
      `<line x1="${PAD.left}" y1="${ly - 4}" x2="${PAD.left + 24}" y2="${ly - 4}" ` +
        `stroke="${colour}" stroke-width="3"/>`,
      `<text x="${PAD.left + 30}" y="${ly}">${esc(series[i].label)}: p50 ${
        pct(s, 50).toFixed(1)
      } ms, p95 ${pct(s, 95).toFixed(1)} ms, max ${s.at(-1)!.toFixed(1)} ms, n = ${s.length}` +
        ` (dots: p50, p95)</text>`,
    );
  });
  out.push("</svg>");
  return out.join("\n") + "\n";
}
