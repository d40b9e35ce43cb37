/** Fixed Teleport credentials for tests. */
import type { CredentialsSource } from "../../src/teleport/credentials.ts";
import type { Identity } from "../../src/teleport/identity.ts";

/** A fixed `CredentialsSource` around one identity. `reload()` returns it unchanged. */
export function staticCredentials(identity: Identity): CredentialsSource {
  return {
    current: () => identity,
    reload: () => Promise.resolve(identity),
    onChange: () => () => {},
    refreshing: false,
    close() {},
  };
}
