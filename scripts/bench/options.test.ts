import { describe, expect, test } from "vitest";
import { isLoopback, parseOptions, publicOptions, type BenchOptions } from "./options.js";

const parse = (args: string[], env: NodeJS.ProcessEnv = {}) => parseOptions(args, env) as BenchOptions;

describe("the bench's options for a running Orderly", () => {
  test("--gateway measures reads and writes of the system there", () => {
    const options = parse(["--gateway", "http://127.0.0.1:8080/", "--admin", "http://127.0.0.1:9050", "--token", "t"], { ORDERLY_DATA_DIR: "/srv/orderly" });
    expect(options.running).toEqual({
      gatewayUrl: "http://127.0.0.1:8080",
      host: "127.0.0.1",
      port: 8080,
      token: "t",
      tokenFile: "/srv/orderly/dev-tokens.json",
      adminUrl: "http://127.0.0.1:9050",
    });
    expect(options.phases).toEqual(["reads", "writes"]);
    expect(parse([]).running).toBeUndefined();
    expect(parse([]).phases).toEqual(["reads", "writes", "relay"]);
  });

  test("a gateway's host and port as the load generator's sockets need them", () => {
    expect(parse(["--gateway", "http://[::1]:8080"]).running).toMatchObject({ gatewayUrl: "http://[::1]:8080", host: "::1", port: 8080 });
    expect(parse(["--gateway", "http://orderly.internal"]).running).toMatchObject({ host: "orderly.internal", port: 80 });
    expect(parse(["--gateway", "http://h:1"]).running!.tokenFile).toMatch(/\/\.data\/dev-tokens\.json$/);
  });

  test("a gateway counts as local at a loopback address only", () => {
    for (const host of ["127.0.0.1", "127.1.2.3", "localhost", "::1"]) expect(isLoopback(host), host).toBe(true);
    for (const host of ["10.0.0.5", "orderly.internal", "::ffff:10.0.0.5"]) expect(isLoopback(host), host).toBe(false);
    expect(isLoopback(parse(["--gateway", "http://[::1]:8080"]).running!.host)).toBe(true);
  });

  test("refuses what needs stacks the bench starts, URLs it would not measure as given, and options without --gateway", () => {
    expect(() => parse(["--gateway", "http://h:1", "--only", "relay"])).toThrow(/drop the relay phase/);
    expect(() => parse(["--gateway", "http://h:1", "--growth"])).toThrow(/drop the growth check/);
    expect(() => parse(["--gateway", "http://h:1", "--env", "A=1"])).toThrow(/drop --profile and --env/);
    for (const url of ["https://h:1", "http://h:1/prefix", "http://h:1/?a=1", "http://h:1/#x", "http://u:p@h:1", "http://:secret@h:1", "h:1"]) {
      expect(() => parse(["--gateway", url]), url).toThrow(/--gateway must be an http:\/\/ origin/);
    }
    expect(() => parse(["--token", "t"])).toThrow(/--token and --admin go with --gateway/);
  });

  test("the results keep where the system is, never its token", () => {
    const options = parse(["--gateway", "http://127.0.0.1:8080", "--token", "secret-token"]);
    const recorded = JSON.stringify(publicOptions(options));
    expect(recorded).not.toContain("secret-token");
    expect(JSON.parse(recorded).running.gatewayUrl).toBe("http://127.0.0.1:8080");
    expect(options.running!.token).toBe("secret-token");
  });
});
