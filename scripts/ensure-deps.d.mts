// Types of ensure-deps.mjs (plain JavaScript: it runs before node_modules exists), for the tests.
export function nodeSupport(version: string, engines: string): "supported" | "too old" | "untested";
