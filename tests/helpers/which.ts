/**
 * Finds a program on `PATH` for tests that use a tool when it is installed and the launcher that
 * runs an arm64 binary under `qemu-aarch64`.
 * @module
 */

/** `dir/name` for the first `PATH` directory with a file `name` (`/usr/bin:/bin` without `PATH`). */
export function which(name: string): string | undefined {
  for (const dir of (Deno.env.get("PATH") ?? "/usr/bin:/bin").split(":")) {
    if (!dir) continue;
    try {
      if (Deno.statSync(`${dir}/${name}`).isFile) return `${dir}/${name}`;
    } catch {
      // not here
    }
  }
  return undefined;
}
