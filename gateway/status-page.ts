/**
 * The live status page served at /status: one static HTML document whose
 * script polls /status.json every 2 s and draws every process — health,
 * request rate and p99 per route or RPC, breakers, outbox backlog and
 * consumer lag. No framework and no external assets, so it works offline.
 */
export const statusPageHtml = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Orderly status</title>
<style>
  :root { --bg:#0f1419; --card:#182029; --line:#263241; --text:#e6edf3; --dim:#8b98a5; --ok:#2ea043; --bad:#da3633; --warn:#d29922; }
  * { box-sizing: border-box; }
  body { margin:0; font:14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; background:var(--bg); color:var(--text); }
  header { display:flex; align-items:center; gap:16px; padding:16px 24px; border-bottom:1px solid var(--line); }
  h1 { font-size:20px; margin:0; }
  #overall { padding:4px 12px; border-radius:999px; font-weight:600; }
  #updated { margin-left:auto; color:var(--dim); font-size:13px; }
  main { display:grid; grid-template-columns:repeat(auto-fill, minmax(430px, 1fr)); gap:16px; padding:20px; }
  .card { background:var(--card); border:1px solid var(--line); border-radius:10px; padding:14px 16px; }
  .card.down { border-color:var(--bad); } .card.degraded { border-color:var(--warn); }
  .title { display:flex; align-items:center; gap:10px; margin-bottom:6px; }
  .title h2 { font-size:17px; margin:0; text-transform:capitalize; }
  .badge { font-size:12px; font-weight:600; padding:2px 8px; border-radius:999px; color:#fff; }
  .ok { background:var(--ok); } .bad { background:var(--bad); } .warn { background:var(--warn); color:#111; }
  .meta { color:var(--dim); font-size:12px; margin-bottom:8px; }
  .meta a { color:var(--dim); }
  table { width:100%; border-collapse:collapse; margin:6px 0 10px; font-size:13px; font-variant-numeric:tabular-nums; }
  th { text-align:left; color:var(--dim); font-weight:500; font-size:12px; border-bottom:1px solid var(--line); padding:3px 4px; white-space:nowrap; }
  td { padding:3px 4px; border-bottom:1px solid #1e2833; white-space:nowrap; }
  td.num, th.num { text-align:right; }
  td.name { max-width:170px; overflow:hidden; text-overflow:ellipsis; white-space:nowrap; }
  h3 { font-size:12px; color:var(--dim); text-transform:uppercase; letter-spacing:.05em; margin:10px 0 2px; }
  .error { color:var(--bad); }
  .empty { color:var(--dim); font-style:italic; }
</style>
</head>
<body>
<header>
  <h1>Orderly</h1>
  <span id="overall" class="badge warn">loading…</span>
  <span id="updated">waiting for the first report…</span>
</header>
<main id="processes"></main>
<script>
const esc = (v) => String(v ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
const num = (v, digits = 1) => (v === undefined || v === null ? "–" : Number(v).toFixed(digits));
const breakerBadge = (state) => '<span class="badge ' + (state === "closed" ? "ok" : state === "half-open" ? "warn" : "bad") + '">' + esc(state) + "</span>";

// The span a process's request figures cover: 30 s while the page polls, longer for the first report after a pause.
const windowSpan = (seconds) => (!seconds ? "rates from the next report" : "last " + (seconds < 120 ? Math.round(seconds) + " s" : seconds < 7200 ? Math.round(seconds / 60) + " min" : Math.round(seconds / 3600) + " h"));

function table(headers, rows, empty) {
  if (rows.length === 0) return '<div class="empty">' + esc(empty) + "</div>";
  const head = headers.map((h) => "<th" + (h.num ? ' class="num"' : "") + ">" + esc(h.label) + "</th>").join("");
  const body = rows.map((r) => "<tr>" + r.map((c, i) => "<td" + (headers[i].num ? ' class="num"' : i === 0 ? ' class="name"' : "") + (i === 0 ? ' title="' + esc(c) + '"' : "") + ">" + (headers[i].html ? c : esc(c)) + "</td>").join("") + "</tr>").join("");
  return "<table><thead><tr>" + head + "</tr></thead><tbody>" + body + "</tbody></table>";
}

// A process still serving with a check failing (NATS cut off, say) is degraded: amber, not red.
const isDegraded = (p) => !p.healthy && p.status !== undefined && (p.grpcHealth === "SERVING" || p.grpcHealth === "self");
const cardClass = (p) => (p.healthy ? "card" : isDegraded(p) ? "card degraded" : "card down");

function card(p) {
  const s = p.status;
  const state = p.healthy ? '<span class="badge ok">healthy</span>' : isDegraded(p) ? '<span class="badge warn">degraded</span>' : '<span class="badge bad">' + (s ? "not serving" : "down") + "</span>";
  const title = '<div class="title"><h2>' + esc(p.name) + "</h2>" + state +
    (p.grpcHealth !== "self" ? ' <span class="meta">gRPC health: ' + esc(p.grpcHealth) + "</span>" : "") + "</div>";
  if (!s) return '<section class="card down" data-process="' + esc(p.name) + '" data-healthy="false">' + title + '<div class="error">' + esc(p.error) + "</div></section>";
  const checks = Object.entries(s.checks).map(([k, v]) => esc(k) + (v ? " ✓" : " ✗")).join(" · ");
  const meta = '<div class="meta">pid ' + s.pid + " · up " + s.uptimeSeconds + " s · " + (s.rssBytes === undefined ? "memory unknown" : Math.round(s.rssBytes / 1048576) + " MiB") + " · event-loop p99 " + num(s.eventLoopLagMs) + " ms" +
    (checks ? " · " + checks : "") + ' · <a href="' + esc(p.metricsUrl) + '">metrics</a></div>';
  const routes = table(
    [{ label: p.name === "gateway" ? "route" : "RPC" }, { label: "req/s", num: true }, { label: "err/s", num: true }, { label: "p50 ms", num: true }, { label: "p99 ms", num: true }, { label: "total", num: true }],
    s.routes.map((r) => [r.name.replace(/^[a-z0-9_.]+\\.(?=[A-Za-z]+\\/)/, ""), num(r.rate), num(r.errorRate), num(r.p50Ms), num(r.p99Ms), r.total]),
    "no requests yet",
  );
  // Breaker and bulkhead as they are now; calls and what befell them over the requests' span.
  const deps = s.dependencies.length === 0 ? "" : "<h3>dependencies (calls " + (s.windowSeconds ? "in the " + esc(windowSpan(s.windowSeconds)) : "since the start") + ")</h3>" + table(
    [{ label: "dependency" }, { label: "breaker", html: true }, { label: "in use", num: true }, { label: "queued", num: true }, { label: "calls", num: true }, { label: "retries", num: true }, { label: "refusals", num: true }, { label: "relayed", num: true }, { label: "failures", num: true }],
    // A service of a release before "calls" was reported has none to show.
    s.dependencies.map((d) => [d.name, breakerBadge(d.breaker), d.inUse, d.queued, d.calls ?? "–", d.retries, d.refusals, d.relayed, d.failures]),
    "",
  );
  const outbox = s.outbox ? "<h3>outbox</h3>" + table(
    [{ label: "relay" }, { label: "backlog", num: true }, { label: "oldest ms", num: true }, { label: "published", num: true }],
    [["outbox → NATS", s.outbox.backlog, s.outbox.oldestAgeMs, s.outbox.published]],
    "",
  ) : "";
  const consumers = s.consumers.length === 0 ? "" : "<h3>consumers</h3>" + table(
    [{ label: "consumer" }, { label: "lag", num: true }, { label: "unacked", num: true }, { label: "redeliv.", num: true }, { label: "applied", num: true }, { label: "ignored", num: true }, { label: "DLQ", num: true }, { label: "deferred", num: true }],
    s.consumers.map((c) => [c.durable, c.pending ?? "–", c.ackPending ?? "–", c.redelivered ?? "–", c.applied, c.ignored, c.deadLetters, c.deferred ?? "–"]),
    "",
  );
  return '<section class="' + cardClass(p) + '" data-process="' + esc(p.name) + '" data-healthy="' + p.healthy + '">' + title + meta + "<h3>requests (" + esc(windowSpan(s.windowSeconds)) + ")</h3>" + routes + deps + outbox + consumers + "</section>";
}

// Unreachable processes are down; a reachable one that is not healthy says why (its failing checks, its gRPC health, a
// breaker not closed): not serving, or, still serving (NATS cut off, a dependency's breaker open), degraded.
function headline(processes) {
  const sick = processes.filter((p) => !p.healthy);
  if (sick.length === 0) return "all " + processes.length + " processes healthy";
  const down = sick.filter((p) => !p.status).map((p) => p.name);
  const why = (p) => p.name + " (" + p.problems.join(", ") + ")";
  const notServing = sick.filter((p) => p.status && !isDegraded(p)).map(why);
  const degraded = sick.filter(isDegraded).map(why);
  return [down.length > 0 ? "down: " + down.join(", ") : "", notServing.length > 0 ? "not serving: " + notServing.join(", ") : "", degraded.length > 0 ? "degraded: " + degraded.join(", ") : ""]
    .filter((part) => part !== "")
    .join(" · ");
}

async function refresh() {
  const overall = document.getElementById("overall");
  const updated = document.getElementById("updated");
  try {
    const response = await fetch("/status.json", { cache: "no-store" });
    const report = await response.json();
    document.getElementById("processes").innerHTML = report.processes.map(card).join("");
    overall.className = "badge " + (report.processes.every((p) => p.healthy) ? "ok" : report.processes.every((p) => p.healthy || isDegraded(p)) ? "warn" : "bad");
    overall.textContent = headline(report.processes);
    updated.textContent = "updated " + new Date(report.time).toLocaleTimeString() + " · refreshes every 2 s";
  } catch (error) {
    overall.className = "badge bad";
    overall.textContent = "gateway unreachable";
    updated.textContent = String(error);
  }
}
refresh();
setInterval(refresh, 2000);
</script>
</body>
</html>
`;
