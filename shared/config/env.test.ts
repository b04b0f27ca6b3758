import { expect, test } from "vitest";
import { ConfigError, MAX_TIMER_MS, isGrpcTarget, readAddress, readChoices, readFileOf, readGrpcAddress, readHttpUrl, readMs, readNatsUrl } from "./env.js";
import { observabilityConfig, readQueryConsumerName } from "./service-config.js";

test("an address set wins, and the port variable is then not read at all (0 there asks the other process to pick one)", () => {
  expect(readAddress({ ORDER_ADDRESS: "10.0.0.7:6000", ORDER_GRPC_PORT: "0" }, "ORDER_ADDRESS", "ORDER_GRPC_PORT", 50051)).toBe("10.0.0.7:6000");
  expect(readAddress({ ORDER_GRPC_PORT: "6001" }, "ORDER_ADDRESS", "ORDER_GRPC_PORT", 50051)).toBe("127.0.0.1:6001");
  expect(readAddress({}, "ORDER_ADDRESS", "ORDER_GRPC_PORT", 50051)).toBe("127.0.0.1:50051");
  expect(() => readAddress({ ORDER_GRPC_PORT: "0" }, "ORDER_ADDRESS", "ORDER_GRPC_PORT", 50051)).toThrow(ConfigError);
});

test("an address set must be host:port: a name or IPv4 address, or an IPv6 one in brackets, and a port from 1 to 65535", () => {
  for (const good of ["127.0.0.1:50051", "[::1]:50051", "[fe80::1%eth0]:9051", "order:50051", "order.internal.:50051", "my_service-2.example.com:1", "localhost:65535"]) {
    expect(readAddress({ ORDER_ADMIN_ADDRESS: good }, "ORDER_ADMIN_ADDRESS", "ORDER_ADMIN_PORT", 9051, 0)).toBe(good);
  }
  for (const bad of ["bad", "::bad::", "::1:50051", "[order]:50051", "10.0.0.256:80", "order:0", "order:65536", "order:", ":80", "-order:80", "a b:80", "http://order:80", "dns:///order:50051"]) {
    expect(() => readAddress({ ORDER_ADMIN_ADDRESS: bad }, "ORDER_ADMIN_ADDRESS", "ORDER_ADMIN_PORT", 9051, 0)).toThrow(
      `ORDER_ADMIN_ADDRESS must be host:port (a host name or IP address, an IPv6 address in brackets, and a port from 1 to 65535), got "${bad}"`,
    );
  }
});

test("a gRPC server's address may also be a target grpc-js resolves with a scheme; one without a port is refused", () => {
  for (const good of ["127.0.0.1:50051", "[::1]:50051", "dns:///order:50051", "dns://8.8.8.8/order:50051", "dns:order:50051", "ipv4:127.0.0.1:50051,10.0.0.2:50051", "ipv6:[::1]:50051", "unix:/run/order.sock"]) {
    expect(readGrpcAddress({ ORDER_ADDRESS: good }, "ORDER_ADDRESS", "ORDER_GRPC_PORT", 50051)).toBe(good);
  }
  expect(readGrpcAddress({ ORDER_GRPC_PORT: "6001" }, "ORDER_ADDRESS", "ORDER_GRPC_PORT", 50051)).toBe("127.0.0.1:6001");
  for (const bad of ["nohostport", "::bad::", "dns:///order", "ipv4:[::1]:50051", "ipv6:127.0.0.1:50051", "ipv4:127.0.0.1", "unix:", "order:99999"]) {
    expect(isGrpcTarget(bad)).toBe(false);
    expect(() => readGrpcAddress({ ORDER_ADDRESS: bad }, "ORDER_ADDRESS", "ORDER_GRPC_PORT", 50051)).toThrow(/^ORDER_ADDRESS must be host:port .*, or a gRPC target/);
  }
});

