/**
 * The benchmark's physical limit: a raw pooled nodemailer blast. Run as a child process by
 * `scripts/bench.ts` (so it pays for its own CPU, like the plugin), it sends `--count` messages
 * through one pooled transport (`--connections`, the plugin's pool size) to the given SMTP server
 * with STARTTLS and AUTH, all handed to nodemailer at once, each message a rendered new-request
 * email (the same templates as the plugin) with one recipient. Prints one JSON line:
 * `{ "messages", "failed", "seconds", "msgsPerSecond", "cpuPerMsgMs" }`, timed from the first
 * `sendMail` to the last accepted message (module loading and process start excluded; the CPU is
 * the process's user + system time over the same span).
 *
 *   deno run -A scripts/bench_blast.ts --port P --ca FILE --user U --password-file FILE \
 *     [--count 3000] [--connections 5] [--recipients 3]
 * @module
 */
import { parseArgs } from "node:util";
import nodemailer from "nodemailer";
import process from "node:process";
import { newRequestEmail } from "../src/templates/mod.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    host: { type: "string", default: "localhost" },
    port: { type: "string" },
    ca: { type: "string" },
    user: { type: "string", default: "" },
    "password-file": { type: "string" },
    count: { type: "string", default: "3000" },
    connections: { type: "string", default: "5" },
    recipients: { type: "string", default: "3" },
  },
});

const count = Number(values.count);
const perRequest = Math.max(1, Number(values.recipients));
const password = values["password-file"]
  ? (await Deno.readTextFile(values["password-file"])).trim()
  : "";
const transport = nodemailer.createTransport({
  host: values.host,
  port: Number(values.port),
  secure: false,
  requireTLS: true,
  pool: true,
  maxConnections: Number(values.connections),
  maxMessages: 100,
  auth: values.user ? { user: values.user, pass: password } : undefined,
  tls: { ca: values.ca ? await Deno.readTextFile(values.ca) : undefined },
  logger: false,
});

/** Messages of request `r`: one rendered email, to `perRequest` recipients, one message each. */
function messagesOf(r: number) {
  const content = newRequestEmail({
    clusterName: "teleport.example.com",
    requestId: `blast-${r}`,
    user: `user${r}@example.com`,
    roles: ["editor"],
    requestReason: `bench request ${r}`,
  });
  return Array.from({ length: perRequest }, (_, k) => ({
    from: "noreply@example.com",
    to: `recipient${k}@example.com`,
    ...content,
  }));
}

let failed = 0;
const cpu0 = process.cpuUsage();
const started = performance.now();
const sends: Promise<unknown>[] = [];
for (let r = 0; sends.length < count; r++) {
  for (const m of messagesOf(r).slice(0, count - sends.length)) {
    sends.push(transport.sendMail(m).catch(() => failed++));
  }
}
await Promise.all(sends);
const seconds = (performance.now() - started) / 1000;
const cpu = process.cpuUsage(cpu0);
transport.close();
const cpuPerMsgMs = (cpu.user + cpu.system) / 1000 / count;
console.log(
  JSON.stringify({ messages: count, failed, seconds, msgsPerSecond: count / seconds, cpuPerMsgMs }),
);
