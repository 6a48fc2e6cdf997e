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

STRICT=0
POSITIONAL=()
while (($#)); do
  case "$1" in
    --strict) STRICT=1 ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    -*) echo "security_bench.sh: unknown option $1" >&2; exit 1 ;;
    *) POSITIONAL+=("$1") ;;
  esac
  shift
done
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
MERIDIAN_BIN=$(realpath "${POSITIONAL[0]:-$ROOT/build/default/meridian}")
HTTP_LOAD_BIN=$(realpath "${POSITIONAL[1]:-$ROOT/build/default/bench/http_load}")
DURATION_S=${DURATION_S:-3}
WARMUP_S=${WARMUP_S:-1}
CLIENTS=${CLIENTS:-32}
KEYS=${KEYS:-10000}
VALUE_BYTES=${VALUE_BYTES:-200}
ROUNDS=${ROUNDS:-2}
READY_TIMEOUT_S=${READY_TIMEOUT_S:-30}
KEEP_TMP=${KEEP_TMP:-0}

die() { echo "security_bench.sh: $*" >&2; exit 1; }
log() { echo "[$(date +%H:%M:%S)] $*" >&2; }
[[ -x $MERIDIAN_BIN ]] || die "no meridian binary at $MERIDIAN_BIN"
[[ -x $HTTP_LOAD_BIN ]] || die "no http_load at $HTTP_LOAD_BIN (build target http_load)"
for tool in curl python3 timeout; do command -v "$tool" >/dev/null || die "$tool not found"; done

TMP=$(mktemp -d "${BENCH_TMPDIR:-${TMPDIR:-/tmp}}/meridian-security.XXXXXX")
NODE_PID=""
# shellcheck disable=SC2317  # run from the EXIT trap and between runs
stop_node() {
  local i
  [[ -n $NODE_PID ]] || return 0
  kill -TERM "$NODE_PID" 2>/dev/null || true
  for ((i = 0; i < 100; i++)); do
    kill -0 "$NODE_PID" 2>/dev/null || break
    sleep 0.1
  done
  kill -KILL "$NODE_PID" 2>/dev/null || true
  wait "$NODE_PID" 2>/dev/null || true
  NODE_PID=""
}
# shellcheck disable=SC2317
cleanup() {
  local rc=$?
  stop_node
  if [[ $KEEP_TMP == 1 ]]; then log "kept $TMP"; else rm -rf "$TMP"; fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

read -r HTTP_PORT REPL_PORT < <(python3 -c '
import socket
socks = [socket.socket() for _ in range(2)]
for s in socks: s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in socks))')

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
  local mode=$1 dir=$TMP/node-$1 scheme=http curl_args=() code deadline
  rm -rf "$dir"
  mkdir -p "$dir"
  {
    printf '[node]\nregion = "us"\ndata_dir = "%s/data"\n\n' "$dir"
    printf '[[regions]]\nname = "us"\nid = 1\nhttp = "127.0.0.1:%s"\nreplication = "127.0.0.1:%s"\n' \
      "$HTTP_PORT" "$REPL_PORT"
    if [[ $mode == on || $mode == tls ]]; then
      printf '\n[tls]\ncert_file = "%s/ca/us.pem"\nkey_file = "%s/ca/us-key.pem"\nca_file = "%s/ca/ca.pem"\n' \
        "$TMP" "$TMP" "$TMP"
    fi
    if [[ $mode == on || $mode == token ]]; then
      printf '\n[auth]\njwt_secret_file = "%s/jwt.key"\n' "$TMP"
    fi
  } >"$dir/node.toml"
  if [[ $mode == on || $mode == tls ]]; then
    scheme=https
    curl_args=(--cacert "$TMP/ca/ca.pem")
  fi
  (cd "$dir" && exec "$MERIDIAN_BIN" start --bootstrap --config "$dir/node.toml") >"$dir/node.log" 2>&1 &
  NODE_PID=$!
  deadline=$((SECONDS + READY_TIMEOUT_S))
  while :; do
    code=$(curl -s "${curl_args[@]}" -o /dev/null -w '%{http_code}' --max-time 1 \
      "$scheme://127.0.0.1:$HTTP_PORT/readyz" || true)
    [[ $code == 200 ]] && break
    kill -0 "$NODE_PID" 2>/dev/null || { tail -20 "$dir/node.log" >&2; die "meridian ($mode) exited"; }
    ((SECONDS < deadline)) || { tail -20 "$dir/node.log" >&2; die "meridian ($mode) not ready"; }
    sleep 0.2
  done
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
    stop_node
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
