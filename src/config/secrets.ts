/**
 * Reading the files a configuration names: secrets (`smtp.password_file`,
 * `mailgun.private_key_file`) as the Go plugin's `lib.ReadPassword` does, and the readability check
 * of certificate and identity files. No message contains a file's content.
 */
import { type LoadContext, reason, show } from "./context.ts";

/** Only this many bytes of a password or key file are read, as in the Go plugin. */
export const SECRET_FILE_MAX_BYTES = 2000;

/**
 * Go's `lib.ReadPassword`: the first 2000 bytes, trimmed. A missing file gives the Go message
 * `Error reading password from <path>`.
 */
export async function readSecretFile(ctx: LoadContext, key: string, path: string): Promise<string> {
  const fail = (err: unknown) =>
    ctx.error(key, `cannot read ${key}: Error reading password from ${show(path)}: ${reason(err)}`);
  let f: Deno.FsFile;
  try {
    f = await Deno.open(path, { read: true });
  } catch (err) {
    ctx.signal?.throwIfAborted();
    throw fail(err);
  }
  const buf = new Uint8Array(SECRET_FILE_MAX_BYTES + 1);
  let n = 0;
  try {
    while (n < buf.length) {
      ctx.signal?.throwIfAborted();
      const got = await f.read(buf.subarray(n));
      if (got === null) break;
      n += got;
    }
  } catch (err) {
    ctx.signal?.throwIfAborted();
    throw fail(err);
  } finally {
    f.close();
  }
  if (n > SECRET_FILE_MAX_BYTES) {
    n = SECRET_FILE_MAX_BYTES;
    ctx.warn(
      `${key} "${
        show(path)
      }" is longer than ${SECRET_FILE_MAX_BYTES} bytes: only the first ${SECRET_FILE_MAX_BYTES} are used`,
    );
  }
  return new TextDecoder().decode(buf.subarray(0, n)).trim();
}

/** Checks that `path` (the value of `key`) is a readable regular file. */
export async function checkReadable(
  ctx: LoadContext,
  key: string,
  path: string,
  hint?: string,
): Promise<void> {
  ctx.signal?.throwIfAborted();
  try {
    const st = await Deno.stat(path);
    if (st.isDirectory) throw new Deno.errors.IsADirectory();
    const f = await Deno.open(path, { read: true });
    f.close();
  } catch (err) {
    ctx.signal?.throwIfAborted();
    throw ctx.error(key, `cannot read ${key} "${show(path)}": ${reason(err)}`, hint);
  }
}
