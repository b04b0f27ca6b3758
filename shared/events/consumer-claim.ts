import { randomUUID } from "node:crypto";
import { hostname } from "node:os";
import { Empty, RequestStrategy, type NatsConnection } from "nats";
import { ConfigError } from "../config/index.js";
import type { Logger } from "../logging/index.js";
import { claimSubject } from "./subjects.js";

/** A process running a set of durable consumers, as it answers on their claim's subject. */
interface Holder {
  id: string;
  /** When it claimed them (epoch ms): of two, the later gives way. */
  since: number;
  service: string;
  pid: number;
  host: string;
}

/** The durable consumers a process runs alone, by the name they are named after, and the setting that names them. */
export interface ConsumerClaim {
  name: string;
  setting: string;
}

/** How long a claim waits for other holders' answers (ms): they come within milliseconds on a working connection. */
const ASK_MS = 250;

const encoder = new TextEncoder();
const decoder = new TextDecoder();

function isEarlier(a: Holder, b: Holder): boolean {
  return a.since < b.since || (a.since === b.since && a.id < b.id);
}

/**
 * Claims the durable consumers named after `claim.name` for this process:
 * it answers on their subject from now on, for as long as its connection
 * lasts, and asks who else does. Two processes pulling from one durable
 * consumer would each get only some of its events (a read model missing the
 * rest, silently), so a process that finds an earlier holder refuses with a
 * ConfigError naming it; of two that start together, the later gives way.
 * A NATS user not allowed the subject cannot ask: that is logged, and the
 * consumers start as before the claim existed.
 */
export async function claimConsumers(nc: NatsConnection, claim: ConsumerClaim, service: string, logger: Logger): Promise<void> {
  const me: Holder = { id: randomUUID(), since: Date.now(), service, pid: process.pid, host: hostname() };
  const subject = claimSubject(claim.name);
  const answer = encoder.encode(JSON.stringify(me));
  const answering = nc.subscribe(subject, { callback: (error, msg) => error === null && msg.respond(answer) });
  const others: Holder[] = [];
  try {
    await nc.flush();
    for await (const msg of await nc.requestMany(subject, Empty, { strategy: RequestStrategy.Timer, maxWait: ASK_MS })) {
      const holder = JSON.parse(decoder.decode(msg.data)) as Holder;
      if (holder.id !== me.id) others.push(holder);
    }
  } catch (error) {
    logger.warn({ err: error, subject }, "could not ask NATS whether another process runs these durable consumers (is the NATS user allowed the subject?); starting them");
    return;
  }
  const first = others.filter((other) => isEarlier(other, me)).sort((a, b) => (isEarlier(a, b) ? -1 : 1))[0];
  if (first !== undefined) {
    answering.unsubscribe();
    throw new ConfigError(
      `another ${first.service} service (pid ${first.pid} on ${first.host}, since ${new Date(first.since).toISOString()}) already runs the durable consumers named after ${claim.setting}="${claim.name}": ` +
        `two copies under one name would each get only some of the events; give this one a ${claim.setting} of its own, or stop the other`,
    );
  }
}
