import { readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { expect, test } from "vitest";
import { reasons } from "../shared/errors/index.js";
import { ROOT } from "./helpers/processes.js";
import { nodeSupport } from "../scripts/ensure-deps.mjs";

const readme = readFileSync(join(ROOT, "README.md"), "utf8");

test("the README's error table lists every error reason", () => {
  const missing = Object.keys(reasons).filter((reason) => !readme.includes(`| \`${reason}\` |`));
  expect(missing).toEqual([]);
});

test("the README's environment table lists every variable a process reads", () => {
  const configFiles = ["gateway/config.ts", "services/order/config.ts", "services/inventory/config.ts", "services/query/config.ts", "scripts/local-run.ts", "shared/config/service-config.ts", "shared/security/config.ts"];
  const names = new Set<string>();
  for (const file of configFiles) {
    const text = readFileSync(join(ROOT, file), "utf8");
    for (const match of text.matchAll(/(?:read(?:String|Int|Choice)|secretFrom)\(env, "([A-Z_]+)"(?:, "([A-Z_]+)")?/g)) {
      for (const name of match.slice(1)) if (name) names.add(name);
    }
    // Port variables handed to serviceBaseConfig as ["NAME", default].
    for (const match of text.matchAll(/\["([A-Z_]+_PORT)", \d+\]/g)) names.add(match[1]!);
  }
  expect(names.size).toBeGreaterThan(10);
  const missing = [...names].filter((name) => !readme.includes(`\`${name}\``) && !readme.includes(`\`${name.replace(/_QUEUE$|_LIMIT$/, "")}_LIMIT\` / \`_QUEUE\``));
  expect(missing).toEqual([]);
});

const engines = (JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as { engines: { node: string } }).engines.node;

test("this Node version is inside the range package.json declares", () => {
  expect(nodeSupport(process.versions.node, engines)).toBe("supported");
});

test("CI runs the tests on one version of every Node line package.json declares, and on no other", () => {
  const script = readFileSync(join(ROOT, ".ci/other-node-lines"), "utf8");
  const versions = /^versions=\(([\d. ]+)\)$/m.exec(script)![1]!.trim().split(/\s+/);
  expect(versions.filter((version) => nodeSupport(version, engines) !== "supported")).toEqual([]);
  const majors = (list: string[]) => list.map((version) => version.replace(/^\^/, "").split(".")[0]);
  expect(majors(versions)).toEqual(majors(engines.split("||").map((line) => line.trim())));
});

test("every service folder has an entry file and a config module", () => {
  for (const service of readdirSync(join(ROOT, "services"))) {
    const files = readdirSync(join(ROOT, "services", service));
    expect(files).toContain("main.ts");
    expect(files).toContain("config.ts");
  }
});

test("every dependency with an install script is approved or denied in package.json's allowScripts", () => {
  // npm 12 skips the install scripts of dependencies that allowScripts does not approve; without
  // better-sqlite3's, `npm ci` succeeds and the services then fail to load SQLite.
  const pkg = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as { allowScripts?: Record<string, boolean> };
  const lock = JSON.parse(readFileSync(join(ROOT, "package-lock.json"), "utf8")) as { packages: Record<string, { hasInstallScript?: boolean }> };
  const withScripts = Object.entries(lock.packages)
    .filter(([, entry]) => entry.hasInstallScript)
    .map(([path]) => path.slice(path.lastIndexOf("node_modules/") + "node_modules/".length));
  expect(withScripts).toContain("better-sqlite3");
  expect(pkg.allowScripts?.["better-sqlite3"]).toBe(true);
  expect(withScripts.filter((name) => typeof pkg.allowScripts?.[name] !== "boolean")).toEqual([]);
});
