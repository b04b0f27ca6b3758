/**
 * The outbox relay against the JetStream ceiling, interleaved. A relay round
 * stops the stack's nats-server, creates orders (their events pile up in the
 * order service's outbox: writes never wait for NATS), starts NATS again on
 * the same store and times the drain from the relay's record of its batches.
 *
 * Isolated rounds (the ones compared with the ceiling) also stop the
 * inventory and query services and the gateway (whose cache subscribes to
 * every event) before NATS comes back, so that, like the ceiling's
 * publisher, the relay is the only client of its nats-server and nothing
 * else competes for the CPUs; they are started again afterwards and catch up. One last round drains with everything running (the relay in the
 * system: inventory's relay and three consumers at work at the same time).
 *
 * A ceiling round runs scripts/bench/ceilings/js-publish.ts against a
 * separate nats-server: 256 PubAcks outstanding (and, for diagnosis, in
 * batches of 256 that wait for all their acks, as the relay does).
 */
import { execFile } from "node:child_process";
import { fileURLToPath } from "node:url";
import { nodeEntry } from "../../shared/process/index.js";
import { waitFor } from "../../test/helpers/processes.js";
import { drainRate, meanPayloadBytes, openReadOnly, outboxHighWater, recordedAfter, unappliedSince, unpublishedAfter, type DrainMeasurement } from "./event-metrics.js";
import type { LoadGenerator } from "./load-generator.js";
import { recordPids, waitReady, type Stack } from "./orderly.js";
import { cpuMs, waitIdle } from "./proc.js";
import type { RssSampler } from "./rss.js";
import { median } from "./stats.js";
import type { HttpTarget } from "./targets.js";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));

/** One JetStream publisher run. */
export interface PublishRun {
  mode: "window" | "batch";
  count: number;
  ms: number;
  msgsPerSec: number;
  /** CPU ms per message of the publisher process and of its nats-server. */
  cpuMsPerMsg: number;
  natsCpuMsPerMsg: number;
}

/** One relay round. */
export interface RelayRound {
  round: number;
  /** Whether inventory and query were stopped while the relay drained. */
  isolated: boolean;
  ordersCreated: number;
  /** Events the order service's outbox held when NATS came back. */
  backlog: number;
  drain: DrainMeasurement;
  /** How long the bench waited for the order service to settle (idle) after the orders were created, before NATS came back, and whether it did (isolated rounds only). */
  settled?: { ms: number; idle: boolean };
  /** CPU ms per event of the order service (the relay) and of the stack's nats-server, from the relay's first batch after NATS's restart to the end of the drain. */
  cpuMsPerEvent: { order: number; nats: number };
  ceiling: PublishRun;
  batchedPublish: PublishRun;
}

/** The relay phase's result. */
export interface RelayResult {
  payloadBytes: number;
  /** Isolated rounds, each with the ceiling measured beside it. */
  rounds: RelayRound[];
  /** The drain with every service running (no ceiling beside it). */
  inSystem: Omit<RelayRound, "ceiling" | "batchedPublish">;
  /** Median events per second the relay published in isolated rounds. */
  eventsPerSec: number;
  /** Median messages per second of the ceiling (256 in flight, sliding). */
  ceilingMsgsPerSec: number;
  /** Median messages per second publishing in batches of 256 (the relay's pattern without SQLite). */
  batchedMsgsPerSec: number;
  /** Median of per-round relay / ceiling. */
  ratio: number;
}