test("an OTLP endpoint must be an http(s) URL; unset or empty is none", () => {
  expect(readHttpUrl({ OTEL_EXPORTER_OTLP_ENDPOINT: "http://127.0.0.1:4318" }, "OTEL_EXPORTER_OTLP_ENDPOINT")).toBe("http://127.0.0.1:4318");
  expect(readHttpUrl({ OTEL_EXPORTER_OTLP_ENDPOINT: "https://otel.example/base/" }, "OTEL_EXPORTER_OTLP_ENDPOINT")).toBe("https://otel.example/base/");
  expect(readHttpUrl({ OTEL_EXPORTER_OTLP_ENDPOINT: "" }, "OTEL_EXPORTER_OTLP_ENDPOINT")).toBeUndefined();
  for (const bad of ["not-a-url", "127.0.0.1:4318", "grpc://otel:4317", "http://"]) {
    expect(() => readHttpUrl({ OTEL_EXPORTER_OTLP_ENDPOINT: bad }, "OTEL_EXPORTER_OTLP_ENDPOINT")).toThrow(`OTEL_EXPORTER_OTLP_ENDPOINT must be an http:// or https:// URL, got "${bad}"`);
  }
});

test("a list of choices takes some of them separated by commas, and names the ones it does not know", () => {
  expect(readChoices({ M: "A, C,," }, "M", ["A", "B", "C"])).toEqual(["A", "C"]);
  expect(readChoices({}, "M", ["A", "B"])).toEqual([]);
  expect(() => readChoices({ M: "A,X,Y" }, "M", ["A", "B"])).toThrow('M must be names among A, B, separated by commas, got "X,Y"');
});

test("a file a variable names that cannot be read is a ConfigError naming the variable and the file", () => {
  expect(() => readFileOf("NATS_PASSWORD_FILE", "/nonexistent.pw")).toThrow(new ConfigError("NATS_PASSWORD_FILE names a file that cannot be read: /nonexistent.pw (ENOENT: no such file or directory)"));
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

test("a duration waited for with a timer takes at most 2^31 - 1 ms; a longer one is refused, naming the variable and why", () => {
  expect(readMs({ RESERVATION_SWEEP_INTERVAL_MS: String(MAX_TIMER_MS) }, "RESERVATION_SWEEP_INTERVAL_MS", 30_000, 100)).toBe(MAX_TIMER_MS);
  expect(readMs({}, "RESERVATION_SWEEP_INTERVAL_MS", 30_000, 100)).toBe(30_000);
  expect(() => readMs({ RESERVATION_SWEEP_INTERVAL_MS: "3000000000" }, "RESERVATION_SWEEP_INTERVAL_MS", 30_000, 100)).toThrow(
    new ConfigError("RESERVATION_SWEEP_INTERVAL_MS must be between 100 and 2147483647 (ms; the longest a timer waits, about 24.8 days), got 3000000000"),
  );
  expect(() => readMs({ RESERVATION_SWEEP_INTERVAL_MS: "99" }, "RESERVATION_SWEEP_INTERVAL_MS", 30_000, 100)).toThrow(ConfigError);
});

test("QUERY_CONSUMER_NAME makes valid durable consumer names: 1 to 64 letters, digits, - or _; anything else is refused", () => {
  expect(readQueryConsumerName({})).toBe("query");
  for (const good of ["copy-b", "Query_2", "q", "x".repeat(64)]) expect(readQueryConsumerName({ QUERY_CONSUMER_NAME: good })).toBe(good);
  for (const bad of ["a.b", "a b", "a*", "a>", "a/b", "a\\b", "tab\tname", "x".repeat(65), "café"]) {
    expect(() => readQueryConsumerName({ QUERY_CONSUMER_NAME: bad })).toThrow(
      new ConfigError(
        `QUERY_CONSUMER_NAME must be 1 to 64 letters, digits, "-" or "_" (the query's durable consumers are named after it, and NATS refuses a durable name with ".", "*", ">", a space or a slash), got "${bad}"`,
      ),
    );
  }
  // Its consumers would be the ones a rebuild under the name without the suffix makes, and deletes.
  expect(() => readQueryConsumerName({ QUERY_CONSUMER_NAME: "query-rebuild" })).toThrow(
    new ConfigError(`QUERY_CONSUMER_NAME must not end in "-rebuild" (its consumers would be those npm run rebuild makes and deletes for "query"), got "query-rebuild"`),
  );
  expect(readQueryConsumerName({ QUERY_CONSUMER_NAME: "rebuild-query" })).toBe("rebuild-query");
});
