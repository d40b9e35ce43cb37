/**
 * The program's version. `VERSION` comes from `deno.json` (the single source); the release script
 * overrides both values at build time through `src/build_info.json`.
 */
import denoJson from "../deno.json" with { type: "json" };
import buildInfo from "./build_info.json" with { type: "json" };

/** Semantic version without a leading `v`, e.g. `0.1.0`. */
export const VERSION: string = buildInfo.version || denoJson.version;

/** Git reference the binary was built from; empty when unknown (run from source). */
export const GIT_REF: string = buildInfo.gitRef;

/** `teleport-email v0.1.0 git:<ref> deno2.9.6` (the `git:` part only when the ref is known). */
export function versionLine(): string {
  const git = GIT_REF ? ` git:${GIT_REF}` : "";
  return `teleport-email v${VERSION}${git} deno${Deno.version.deno}`;
}
