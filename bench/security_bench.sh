#!/usr/bin/env bash
# security_bench.sh — what TLS and bearer tokens cost a region node: durable writes and reads at
# CLIENTS keep-alive clients with [tls] and [auth] on, against the same node with them off, in one
# run on this machine. Goal: on ≥ 0.85× off, for writes and for reads (docs/security.md). [tls]
# alone and [auth] alone are measured too, to tell where the cost goes.
#
# usage: bench/security_bench.sh [--strict] [MERIDIAN_BIN [HTTP_LOAD_BIN]]
#   --strict   exit 2 when a goal is not met (default: exit 0 whenever the run completed)
# Environment knobs (defaults): DURATION_S=3 WARMUP_S=1 CLIENTS=32 KEYS=10000 VALUE_BYTES=200
#   ROUNDS=2 (off and on alternate this many times; each side's best round counts)
#   READY_TIMEOUT_S=30 BENCH_TMPDIR=${TMPDIR:-/tmp} KEEP_TMP=0
set -euo pipefail

BENCH_NAME=security_bench.sh
BENCH_TAG=security
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
bench_setup "$@"
DURATION_S=${DURATION_S:-3}
WARMUP_S=${WARMUP_S:-1}
CLIENTS=${CLIENTS:-32}
KEYS=${KEYS:-10000}
VALUE_BYTES=${VALUE_BYTES:-200}
ROUNDS=${ROUNDS:-2}

# The deployment's secrets, made with the node's own tools.
"$MERIDIAN_BIN" ca create --dir "$TMP/ca" >/dev/null || die "meridian ca create failed"
"$MERIDIAN_BIN" cert create --ca-dir "$TMP/ca" --region us --out "$TMP/ca" >/dev/null ||
  die "meridian cert create failed"
"$MERIDIAN_BIN" token --new-secret "$TMP/jwt.key" >/dev/null || die "meridian token --new-secret failed"
TOKEN=$("$MERIDIAN_BIN" token --secret-file "$TMP/jwt.key" --read "" --write "" --ttl-s 3600) ||
  die "meridian token failed"

# start_node off|tls|token|on: a fresh single-region node with neither, [tls] only, [auth] only, or
# both (the last two tell where the cost goes).
start_node() {
  local mode=$1 dir=$TMP/node-$1
  rm -rf "$dir"
  mkdir -p "$dir"
  : >"$dir/extra.toml"
  if [[ $mode == on || $mode == tls ]]; then
    printf '\n[tls]\ncert_file = "%s/ca/us.pem"\nkey_file = "%s/ca/us-key.pem"\nca_file = "%s/ca/ca.pem"\n' \
      "$TMP" "$TMP" "$TMP" >>"$dir/extra.toml"
  fi
  if [[ $mode == on || $mode == token ]]; then
    printf '\n[auth]\njwt_secret_file = "%s/jwt.key"\n' "$TMP" >>"$dir/extra.toml"
  fi
  if [[ $mode == on || $mode == tls ]]; then
    bench_start_node "$dir" https --cacert "$TMP/ca/ca.pem"
  else
    bench_start_node "$dir"
  fi
}

# load MODE put|get ROUND: one http_load run; its JSON line goes to $TMP/MODE-<op>-<round>.json
load() {
  local mode=$1 op=$2 round=$3 args=()
  if [[ $mode == on || $mode == tls ]]; then args+=(--ca-file "$TMP/ca/ca.pem"); fi
  if [[ $mode == on || $mode == token ]]; then args+=(--token "$TOKEN"); fi
  [[ $op == get ]] || args+=(--no-prepopulate)
  log "$op, security $mode, $CLIENTS clients, round $round"
  timeout 600 "$HTTP_LOAD_BIN" --target "127.0.0.1:$HTTP_PORT" \
    --mode "$op" --clients "$CLIENTS" --duration-s "$DURATION_S" --warmup-s "$WARMUP_S" \
    --keys "$KEYS" --value-bytes "$VALUE_BYTES" --cpu-pid "$NODE_PID" "${args[@]}" \
    >"$TMP/$mode-$op-$round.json" ||
    die "http_load ($op, $mode) failed"
}

for ((round = 1; round <= ROUNDS; round++)); do
  for mode in off tls token on; do
    start_node "$mode"
    load "$mode" put "$round"
    load "$mode" get "$round"
    bench_stop_node
  done
done

python3 - "$TMP" "$ROUNDS" "$STRICT" <<'PY'
import json, sys
tmp, rounds, strict = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "1"
def best(mode, op):
    runs = [json.load(open(f"{tmp}/{mode}-{op}-{r}.json")) for r in range(1, rounds + 1)]
    for run in runs:
        if run["errors"]:
            sys.exit(f"security_bench.sh: {op} with security {mode}: {run['errors']} errors")
    return max(runs, key=lambda run: run["throughput_rps"])
failed = False
print("requests/s (p99 ms) per setting; ratios against off; goal: TLS and tokens on >= 0.85x off")
print(f"{'':14}{'off':>16}{'TLS only':>16}{'tokens only':>16}{'both (on)':>16}{'on/off':>8}")
for op, name in (("put", "durable PUT"), ("get", "GET")):
    runs = {mode: best(mode, op) for mode in ("off", "tls", "token", "on")}
    base = runs["off"]["throughput_rps"]
    cells = "".join(f"{r['throughput_rps']:>9.0f} ({r['p99_ms']:>4.1f})" for r in runs.values())
    ratio = runs["on"]["throughput_rps"] / base
    met = ratio >= 0.85
    failed |= not met
    print(f"{name:14}{cells}{ratio:>8.2f}  {'met' if met else 'NOT MET'}")
    cpu = lambda r, key: r.get("cpu", {}).get(key, float("nan"))
    print(f"{'  node µs/req':14}" + "".join(f"{cpu(r, 'server_us_per_req'):>16.1f}" for r in runs.values()))
    print(f"{'  load µs/req':14}" + "".join(f"{cpu(r, 'load_us_per_req'):>16.1f}" for r in runs.values()))
sys.exit(2 if failed and strict else 0)
PY
