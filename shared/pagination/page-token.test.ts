import { expect, test } from "vitest";
import { OrderlyError } from "../errors/index.js";
import { decodePageToken, encodePageToken } from "./page-token.js";

const token = (value: unknown) => Buffer.from(JSON.stringify(value)).toString("base64url");

function reasonOf(decode: () => unknown): string | undefined {
  try {
    decode();
    return undefined;
  } catch (error) {
    return (error as OrderlyError).reason;
  }
}

test("a token decodes to the cursor it was made with, for its own query and shape only", () => {
  expect(decodePageToken("items", encodePageToken("items", ["SKU-9"]), ["string"])).toEqual(["SKU-9"]);
  expect(decodePageToken("orders:alice", encodePageToken("orders:alice", [1764849600000, "ord_1"]), ["integer", "string"])).toEqual([1764849600000, "ord_1"]);
  expect(decodePageToken("items", "", ["string"])).toBeUndefined();
  expect(reasonOf(() => decodePageToken("stock", encodePageToken("items", ["SKU-9"]), ["string"]))).toBe("INVALID_PAGE_TOKEN");
});

test("a forged token of the right query is refused unless its cursor has the query's shape", () => {
  const forged: [string, unknown[], readonly ("string" | "integer")[]][] = [
    ["no cursor values", [], ["string"]],
    ["one value too many", ["SKU-1", "SKU-2"], ["string"]],
    ["a number for text", [5], ["string"]],
    ["text for a time", ["yesterday", "ord_1"], ["integer", "string"]],
    ["a fractional time", [1.5, "ord_1"], ["integer", "string"]],
    ["a time past 2^53", [2 ** 60, "ord_1"], ["integer", "string"]],
    ["null", [null], ["string"]],
    ["an object", [{ $gt: "" }], ["string"]],
  ];
  for (const [name, cursor, shape] of forged) {
    expect({ name, reason: reasonOf(() => decodePageToken("q", token({ q: "q", c: cursor }), shape)) }).toEqual({ name, reason: "INVALID_PAGE_TOKEN" });
  }
  for (const bad of ["not base64 !", token("a string"), token(null), token({ q: "q" }), token({ q: "q", c: "SKU-1" })]) {
    expect(reasonOf(() => decodePageToken("q", bad, ["string"]))).toBe("INVALID_PAGE_TOKEN");
  }
});