async function publishRun(nats: { url: string; pid: () => number | undefined }, count: number, bytes: number, mode: "window" | "batch"): Promise<PublishRun> {
  const natsPid = nats.pid();
  const natsBefore = natsPid === undefined ? undefined : cpuMs(natsPid);
  const run = await new Promise<Omit<PublishRun, "natsCpuMsPerMsg">>((resolve, reject) => {
    const [node, ...publisher] = nodeEntry("scripts/bench/ceilings/js-publish.ts");
    execFile(
      node,
      [...publisher, "--url", nats.url, "--count", String(count), "--bytes", String(bytes), "--mode", mode, "--window", "256"],
      { cwd: ROOT, timeout: 180_000, env: { ...process.env, NODE_OPTIONS: "" } },
      (error, stdout, stderr) => {
        if (error) return reject(new Error(`js-publish failed: ${error.message}\n${stderr}`));
        try {
          resolve(JSON.parse(stdout.trim().split("\n").at(-1)!) as Omit<PublishRun, "natsCpuMsPerMsg">);
        } catch {
          reject(new Error(`js-publish printed no result:\n${stdout}\n${stderr}`));
        }
      },
    );
  });
  const natsAfter = natsPid === undefined ? undefined : cpuMs(natsPid);
  // The publisher's warm-up messages are counted on the server side too: a slight overestimate.
  return { ...run, natsCpuMsPerMsg: natsBefore === undefined || natsAfter === undefined ? NaN : (natsAfter - natsBefore) / count };
}

async function relayRound(
  stack: Stack,
  loader: LoadGenerator,
  createOrder: HttpTarget,
  orders: number,
  isolated: boolean,
): Promise<Omit<RelayRound, "round" | "ceiling" | "batchedPublish">> {
  const { system } = stack;
  const orderDb = openReadOnly(system.dataDir, "order.db");
  const roundStart = Date.now();
  try {
    // Start from an empty outbox backlog, so the drain measured is only this round's.
    await waitFor(() => unpublishedAfter(orderDb, 0) === 0, "the outbox to be empty before the relay round", 60_000, 100);
    const before = outboxHighWater(orderDb);
    await system.nats.kill("SIGTERM");
    const created = await loader.run(
      { kind: "saturate", host: createOrder.endpoint.host, port: createOrder.endpoint.port, request: createOrder.request, token: createOrder.token, connections: 32, durationS: 0, amount: orders },
      300_000,
    );
    const backlog = unpublishedAfter(orderDb, before);
    if (isolated) await Promise.all([system.inventory.stop(), system.query.stop(), system.gateway.stop()]);
    // NATS comes back once the order service has settled (its checkpoint worker copying the writes' WAL, collections): an
    // isolated drain is then the relay's work alone, as the ceiling's is the publisher's. The in-system round does not wait.
    const settled = isolated ? await waitIdle(system.order.child.pid!) : undefined;
    await system.nats.restart();
    const natsReadyAt = Date.now();
    const orderPid = system.order.child.pid!;
    const natsPid = system.nats.child().pid!;
    // CPU is counted from the relay's first batch on, as its rate is. The first publish to a stream after nats-server
    // restarts makes JetStream rebuild the stream's duplicate window: it reads back every message of the last 10 minutes
    // (scratch A/B on this machine: a first batch of 70-180 ms, then the same rate as a long-running server's). The
    // ceiling's long-running server never pays this one-off; counted, it made the stack's server look ~1.5x as costly.
    const firstEvents = await waitFor(() => recordedAfter(orderDb, before), "the relay's first batch", 60_000, 2);
    const cpuBefore = { order: cpuMs(orderPid) ?? NaN, nats: cpuMs(natsPid) ?? NaN };
    await waitFor(() => unpublishedAfter(orderDb, before) === 0, "the relay to drain the outbox", 180_000, 50);
    const cpuAfter = { order: cpuMs(orderPid) ?? NaN, nats: cpuMs(natsPid) ?? NaN };
    const drain = drainRate(orderDb, before, natsReadyAt);
    const counted = drain.events - firstEvents;
    // A drain done in the first batch leaves nothing counted: no figure (NaN) rather than a division by zero.
    const cpuMsPerEvent = counted > 0 ? { order: (cpuAfter.order - cpuBefore.order) / counted, nats: (cpuAfter.nats - cpuBefore.nats) / counted } : { order: NaN, nats: NaN };
    if (isolated) {
      await system.restart("inventory");
      await system.restart("query");
      await system.restart("gateway");
      recordPids(stack);
    }
    await waitReady(system);
    // Let the read model catch up before anything else is measured.
    await waitFor(() => unappliedSince(system.dataDir, roundStart) === 0, "the read model to catch up after the relay round", 180_000, 200);
    return { isolated, ordersCreated: created.ok, backlog, drain, cpuMsPerEvent, settled };
  } finally {
    orderDb.close();
  }
}

