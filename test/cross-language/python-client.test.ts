import { execFile } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { delimiter, join } from "node:path";
import { promisify } from "node:util";
import { expect, test } from "vitest";
import { writeDevCredentials } from "../../scripts/dev-security.js";
import { ROOT, startService } from "../helpers/processes.js";
import { tempDir } from "../helpers/temp-dir.js";

const run = promisify(execFile);

/** The system Python, where Debian's python3-grpcio and python3-protobuf install. */
const PYTHON = "/usr/bin/python3";

/** What provides every tool this test needs, on Debian and Ubuntu. */
const APT_INSTALL = "apt-get install -y python3-grpcio python3-protobuf protobuf-compiler protobuf-compiler-grpc libprotobuf-dev";

/**
 * The protos the README's protoc command for Python compiles (its "Calling the services from other
 * languages" section): the test runs what a reader would copy, so a proto the command misses fails here.
 */
function readmeProtos(): string[] {
  const readme = readFileSync(join(ROOT, "README.md"), "utf8");
  const command = /```sh\n(mkdir -p gen\/python\n[\s\S]*?)```/.exec(readme)?.[1];
  if (command === undefined) throw new Error("README.md has no protoc command for Python (a ```sh block starting with mkdir -p gen/python)");
  return command.split(/\s+/).filter((word) => word.endsWith(".proto"));
}

/** The path of an executable on PATH, or undefined. */
function onPath(name: string): string | undefined {
  return (process.env.PATH ?? "")
    .split(delimiter)
    .map((dir) => join(dir, name))
    .find((file) => existsSync(file));
}

/** Fails (never skips) with the apt command to run when a tool is missing. */
async function requireTools(): Promise<{ protoc: string; grpcPythonPlugin: string }> {
  const missing: string[] = [];
  const protoc = onPath("protoc");
  if (protoc === undefined) missing.push("protoc (protobuf-compiler)");
  const grpcPythonPlugin = onPath("grpc_python_plugin");
  if (grpcPythonPlugin === undefined) missing.push("grpc_python_plugin (protobuf-compiler-grpc)");
  try {
    await run(PYTHON, ["-c", "import grpc, google.protobuf"], { env: pythonEnv() });
  } catch (error) {
    missing.push(`grpc and protobuf for ${PYTHON} (python3-grpcio, python3-protobuf): ${(error as Error).message.trim()}`);
  }
  if (protoc === undefined || grpcPythonPlugin === undefined || missing.length > 0) {
    throw new Error(`the Python cross-language test needs:\n  ${missing.join("\n  ")}\nInstall them with: ${APT_INSTALL}`);
  }
  return { protoc, grpcPythonPlugin };
}

/** The environment for the system Python: no variables of another Python install, no .pyc files. */
function pythonEnv(): NodeJS.ProcessEnv {
  const { PYTHONPATH: _path, PYTHONHOME: _home, ...env } = process.env;
  return { ...env, PYTHONDONTWRITEBYTECODE: "1" };
}

/** The JSON the Python client prints. */
interface ClientOutput {
  restocked: Record<string, unknown>;
  item: Record<string, unknown>;
  unknownSku: { code: string; statusCode: number; reason: string; domain: string; metadata: Record<string, string> };
  invalidSku: { code: string; reason: string; fieldViolations?: { field: string; description: string }[] };
  anonymous: { code: string; reason: string };
  customerRestock: { code: string; reason: string };
  getItemDeclares: string[];
}

