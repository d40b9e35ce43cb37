/**
 * Words for a failed connection. A host name with several addresses (`localhost` → `::1` and
 * `127.0.0.1`, any dual-stack server) is tried address by address, and when all fail Node's
 * `net` (Deno's too) reports an `AggregateError` whose own message is empty: the reason of each
 * address is in its `errors`. {@link connectFailureDetail} puts them in one line.
 */

/** What the common system error codes of a connection attempt mean. */
const CODE_WORDS: Readonly<Record<string, string>> = {
  ECONNREFUSED: "connection refused",
  ECONNRESET: "connection reset",
  ETIMEDOUT: "timed out",
  EHOSTUNREACH: "host unreachable",
  ENETUNREACH: "network unreachable",
  EADDRNOTAVAIL: "address not available",
  ENOTFOUND: "host name not found",
  EAI_AGAIN: "host name lookup failed (temporary)",
};

interface SystemErrorLike {
  message?: string;
  code?: string;
  address?: string;
  port?: number;
  errors?: unknown;
}

/**
 * For an error that carries one error per address tried (`AggregateError`): `every address
 * failed: [::1]:2600: connection refused (ECONNREFUSED); 127.0.0.1:2600: connection refused
 * (ECONNREFUSED)`. Undefined for any other error (its own message says enough).
 */
export function connectFailureDetail(err: unknown): string | undefined {
  const inner = (typeof err === "object" && err !== null ? err : {}) as SystemErrorLike;
  if (!Array.isArray(inner.errors) || inner.errors.length === 0) return undefined;
  const parts = inner.errors.map(describeAttempt);
  return parts.length === 1 ? parts[0] : `every address failed: ${parts.join("; ")}`;
}

/** `[::1]:2600: connection refused (ECONNREFUSED)`. */
function describeAttempt(err: unknown): string {
  const e = (typeof err === "object" && err !== null ? err : {}) as SystemErrorLike;
  const words = e.code !== undefined ? CODE_WORDS[e.code] : undefined;
  const what = words !== undefined ? `${words} (${e.code})` : e.message || e.code || String(err);
  if (!e.address) return what;
  const host = e.address.includes(":") ? `[${e.address}]` : e.address;
  return `${host}${e.port ? `:${e.port}` : ""}: ${what}`;
}