/** Interleaved relay and ceiling rounds. */
export async function measureRelay(
  stack: Stack,
  ceilingNats: { url: string; pid: () => number | undefined },
  loader: LoadGenerator,
  createOrder: HttpTarget,
  settings: { rounds: number; orders: number; publishCount: number; warmup: boolean; log: (line: string) => void },
  rss: RssSampler,
): Promise<RelayResult> {
  const orderDb = openReadOnly(stack.system.dataDir, "order.db");
  const payloadBytes = meanPayloadBytes(orderDb);
  orderDb.close();
  if (settings.warmup) {
    // Unrecorded, as the HTTP targets' warm-up and the ceiling publisher's own: a first drain ran colder than the rest
    // (0.041-0.055 ms of the order service's CPU per event in round 1 of seven runs, 0.032-0.044 in rounds 2 and 3).
    const warm = await relayRound(stack, loader, createOrder, Math.ceil(settings.orders / 2), false);
    settings.log(`  warm-up: relay drained ${warm.drain.events} events (${Math.round(warm.drain.eventsPerSec)} events/s, not recorded)`);
  }
  const rounds: RelayRound[] = [];
  for (let round = 1; round <= settings.rounds; round++) {
    const ceilingFirst = round % 2 === 0;
    rss.roundStarted();
    let ceiling: PublishRun | undefined;
    let batchedPublish: PublishRun | undefined;
    const runCeiling = async () => {
      ceiling = await publishRun(ceilingNats, settings.publishCount, payloadBytes, "window");
      batchedPublish = await publishRun(ceilingNats, settings.publishCount, payloadBytes, "batch");
    };
    if (ceilingFirst) await runCeiling();
    const relay = await relayRound(stack, loader, createOrder, settings.orders, true);
    if (!ceilingFirst) await runCeiling();
    rounds.push({ round, ...relay, ceiling: ceiling!, batchedPublish: batchedPublish! });
    rss.roundEnded();
    settings.log(
      `  round ${round} relay (isolated) ${Math.round(relay.drain.eventsPerSec)} events/s (${relay.drain.events} events, ${relay.drain.batches} batches, drained ${relay.drain.drainMs} ms after NATS was back)` +
        `  ceiling ${Math.round(ceiling!.msgsPerSec)} msgs/s, batched ${Math.round(batchedPublish!.msgsPerSec)} msgs/s`,
    );
  }
  rss.roundStarted();
  const inSystem = { round: rounds.length + 1, ...(await relayRound(stack, loader, createOrder, settings.orders, false)) };
  rss.roundEnded();
  settings.log(
    `  in the running system: relay ${Math.round(inSystem.drain.eventsPerSec)} events/s (${inSystem.drain.events} events, drained ${inSystem.drain.drainMs} ms after NATS was back)`,
  );
  return {
    payloadBytes,
    rounds,
    inSystem,
    eventsPerSec: median(rounds.map((r) => r.drain.eventsPerSec)),
    ceilingMsgsPerSec: median(rounds.map((r) => r.ceiling.msgsPerSec)),
    batchedMsgsPerSec: median(rounds.map((r) => r.batchedPublish.msgsPerSec)),
    ratio: median(rounds.map(relayRoundRatio)),
  };
}

/** An isolated round's relay rate ÷ the publish ceiling's beside it. */
export function relayRoundRatio(round: Pick<RelayRound, "drain" | "ceiling">): number {
  return round.drain.eventsPerSec / round.ceiling.msgsPerSec;
}
