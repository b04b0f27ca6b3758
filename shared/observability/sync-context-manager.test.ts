import { ROOT_CONTEXT, createContextKey } from "@opentelemetry/api";
import { expect, test } from "vitest";
import { SyncContextManager } from "./sync-context-manager.js";

const key = createContextKey("test key");
const contextOf = (value: string) => ROOT_CONTEXT.setValue(key, value);

test("a context is active for the synchronous run of `with`, nested ones inside it, and the one before comes back after", () => {
  const manager = new SyncContextManager();
  expect(manager.active()).toBe(ROOT_CONTEXT);
  const seen = manager.with(contextOf("outer"), () => {
    const inner = manager.with(contextOf("inner"), () => manager.active().getValue(key));
    return [inner, manager.active().getValue(key)];
  });
  expect(seen).toEqual(["inner", "outer"]);
  expect(manager.active()).toBe(ROOT_CONTEXT);
});

test("the context before comes back when the function throws", () => {
  const manager = new SyncContextManager();
  expect(() =>
    manager.with(contextOf("outer"), () =>
      manager.with(contextOf("inner"), () => {
        throw new Error("boom");
      }),
    ),
  ).toThrow("boom");
  expect(manager.active()).toBe(ROOT_CONTEXT);
});

test("what a function leaves for later does not run in its context: asynchronous work passes its context on itself", async () => {
  const manager = new SyncContextManager();
  const seen: unknown[] = [];
  const running = manager.with(contextOf("call"), async () => {
    seen.push(manager.active().getValue(key));
    await Promise.resolve();
    seen.push(manager.active().getValue(key));
  });
  await running;
  expect(seen).toEqual(["call", undefined]);
});

test("bind runs a function in the context given, with its this and arguments; anything else is returned as it is", () => {
  const manager = new SyncContextManager();
  const target = {
    name: "t",
    read(this: { name: string }, suffix: string) {
      return `${this.name}${suffix}:${String(manager.active().getValue(key))}`;
    },
  };
  const bound = manager.bind(contextOf("bound"), target.read);
  expect(bound.call(target, "!")).toBe("t!:bound");
  expect(manager.active()).toBe(ROOT_CONTEXT);
  const value = { not: "a function" };
  expect(manager.bind(contextOf("bound"), value)).toBe(value);
});

test("with passes this and the arguments to the function, and disable forgets the active context", () => {
  const manager = new SyncContextManager();
  const self = { n: 2 };
  const sum = function (this: { n: number }, a: number, b: number) {
    return this.n * a + b;
  };
  expect(manager.with(contextOf("x"), sum, self, 3, 4)).toBe(10);
  manager.with(contextOf("x"), () => {
    manager.disable();
    expect(manager.active()).toBe(ROOT_CONTEXT);
  });
});
