/**
 * Wiring and lifecycle of the running plugin: Teleport client, mailer, watcher, handlers.
 *
 * PLACEHOLDER: the engine engineer replaces the body of {@link runApp}; its signature is a contract
 * with `src/cli.ts` and must stay as it is.
 */
import type { Config } from "./config/types.ts";
import { TeleportEmailError } from "./errors.ts";

/** Options of {@link runApp}. */
export interface RunAppOptions {
  /** Aborted on SIGINT/SIGTERM: stop gracefully and resolve. */
  signal: AbortSignal;
  /** `start --debug` was given (logging is already set up accordingly). */
  debug: boolean;
}

/**
 * Runs the plugin until `opts.signal` is aborted (then resolves: graceful shutdown, exit 0) or a
 * fatal error happens (then rejects; the CLI logs `Terminating with fatal error` and exits 1).
 * Logging is already set up when this is called.
 */
export async function runApp(config: Config, opts: RunAppOptions): Promise<void> {
  void config;
  void opts;
  await Promise.resolve();
  throw new TeleportEmailError(
    "The plugin cannot start yet: the Teleport client is not implemented yet",
  );
}
