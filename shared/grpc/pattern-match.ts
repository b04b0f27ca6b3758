import { RE2JS } from "@bufbuild/re2";

// The items simpleRegExp takes. A class may be negated; its only escapes are code points in hex
// (`\x7f`, `\x{202e}`), which RegExp writes `\u{202e}`. A count is `*`, `+`, or braces with no
// leading zero (RE2 reads `{01}` as text, RegExp as a count).
const HEX_ESCAPE = String.raw`\\x[0-9a-fA-F]{2}|\\x\{[0-9a-fA-F]{1,6}\}`;
const CLASS = String.raw`\[\^?(?:[^\\[\]^]|${HEX_ESCAPE})(?:[^\\[\]]|${HEX_ESCAPE})*\]`;
const COUNT = String.raw`\{(0|[1-9]\d{0,2})(?:,(0|[1-9]\d{0,2}))?\}|([*+])`;
const ITEM = String.raw`(?:${CLASS}|[A-Za-z0-9_-])(?:${COUNT})?`;

/**
 * The platform RegExp for a pattern made only of simple items between `^`
 * and `$`, at most one of them with a count that varies; undefined for any
 * other pattern. On such a pattern RE2 and RegExp (with the `u` flag, which
 * matches code points, as RE2 does) agree, and RegExp cannot backtrack more
 * than that one count.
 */
export function simpleRegExp(pattern: string): RegExp | undefined {
  if (pattern.length < 2 || !pattern.startsWith("^") || !pattern.endsWith("$")) return undefined;
  const item = new RegExp(ITEM, "y");
  item.lastIndex = 1;
  let varying = 0;
  while (item.lastIndex < pattern.length - 1) {
    const found = item.exec(pattern);
    if (found === null) return undefined;
    if ((found[2] !== undefined && found[2] !== found[1]) || found[3] !== undefined) varying++;
  }
  if (varying > 1 || item.lastIndex !== pattern.length - 1) return undefined;
  try {
    return new RegExp(ecmaPattern(pattern), "u");
  } catch {
    return undefined;
  }
}

/**
 * An RE2 pattern's code point escapes (`\x{202e}`) as ECMA-262 writes them:
 * `\u202e` within the Basic Multilingual Plane (read alike with and without
 * RegExp's `u` flag, as JSON Schema validators differ on it), `\u{1f600}`
 * beyond it (which needs the flag). The rest of the pattern is left as it is.
 */
export function ecmaPattern(re2: string): string {
  return re2.replace(/\\x\{([0-9a-fA-F]{1,6})\}/g, (_, hex: string) => (hex.length <= 4 ? `\\u${hex.padStart(4, "0")}` : `\\u{${hex}}`));
}

/** At most this many compiled patterns are kept (protovalidate's own bound: CEL rules may build patterns from input). */
const CACHE_LIMIT = 1024;

/**
 * protovalidate's regex hook (`createValidator({ regexMatch })`): whether
 * `against` matches `pattern`, with the platform RegExp where it agrees with
 * RE2 (simpleRegExp) and with RE2 itself otherwise, each compiled once.
 * protovalidate matches every `pattern` rule with its RE2 port in JavaScript,
 * ~2 µs a match against ~75 ns for RegExp (its own figures); every Orderly
 * request has one to three such rules. A pattern RE2 refuses is refused here
 * too, whichever engine would match it.
 */
export function patternMatcher(): (pattern: string, against: string) => boolean {
  const compiled = new Map<string, (against: string) => boolean>();
  return (pattern, against) => {
    let test = compiled.get(pattern);
    if (test === undefined) {
      const re2 = RE2JS.compile(pattern);
      const regExp = simpleRegExp(pattern);
      test = regExp === undefined ? (text) => re2.test(text) : (text) => regExp.test(text);
      if (compiled.size >= CACHE_LIMIT) compiled.clear();
      compiled.set(pattern, test);
    }
    return test(against);
  };
}
