# What the single-node bench scripts share (security_bench.sh, bounded_bench.sh): their options,
# messages, a temporary directory removed on exit, free ports, and one single-region node started
# and stopped. Sourced after the script sets BENCH_NAME (its file name) and BENCH_TAG (a word for
# its temporary directory); then `bench_setup "$@"`.

die() { echo "$BENCH_NAME: $*" >&2; exit 1; }
log() { echo "[$(date +%H:%M:%S)] $*" >&2; }

# bench_setup ARGS...: --strict (STRICT=1), -h/--help (the script's header comment), then
# [MERIDIAN_BIN [HTTP_LOAD_BIN]]; checks the binaries and tools, makes TMP, traps the exit,
# picks HTTP_PORT and REPL_PORT.
bench_setup() {
  STRICT=0
  local positional=()
  while (($#)); do
    case "$1" in
      --strict) STRICT=1 ;;
      -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
      -*) die "unknown option $1" ;;
      *) positional+=("$1") ;;
    esac
    shift
  done
  ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
  MERIDIAN_BIN=$(realpath "${positional[0]:-$ROOT/build/default/meridian}")
  HTTP_LOAD_BIN=$(realpath "${positional[1]:-$ROOT/build/default/bench/http_load}")
  READY_TIMEOUT_S=${READY_TIMEOUT_S:-30}
  KEEP_TMP=${KEEP_TMP:-0}
  [[ -x $MERIDIAN_BIN ]] || die "no meridian binary at $MERIDIAN_BIN"
  [[ -x $HTTP_LOAD_BIN ]] || die "no http_load at $HTTP_LOAD_BIN (build target http_load)"
  local tool
  for tool in curl python3 timeout; do command -v "$tool" >/dev/null || die "$tool not found"; done
  TMP=$(mktemp -d "${BENCH_TMPDIR:-${TMPDIR:-/tmp}}/meridian-$BENCH_TAG.XXXXXX")
  NODE_PID=""
  trap bench_cleanup EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
  read -r HTTP_PORT REPL_PORT < <(python3 -c '
import socket
socks = [socket.socket() for _ in range(2)]
for s in socks: s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in socks))')
}

# bench_stop_node: TERM, up to 10 s, then KILL.
# shellcheck disable=SC2317  # run from the EXIT trap and between runs
bench_stop_node() {
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

# shellcheck disable=SC2317  # run from the EXIT trap
bench_cleanup() {
  local rc=$?
  bench_stop_node
  if [[ $KEEP_TMP == 1 ]]; then log "kept $TMP"; else rm -rf "$TMP"; fi
  exit "$rc"
}

# bench_start_node DIR [SCHEME [CURL_ARGS...]]: a fresh single-region node "us" on HTTP_PORT and
# REPL_PORT with its data in DIR, its config DIR/node.toml plus what the caller wrote in
# DIR/extra.toml (if any), its log in DIR/node.log; waits until /readyz answers 200.
bench_start_node() {
  local dir=$1 scheme=${2:-http} code deadline
  shift $(($# < 2 ? $# : 2))
  {
    printf '[node]\nregion = "us"\ndata_dir = "%s/data"\n\n' "$dir"
    printf '[[regions]]\nname = "us"\nid = 1\nhttp = "127.0.0.1:%s"\nreplication = "127.0.0.1:%s"\n' \
      "$HTTP_PORT" "$REPL_PORT"
    [[ -f $dir/extra.toml ]] && cat "$dir/extra.toml"
  } >"$dir/node.toml"
  (cd "$dir" && exec "$MERIDIAN_BIN" start --bootstrap --config "$dir/node.toml") >"$dir/node.log" 2>&1 &
  NODE_PID=$!
  deadline=$((SECONDS + READY_TIMEOUT_S))
  while :; do
    code=$(curl -s "$@" -o /dev/null -w '%{http_code}' --max-time 1 \
      "$scheme://127.0.0.1:$HTTP_PORT/readyz" || true)
    [[ $code == 200 ]] && break
    kill -0 "$NODE_PID" 2>/dev/null || { tail -20 "$dir/node.log" >&2; die "meridian exited ($dir)"; }
    ((SECONDS < deadline)) || { tail -20 "$dir/node.log" >&2; die "meridian not ready ($dir)"; }
    sleep 0.2
  done
}
