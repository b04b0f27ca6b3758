#!/usr/bin/env bash
# Instructions per request of a server under callgrind: repeatable where time
# is not (valgrind counts instructions, whatever else the machine does).
#
#   scripts/bench/instructions.sh hello|gateway [out-dir]
#
# Starts scripts/bench/hit-server.ts under `valgrind --tool=callgrind` with
# instrumentation off, warms it up with wrk for WARM seconds (default 60; the
# program runs ~50x slower under valgrind), then counts DURATION seconds
# (default 20) of `GET /v1/orders/<one id>` from 8 connections (for the
# gateway: read-cache hits). Prints the main thread's instructions per
# request and the top functions per request, JIT-compiled JavaScript named
# through the V8 perf map (scripts/bench/callgrind-functions.ts).
#
# Totals move by several percent between runs: V8's tiering under valgrind
# (its compiler threads are slowed too) and per-second work (timers) vary.
# Per-function counts of work done for each request (hashing, parsing) repeat.
# Needs valgrind, wrk and curl (apt-get install -y valgrind wrk curl).
set -euo pipefail
cd "$(dirname "$0")/../.."
mode=${1:?usage: instructions.sh hello|gateway [out-dir]}
case "$mode" in hello | gateway) ;; *) echo "usage: instructions.sh hello|gateway [out-dir]" >&2; exit 2 ;; esac
for tool in valgrind callgrind_control callgrind_annotate wrk curl; do
  command -v "$tool" > /dev/null || { echo "$tool is missing: apt-get install -y valgrind wrk curl" >&2; exit 2; }
done
out=${2:-$(mktemp -d /tmp/orderly-instructions-XXXXXX)}
mkdir -p "$out"
MODE=$mode valgrind --tool=callgrind --smc-check=all-non-file --instr-atstart=no --separate-threads=yes \
  --callgrind-out-file="$out/callgrind.out" node --perf-basic-prof --import tsx scripts/bench/hit-server.ts > "$out/server.log" 2> "$out/valgrind.log" &
vg=$!
trap 'kill $vg 2>/dev/null || true' EXIT
for _ in $(seq 1 600); do
  grep -q '^PORT=' "$out/server.log" 2>/dev/null && break
  kill -0 $vg 2>/dev/null || break
  sleep 0.5
done
port=$(sed -n 's/^PORT=//p' "$out/server.log")
[ -n "$port" ] || { echo "the server did not start: see $out" >&2; exit 1; }
auth=$(sed -n 's/^AUTHORIZATION=//p' "$out/server.log")
headers=()
if [ -n "$auth" ]; then headers=(-H "Authorization: $auth"); fi
url=http://127.0.0.1:$port/v1/orders/0193f0a0-0000-7000-8000-000000000001
served() { curl -fsS --max-time 60 "http://127.0.0.1:$port/__served"; }
wrk -t1 -c8 -d"${WARM:-60}s" ${headers[@]+"${headers[@]}"} "$url" > "$out/warm-up.txt"
callgrind_control -i on $vg > /dev/null
callgrind_control -z $vg > /dev/null
before=$(served)
wrk -t1 -c8 -d"${DURATION:-20}s" ${headers[@]+"${headers[@]}"} "$url" > "$out/wrk.txt"
after=$(served)
callgrind_control -d $vg > /dev/null
callgrind_control -i off $vg > /dev/null
kill $vg 2>/dev/null || true
wait $vg 2>/dev/null || true
trap - EXIT
if grep -q "Non-2xx" "$out/warm-up.txt" "$out/wrk.txt"; then echo "some answers were not 2xx: the setup is wrong (see $out)" >&2; exit 1; fi
# With --separate-threads, the first dump's main thread is callgrind.out.1-01.
main="$out/callgrind.out.1-01"
mv "/tmp/perf-$vg.map" "$out/perf.map"
requests=$((after - before))
echo "$mode: $requests requests counted; callgrind files, perf map and logs in $out"
node --import tsx scripts/bench/callgrind-functions.ts "$main" "$out/perf.map" "$requests"
