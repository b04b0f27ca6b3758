// Stops what npm start's supervisor (scripts/local-run.ts) started when the supervisor itself ends without
// stopping it: killed outright (SIGKILL, the OOM killer) or crashed. Each process it starts runs in a process
// group of its own, so nothing else would ever stop nats-server and the services, which would go on holding
// their ports and the data directory.
//
// The supervisor starts this first, in a session of its own (a terminal's Ctrl-C and hang-up do not reach it),
// and writes one line on its stdin per process it starts: "<process group> <stop signal> <slot in the start order>";
// "<process group> ended" when one has ended before the supervisor stopped it (it starts it again, in the same
// slot); and "done" once it has stopped them itself. Its stdin ending without "done" means the supervisor is gone:
// each group gets its stop signal, the last slot first (as the supervisor stops them), and SIGKILL if it has not ended within
// the supervisor's STOP_TIMEOUT_MS. Plain JavaScript, started with node alone: it must run without tsx.
import { createInterface } from "node:readline";
import { groupEnded, signalGroup } from "./process-group.mjs";

/** The supervisor's own wait for a process's stop signal before SIGKILL (ms), given as the first argument. */
const STOP_TIMEOUT_MS = Number(process.argv[2] ?? 10_000);

/** Stops one group: its stop signal, then SIGKILL if it has not ended within STOP_TIMEOUT_MS. */
async function stop({ group, stopSignal }) {
  signalGroup(group, stopSignal);
  if (!(await groupEnded(group, STOP_TIMEOUT_MS))) signalGroup(group, "SIGKILL");
}

/** The process of each slot of the start order: one started again takes its slot (and its place in the stop order). */
const bySlot = new Map();
let done = false;
const lines = createInterface({ input: process.stdin });
lines.on("line", (line) => {
  if (line === "done") done = true;
  const [group, word, slot] = line.split(" ");
  if (!/^\d+$/.test(group ?? "")) return;
  if (/^SIG[A-Z]+$/.test(word ?? "") && /^\d+$/.test(slot ?? "")) bySlot.set(Number(slot), { group: Number(group), stopSignal: word });
  // A process that ended (to be started again): its group id may be another's by the time the reaper would signal it.
  else if (word === "ended") for (const [at, proc] of bySlot) if (proc.group === Number(group)) bySlot.delete(at);
});
lines.on("close", async () => {
  if (!done) for (const [, proc] of [...bySlot].sort(([a], [b]) => b - a)) await stop(proc);
  process.exit(0);
});
