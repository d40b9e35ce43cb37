import assert from "node:assert/strict";
import { SmtpError } from "./smtp_error.ts";
import { SmtpSession } from "./smtp_session.ts";

const bytes = (s: string) => new TextEncoder().encode(s);

/** A TCP server on loopback that runs `serve` on each connection. */
async function withServer(
  serve: (conn: Deno.Conn) => Promise<void>,
  fn: (port: number) => Promise<void>,
): Promise<void> {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const conns: Deno.Conn[] = [];
  const accepting = (async () => {
    for await (const conn of listener) {
      conns.push(conn);
      serve(conn).catch(() => {});
    }
  })();
  try {
    await fn((listener.addr as Deno.NetAddr).port);
  } finally {
    listener.close();
    for (const c of conns) {
      try {
        c.close();
      } catch {
        // Closed by the client.
      }
    }
    await accepting.catch(() => {});
  }
}

/** The SmtpError `p` rejects with (fails the test if it resolves or rejects otherwise). */
async function smtpFailure(p: Promise<unknown>): Promise<SmtpError> {
  const err = await p.then(() => assert.fail("expected an SmtpError"), (e) => e);
  assert.ok(err instanceof SmtpError, `expected an SmtpError, got ${err}`);
  return err;
}

const OPTIONS = {
  host: "127.0.0.1",
  implicitTls: false,
  policy: "disabled" as const,
  caCerts: [],
  name: "client.test",
  connectionTimeoutMs: 1000,
  greetingTimeoutMs: 100,
  socketTimeoutMs: 100,
};

Deno.test("SmtpSession.open() gives up on a server that never greets: ETIMEDOUT, connection closed", async () => {
  let closed!: () => void;
  const clientGone = new Promise<void>((r) => (closed = r));
  await withServer(async (conn) => {
    // Read until the client closes (read returns null).
    while ((await conn.read(new Uint8Array(64))) !== null) { /* nothing */ }
    closed();
  }, async (port) => {
    const err = await smtpFailure(SmtpSession.open({ ...OPTIONS, port }));
    assert.equal(err.code, "ETIMEDOUT");
    assert.equal(err.command, "CONN");
    await clientGone;
  });
});

Deno.test("SmtpSession reads multi-line replies and refuses bytes sent right after the STARTTLS reply", async () => {
  await withServer(async (conn) => {
    const w = (s: string) => conn.write(bytes(s));
    await w("220 hello\r\n");
    await conn.read(new Uint8Array(256)); // EHLO
    await w("250-server.test\r\n250-PIPELINING\r\n250 STARTTLS\r\n");
    await conn.read(new Uint8Array(256)); // STARTTLS
    await w("220 go ahead\r\n250 injected\r\n");
    await conn.read(new Uint8Array(64));
  }, async (port) => {
    const err = await smtpFailure(SmtpSession.open({ ...OPTIONS, port, policy: "mandatory" }));
    assert.equal(err.code, "EPROTOCOL");
    assert.match(err.message, /after the STARTTLS reply/);
  });
});

Deno.test("SmtpSession.send() reports the refusal even when the server then drops the connection", async () => {
  await withServer(async (conn) => {
    const w = (s: string) => conn.write(bytes(s));
    await w("220 hello\r\n");
    await conn.read(new Uint8Array(256)); // EHLO
    await w("250-server.test\r\n250 PIPELINING\r\n");
    await conn.read(new Uint8Array(256)); // MAIL FROM, RCPT TO, DATA
    await w("250 sender ok\r\n550 5.1.1 no such user\r\n554 5.5.1 no valid recipients\r\n");
    conn.close(); // Before the client's RSET.
  }, async (port) => {
    const session = await SmtpSession.open({ ...OPTIONS, port, greetingTimeoutMs: 1000 });
    const err = await smtpFailure(session.send(
      { from: "a@example.com", to: ["b@example.com"] },
      bytes("Subject: x\r\n\r\nbody\r\n.\r\n"),
    ));
    assert.equal(err.code, "EENVELOPE");
    assert.equal(err.responseCode, 550);
    assert.equal(err.command, "RCPT TO");
    assert.equal(session.usable, false);
  });
});

Deno.test("SmtpSession.open() reports a 421 to EHLO as such, without trying HELO", async () => {
  await withServer(async (conn) => {
    await conn.write(bytes("220 hello\r\n"));
    await conn.read(new Uint8Array(256)); // EHLO
    await conn.write(bytes("421 4.3.2 too busy, try later\r\n"));
    conn.close();
  }, async (port) => {
    const err = await smtpFailure(SmtpSession.open({ ...OPTIONS, port, greetingTimeoutMs: 1000 }));
    assert.equal(err.responseCode, 421);
    assert.equal(err.command, "EHLO");
  });
});
