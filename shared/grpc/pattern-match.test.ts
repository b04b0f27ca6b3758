import { RE2JS } from "@bufbuild/re2";
import fc from "fast-check";
import { readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { expect, test } from "vitest";
import { patternMatcher, simpleRegExp } from "./pattern-match.js";

/** Every `pattern` rule in Orderly's own protos. */
function orderlyPatterns(): string[] {
  const root = join(import.meta.dirname, "../../proto/orderly");
  const files = readdirSync(root, { recursive: true, encoding: "utf8" }).filter((file) => file.endsWith(".proto"));
  const patterns = files.flatMap((file) => [...readFileSync(join(root, file), "utf8").matchAll(/pattern\s*[=:]\s*"((?:[^"\\]|\\.)*)"/g)].map((m) => JSON.parse(`"${m[1]}"`) as string));
  return [...new Set(patterns)];
}

const patterns = orderlyPatterns();

test("every pattern in Orderly's protos is matched with the platform RegExp", () => {
  expect(patterns.length).toBeGreaterThanOrEqual(4);
  for (const pattern of patterns) expect(simpleRegExp(pattern), pattern).toBeInstanceOf(RegExp);
});

/** Strings near what a pattern accepts: its own characters and a few others (ASCII, controls, non-BMP), up to past its longest count. */
const candidates = fc.oneof(
  fc.string({ unit: fc.constantFrom(..."aZ09._-!~ -\n\t[]{}é\u0000\u007f\u0085\u2028\u202e\u2066\u2069\u206a"), maxLength: 140 }),
  fc.string({ unit: "grapheme", maxLength: 70 }),
  fc.string({ unit: "binary", maxLength: 10 }),
  // Lone and paired surrogates, which a JavaScript string may hold and UTF-8 may not.
  fc.string({ unit: fc.constantFrom("a", "\uD800", "\uDFFF", "\uD83D\uDE00", "\u202E"), maxLength: 8 }),
  fc.stringMatching(/^[0-9]{4}-[0-9]{2}-[0-9]{2}$/),
);

test("on Orderly's patterns the platform RegExp and RE2 agree, whatever the text", () => {
  const match = patternMatcher();
  for (const pattern of patterns) {
    const re2 = RE2JS.compile(pattern);
    fc.assert(fc.property(candidates, (text) => match(pattern, text) === re2.test(text)), { numRuns: 2000 });
  }
});

/** Patterns of the simple form's pieces (and near misses: counts with leading zeros, classes of odd characters), with texts of the same characters. */
const alphabet = [..."ab-.^$*{}(|0129é😀\n"];
const countText = fc.oneof(
  fc.constant(""),
  fc.nat(12).map((n) => `{${n}}`),
  fc.tuple(fc.nat(5), fc.nat(5)).map(([a, b]) => `{${a},${a + b}}`),
  fc.constantFrom("{01}", "{0,05}", "{00}", "*", "+"),
);
/** A class's members: the alphabet's characters, and the same and other code points written in hex (`\x0a`, `\x{e9}`, `\x{1f600}`, a range). */
const classUnit = fc.oneof(fc.constantFrom(...alphabet), fc.constantFrom("\\x0a", "\\x62", "\\x{e9}", "\\x{1f600}", "\\x00-\\x1f", "\\x{2028}-\\x{202e}", "\\x{61}-\\x{7a}"));
const classText = fc.tuple(fc.boolean(), fc.array(classUnit, { minLength: 1, maxLength: 4 })).map(([negated, units]) => `[${negated ? "^" : ""}${units.join("")}]`);
const itemText = fc.tuple(fc.oneof(fc.constantFrom("a", "b", "-", "0", "9"), classText), countText).map(([atom, count]) => atom + count);
const simpleLooking = fc.array(itemText, { maxLength: 4 }).map((items) => `^${items.join("")}$`);
const texts = fc.string({ unit: fc.constantFrom(...alphabet), maxLength: 14 });

test("wherever simpleRegExp takes a pattern, RegExp and RE2 agree on it", () => {
  fc.assert(
    fc.property(simpleLooking, fc.array(texts, { maxLength: 20 }), (pattern, textsToTry) => {
      const regExp = simpleRegExp(pattern);
      if (regExp === undefined) return;
      let re2: RE2JS;
      try {
        re2 = RE2JS.compile(pattern);
      } catch {
        return; // patternMatcher compiles RE2 first and refuses it
      }
      for (const text of textsToTry) expect(regExp.test(text), `${pattern} on ${JSON.stringify(text)}`).toBe(re2.test(text));
    }),
    { numRuns: 3000 },
  );
});

test("patterns outside the simple form are left to RE2", () => {
  for (const pattern of [
    "^[a\\d]{1,3}$", // an escape other than a code point in hex
    "^[\\x{110000}]$", // past the last code point: RE2 refuses it
    "^a+b*$", // two counts that vary
    "^[a-z]{0,9}[0-9]{0,9}$", // two counts that vary
    "^(ab|cd)$", // a group
    "^a.b$", // any character
    "[a-z]{1,3}", // not anchored
    "^(?i)abc$", // a flag
    "^a{01}$", // a count with a leading zero: text to RE2, a count to RegExp
  ]) {
    expect(simpleRegExp(pattern), pattern).toBeUndefined();
  }
});

test("the matcher answers as RE2 on patterns it leaves to RE2, and refuses a pattern RE2 refuses", () => {
  const match = patternMatcher();
  expect(match("^[^a]{1,3}[^b]{1,3}$", "bcdac")).toBe(true);
  expect(match("^[^a]{1,3}[^b]{1,3}$", "aaa")).toBe(false);
  expect(match("^\\d{2}$", "42")).toBe(true);
  // The platform RegExp would take a lookahead; RE2 does not, and neither does the matcher.
  expect(() => match("^(?=a)a$", "a")).toThrow();
});
