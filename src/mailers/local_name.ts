/**
 * The name the SMTP mailer gives itself: in EHLO and as the right-hand side of Message-IDs.
 *
 * Both must be fully qualified: a bare host name (`vm`, a pod name) is refused by Postfix's
 * `reject_non_fqdn_helo_hostname` and scored by spam filters (rspamd `MID_RHS_NOT_FQDN`). In
 * order: `[smtp] local_name` when set; the host's fully qualified name when it has one (the
 * kernel host name when it has a dot, else the canonical name `/etc/hosts` gives it, as
 * `hostname -f` finds it); else the domain of `delivery.sender`.
 *
 * @module
 */
import { addressOf } from "./address.ts";
import { localHostname, sanitizeHostname } from "./message_id.ts";

/** Where the host's names come from; tests pass their own. */
export interface HostNameSources {
  /** The kernel host name (sanitised). */
  hostname: () => string;
  /** The text of `/etc/hosts`, or undefined when it cannot be read. */
  hostsFile: () => string | undefined;
}

const SYSTEM: HostNameSources = {
  hostname: localHostname,
  hostsFile: () => {
    try {
      return Deno.readTextFileSync("/etc/hosts");
    } catch {
      return undefined;
    }
  },
};

/** A name with at least two labels that is neither `localhost…` nor an IP address. */
function isFqdn(name: string): boolean {
  if (!name.includes(".") || /^localhost(\.|$)/i.test(name)) return false;
  return !/^[0-9.]+$/.test(name) && !name.includes(":");
}

/**
 * The canonical name of `host` in an `/etc/hosts` text: the first name of the first line that
 * lists `host` (case-insensitive), as the C library's `files` lookup returns it.
 */
export function canonicalNameFromHosts(hosts: string, host: string): string | undefined {
  for (const raw of hosts.split("\n")) {
    const fields = raw.replace(/#.*/, "").trim().split(/\s+/);
    if (fields.length < 2) continue;
    const names = fields.slice(1);
    if (names.some((n) => n.toLowerCase() === host.toLowerCase())) return names[0];
  }
  return undefined;
}

/** The host's fully qualified name, or undefined when it has none. */
export function hostFqdn(sources: HostNameSources = SYSTEM): string | undefined {
  const host = sources.hostname();
  if (isFqdn(host)) return host;
  const hosts = sources.hostsFile();
  const canonical = hosts === undefined ? undefined : canonicalNameFromHosts(hosts, host);
  if (canonical === undefined) return undefined;
  const name = sanitizeHostname(canonical);
  return isFqdn(name) ? name : undefined;
}

/** The domain of the sender address (`Teleport <noreply@example.com>` → `example.com`). */
export function senderDomain(sender: string): string | undefined {
  const address = addressOf(sender);
  const at = address.lastIndexOf("@");
  if (at < 0 || at === address.length - 1) return undefined;
  return sanitizeHostname(address.slice(at + 1));
}

/**
 * The EHLO name and Message-ID domain: `localName` (`[smtp] local_name`) when set, else the host's
 * fully qualified name, else the sender's domain, else the bare host name.
 */
export function mailLocalName(
  sender: string,
  opts: { localName?: string; sources?: HostNameSources } = {},
): string {
  if (opts.localName) return opts.localName;
  const sources = opts.sources ?? SYSTEM;
  return hostFqdn(sources) ?? senderDomain(sender) ?? sources.hostname();
}
