/**
 * Benchmark: SmtpMailer (pooled connections) against the test SMTP sink running in a child
 * process, so the numbers are the client's own. Prints msgs/s, RSS (start → peak) and the
 * client's CPU per message. No assertions.
 *
 *   deno run -A scripts/bench_smtp.ts [--count 1000] [--connections 5] [--concurrency 100]
 */

import { parseArgs } from "node:util";
import { SmtpMailer } from "../src/mailers/smtp.ts";
import { createTestTls, SmtpSink } from "../tests/helpers/smtp_sink.ts";

const { values } = parseArgs({
  options: {
    count: { type: "string", default: "1000" },
    connections: { type: "string", default: "5" },
    concurrency: { type: "string", default: "100" },
    "serve-sink": { type: "boolean", default: false },
    tls: { type: "string" },
  },
});

if (values["serve-sink"]) {
  // Child: a sink with STARTTLS + AUTH when a TLS file is given, else plain; prints its port.
  const tls = values.tls ? JSON.parse(await Deno.readTextFile(values.tls)) : undefined;
  const sink = await SmtpSink.start(
    tls
      ? { tls: { key: tls.keyPem, cert: tls.certPem }, auth: { username: "bench", password: "pw" } }
      : {},
  );
  console.log(sink.port);
  // Keep only a count: the benchmark is about the client.
  const timer = setInterval(() => sink.messages.splice(0), 100);
  await new Promise<void>((resolve) => Deno.addSignalListener("SIGTERM", () => resolve()));
  clearInterval(timer);
  await sink.close();
} else {
  await main();
}

async function startSink(tlsFile?: string): Promise<{ port: number; child: Deno.ChildProcess }> {
  const args = ["run", "-A", new URL(import.meta.url).pathname, "--serve-sink"];
  if (tlsFile) args.push("--tls", tlsFile);
  const child = new Deno.Command(Deno.execPath(), { args, stdout: "piped", stderr: "inherit" })
    .spawn();
  const reader = child.stdout.getReader();
  let text = "";
  while (!text.includes("\n")) {
    const { value, done } = await reader.read();
    if (done) throw new Error("sink exited early");
    text += new TextDecoder().decode(value);
  }
  reader.releaseLock();
  child.stdout.cancel();
  return { port: Number(text.trim()), child };
}

async function run(name: string, tlsFile: string | undefined, caPem: string | undefined) {
  const count = Number(values.count);
  const concurrency = Number(values.concurrency);
  const { port, child } = await startSink(tlsFile);
  const mailer = new SmtpMailer(
    {
      host: "127.0.0.1",
      port,
      username: tlsFile ? "bench" : "",
      password: tlsFile ? "pw" : "",
      passwordFile: "",
      starttlsPolicy: tlsFile ? "mandatory" : "disabled",
      caFile: "",
    },
    "Bench <bench@example.com>",
    { ca: caPem, maxConnections: Number(values.connections) },
  );
  const rssStart = Deno.memoryUsage().rss;
  let rssPeak = rssStart;
  const sampler = setInterval(() => {
    rssPeak = Math.max(rssPeak, Deno.memoryUsage().rss);
  }, 20);
  const body = "Access request body. ".repeat(30);
  let next = 0;
  let failed = 0;
  const cpu0 = cpuMs();
  const started = performance.now();
  await Promise.all(Array.from({ length: Math.min(concurrency, count) }, async () => {
    while (next < count) {
      const i = next++;
      try {
        // One content per three recipients, as a request's new-request email.
        const r = Math.floor(i / 3);
        await mailer.send({
          to: `user${i}@example.com`,
          subject: `Bench ${r}`,
          text: `${body} ${r}`,
          html: `<p>${body} ${r}</p>`,
        });
      } catch {
        failed++;
      }
    }
  }));
  const seconds = (performance.now() - started) / 1000;
  const cpuPerMessage = (cpuMs() - cpu0) / count;
  clearInterval(sampler);
  rssPeak = Math.max(rssPeak, Deno.memoryUsage().rss);
  await mailer.close();
  child.kill("SIGTERM");
  await child.status;
  const mib = (n: number) => (n / 1024 / 1024).toFixed(0);
  console.log(
    `${name}: ${count} msgs, ${failed} failed, ${(count / seconds).toFixed(0)} msgs/s, ` +
      `connections ${values.connections}, concurrency ${concurrency}, ` +
      `RSS ${mib(rssStart)} → ${mib(rssPeak)} MiB, CPU ${cpuPerMessage.toFixed(3)} ms/msg`,
  );
}

/** CPU time (user + system) of this process so far, in ms (USER_HZ = 100). */
function cpuMs(): number {
  const fields = Deno.readTextFileSync("/proc/self/stat").split(") ")[1].split(" ");
  return (Number(fields[11]) + Number(fields[12])) * 10;
}

async function main() {
  const dir = await Deno.makeTempDir({ prefix: "bench_smtp_" });
  try {
    const tls = await createTestTls();
    const tlsFile = `${dir}/tls.json`;
    await Deno.writeTextFile(tlsFile, JSON.stringify(tls));
    await run("plain", undefined, undefined);
    await run("STARTTLS+AUTH", tlsFile, tls.caPem);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}
