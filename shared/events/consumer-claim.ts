import { randomUUID } from "node:crypto";
import { hostname } from "node:os";
import { ErrorCode, RequestStrategy, type NatsConnection } from "nats";
import { ConfigError } from "../config/index.js";
import type { Logger } from "../logging/index.js";
import { claimSubject } from "./subjects.js";

/** A process running (or claiming) a set of durable consumers, as it answers on their claim's subject. */
interface Holder {
  id: string;
  /** When it claimed them (epoch ms, its own clock): between two claiming at once, the later gives way. */
  since: number;
  /** Whether it runs them (its claim made), or is still asking. */
  running: boolean;
  service: string;
  pid: number;
  host: string;
}

/** The durable consumers a process runs alone, by the name they are claimed by, and how a refusal speaks of them. */
export interface ConsumerClaim {
  name: string;
  /** What they are, as a refusal names them: `the durable consumers named after QUERY_CONSUMER_NAME="query"`. */
  what: string;
  /** What to do instead of running a second copy. */
  instead: string;
  /** How to mend what the copy that goes on lacks once two ran them: `rebuild the read model of the copy that goes on (…)`. */
  mend: string;
  /**
   * Told, once the claim is made, when this process learns it must stop: an earlier copy that also runs them asked who
   * does (it had been cut off from NATS, or paused, while this one claimed them, and is back), or was found asking again
   * (`checkEveryMs`, `reconnected`). Told once, and not after `close`. Without it, only `check` finds that.
   */
  lost?: (refusal: ConfigError) => void;
}

/** A claim made: the process runs the consumers. */
export interface ClaimedConsumers {
  /**
   * Asks again who runs them (another copy may have claimed them while this one was cut off from NATS, or paused);
   * rejects with a ConfigError when another copy, the earlier of the two, runs them too, and this one must stop. A NATS
   * user not allowed to ask is not asked for again until a reconnect (`afterReconnect`); another failure is said at
   * debug, at warn once it has gone on for three checks.
   */
  check(afterReconnect?: boolean): Promise<void>;
  /** After a reconnect to NATS: asks again at once, telling `claim.lost` what it finds. */
  reconnected(): void;
  /** Stops asking, and telling `claim.lost` (a process closing); it answers who runs them until its connection ends. */
  close(): void;
}

/** How a claim asks again while it runs. */
export interface ClaimOptions {
  /** The claim time's clock (epoch ms). */
  clock?: () => number;
  /**
   * How often it asks again while connected (ms), telling `claim.lost` what it finds: a copy paused (SIGSTOP, a frozen
   * VM, a long collection) while another claimed them wakes still connected, so no reconnect makes either ask. None by
   * default (a caller's own `check`s).
   */
  checkEveryMs?: number;
  /** Whether the connection is up now: no question is asked while it is down (a reconnect asks). By default, until it is closed. */
  isConnected?: () => boolean;
}

/** A query service's claim: its projections' durable consumers, named after `name` (QUERY_CONSUMER_NAME). */
export function queryConsumerClaim(name: string): ConsumerClaim {
  return {
    name,
    what: `the durable consumers named after QUERY_CONSUMER_NAME="${name}"`,
    instead: "two copies under one name would each get only some of the events; give this one a QUERY_CONSUMER_NAME of its own, or stop the other",
    mend: "rebuild the read model of the copy that goes on (npm run rebuild -- --replace, with it stopped)",
  };
}

/**
 * The claim of a service that runs as one process (order, inventory: its database is the record), by its durable
 * consumer's name: a second one, with a database of its own, would take some of the events and keep what it records
 * from the rest of the system.
 */
export function soleServiceClaim(service: string, durable: string): ConsumerClaim {
  return {
    name: durable,
    what: `the ${service} service's durable consumer "${durable}"`,
    instead: `the ${service} service runs as one process, its database being the record (see "Running more than one of each" in the README): stop one of the two`,
    mend: `what each recorded meanwhile is in its own database alone, which Orderly does not merge (see the README's "Running more than one of each")`,
  };
}

