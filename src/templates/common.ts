/**
 * Shared pieces of the email templates: subject, field lines, status line, links, time formats,
 * HTML escaping and the HTML page frame. Everything here is pure.
 *
 * Plain-text bodies reproduce the Go plugin's bodies byte for byte for ordinary input. Where user
 * input could forge a line of ours (a reason with a newline followed by `Status: ✅ APPROVED`),
 * we differ: every continuation line of a value is indented by two spaces, so no user-supplied
 * line can start at the left margin. Carriage returns become line feeds and other control
 * characters are dropped. Subjects never contain control characters (they are headers).
 */
import type { ResourceId } from "../teleport/types.ts";

/** One rendered email: the subject (one header line) and the two body parts. */
export interface EmailContent {
  subject: string;
  text: string;
  html: string;
  /** Which email this is (bounded: for metrics labels, never shown to recipients). */
  kind?: EmailKind;
}

/** The three emails the plugin sends: a thread's first, a review reply, the resolution reply. */
export type EmailKind = "new" | "review" | "resolution";

/** What the new-request and resolution emails show about a request. */
export interface RequestContext {
  clusterName: string;
  requestId: string;
  user: string;
  roles: string[];
  requestReason: string;
  /**
   * The proxy's public address (`proxy.example.com:443` or a URL). Pass it only when the
   * cluster has `AdvancedAccessWorkflows`: then the emails show a `Link:` line instead of the
   * `tsh request review` commands.
   */
  webProxyAddr?: string;
  /** The resources of a resource-based request; listed after the reference lines. */
  requestedResources?: ResourceId[];
  /** The request's expiry; shown after the reference lines. */
  expires?: Date;
}

/** The resolution shown by a resolution email. */
export interface ResolutionInfo {
  tag: "APPROVED" | "DENIED" | "EXPIRED" | "PROMOTED";
  reason: string;
  /** For PROMOTED: the title of the Access List the request was promoted to. */
  accessListTitle?: string;
}

/** At most this many requested resources are listed; the rest are counted. */
export const MAX_LISTED_RESOURCES = 50;

// C0 controls except TAB and LF, DEL and C1 controls.
// deno-lint-ignore no-control-regex
const BODY_CONTROLS = /[\u0000-\u0008\u000B\u000C\u000E-\u001F\u007F-\u009F]/g;
// Every control character, plus the Unicode line and paragraph separators.
// deno-lint-ignore no-control-regex
const HEADER_CONTROLS = /[\u0000-\u001F\u007F-\u009F\u2028\u2029]+/g;

/** Makes `s` safe for a header: each run of control characters becomes one space. */
export function headerSafe(s: string): string {
  return s.replace(HEADER_CONTROLS, " ");
}

/** Normalises line breaks to LF and drops control characters other than TAB and LF. */
export function bodySafe(s: string): string {
  return s.replace(/\r\n?/g, "\n").replace(BODY_CONTROLS, "");
}

/** `bodySafe`, then every line after the first indented by two spaces. */
export function textValue(s: string): string {
  return bodySafe(s).replaceAll("\n", "\n  ");
}

/** `<name>: <value>\n`, like Go's msgFieldToBuilder. */
export function textField(name: string, value: string): string {
  return `${name}: ${textValue(value)}\n`;
}

/** The subject of every email of a request: `<cluster> Role Request <id>`. */
export function subjectFor(clusterName: string, requestId: string): string {
  return headerSafe(`${clusterName} Role Request ${requestId}`);
}

/** Go's `url.PathEscape`: escapes everything but unreserved characters and `$&+:=@`. */
export function goPathEscape(s: string): string {
  let out = "";
  for (const byte of new TextEncoder().encode(s)) {
    const c = String.fromCharCode(byte);
    if (/[A-Za-z0-9\-_.~$&+:=@]/.test(c)) out += c;
    else out += "%" + byte.toString(16).toUpperCase().padStart(2, "0");
  }
  return out;
}

/**
 * The web UI link of a request, like Go's `lib.AddrToURL` + `BuildURLPath`: `https://` is added
 * when the address has no `http://` or `https://` scheme, an explicit `:443` is removed for https,
 * and the ID is path-escaped. Undefined when the address is empty or unparsable.
 */
