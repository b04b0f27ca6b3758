/**
 * Summaries of V8 .cpuprofile files (node --cpu-prof): where a service spent
 * its CPU, by function (self time) and by package.
 */
import { readFileSync } from "node:fs";

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  hitCount?: number;
  children?: number[];
}

interface Profile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples?: number[];
  timeDeltas?: number[];
}

/** One line of a profile summary. */
export interface ProfileEntry {
  name: string;
  /** Share of the profile's non-idle samples. */
  share: number;
  ms: number;
}

/** A profile's top functions and packages by self time (idle excluded). */
export interface ProfileSummary {
  file: string;
  busyMs: number;
  wallMs: number;
  functions: ProfileEntry[];
  packages: ProfileEntry[];
}

function packageOf(url: string, functionName: string): string {
  if (url === "") return functionName.startsWith("(") ? functionName : "(native/V8)";
  const modules = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (modules) return modules[1]!;
  if (url.startsWith("node:")) return "node:" + url.slice(5).split("/")[0];
  const own = /\/(gateway|services\/[^/]+|shared\/[^/]+|proto\/gen|scripts)\//.exec(url);
  return own ? own[1]! : url;
}

/** Reads a .cpuprofile and sums self time by function and by package. */
export function summarizeProfile(file: string, top = 15): ProfileSummary {
  const profile = JSON.parse(readFileSync(file, "utf8")) as Profile;
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const selfUs = new Map<number, number>();
  const samples = profile.samples ?? [];
  const deltas = profile.timeDeltas ?? [];
  for (let i = 0; i < samples.length; i++) {
    // A sample's time is the delta to the next sample.
    const us = deltas[i + 1] ?? 0;
    selfUs.set(samples[i]!, (selfUs.get(samples[i]!) ?? 0) + us);
  }
  const functions = new Map<string, number>();
  const packages = new Map<string, number>();
  let busyUs = 0;
  for (const [id, us] of selfUs) {
    const node = byId.get(id)!;
    const { functionName, url, lineNumber } = node.callFrame;
    if (functionName === "(idle)") continue;
    busyUs += us;
    const shortUrl = url.replace(/^file:\/\/.*?\/(node_modules|gateway|services|shared|proto|scripts)\//, "$1/");
    const key = `${functionName || "(anonymous)"} ${shortUrl ? `${shortUrl}:${lineNumber + 1}` : ""}`.trim();
    functions.set(key, (functions.get(key) ?? 0) + us);
    const pkg = packageOf(url, functionName);
    packages.set(pkg, (packages.get(pkg) ?? 0) + us);
  }
  const rank = (m: Map<string, number>): ProfileEntry[] =>
    [...m.entries()]
      .sort((a, b) => b[1] - a[1])
      .slice(0, top)
      .map(([name, us]) => ({ name, share: busyUs ? us / busyUs : 0, ms: Math.round(us / 1000) }));
  return {
    file,
    busyMs: Math.round(busyUs / 1000),
    wallMs: Math.round((profile.endTime - profile.startTime) / 1000),
    functions: rank(functions),
    packages: rank(packages),
  };
}