/** How long a claim waits for other holders' answers, each of the two times it asks (ms): they come within milliseconds on a working connection. */
const ASK_MS = 300;

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Which of two comes first: by the time each claimed, then by id, the same order seen from either side. */
function isEarlier(a: Holder, b: Holder): boolean {
  return a.since < b.since || (a.since === b.since && a.id < b.id);
}

/** The holder a message carries; undefined for an empty one, or one that is not a holder's JSON. */
function holderIn(data: Uint8Array): Holder | undefined {
  if (data.length === 0) return undefined;
  try {
    const holder = JSON.parse(decoder.decode(data)) as Partial<Holder>;
    return typeof holder.id === "string" && typeof holder.since === "number" && typeof holder.running === "boolean" ? (holder as Holder) : undefined;
  } catch {
    return undefined;
  }
}

function earliest(holders: Holder[]): Holder | undefined {
  return holders.sort((a, b) => (isEarlier(a, b) ? -1 : 1))[0];
}

/**
 * Claims the durable consumers named after `claim.name` for this process:
 * it answers on their subject from now on, for as long as its connection
 * lasts, and asks who else does. Two processes pulling from one durable
 * consumer would each get only some of its events (a read model missing the
 * rest, silently), so a process that finds another running them refuses
 * with a ConfigError naming it, and of two claiming at once the later gives
 * way (each compares the same two claim times). A question says who asks,
 * so of two that both run them (one claimed them while the other was cut
 * off, or paused and so not answering), the later stops whether it asked
 * again (`check`, after a reconnect and every few seconds) or was asked by
 * the earlier one (`claim.lost`). A process that cannot ask (a NATS user
 * not allowed the subject, an answer it cannot read) logs why and runs
 * them, as before the claim existed; one not allowed does not ask again.
 */
