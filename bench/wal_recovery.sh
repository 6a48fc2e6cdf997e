#!/usr/bin/env bash
# wal_recovery.sh — how much write-ahead log a node keeps live under a steady write load, and how
# long it takes from a SIGKILL to answering /readyz again (RocksDB replays that log on start).
#
# usage: bench/wal_recovery.sh [MERIDIAN_BIN [HTTP_LOAD_BIN]]
#   MERIDIAN_BIN   default <repo>/build/default/meridian
#   HTTP_LOAD_BIN  default <repo>/build/default/bench/http_load
# Environment knobs (defaults): LOAD_S=40 CLIENTS=32 KEYS=100000 VALUE_BYTES=200
#   BENCH_TMPDIR=${TMPDIR:-/tmp}  READY_TIMEOUT_S=120
# Prints one JSON line: the load's writes/s, the live WAL files and bytes when it ends, and the
# seconds from the SIGKILL's restart to /readyz.
set -euo pipefail

case "${1:-}" in -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;; esac
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
MERIDIAN_BIN=$(realpath "${1:-$ROOT/build/default/meridian}")
HTTP_LOAD_BIN=$(realpath "${2:-$ROOT/build/default/bench/http_load}")
LOAD_S=${LOAD_S:-40}
CLIENTS=${CLIENTS:-32}
KEYS=${KEYS:-100000}
VALUE_BYTES=${VALUE_BYTES:-200}
READY_TIMEOUT_S=${READY_TIMEOUT_S:-120}

die() { echo "wal_recovery.sh: $*" >&2; exit 1; }
[[ -x $MERIDIAN_BIN ]] || die "no meridian binary at $MERIDIAN_BIN"
[[ -x $HTTP_LOAD_BIN ]] || die "no http_load binary at $HTTP_LOAD_BIN (build target http_load)"
command -v curl >/dev/null || die "curl not found"

TMP=$(mktemp -d "${BENCH_TMPDIR:-${TMPDIR:-/tmp}}/meridian-wal.XXXXXX")
NODE_PID=""
# shellcheck disable=SC2317  # runs from the EXIT trap
cleanup() {
  local rc=$?
  if [[ -n $NODE_PID ]] && kill -0 "$NODE_PID" 2>/dev/null; then
    kill -KILL "$NODE_PID" 2>/dev/null || true
    wait "$NODE_PID" 2>/dev/null || true
  fi
  rm -rf "$TMP"
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
cat >"$TMP/node.toml" <<TOML
[node]
region = "us"
data_dir = "$TMP/data"

[[regions]]
name = "us"
id = 1
http = "127.0.0.1:$HTTP_PORT"
replication = "127.0.0.1:$REPL_PORT"

[storage]
sync = true
TOML

start_node() {  # prints the seconds until /readyz answers 200
  local start deadline
  start=$(date +%s.%N)
  "$MERIDIAN_BIN" start --config "$TMP/node.toml" >>"$TMP/node.log" 2>&1 &
  NODE_PID=$!
  deadline=$((SECONDS + READY_TIMEOUT_S))
  until [[ $(curl -s -o /dev/null -w '%{http_code}' --max-time 1 "http://127.0.0.1:$HTTP_PORT/readyz" || true) == 200 ]]; do
    kill -0 "$NODE_PID" 2>/dev/null || { tail -20 "$TMP/node.log" >&2; die "meridian exited"; }
    ((SECONDS < deadline)) || die "meridian was not ready within ${READY_TIMEOUT_S} s"
    sleep 0.02
  done
  python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.2f}')" "$start" "$(date +%s.%N)"
}

start_node >/dev/null
echo "[$(date +%H:%M:%S)] writing for ${LOAD_S} s with $CLIENTS clients" >&2
rps=$("$HTTP_LOAD_BIN" --target "127.0.0.1:$HTTP_PORT" --mode put --clients "$CLIENTS" \
  --duration-s "$LOAD_S" --warmup-s 0 --keys "$KEYS" --value-bytes "$VALUE_BYTES" |
  python3 -c 'import json, sys; print(json.load(sys.stdin)["throughput_rps"])')
shopt -s nullglob
wal=("$TMP"/data/*.log)
wal_bytes=0
for file in "${wal[@]}"; do wal_bytes=$((wal_bytes + $(stat -c %s "$file"))); done
kill -KILL "$NODE_PID"
wait "$NODE_PID" 2>/dev/null || true
ready_s=$(start_node)
echo "{\"writes_per_s\":$rps,\"load_s\":$LOAD_S,\"wal_files\":${#wal[@]},\"wal_bytes\":$wal_bytes,\"sigkill_to_ready_s\":$ready_s}"
