import { execFileSync } from "node:child_process";
import { copyFileSync, mkdirSync, readFileSync, utimesSync } from "node:fs";
import { join } from "node:path";
import { expect, test } from "vitest";
import { ROOT } from "../test/helpers/processes.js";
import { tempDir } from "../test/helpers/temp-dir.js";
import { installMatchesLock } from "./ensure-deps.mjs";

const lock = JSON.parse(readFileSync(join(ROOT, "package-lock.json"), "utf8")) as { packages: Record<string, Record<string, unknown>> };
const installed = JSON.parse(readFileSync(join(ROOT, "node_modules", ".package-lock.json"), "utf8")) as typeof lock;

test("npm start leaves an install that holds what the lock asks for alone, however new the lock file is", () => {
  // A checkout whose lock file was written after its install (a fresh clone beside a kept node_modules, a git checkout).
  using temp = tempDir("orderly-ensure-deps-");
  const dir = temp.path;
  mkdirSync(join(dir, "scripts"));
  mkdirSync(join(dir, "node_modules"));
  copyFileSync(join(ROOT, "scripts", "ensure-deps.mjs"), join(dir, "scripts", "ensure-deps.mjs"));
  copyFileSync(join(ROOT, "node_modules", ".package-lock.json"), join(dir, "node_modules", ".package-lock.json"));
  copyFileSync(join(ROOT, "package-lock.json"), join(dir, "package-lock.json"));
  const hourAgo = new Date(Date.now() - 3_600_000);
  utimesSync(join(dir, "node_modules", ".package-lock.json"), hourAgo, hourAgo);
  const output = execFileSync(process.execPath, [join(dir, "scripts", "ensure-deps.mjs")], { cwd: dir, encoding: "utf8", stdio: "pipe" });
  expect(output).not.toContain("npm ci");
});

test("an install that is not what the lock asks for is installed again", () => {
  expect(installMatchesLock(lock, installed)).toBe(true);
  const some = Object.keys(installed.packages)[0]!;
  const withInstalled = (packages: Record<string, Record<string, unknown>>) => installMatchesLock(lock, { packages });
  expect(withInstalled({ ...installed.packages, [some]: { ...installed.packages[some], version: "0.0.0-other" } })).toBe(false);
  expect(withInstalled({ ...installed.packages, [some]: { ...installed.packages[some], integrity: "sha512-other" } })).toBe(false);
  expect(withInstalled({ ...installed.packages, "node_modules/not-in-the-lock": { version: "1.0.0" } })).toBe(false);
  const runtime = Object.keys(installed.packages).find((path) => !lock.packages[path]!.dev && !lock.packages[path]!.optional)!;
  const { [runtime]: _left, ...without } = installed.packages;
  expect(withInstalled(without)).toBe(false);
  // An install without the development packages (--omit=dev, NODE_ENV=production) holds what npm start needs.
  const withoutDev = Object.fromEntries(Object.entries(installed.packages).filter(([path]) => !lock.packages[path]!.dev));
  expect(Object.keys(withoutDev).length).toBeLessThan(Object.keys(installed.packages).length);
  expect(withInstalled(withoutDev)).toBe(true);
  // Not for the tests, which need them (a pull whose lock added one).
  expect(installMatchesLock(lock, { packages: withoutDev }, { withDev: true })).toBe(false);
  expect(installMatchesLock(lock, installed, { withDev: true })).toBe(true);
  // Another platform's optional builds are in the lock but never installed here.
  const optional = Object.keys(lock.packages).filter((path) => path !== "" && !(path in installed.packages));
  expect(optional.length).toBeGreaterThan(0);
  expect(optional.every((path) => lock.packages[path]!.optional === true)).toBe(true);
  expect(installMatchesLock(lock, { packages: {} })).toBe(false);
});