export async function claimConsumers(
  nc: NatsConnection,
  claim: ConsumerClaim,
  service: string,
  logger: Logger,
  { clock = Date.now, checkEveryMs, isConnected = () => !nc.isClosed() }: ClaimOptions = {},
): Promise<ClaimedConsumers> {
  const me: Holder = { id: randomUUID(), since: clock(), running: false, service, pid: process.pid, host: hostname() };
  let closed = false;
  /** Told once (a question heard and its own check may both find the other copy), and not once closed (a clean stop is not turned into a failure by a copy that asks meanwhile). */
  let toldLost = false;
  const lost = (error: unknown) => {
    if (!(error instanceof ConfigError) || toldLost || closed) return;
    toldLost = true;
    claim.lost?.(error);
  };
  const subject = claimSubject(claim.name);
  /** A copy running them that asked while this one was still claiming. */
  let heardRunning: Holder | undefined;
  let toldNotAnswering = false;
  const answering = nc.subscribe(subject, {
    callback: (error, msg) => {
      if (error !== null) {
        // Refused the subject (its NATS user not allowed it): no other copy will find this one.
        if (!toldNotAnswering && !nc.isClosed()) logger.warn({ err: error, subject }, "cannot answer on the claim's subject: other processes asking who runs these durable consumers will not find this one");
        toldNotAnswering = true;
        return;
      }
      msg.respond(encoder.encode(JSON.stringify(me)));
      // A question says who asks (older releases asked with nothing). One that runs them too and came first is back
      // from being cut off or paused, and asks again: of the two, this later one stops (the asker stays).
      const asker = holderIn(msg.data);
      if (asker === undefined || asker.id === me.id || !asker.running) return;
      // Still claiming: it gives way to a copy that runs them, which its own questions may have missed (that one cut off
      // then, and asking now that it is back).
      if (!me.running) heardRunning ??= asker;
      else if (isEarlier(asker, me)) lost(refuse(asker, "also runs (it asked again)", true));
      else missedBy(asker);
    },
  });
  /** Later copies found running them too, said once each: they stop, and this one goes on without what they applied. */
  const toldMissed = new Set<string>();
  const missedBy = (later: Holder) => {
    if (toldMissed.has(later.id)) return;
    toldMissed.add(later.id);
    logger.error(
      { subject, other: { pid: later.pid, host: later.host, since: new Date(later.since).toISOString() } },
      `another ${later.service} service ran ${claim.what} too, since this one was cut off or paused; it stops, and this one lacks the events it applied: ${claim.mend}`,
    );
  };
  /** The NATS user may not use the subject: not asked again until a reconnect (each question would be refused, and logged by the server). */
  let notAllowed = false;
  /** Questions in a row that failed otherwise, since the claim. */
  let failedInARow = 0;
  /** The others answering now (an answer that is no holder's skipped); undefined when it could not ask. */
  const others = async (): Promise<Holder[] | undefined> => {
    if (notAllowed) return undefined;
    try {
      await nc.flush();
      const holders: Holder[] = [];
      for await (const msg of await nc.requestMany(subject, encoder.encode(JSON.stringify(me)), { strategy: RequestStrategy.Timer, maxWait: ASK_MS })) {
        const holder = holderIn(msg.data);
        if (holder !== undefined && holder.id !== me.id) holders.push(holder);
      }
      failedInARow = 0;
      return holders;
    } catch (error) {
      // A close while asking is no failure to tell.
      if (nc.isClosed() || nc.isDraining()) return undefined;
      notAllowed = (error as { code?: unknown }).code === ErrorCode.PermissionsViolation;
      // Said when it claims, or learns it may not ask; asked again, a failure of the moment (the connection lost
      // meanwhile) is said at debug, and one that goes on (three in a row, 6 s) at warn.
      const line = `could not ask NATS whether another process runs these durable consumers${notAllowed ? " (its NATS user is not allowed the subject)" : ""}; running them${notAllowed ? " without asking again until a reconnect" : ""}`;
      const atWarn = notAllowed || !me.running || ++failedInARow === 3;
      logger[atWarn ? "warn" : "debug"]({ err: error, subject }, line);
      return undefined;
    }
  };
  /** The refusal naming `other`; `bothRan` when this process ran them too, so the other lacks what this one applied. */
  const refuse = (other: Holder, now: string, bothRan = false): ConfigError => {
    answering.unsubscribe();
    const missed = bothRan ? `; the other missed the events this one applied meanwhile: ${claim.mend}` : "";
    return new ConfigError(
      `another ${other.service} service (pid ${other.pid} on ${other.host}, since ${new Date(other.since).toISOString()}) ${now} ${claim.what}: ${claim.instead}${missed}`,
    );
  };
  /** Of the others answering, the one this process gives way to: one running them, or one that claimed them earlier. */
  const ahead = (found: Holder[] | undefined) => found?.find((other) => other.running) ?? earliest(found?.filter((other) => isEarlier(other, me)) ?? []);
  // Asked twice: a process that began claiming at the same moment may not have been listening yet when this one first
  // asked (its subscription still on its way to the server, so neither heard the other); by the second time it is.
  for (let round = 0; round < 2; round++) {
    const first = ahead(await others()) ?? heardRunning;
    if (first !== undefined) throw refuse(first, first.running ? "already runs" : "claimed at the same time");
  }
  me.running = true;
  /** The check out (a server slow to answer): a check asked meanwhile is that one, but after a reconnect (one more). */
  let checking: Promise<void> | undefined;
  const ask = async () => {
    const again = await others();
    const first = earliest(again?.filter((other) => other.running && isEarlier(other, me)) ?? []);
    if (first !== undefined) throw refuse(first, "also runs (found on asking again)", true);
    for (const later of again?.filter((other) => other.running) ?? []) missedBy(later);
  };
  const check = (afterReconnect = false): Promise<void> => {
    if (afterReconnect) {
      // A user's permissions may have changed with the server's configuration.
      notAllowed = false;
      if (checking !== undefined) return checking.then(() => check(), () => check());
    }
    return (checking ??= ask().finally(() => (checking = undefined)));
  };
  const rechecking = checkEveryMs === undefined ? undefined : setInterval(() => void (isConnected() && check().catch(lost)), checkEveryMs).unref();
  return {
    check,
    reconnected: () => void check(true).catch(lost),
    close: () => {
      closed = true;
      clearInterval(rechecking);
    },
  };
}
