/**
 * A cheap check that an address is an SSH server, made before the SSH stack is loaded: send an
 * SSH identification line (as any SSH client does first, Go's among them) and wait for the
 * server's `SSH-` identification line (RFC 4253 §4.2; lines before it are allowed).
 */
import { Buffer } from "node:buffer";
import type { Env } from "../config/env.ts";
import { abortable } from "../async.ts";
import { DialFailure, dialOuter, parseHostPort } from "./dial_net.ts";
import { DEFAULT_TUNNEL_PORT } from "./tunnel_addr.ts";

/** Our identification line; the probe connection ends right after the server's. */
const CLIENT_IDENT = "SSH-2.0-teleport-email-probe\r\n";
/** RFC 4253 allows other lines before the identification; give up after this many bytes. */
const MAX_GREETING_BYTES = 8192;

/**
 * Resolves once `addr` (default port 3024) sent an SSH identification line; rejects with a
 * `DialFailure` when it answered otherwise or closed, or with the dial error or
 * `signal.reason`.
 */
export async function probeSshGreeting(
  addr: string,
  opts: { env: Env; signal: AbortSignal },
): Promise<void> {
  const target = parseHostPort(addr, DEFAULT_TUNNEL_PORT);
  const sock = await dialOuter(target, opts);
  try {
    sock.write(CLIENT_IDENT);
    const greeted = new Promise<void>((resolve, reject) => {
      let seen = Buffer.alloc(0);
      const notSsh = (what: string) =>
        reject(
          new DialFailure(
            "connection_problem",
            `the server does not speak SSH (${what}); is this the reverse tunnel port?`,
          ),
        );
      sock.on("data", (chunk: Buffer) => {
        seen = Buffer.concat([seen, chunk]);
        const text = seen.toString("latin1");
        if (/(^|\n)SSH-/.test(text)) resolve();
        else if (seen.length > MAX_GREETING_BYTES) notSsh("no SSH identification line");
      });
      sock.once("close", () => notSsh("it closed the connection without an SSH greeting"));
      sock.once("error", (err) => notSsh(err.message));
    });
    await abortable(greeted, opts.signal);
  } finally {
    sock.destroy();
  }
}
