import { chmodSync, mkdirSync, statSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { ConfigError } from "../config/env.js";

/**
 * Takes group's and others' access away from a file or folder of Orderly's
 * that this user owns (0644 → 0600, 0755 → 0700): what Orderly keeps in its
 * data directory is its owner's alone, also what an older version made with
 * the umask's mode. A path owned by another user, shared (sticky or writable
 * by all), missing, or on a file system whose modes cannot change, is left
 * as it is.
 */
export function keepToOwner(path: string): void {
  try {
    const stats = statSync(path);
    // A shared folder (sticky or writable by all, as /tmp is) is never narrowed, whoever owns it.
    if ((stats.mode & 0o1002) !== 0) return;
    if ((stats.mode & 0o077) !== 0 && stats.uid === process.getuid?.()) chmodSync(path, stats.mode & 0o700);
  } catch (error) {
    // Missing, or on a file system that keeps no modes of its own (EPERM, ENOTSUP, EROFS): nothing to take away there.
    if (!["ENOENT", "EPERM", "ENOTSUP", "EROFS"].includes((error as { code?: string }).code ?? "")) throw error;
  }
}

/**
 * Makes a folder and its missing parents, each readable by its owner only
 * (0700); a folder that exists is left as it is. A path that cannot be a
 * folder (a file on the way, a place no folder can be made) is a
 * ConfigError naming it. One level at a time, not `mkdirSync`'s recursive
 * option: on Node 20 that spins for ever where the kernel refuses a folder
 * with ENOENT though its parent exists (under /proc).
 */
export function makeOwnersDir(path: string): void {
  const missing: string[] = [];
  for (let dir = resolve(path); ; dir = dirname(dir)) {
    const stats = statOrMissing(dir);
    if (stats?.isDirectory()) break;
    if (stats !== undefined) throw new ConfigError(`${dir} is not a folder, so ${path} cannot be made there: choose another path`);
    missing.push(dir);
    if (dirname(dir) === dir) break;
  }
  for (const dir of missing.reverse()) {
    try {
      mkdirSync(dir, { mode: 0o700 });
    } catch (error) {
      // Made meanwhile by another process starting on the same folder: as good. (EEXIST for what is not there: a dangling link.)
      if (statOrMissing(dir)?.isDirectory()) continue;
      throw new ConfigError(`the folder ${dir} cannot be made (${codeOf(error)}): choose another path`, { cause: error });
    }
  }
}

/**
 * A path's stats, or undefined when nothing is there (also when a file on
 * the way has nothing under it: ENOTDIR). A path that cannot be looked at
 * (a link loop, a folder this user may not search) is a ConfigError naming it.
 */
function statOrMissing(path: string): ReturnType<typeof statSync> | undefined {
  try {
    return statSync(path);
  } catch (error) {
    const code = codeOf(error);
    if (code === "ENOENT" || code === "ENOTDIR") return undefined;
    throw new ConfigError(`${path} cannot be used (${code}): choose another path`, { cause: error });
  }
}

function codeOf(error: unknown): string {
  return (error as { code?: string }).code ?? String(error);
}
