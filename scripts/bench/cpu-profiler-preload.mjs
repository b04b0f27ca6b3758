// Loaded into a service with NODE_OPTIONS="--import=…/cpu-profiler-preload.mjs" by `npm run bench -- --profile`
// (node refuses --cpu-prof in NODE_OPTIONS). Profiles the whole process with the inspector and writes
// $BENCH_CPU_PROFILE_DIR/<pid>.cpuprofile when it exits (the same-thread inspector session answers synchronously).
import { Session } from "node:inspector";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";

const dir = process.env.BENCH_CPU_PROFILE_DIR;
if (dir) {
  const session = new Session();
  session.connect();
  session.post("Profiler.enable");
  session.post("Profiler.setSamplingInterval", { interval: 1000 });
  session.post("Profiler.start");
  process.once("exit", () => {
    session.post("Profiler.stop", (error, result) => {
      if (error || !result) return;
      mkdirSync(dir, { recursive: true });
      writeFileSync(join(dir, `${process.pid}.cpuprofile`), JSON.stringify(result.profile));
    });
  });
}
