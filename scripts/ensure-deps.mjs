#!/usr/bin/env node
// Makes sure this machine has what Orderly needs, installing what it can:
//   - node_modules matching package-lock.json (npm ci when it does not);
//   - with --test, the system tools the test suite uses (Debian packages:
//     nats-server, Python gRPC and protoc for the cross-language client test,
//     openssl for the mTLS tests' dev certificates, and Chromium for the
//     status page test).
// Installs apt packages only when running as root (as on CI and dev boxes
// here); otherwise it stops and prints the exact command to run.
// Plain JavaScript with no dependencies: it runs before node_modules exists.
import { execFileSync, spawnSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { dirname, join } from "node:path";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");

/**
 * Where a Node version stands against package.json's engines.node, written as one
 * `^major.minor.patch` per Node line the tests run on: "supported", "too old" (older than its
 * line's minimum, or than every line) or "untested" (a line not listed).
 */
export function nodeSupport(version, engines) {
  const [major, minor, patch] = version.replace(/^v/, "").split(".").map(Number);
  const lines = engines.split("||").map((line) => /^\^(\d+)\.(\d+)\.(\d+)$/.exec(line.trim())?.slice(1).map(Number));
  if (lines.includes(undefined)) throw new Error(`engines.node is not a list of ^major.minor.patch: ${engines}`);
  const line = lines.find(([lineMajor]) => lineMajor === major);
  if (line) return minor * 1e6 + patch >= line[1] * 1e6 + line[2] ? "supported" : "too old";
  return major < Math.min(...lines.map(([lineMajor]) => lineMajor)) ? "too old" : "untested";
}

/**
 * Whether an install (npm's record of it, node_modules/.package-lock.json) holds what a package-lock.json asks for:
 * every package at its locked version, integrity and source, and none the lock does not name. Left out may be
 * optional ones (another platform's builds) and, unless `withDev` (the tests need them), development ones (an install
 * with --omit=dev or NODE_ENV=production, which npm start does not need). Contents, not file times: a fresh clone's or
 * a checkout's lock file is newer than a matching install, and `npm ci` empties node_modules first (also a symlink's
 * target, another checkout's).
 */
export function installMatchesLock(lock, installed, { withDev = false } = {}) {
  const locked = lock.packages ?? {};
  const present = installed.packages ?? {};
  if (Object.keys(present).some((path) => !(path in locked))) return false;
  return Object.entries(locked).every(([path, entry]) => {
    if (path === "") return true;
    const got = present[path];
    if (got === undefined) return entry.optional === true || (!withDev && (entry.dev === true || entry.devOptional === true));
    return got.version === entry.version && got.integrity === entry.integrity && got.resolved === entry.resolved;
  });
}

function readJson(path) {
  try {
    return JSON.parse(readFileSync(path, "utf8"));
  } catch {
    return undefined;
  }
}

/** Installs node_modules with `npm ci` when missing or not what package-lock.json asks for (its development packages too, `withDev`). */
export function ensureNodeModules({ withDev = false } = {}) {
  const installed = readJson(join(root, "node_modules", ".package-lock.json"));
  if (installed !== undefined && installMatchesLock(JSON.parse(readFileSync(join(root, "package-lock.json"), "utf8")), installed, { withDev })) return;
  console.log("Installing dependencies (npm ci)…");
  // With them asked for explicitly: under NODE_ENV=production (or npm's omit=dev) a plain npm ci would leave them out again.
  const result = spawnSync("npm", ["ci", "--no-audit", "--no-fund", ...(withDev ? ["--include=dev"] : [])], { cwd: root, stdio: "inherit" });
  if (result.status !== 0) throw new Error("npm ci failed");
}

function has(command) {
  return spawnSync("sh", ["-c", `command -v ${command}`], { stdio: "ignore" }).status === 0;
}

function python3HasGrpc() {
  return existsSync("/usr/bin/python3") && spawnSync("/usr/bin/python3", ["-c", "import grpc, google.protobuf"], { stdio: "ignore" }).status === 0;
}

/** nats-server with JetStream, from Debian (the local run and the tests start their own). */
export const natsPackage = { name: "nats-server", present: () => has("nats-server") || existsSync("/usr/sbin/nats-server") };

/** Debian packages the test suite needs, each with the check that tells it is present. */
export const testPackages = [
  natsPackage,
  { name: "protobuf-compiler", present: () => has("protoc") },
  { name: "protobuf-compiler-grpc", present: () => has("grpc_python_plugin") },
  { name: "libprotobuf-dev", present: () => existsSync("/usr/include/google/protobuf/timestamp.proto") },
  { name: "python3-grpcio", present: python3HasGrpc },
  { name: "python3-protobuf", present: python3HasGrpc },
  // The dev CA and certificates of the mTLS tests (and of `ORDERLY_MTLS=1 npm start`).
  { name: "openssl", present: () => has("openssl") },
  { name: "chromium", present: () => existsSync("/usr/bin/chromium") },
];

/** Installs the missing Debian packages of a list (as root), or throws with the command to run. */
export function ensureAptPackages(packages) {
  const missing = packages.filter((p) => !p.present()).map((p) => p.name);
  if (missing.length === 0) return;
  const command = `apt-get update && apt-get install -y ${missing.join(" ")}`;
  if (process.getuid?.() !== 0 || !has("apt-get")) {
    throw new Error(`missing system packages: ${missing.join(", ")}\nInstall them with:\n  sudo sh -c '${command}'`);
  }
  console.log(`Installing ${missing.join(", ")} (apt-get)…`);
  execFileSync("sh", ["-c", command], { stdio: "inherit", env: { ...process.env, DEBIAN_FRONTEND: "noninteractive" } });
  if (missing.includes(natsPackage.name)) stopDebianNatsService();
}

/**
 * Debian's nats-server package enables and starts a system service (nats-server.service, on 127.0.0.1:4222) where
 * systemd runs: the port the local run's own nats-server takes by default. Orderly installed the package for the
 * binary only, so it stops and disables that service.
 */
function stopDebianNatsService() {
  if (!existsSync("/run/systemd/system") || !has("systemctl")) return;
  const stopped = spawnSync("systemctl", ["disable", "--now", "nats-server.service"], { stdio: "ignore" });
  if (stopped.status === 0) console.log("Stopped and disabled Debian's nats-server.service (Orderly starts its own nats-server).");
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  try {
    // The tests need the development packages too: a checkout whose lock added one (a pull) installs again.
    const test = process.argv.includes("--test");
    ensureNodeModules({ withDev: test });
    if (test) ensureAptPackages(testPackages);
  } catch (error) {
    console.error(error instanceof Error ? error.message : error);
    process.exit(1);
  }
}
