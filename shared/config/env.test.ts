import { expect, test } from "vitest";
import { ConfigError, readAddress, readNatsUrl } from "./env.js";
import { observabilityConfig } from "./service-config.js";

test("an address set wins, and the port variable is then not read at all (0 there asks the other process to pick one)", () => {
  expect(readAddress({ ORDER_ADDRESS: "10.0.0.7:6000", ORDER_GRPC_PORT: "0" }, "ORDER_ADDRESS", "ORDER_GRPC_PORT", 50051)).toBe("10.0.0.7:6000");
  expect(readAddress({ ORDER_GRPC_PORT: "6001" }, "ORDER_ADDRESS", "ORDER_GRPC_PORT", 50051)).toBe("127.0.0.1:6001");
  expect(readAddress({}, "ORDER_ADDRESS", "ORDER_GRPC_PORT", 50051)).toBe("127.0.0.1:50051");
  expect(() => readAddress({ ORDER_GRPC_PORT: "0" }, "ORDER_ADDRESS", "ORDER_GRPC_PORT", 50051)).toThrow(ConfigError);
});

test("NATS_URL takes server URLs separated by commas (host:port meaning nats://); one that names no server is refused at once", () => {
  for (const good of ["nats://10.0.0.1:4222", "nats://a:4222,nats://b:4222", "127.0.0.1:4222", "tls://nats.example:4443", "wss://nats.example"]) {
    expect(readNatsUrl({ NATS_URL: good }, "nats://127.0.0.1:4222")).toBe(good);
  }
  expect(readNatsUrl({}, "nats://127.0.0.1:4222")).toBe("nats://127.0.0.1:4222");
  expect(readNatsUrl({ NATS_URL: "" }, "")).toBe("");
  for (const bad of ["not a url", "http://10.0.0.1:4222", "nats://", "nats://a:4222,,nats://b:4222", "nats://a:99999"]) {
    expect(() => readNatsUrl({ NATS_URL: bad }, "")).toThrow(ConfigError);
  }
});

test("ORDERLY_ADMIN_HOSTS is a comma-separated list of names, compared lower-case", () => {
  expect(observabilityConfig({ ORDERLY_ADMIN_HOSTS: " Order,prometheus.internal ,," }).adminHosts).toEqual(["order", "prometheus.internal"]);
  expect(observabilityConfig({}).adminHosts).toEqual([]);
});
