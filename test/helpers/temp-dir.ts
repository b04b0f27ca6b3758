import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

/** A directory of a test's own, removed with all it holds when disposed. */
export interface TempDir extends Disposable {
  readonly path: string;
}

/** A new directory under the system's temporary one, named from `prefix` ("orderly-db-"): `using dir = tempDir(…)`. */
export function tempDir(prefix: string): TempDir {
  const path = mkdtempSync(join(tmpdir(), prefix));
  return { path, [Symbol.dispose]: () => rmSync(path, { recursive: true, force: true }) };
}
