/** One sample of a Prometheus text exposition. */
export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

const SAMPLE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)(?:\s+-?\d+)?$/;
const LABEL = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;
const COMMENT = /^# (HELP|TYPE) [a-zA-Z_:][a-zA-Z0-9_:]* .*$/;

/**
 * Parses Prometheus text format 0.0.4, strictly: every line must be a
 * HELP/TYPE comment or a sample with well-formed labels and a number, else
 * it throws naming the line.
 */
export function parsePrometheus(text: string): Sample[] {
  const samples: Sample[] = [];
  for (const line of text.split("\n")) {
    if (line.trim() === "") continue;
    if (line.startsWith("#")) {
      if (!COMMENT.test(line)) throw new Error(`not a HELP/TYPE line: ${line}`);
      continue;
    }
    const match = SAMPLE.exec(line);
    if (!match) throw new Error(`not a sample line: ${line}`);
    const [, name = "", rawLabels = "", rawValue = ""] = match;
    const labels: Record<string, string> = {};
    const consumed = [...rawLabels.matchAll(LABEL)].map((m) => {
      labels[m[1]!] = m[2]!.replace(/\\n/g, "\n").replace(/\\"/g, '"').replace(/\\\\/g, "\\");
      return m[0];
    });
    if (consumed.join(",") !== rawLabels.replace(/,$/, "")) throw new Error(`malformed labels: ${line}`);
    // Prometheus reads values with Go's ParseFloat, which takes NaN in any case: prom-client writes "Nan" (a summary with no sample since its last reset).
    const notANumber = rawValue.toLowerCase() === "nan";
    const value = rawValue === "+Inf" ? Infinity : rawValue === "-Inf" ? -Infinity : notANumber ? NaN : Number(rawValue);
    if (!notANumber && Number.isNaN(value)) throw new Error(`not a number: ${line}`);
    samples.push({ name, labels, value });
  }
  return samples;
}

/** The value of the sample with this name whose labels include `labels`; throws when there is none, so a missing metric fails a test. */
export function sampleValue(samples: readonly Sample[], name: string, labels: Record<string, string> = {}): number {
  const found = samples.find((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v));
  if (found === undefined) throw new Error(`no sample ${name}${JSON.stringify(labels)}`);
  return found.value;
}

/** Fetches and parses a /metrics endpoint. */
export async function scrape(url: string): Promise<Sample[]> {
  const response = await fetch(url);
  if (!response.ok) throw new Error(`${url}: HTTP ${response.status}`);
  if (!String(response.headers.get("content-type")).startsWith("text/plain")) throw new Error(`${url}: not Prometheus text`);
  return parsePrometheus(await response.text());
}
