#!/usr/bin/env bash
# redis_port_ab.sh — two builds of the node side by side on the Redis port: a fresh single-region
# node ([storage] sync = true) per run, the two binaries alternating ROUNDS times, redis-benchmark
# against each; prints requests per second and p50 per run. For A/B checks of write-path changes
# (bench/RESULTS.md names the commits compared).
#
# usage: bench/redis_port_ab.sh BIN_A BIN_B
# Environment knobs (defaults): TEST=set (a redis-benchmark -t test) CLIENTS=1 PIPELINE=1
#   REQUESTS=20000 KEYS=10000 VALUE_BYTES=200 ROUNDS=3 BENCH_TMPDIR=${TMPDIR:-/tmp}
# A build of an older commit: git worktree add /tmp/old <commit> && cmake --preset default -S
# /tmp/old && cmake --build /tmp/old/build/default --target meridian.
set -euo pipefail

[[ $# -eq 2 ]] || { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 1; }
TEST=${TEST:-set}
CLIENTS=${CLIENTS:-1}
PIPELINE=${PIPELINE:-1}
REQUESTS=${REQUESTS:-20000}
KEYS=${KEYS:-10000}
VALUE_BYTES=${VALUE_BYTES:-200}
ROUNDS=${ROUNDS:-3}
for tool in redis-benchmark redis-cli python3; do
  command -v "$tool" >/dev/null || { echo "redis_port_ab.sh: $tool not found" >&2; exit 1; }
done

# run BIN: one fresh node, one redis-benchmark run; prints "rps p50".
run() {
  local bin=$1 dir http repl resp pid
  dir=$(mktemp -d "${BENCH_TMPDIR:-${TMPDIR:-/tmp}}/meridian-ab.XXXXXX")
  read -r http repl resp < <(python3 -c '
import socket
socks = [socket.socket() for _ in range(3)]
for s in socks: s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in socks))')
  printf '[node]\nregion = "us"\ndata_dir = "%s/data"\n\n[[regions]]\nname = "us"\nid = 1\n' "$dir" >"$dir/node.toml"
  printf 'http = "127.0.0.1:%s"\nreplication = "127.0.0.1:%s"\nresp = "127.0.0.1:%s"\n\n' \
    "$http" "$repl" "$resp" >>"$dir/node.toml"
  printf '[storage]\nsync = true\n' >>"$dir/node.toml"
  "$bin" start --bootstrap --config "$dir/node.toml" >"$dir/node.log" 2>&1 &
  pid=$!
  for ((i = 0; i < 100; i++)); do
    [[ $(redis-cli -p "$resp" ping 2>/dev/null || true) == PONG ]] && break
    sleep 0.1
  done
  redis-benchmark -p "$resp" -c "$CLIENTS" -P "$PIPELINE" -n "$REQUESTS" -r "$KEYS" \
    -d "$VALUE_BYTES" -t "$TEST" 2>&1 | tr '\r' '\n' |
    awk '/throughput summary/ {rps = $3} /latency summary/ {getline; getline; p50 = $3} END {print rps, p50}'
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  rm -rf "$dir"
}

echo "redis-benchmark -t $TEST -c $CLIENTS -P $PIPELINE -n $REQUESTS; requests/s and p50 ms per run"
for ((round = 1; round <= ROUNDS; round++)); do
  echo "A $(run "$1")"
  echo "B $(run "$2")"
done
