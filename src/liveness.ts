/**
 * Who holds a request lease, and whether that process still runs: so that after a crash
 * (SIGKILL, OOM kill) a restart on the same host takes over the dead process's leases at once
 * instead of waiting for them to expire.
 *
 * Each process listens on a Unix socket of its own (the liveness probe,
 * `<dir>/teleport-email-<pid>-<random>.sock`) and writes into every lease it takes its host
 * name, process ID, start time and the probe's path ({@link LeaseHolder}). Another process
 * that finds a live lease of someone else takes it over only when all of this holds:
 * - the lease names a holder (leases written by older versions do not: they keep the expiry
 *   rule) on the same host name, with a probe that is not ours;
 * - connecting to that probe is *refused*: the socket file exists in our file system but
 *   nobody listens on it any more, which the kernel guarantees once the process that bound it
 *   has exited. A probe we cannot see (another host or container, a private /tmp) or that
 *   answers means the expiry rule applies, so replicas stay exactly-once.
 *
 * Process IDs and PID namespaces are not used to decide: the daemon's Deno permissions do not
 * allow reading `/proc`, and a socket answers the question directly.
 *
 * The probe directory must outlive the process and be shared by its restarts: `$RUNTIME_DIRECTORY`
 * (systemd `RuntimeDirectory=` with `RuntimeDirectoryPreserve=restart`), else `$TMPDIR`, else
 * `/tmp`. Probes of processes that died are removed one lease length after start.
 */
import type { LeaseHolder, LeaseLock } from "./notify/delivery_state.ts";
import { settledWithin } from "./async.ts";
import { errorMessage } from "./errors.ts";

/** File name prefix of the probes. */
export const PROBE_PREFIX = "teleport-email-";

/** Options of {@link LivenessProbe.start}. */
export interface LivenessOptions {
  /** Directory of the probes. */
  dir: string;
  /** Host name written into leases; default the system's. */
  hostName?: string;
  /** After how long stale probes of dead processes are removed, in ms; 0 = never. */
  sweepAfterMs?: number;
}

/**
 * Whether nobody listens on the Unix socket at `path` any more: true when a connection is
 * refused, false when it is accepted, undefined when that cannot be told (no such file, no
 * permission, not a socket, no answer within a second).
 */
export function probeRefused(path: string): Promise<boolean | undefined> {
  const attempt = Deno.connect({ transport: "unix", path }).then(
    (conn) => {
      conn.close();
      return false;
    },
    (err) => err instanceof Deno.errors.ConnectionRefused ? true : undefined,
  );
  return settledWithin(attempt, 1000, undefined);
}

/**
 * Whether `lock`'s holder could be a process that exited on this host (see the file header):
 * named, on host `self.host`, with a probe that is not `self`'s. The probe must then be refused.
 */
export function mayBeGone(lock: LeaseLock, self: LeaseHolder): boolean {
  const h = lock.holder;
  return h !== undefined && h.host === self.host && h.probe !== undefined &&
    h.probe !== self.probe && !(h.pid === self.pid && h.start === self.start);
}

/** This process's liveness probe and lease holder identity. */
export class LivenessProbe {
  /** What this process writes into the leases it takes. */
  readonly holder: LeaseHolder;
  readonly #listener: Deno.Listener;
  readonly #dir: string;
  #sweep: ReturnType<typeof setTimeout> | undefined;

  private constructor(holder: LeaseHolder, listener: Deno.Listener, dir: string) {
    this.holder = holder;
    this.#listener = listener;
    this.#dir = dir;
  }

  /** Listens on a new probe in `opts.dir`. Throws when the socket cannot be created. */
  static start(opts: LivenessOptions): LivenessProbe {
    const dir = opts.dir.replace(/(.)\/+$/, "$1");
    const suffix = crypto.randomUUID().slice(0, 8);
    const path = `${dir}/${PROBE_PREFIX}${Deno.pid}-${suffix}.sock`;
    const listener = Deno.listen({ transport: "unix", path });
    const holder: LeaseHolder = {
      host: opts.hostName ?? Deno.hostname(),
      pid: Deno.pid,
      start: Math.round(performance.timeOrigin),
      probe: path,
    };
    const probe = new LivenessProbe(holder, listener, dir);
    probe.#serve();
    if ((opts.sweepAfterMs ?? 0) > 0) {
      probe.#sweep = setTimeout(() => probe.sweep().catch(() => {}), opts.sweepAfterMs);
      Deno.unrefTimer(probe.#sweep);
    }
    return probe;
  }

  async #serve(): Promise<void> {
    try {
      for await (const conn of this.#listener) conn.close();
    } catch {
      // Closed.
    }
  }

  /** Whether the process holding `lock` has exited on this host (see the file header). */
  async holderGone(lock: LeaseLock): Promise<boolean> {
    if (!mayBeGone(lock, this.holder)) return false;
    return await probeRefused(lock.holder!.probe!) === true;
  }

  /** Removes the probes in our directory that nobody listens on (left by processes that died). */
  async sweep(): Promise<number> {
    let removed = 0;
    for await (const e of Deno.readDir(this.#dir)) {
      if (!e.name.startsWith(PROBE_PREFIX) || !e.name.endsWith(".sock")) continue;
      const path = `${this.#dir}/${e.name}`;
      if (path === this.holder.probe || await probeRefused(path) !== true) continue;
      await Deno.remove(path).then(() => removed++, () => {});
    }
    return removed;
  }

  /** Stops listening and removes the probe. */
  async close(): Promise<void> {
    clearTimeout(this.#sweep);
    try {
      this.#listener.close();
    } catch {
      // Already closed.
    }
    await Deno.remove(this.holder.probe!).catch(() => {});
  }
}

/**
 * {@link LivenessProbe.start}, or undefined (with a warning through `warn`) when the probe
 * cannot be created: the plugin then runs as before, and after a crash its next start waits for
 * the dead process's leases to expire.
 */
export function tryStartProbe(
  opts: LivenessOptions,
  warn: (msg: string, attrs: Record<string, unknown>) => void,
): LivenessProbe | undefined {
  try {
    return LivenessProbe.start(opts);
  } catch (err) {
    warn(
      "Cannot create the liveness socket; after a crash, the next start waits for the request leases to expire",
      { dir: opts.dir, error: errorMessage(err) },
    );
    return undefined;
  }
}
