import { chmodSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { expect, test } from "vitest";
import { tempDir } from "../../test/helpers/temp-dir.js";
import { keepToOwner, makeOwnersDir } from "./owners-files.js";

test("a shared folder such as /tmp (sticky, writable by all) is never narrowed", () => {
  using temp = tempDir("orderly-db-mode-");
  const dir = temp.path;
  chmodSync(dir, 0o1777);
  keepToOwner(dir);
  expect((statSync(dir).mode & 0o7777).toString(8)).toBe("1777");
});

test("a folder is made with its missing parents, each its owner's alone; a path that cannot be a folder is refused, naming it, at once", () => {
  using temp = tempDir("orderly-make-dir-");
  const nested = join(temp.path, "a", "b", "c");
  makeOwnersDir(nested);
  makeOwnersDir(nested);
  const mode = (path: string) => (statSync(path).mode & 0o777).toString(8);
  expect([mode(join(temp.path, "a")), mode(join(temp.path, "a", "b")), mode(nested)]).toEqual(["700", "700", "700"]);
  const file = join(temp.path, "file");
  writeFileSync(file, "");
  expect(() => makeOwnersDir(join(file, "data"))).toThrow(`${file} is not a folder, so ${join(file, "data")} cannot be made there: choose another path`);
  // A link to what is not there (a disk not mounted, say), and a link loop.
  symlinkSync(join(temp.path, "gone"), join(temp.path, "dangling"));
  expect(() => makeOwnersDir(join(temp.path, "dangling"))).toThrow(`the folder ${join(temp.path, "dangling")} cannot be made (EEXIST): choose another path`);
  symlinkSync(join(temp.path, "loop"), join(temp.path, "loop"));
  expect(() => makeOwnersDir(join(temp.path, "loop", "data"))).toThrow(`${join(temp.path, "loop", "data")} cannot be used (ELOOP): choose another path`);
  // Where the kernel refuses a folder though its parent exists: Node 20's recursive mkdir spun there for ever.
  expect(() => makeOwnersDir("/proc/orderly-nope/data")).toThrow("the folder /proc/orderly-nope cannot be made (ENOENT): choose another path");
});
