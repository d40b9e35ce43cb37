/**
 * A TCP connection on Deno's sockets to a host name or address, trying each address of a name in
 * turn within one timeout, as Node's `net` does; failures come as {@link SmtpError}s (one
 * `AggregateError` with an error per address for a name, worded by `net_error.ts`).
 * @module
 */
import { lookup } from "node:dns/promises";
import { isIP } from "node:net";
import { settledWithin } from "../async.ts";
import { SmtpError } from "./smtp_error.ts";

/**
 * A TCP connection to `host`, trying each of its addresses in turn (as Node's `net` does). When
 * every address fails, the error is an `AggregateError` with one error per address
 * (`net_error.ts` words it).
 */
export async function connectTcp(
  host: string,
  port: number,
  timeoutMs: number,
): Promise<Deno.TcpConn> {
  let addresses: string[];
  if (isIP(host)) {
    addresses = [host];
  } else {
    try {
      addresses = (await lookup(host, { all: true })).map((a) => a.address);
    } catch (err) {
      const code = (err as { code?: string }).code;
      throw new SmtpError(`getaddrinfo ${code ?? "ENOTFOUND"} ${host}`, {
        code: "EDNS",
        cause: err,
      });
    }
  }
  const deadline = Date.now() + timeoutMs;
  const errors: Error[] = [];
  for (const address of addresses) {
    const left = deadline - Date.now();
    if (left <= 0 && errors.length > 0) break;
    try {
      return await connectOne(address, port, Math.max(1, left));
    } catch (err) {
      errors.push(err as Error);
    }
  }
  if (errors.length === 1 && isIP(host)) {
    const e = errors[0] as Error & { code?: string };
    throw new SmtpError(e.message, {
      code: e.code === "ETIMEDOUT" ? "ETIMEDOUT" : "ESOCKET",
      command: "CONN",
      cause: e,
    });
  }
  // A host name: one error per address (`net_error.ts` words them), as Node's `net` reports.
  const timedOut = errors.length > 0 &&
    errors.every((e) => (e as { code?: string }).code === "ETIMEDOUT");
  const all = new AggregateError(errors, "");
  throw Object.assign(all, { code: timedOut ? "ETIMEDOUT" : "ESOCKET", command: "CONN" });
}

/** Deno's connect errors by class name, as Node's system error codes. */
const CONNECT_CODES: Readonly<Record<string, string>> = {
  ConnectionRefused: "ECONNREFUSED",
  ConnectionReset: "ECONNRESET",
  TimedOut: "ETIMEDOUT",
  AddrNotAvailable: "EADDRNOTAVAIL",
  NetworkUnreachable: "ENETUNREACH",
  HostUnreachable: "EHOSTUNREACH",
};

const TIMED_OUT = Symbol("timed out");

async function connectOne(address: string, port: number, timeoutMs: number): Promise<Deno.TcpConn> {
  const attempt = Deno.connect({ hostname: address, port });
  let conn: Deno.TcpConn | typeof TIMED_OUT;
  try {
    conn = await settledWithin(attempt, timeoutMs, TIMED_OUT);
  } catch (err) {
    const code = CONNECT_CODES[(err as Error).name] ?? (err as { code?: string }).code ?? "ESOCKET";
    throw Object.assign(new Error(`connect ${code} ${address}:${port}`), {
      code,
      address,
      port,
      cause: err,
    });
  }
  if (conn !== TIMED_OUT) return conn;
  // A connection that comes after all is closed; a late failure is nobody's concern.
  attempt.then((c) => c.close(), () => {});
  throw Object.assign(new Error(`connect ETIMEDOUT ${address}:${port}`), {
    code: "ETIMEDOUT",
    address,
    port,
  });
}