test("a Python client generated from proto/ restocks and reads an item over gRPC", async () => {
  const tools = await requireTools();
  using genDir = tempDir("orderly-python-gen-");
  using dataDir = tempDir("orderly-python-data-");

  // Messages (--python_out) and the InventoryServiceStub (--grpc_python_out).
  await run(
    tools.protoc,
    [
      "-I",
      "proto",
      `--plugin=protoc-gen-grpc_python=${tools.grpcPythonPlugin}`,
      `--python_out=${genDir.path}`,
      `--grpc_python_out=${genDir.path}`,
      ...readmeProtos(),
    ],
    { cwd: ROOT },
  ).catch((error: Error & { stderr?: string }) => {
    throw new Error(`protoc failed (${APT_INSTALL} provides it and the google/protobuf includes):\n${error.stderr ?? error.message}`);
  });
  expect(existsSync(join(genDir.path, "orderly/inventory/v1/inventory_pb2_grpc.py"))).toBe(true);
  // Every public service gets its stub, the read side's too, and each loads with its imports.
  const stubs = "import sys; sys.path.insert(0, sys.argv[1])\n" +
    "from orderly.inventory.v1.inventory_pb2_grpc import InventoryServiceStub\nfrom orderly.order.v1.order_pb2_grpc import OrderServiceStub\nfrom orderly.query.v1.query_pb2_grpc import QueryServiceStub\n" +
    "print(' '.join(stub.__name__ for stub in (InventoryServiceStub, OrderServiceStub, QueryServiceStub)))";
  expect((await run(PYTHON, ["-c", stubs, genDir.path], { env: pythonEnv() })).stdout.trim()).toBe("InventoryServiceStub OrderServiceStub QueryServiceStub");

  const tokens = await writeDevCredentials(dataDir.path);
  await using inventory = await startService("inventory", "services/inventory/main.ts", {
    ORDERLY_DATA_DIR: dataDir.path,
    INVENTORY_GRPC_PORT: "0",
  });

  const sku = "PY-WIDGET-1";
  const client = join(ROOT, "test/cross-language/inventory_client.py");
  const args = [client, "--gen-dir", genDir.path, "--address", `127.0.0.1:${inventory.port}`, "--sku", sku, "--quantity", "7",
    "--admin-token", tokens.admin, "--customer-token", tokens.customers.alice!];
  const { stdout } = await run(PYTHON, args, { env: pythonEnv(), timeout: 60_000 }).catch((error: Error & { stderr?: string }) => {
    throw new Error(`the Python client failed: ${error.message}\n${error.stderr ?? ""}\ninventory logs:\n${inventory.logs.join("\n")}`);
  });
  const output = JSON.parse(stdout) as ClientOutput;

  const expectedItem = {
    sku,
    name: `Python widget ${sku}`,
    unitPriceMinor: "1250", // proto3 JSON writes int64 as a string
    currencyCode: "EUR",
    available: 7,
    reserved: 0,
  };
  expect(output.restocked).toMatchObject(expectedItem);
  expect(output.item).toMatchObject(expectedItem);
  expect(output.item.version).toBe(output.restocked.version);

  expect(output.unknownSku).toMatchObject({
    code: "NOT_FOUND",
    statusCode: 5,
    reason: "ITEM_NOT_FOUND",
    domain: "orderly",
    metadata: { sku: `${sku}-unknown` },
  });
  expect(output.invalidSku).toMatchObject({ code: "INVALID_ARGUMENT", reason: "VALIDATION_FAILED" });
  expect(output.invalidSku.fieldViolations).toContainEqual(expect.objectContaining({ field: "sku" }));
  // The service itself authenticates (a bearer token sent straight to it) and enforces the RPC's access rule.
  expect(output.anonymous).toMatchObject({ code: "UNAUTHENTICATED", reason: "AUTHENTICATION_REQUIRED" });
  expect(output.customerRestock).toMatchObject({ code: "PERMISSION_DENIED", reason: "ROLE_NOT_ALLOWED" });
  // The reasons an RPC declares travel with the protos: the Python client reads GetItem's from its descriptor, and the unknown SKU's is one.
  expect(output.getItemDeclares).toEqual(["ITEM_NOT_FOUND"]);
});

test("a generic Python client describes a service from its reflection alone, through v1 and v1alpha", async () => {
  const tools = await requireTools();
  using genDir = tempDir("orderly-python-reflection-gen-");
  using dataDir = tempDir("orderly-python-reflection-data-");
  // The reflection protocol's own messages only: everything else comes from the server.
  await run(tools.protoc, ["-I", "proto", `--python_out=${genDir.path}`, "grpc/reflection/v1/reflection.proto"], { cwd: ROOT });
  await writeDevCredentials(dataDir.path);
  await using inventory = await startService("inventory", "services/inventory/main.ts", {
    ORDERLY_DATA_DIR: dataDir.path,
    INVENTORY_GRPC_PORT: "0",
  });

  const client = join(ROOT, "test/cross-language/reflection_client.py");
  const { stdout } = await run(PYTHON, [client, "--gen-dir", genDir.path, "--address", `127.0.0.1:${inventory.port}`], {
    env: pythonEnv(),
    timeout: 60_000,
  }).catch((error: Error & { stderr?: string }) => {
    throw new Error(`the Python reflection client failed: ${error.message}\n${error.stderr ?? ""}`);
  });
  const described = JSON.parse(stdout) as Record<string, Record<string, string[]>>;

  // Each endpoint's files build in Python's strict descriptor pool, and each listed service is found there with its methods.
  for (const endpoint of ["grpc.reflection.v1.ServerReflection", "grpc.reflection.v1alpha.ServerReflection"]) {
    expect(described[endpoint]?.["orderly.inventory.v1.InventoryService"]).toEqual(expect.arrayContaining(["GetItem", "ReserveStock", "Restock"]));
    expect(described[endpoint]?.["grpc.reflection.v1alpha.ServerReflection"]).toEqual(["ServerReflectionInfo"]);
    expect(described[endpoint]?.["grpc.reflection.v1.ServerReflection"]).toEqual(["ServerReflectionInfo"]);
  }
});
