// Types of ensure-deps.mjs (plain JavaScript: it runs before node_modules exists), for the tests.
export function nodeSupport(version: string, engines: string): "supported" | "too old" | "untested";
export function installMatchesLock(lock: { packages?: Record<string, PackageEntry> }, installed: { packages?: Record<string, PackageEntry> }, options?: { withDev?: boolean }): boolean;
interface PackageEntry { version?: string; integrity?: string; resolved?: string; optional?: boolean; dev?: boolean; devOptional?: boolean }
