// Types of process-group.mjs (plain JavaScript: start.mjs and the reaper run it with node alone), for local-run.ts.
export function signalGroup(pid: number, signal: NodeJS.Signals | 0): boolean;
export function groupEnded(pid: number, timeoutMs: number): Promise<boolean>;
