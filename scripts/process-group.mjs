// Process groups, as npm start's processes run (each the leader of its own). Plain JavaScript: start.mjs and the
// reaper run it with node alone, before node_modules exists and without tsx.

/**
 * Sends `signal` (0: none, only a check) to every process of the group `pid` leads; false when no process of it
 * is left (one that exists but is not ours to signal counts as left).
 */
export function signalGroup(pid, signal) {
  try {
    process.kill(-pid, signal);
    return true;
  } catch (error) {
    return error.code === "EPERM";
  }
}

/** Waits until no process of the group `pid` leads is left, polling; false when some are still there after `timeoutMs`. */
export async function groupEnded(pid, timeoutMs) {
  const deadline = Date.now() + timeoutMs;
  while (signalGroup(pid, 0)) {
    if (Date.now() > deadline) return false;
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  return true;
}
