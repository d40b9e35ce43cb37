/**
 * Message-IDs for the SMTP mailer, in the Go plugin's format, and the angle-bracket helpers used
 * for threading headers.
 *
 * Go plugin: `<` + BASE36(Unix time in ns, upper) + `.` + BASE36(random 64-bit, upper) + `@` +
 * hostname + `>`. The SMTP mailer stores the ID without brackets; Mailgun returns (and we store)
 * IDs with brackets. {@link bracketed} gives exactly one pair for `In-Reply-To`/`References`.
 */

import { hostname as osHostname } from "node:os";

let cachedHostname: string | undefined;

/**
 * Turns a host name into something valid as the domain part of a Message-ID: letters, digits,
 * `-` and `.` only, no empty or edge labels, at most 253 characters. Returns `localhost` when
 * nothing usable is left.
 */
export function sanitizeHostname(name: string): string {
  const labels = name.trim().toLowerCase().replace(/[^a-z0-9.-]/g, "-").split(".")
    .map((label) => label.replace(/^-+|-+$/g, "").slice(0, 63))
    .filter((label) => label.length > 0);
  let result = labels.join(".");
  while (result.length > 253) {
    result = result.slice(0, result.lastIndexOf("."));
  }
  return result || "localhost";
}

/**
 * The local host name (sanitised, cached). Falls back to `localhost` when the runtime refuses
 * (`--allow-sys` not granted) or the name is empty.
 */
export function localHostname(): string {
  if (cachedHostname !== undefined) return cachedHostname;
  let name = "";
  try {
    name = Deno.hostname();
  } catch {
    try {
      name = osHostname();
    } catch {
      name = "";
    }
  }
  cachedHostname = sanitizeHostname(name);
  return cachedHostname;
}

/** The last name given to {@link sanitizedOnce} and its result (a mailer passes one name). */
let lastSanitized: { name: string; result: string } | undefined;

function sanitizedOnce(name: string): string {
  if (lastSanitized?.name !== name) lastSanitized = { name, result: sanitizeHostname(name) };
  return lastSanitized.result;
}

function nowNanoseconds(): bigint {
  const ms = performance.timeOrigin + performance.now();
  const wholeMs = Math.floor(ms);
  return BigInt(wholeMs) * 1_000_000n + BigInt(Math.floor((ms - wholeMs) * 1_000_000));
}

function random64(): bigint {
  const buf = new BigUint64Array(1);
  crypto.getRandomValues(buf);
  return buf[0];
}

/**
 * A new Message-ID, WITH angle brackets: `<LXQ3J1Z8C6A0.3W5E11264SGSF@host.example>`.
 * `opts.hostname` overrides the local host name (it is sanitised too); `opts.nowNs` and
 * `opts.random` exist for tests.
 */
export function generateMessageId(
  opts: { hostname?: string; nowNs?: bigint; random?: bigint } = {},
): string {
  const host = opts.hostname === undefined ? localHostname() : sanitizedOnce(opts.hostname);
  const time = (opts.nowNs ?? nowNanoseconds()).toString(36).toUpperCase();
  const rand = (opts.random ?? random64()).toString(36).toUpperCase();
  return `<${time}.${rand}@${host}>`;
}

/** The ID without any surrounding angle brackets or white space: `<<a@b>>` → `a@b`. */
export function bare(id: string): string {
  return id.trim().replace(/^<+/, "").replace(/>+$/, "").trim();
}

/**
 * The ID in exactly one pair of angle brackets: `a@b`, `<a@b>` and `<<a@b>>` all give `<a@b>`.
 * This fixes the Go plugin's Mailgun quirk (`<<...>>` in follow-up headers). An empty ID gives "".
 */
export function bracketed(id: string): string {
  const inner = bare(id);
  return inner === "" ? "" : `<${inner}>`;
}
