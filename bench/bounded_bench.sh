#!/usr/bin/env bash
# bounded_bench.sh — what a bounded counter costs a decrement: durable decrements of a field
# declared with a lower bound (PUT /v1/docs/{key}/bounds), while the region holds the rights,
# against plain decrements of an unbounded field, on one region node in one run. Goal: p99 of
# the bounded decrement ≤ 1.2× the plain one (docs/semantics.md#bounded-counters). The two
# alternate ROUNDS times; each side's median round counts (p99 at 32 clients on a small machine
# swings by tens of percent from one round to the next), with the node's CPU per request.
#
# usage: bench/bounded_bench.sh [--strict] [MERIDIAN_BIN [HTTP_LOAD_BIN]]
#   --strict   exit 2 when the goal is not met (default: exit 0 whenever the run completed)
# Environment knobs (defaults): DURATION_S=3 WARMUP_S=1 CLIENTS="1 32" KEYS=100
#   ROUNDS=5 (plain and bounded alternate this many times; each side's median round counts)
#   READY_TIMEOUT_S=30 BENCH_TMPDIR=${TMPDIR:-/tmp} KEEP_TMP=0
set -euo pipefail

BENCH_NAME=bounded_bench.sh
BENCH_TAG=bounded
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
bench_setup "$@"
DURATION_S=${DURATION_S:-3}
WARMUP_S=${WARMUP_S:-1}
CLIENTS=${CLIENTS:-"1 32"}
KEYS=${KEYS:-100}
ROUNDS=${ROUNDS:-5}

# One single-region node (it holds every right), fsync on.
mkdir -p "$TMP/node"
bench_start_node "$TMP/node"

# KEYS documents of each kind, each with far more stock than a run sells; the bounded ones
# declared with min 0.
log "preparing $KEYS plain and $KEYS bounded counters"
BASE=http://127.0.0.1:$HTTP_PORT/v1/docs
for ((i = 0; i < KEYS; i++)); do
  for kind in plain bounded; do
    curl -sf -X PUT -H 'Content-Type: application/json' -d '{"n":1000000000000}' \
      "$BASE/$kind%3A$i" >/dev/null || die "PUT $kind:$i failed"
  done
  curl -sf -X PUT -H 'Content-Type: application/json' -d '{"n":{"min":0}}' \
    "$BASE/bounded%3A$i/bounds" >/dev/null || die "PUT bounded:$i/bounds failed"
done

# load KIND CLIENTS ROUND: one http_load run of decrements; its JSON line goes to a file.
load() {
  local kind=$1 clients=$2 round=$3
  log "$kind decrements, $clients clients, round $round"
  timeout 600 "$HTTP_LOAD_BIN" --target "127.0.0.1:$HTTP_PORT" --mode incr --incr-delta -1 \
    --key-prefix "$kind:" --keys "$KEYS" --clients "$clients" --duration-s "$DURATION_S" \
    --warmup-s "$WARMUP_S" --no-prepopulate --cpu-pid "$NODE_PID" \
    >"$TMP/$kind-$clients-$round.json" ||
    die "http_load ($kind, $clients clients) failed"
}

for ((round = 1; round <= ROUNDS; round++)); do
  for clients in $CLIENTS; do
    load plain "$clients" "$round"
    load bounded "$clients" "$round"
  done
done
# Every bounded decrement was within the region's rights: none refused.
refusals=$(curl -s "http://127.0.0.1:$HTTP_PORT/metrics" |
  awk '$1 == "meridian_escrow_refusals_total" {print $2}')

python3 - "$TMP" "$ROUNDS" "$CLIENTS" "$STRICT" "${refusals:-0}" <<'PY'
import json, sys
tmp, rounds, clients, strict, refusals = sys.argv[1], int(sys.argv[2]), sys.argv[3].split(), sys.argv[4] == "1", sys.argv[5]
ok = True
print("bounded counters: decrements of a bounded field (region holding the rights) vs a plain field")
print(f"median of {rounds} alternating rounds; latencies in ms, CPU in µs of the node per request")
print(f"{'clients':>7}  {'plain p50':>9} {'p99':>7} {'rps':>7} {'cpu':>5}  "
      f"{'bounded p50':>11} {'p99':>7} {'rps':>7} {'cpu':>5}  {'p99 ratio':>9}")
for c in clients:
    median = {}
    for kind in ("plain", "bounded"):
        runs = [json.load(open(f"{tmp}/{kind}-{c}-{r}.json")) for r in range(1, rounds + 1)]
        for run in runs:
            if run.get("errors", 0):
                print(f"{kind} at {c} clients: {run['errors']} errors", file=sys.stderr)
                ok = False
        def mid(values):
            values = sorted(values)
            return values[len(values) // 2]
        median[kind] = {
            "p50_ms": mid([r["p50_ms"] for r in runs]),
            "p99_ms": mid([r["p99_ms"] for r in runs]),
            "throughput_rps": mid([r["throughput_rps"] for r in runs]),
            "cpu": mid([r.get("cpu", {}).get("server_us_per_req", float("nan")) for r in runs]),
        }
    ratio = median["bounded"]["p99_ms"] / median["plain"]["p99_ms"]
    ok = ok and ratio <= 1.2
    p, b = median["plain"], median["bounded"]
    print(f"{c:>7}  {p['p50_ms']:9.3f} {p['p99_ms']:7.3f} {p['throughput_rps']:7.0f} {p['cpu']:5.1f}  "
          f"{b['p50_ms']:11.3f} {b['p99_ms']:7.3f} {b['throughput_rps']:7.0f} {b['cpu']:5.1f}  "
          f"{ratio:8.2f}x")
print(f"escrow refusals: {refusals} (expected 0); goal: bounded p99 <= 1.2x plain: "
      f"{'met' if ok else 'NOT met'}")
sys.exit(2 if strict and not ok else 0)
PY