export function requestLink(
  webProxyAddr: string | undefined,
  requestId: string,
): string | undefined {
  if (webProxyAddr === undefined || webProxyAddr.trim() === "") return undefined;
  let addr = webProxyAddr.trim();
  if (!addr.startsWith("http://") && !addr.startsWith("https://")) addr = "https://" + addr;
  let url: URL;
  try {
    url = new URL(addr);
  } catch {
    return undefined;
  }
  // WHATWG URL already drops the default port (443 for https, 80 for http); Go drops only :443
  // for https, so put an explicit :80 back for http.
  const explicit80 = url.protocol === "http:" && /^http:\/\/[^/?#]*:80(?:[/?#]|$)/.test(addr);
  const host = explicit80 ? `${url.host}:80` : url.host;
  return `${url.protocol}//${host}/web/requests/${goPathEscape(requestId)}`;
}

const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

/**
 * Go's `time.RFC822` layout (`02 Jan 06 15:04 MST`) in UTC, e.g. `24 Nov 26 05:00 UTC`. An
 * undefined time formats like Go's zero time: `01 Jan 01 00:00 UTC`.
 */
export function formatRfc822(d: Date | undefined): string {
  if (d === undefined || Number.isNaN(d.getTime())) return "01 Jan 01 00:00 UTC";
  const p = (n: number) => String(n).padStart(2, "0");
  return `${p(d.getUTCDate())} ${MONTHS[d.getUTCMonth()]} ${p(d.getUTCFullYear() % 100)} ${
    p(d.getUTCHours())
  }:${p(d.getUTCMinutes())} UTC`;
}

/** `2026-11-24 05:00:00 UTC`: the unambiguous time format of our additional lines. */
export function formatUtc(d: Date): string {
  return d.toISOString().replace("T", " ").replace(/\.\d+Z$/, " UTC");
}

/** Teleport's resource ID string: `/<cluster>/<kind>/<name>[/<sub-resource>]`. */
export function resourceIdString(r: ResourceId): string {
  const base = `/${r.clusterName}/${r.kind}/${r.name}`;
  return r.subResourceName ? `${base}/${r.subResourceName}` : base;
}

/** What a requested resource is narrowed to (field 26 constraints): ` (logins: root, admin)`. */
export function constraintsSuffix(r: ResourceId): string {
  const c = r.constraints;
  if (!c || c.values.length === 0) return "";
  const label = c.kind === "aws_console" ? "AWS role ARNs" : "logins";
  return ` (${label}: ${c.values.join(", ")})`;
}

/** The status of the status line: a resolution, or undefined while pending. */
export type StatusInfo = ResolutionInfo | undefined;

/** The emoji and word of the status line, as in Go (`⏳ PENDING`, `✅ APPROVED`, …). */
export function statusWords(status: StatusInfo): { emoji: string; word: string } {
  switch (status?.tag) {
    case undefined:
      return { emoji: "⏳", word: "PENDING" };
    case "APPROVED":
      return { emoji: "✅", word: "APPROVED" };
    case "DENIED":
      return { emoji: "❌", word: "DENIED" };
    case "EXPIRED":
      return { emoji: "⌛", word: "EXPIRED" };
    case "PROMOTED":
      return { emoji: "🎉", word: "PROMOTED" };
  }
}

/**
 * The status line without a line break. Go: `Status: <emoji> <STATUS>` plus ` (<reason>)` when the
 * reason is non-empty. Ours for PROMOTED (Go sends nothing then):
 * `Status: 🎉 PROMOTED to Access List "<title>"` plus ` (<reason>)`.
 */
export function statusLineText(status: StatusInfo): string {
  const { emoji, word } = statusWords(status);
  let line = `Status: ${emoji} ${word}`;
  if (status?.tag === "PROMOTED" && status.accessListTitle) {
    line += ` to Access List "${headerSafe(status.accessListTitle)}"`;
  }
  if (status?.reason) line += ` (${textValue(status.reason)})`;
  return line;
}

/**
 * Our lines after the reference body (resources, expiry), without line breaks around them;
 * empty when there is nothing to add.
 */
export function extraLines(ctx: RequestContext): string[] {
  const lines: string[] = [];
  const resources = ctx.requestedResources ?? [];
  if (resources.length > 0) {
    lines.push("Requested resources:");
    for (const r of resources.slice(0, MAX_LISTED_RESOURCES)) {
      const line = resourceIdString(r) + constraintsSuffix(r);
      lines.push(`  ${textValue(line).replaceAll("\n", " ")}`);
    }
    if (resources.length > MAX_LISTED_RESOURCES) {
      lines.push(`  … and ${resources.length - MAX_LISTED_RESOURCES} more`);
    }
  }
  if (ctx.expires !== undefined && !Number.isNaN(ctx.expires.getTime())) {
    lines.push(`Request expires: ${formatUtc(ctx.expires)}`);
  }
  return lines;
}

const HTML_ESCAPES: Record<string, string> = {
  "&": "&amp;",
  "<": "&lt;",
  ">": "&gt;",
  '"': "&quot;",
  "'": "&#39;",
};

/** Escapes text for HTML content and attribute values; control characters are dropped. */
export function escapeHtml(s: string): string {
  return bodySafe(s).replace(/[&<>"']/g, (c) => HTML_ESCAPES[c]);
}

/** Escaped text with line breaks as `<br>`. */
export function htmlMultiline(s: string): string {
  return escapeHtml(s).replaceAll("\n", "<br>\n");
}

const FONT = "font-family:-apple-system,'Segoe UI',Helvetica,Arial,sans-serif";
const LABEL_STYLE = "padding:2px 12px 2px 0;color:#555;vertical-align:top;white-space:nowrap";
const VALUE_STYLE = "padding:2px 0;vertical-align:top";
const CODE_STYLE =
  "font-family:SFMono-Regular,Consolas,'Liberation Mono',monospace;background:#f3f3f3;padding:1px 4px";

/** A row of the facts table; `valueHtml` is already escaped. */
export function htmlRow(label: string, valueHtml: string): string {
  return `<tr><td style="${LABEL_STYLE}">${
    escapeHtml(label)
  }</td><td style="${VALUE_STYLE}">${valueHtml}</td></tr>\n`;
}

/** A command in monospace; escaped. */
export function htmlCode(s: string): string {
  return `<code style="${CODE_STYLE}">${escapeHtml(s)}</code>`;
}

/** A link whose href and text are the same (escaped) URL. Only http(s) URLs become links. */
export function htmlLink(url: string): string {
  if (!/^https?:\/\//.test(url)) return escapeHtml(url);
  const e = escapeHtml(url);
  return `<a href="${e}" style="color:#512fc9">${e}</a>`;
}

/** The facts table of the request emails (ID, cluster, user, roles, reason, link or commands). */
export function htmlRequestFacts(ctx: RequestContext, resolved: boolean): string {
  let rows = htmlRow("ID", escapeHtml(ctx.requestId)) +
    htmlRow("Cluster", escapeHtml(ctx.clusterName));
  if (ctx.user !== "") rows += htmlRow("User", escapeHtml(ctx.user));
  if (ctx.roles.length > 0) rows += htmlRow("Role(s)", escapeHtml(ctx.roles.join(",")));
  if (ctx.requestReason !== "") rows += htmlRow("Reason", htmlMultiline(ctx.requestReason));
  const link = requestLink(ctx.webProxyAddr, ctx.requestId);
  if (link !== undefined) {
    rows += htmlRow("Link", htmlLink(link));
  } else if (!resolved) {
    rows += htmlRow("Approve", htmlCode(`tsh request review --approve ${ctx.requestId}`));
    rows += htmlRow("Deny", htmlCode(`tsh request review --deny ${ctx.requestId}`));
  }
  return `<table style="border-collapse:collapse;margin:0 0 16px 0">\n${rows}</table>\n`;
}

/** The status paragraph of the request emails. */
export function htmlStatus(status: StatusInfo): string {
  const { emoji, word } = statusWords(status);
  let html = `Status: ${emoji} <strong>${word}</strong>`;
  if (status?.tag === "PROMOTED" && status.accessListTitle) {
    html += ` to Access List &quot;${escapeHtml(headerSafe(status.accessListTitle))}&quot;`;
  }
  if (status?.reason) html += ` (${htmlMultiline(status.reason)})`;
  return `<p style="margin:0 0 16px 0">${html}</p>\n`;
}

/** Our additional facts (resources, expiry) as HTML; "" when there are none. */
export function htmlExtras(ctx: RequestContext): string {
  let html = "";
  const resources = ctx.requestedResources ?? [];
  if (resources.length > 0) {
    const items = resources.slice(0, MAX_LISTED_RESOURCES)
      .map((r) => `<li>${htmlCode(resourceIdString(r))}${escapeHtml(constraintsSuffix(r))}</li>\n`)
      .join("");
    const more = resources.length > MAX_LISTED_RESOURCES
      ? `<li>… and ${resources.length - MAX_LISTED_RESOURCES} more</li>\n`
      : "";
    html += `<p style="margin:0 0 4px 0">Requested resources:</p>\n` +
      `<ul style="margin:0 0 16px 0">\n${items}${more}</ul>\n`;
  }
  if (ctx.expires !== undefined && !Number.isNaN(ctx.expires.getTime())) {
    html += `<p style="margin:0 0 16px 0">Request expires: ${
      escapeHtml(formatUtc(ctx.expires))
    }</p>\n`;
  }
  return html;
}

/** A complete HTML document: no scripts, no external resources, inline styles only. */
export function htmlPage(title: string, bodyHtml: string): string {
  return `<!DOCTYPE html>
<html>
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width">
<title>${escapeHtml(headerSafe(title))}</title>
</head>
<body style="${FONT};font-size:14px;line-height:1.5;color:#111">
${bodyHtml}</body>
</html>
`;
}
