import { expect, test } from "vitest";
import { ConfigError, readAddress } from "./env.js";

test("an address set wins, and the port variable is then not read at all (0 there asks the other process to pick one)", () => {
  expect(readAddress({ ORDER_ADDRESS: "10.0.0.7:6000", ORDER_GRPC_PORT: "0" }, "ORDER_ADDRESS", "ORDER_GRPC_PORT", 50051)).toBe("10.0.0.7:6000");
  expect(readAddress({ ORDER_GRPC_PORT: "6001" }, "ORDER_ADDRESS", "ORDER_GRPC_PORT", 50051)).toBe("127.0.0.1:6001");
  expect(readAddress({}, "ORDER_ADDRESS", "ORDER_GRPC_PORT", 50051)).toBe("127.0.0.1:50051");
  expect(() => readAddress({ ORDER_GRPC_PORT: "0" }, "ORDER_ADDRESS", "ORDER_GRPC_PORT", 50051)).toThrow(ConfigError);
});
