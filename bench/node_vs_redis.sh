#!/usr/bin/env bash
# node_vs_redis.sh — durable-write and read latency/throughput of one Meridian region node next to
# redis-server (appendfsync always) on the same machine, in the same run, at 1, 8 and 32 clients:
# the node's HTTP API (http_load) against redis SET and GET, then the node's Redis port against
# redis-server with the same client (redis-benchmark SET, INCR, HSET, GET), with CPU per request
# by thread.
#
# usage: bench/node_vs_redis.sh [--redis-only] [--strict] [MERIDIAN_BIN [HTTP_LOAD_BIN]]
#   MERIDIAN_BIN   default <repo>/build/default/meridian
#   HTTP_LOAD_BIN  default <repo>/build/default/bench/http_load
#   --redis-only   measure only the redis half (no node needed)
#   --strict       exit 2 when a goal is not met (default: exit 0 whenever the run completed)
# Environment knobs (defaults): DURATION_S=3 WARMUP_S=1 KEYS=10000 VALUE_BYTES=200 CLIENTS="1 8 32"
#   LOAD_THREADS=1 (http_load event-loop threads; redis-benchmark uses one too)
#   HTTP_THREADS=   (if set, written to the node config as [http] threads = N)
#   NODE_SYNC=true  ([storage] sync of the node; false measures it without fsync, an upper bound)
#   READY_TIMEOUT_S=30  BENCH_TMPDIR=${TMPDIR:-/tmp}  KEEP_TMP=0  JSON_OUT= (copy raw results there)
# See bench/README.md for what every number means.
set -euo pipefail

REDIS_ONLY=0
STRICT=0
POSITIONAL=()
while (($#)); do
  case "$1" in
    --redis-only) REDIS_ONLY=1 ;;
    --strict) STRICT=1 ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    -*) echo "node_vs_redis.sh: unknown option $1" >&2; exit 1 ;;
    *) POSITIONAL+=("$1") ;;
  esac
  shift
done
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
MERIDIAN_BIN=${POSITIONAL[0]:-$ROOT/build/default/meridian}
HTTP_LOAD_BIN=${POSITIONAL[1]:-$ROOT/build/default/bench/http_load}

DURATION_S=${DURATION_S:-3}
WARMUP_S=${WARMUP_S:-1}
KEYS=${KEYS:-10000}
VALUE_BYTES=${VALUE_BYTES:-200}
CLIENTS=${CLIENTS:-"1 8 32"}
LOAD_THREADS=${LOAD_THREADS:-1}
HTTP_THREADS=${HTTP_THREADS:-}
export NODE_SYNC=${NODE_SYNC:-true}
READY_TIMEOUT_S=${READY_TIMEOUT_S:-30}
KEEP_TMP=${KEEP_TMP:-0}
JSON_OUT=${JSON_OUT:-}

die() { echo "node_vs_redis.sh: $*" >&2; exit 1; }
[[ $NODE_SYNC == true || $NODE_SYNC == false ]] || die "NODE_SYNC must be true or false"
log() { echo "[$(date +%H:%M:%S)] $*" >&2; }

for tool in redis-server redis-benchmark redis-cli python3 timeout; do
  command -v "$tool" >/dev/null || die "$tool not found (apt-get install redis-server redis-tools python3)"
done
if ((!REDIS_ONLY)); then
  command -v curl >/dev/null || die "curl not found"
  [[ -x $MERIDIAN_BIN ]] || die "no meridian binary at $MERIDIAN_BIN (build it, pass its path, or use --redis-only)"
  [[ -x $HTTP_LOAD_BIN ]] || die "no http_load binary at $HTTP_LOAD_BIN (build target http_load, or pass its path)"
  MERIDIAN_BIN=$(realpath "$MERIDIAN_BIN")
  HTTP_LOAD_BIN=$(realpath "$HTTP_LOAD_BIN")
fi

# --- temp dir, process bookkeeping, cleanup ------------------------------------------------------
TMP=$(mktemp -d "${BENCH_TMPDIR:-${TMPDIR:-/tmp}}/meridian-vs-redis.XXXXXX")
NODE_PID=""
REDIS_PID=""
# shellcheck disable=SC2317  # stop_pid and cleanup run from the EXIT trap
stop_pid() {  # pid name: TERM, wait up to 5 s, then KILL
  local pid=$1 name=$2 i
  [[ -n $pid ]] || return 0
  kill -0 "$pid" 2>/dev/null || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < 50; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then
    log "$name (pid $pid) ignored SIGTERM; killing"
    kill -KILL "$pid" 2>/dev/null || true
  fi
  wait "$pid" 2>/dev/null || true
}
# shellcheck disable=SC2317
cleanup() {
  local rc=$?
  stop_pid "$NODE_PID" meridian
  stop_pid "$REDIS_PID" redis-server
  if [[ $KEEP_TMP == 1 ]]; then
    log "kept $TMP"
  else
    rm -rf "$TMP"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

fstype=$(stat -f -c %T "$TMP" 2>/dev/null || echo unknown)
if [[ $fstype == tmpfs || $fstype == ramfs ]]; then
  log "WARNING: $TMP is on $fstype, where fsync costs nothing; set BENCH_TMPDIR to a directory on a real disk"
fi

# --- helper (ports, redis population, parsing, the report) ---------------------------------------
cat >"$TMP/helper.py" <<'PY'
import json, math, os, re, socket, sys

def free_ports(n):
    socks = []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
    print(" ".join(str(s.getsockname()[1]) for s in socks))
    for s in socks:
        s.close()

def redis_populate(keys, value_bytes):
    # RESP for SET key:<12 digits> <value>, the key names redis-benchmark -r uses.
    v = b"x" * value_bytes
    out = sys.stdout.buffer
    for i in range(keys):
        k = b"key:%012d" % i
        out.write(b"*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n" % (len(k), k, len(v), v))

def cpu_of_run(before, after, requests):
    b = [int(x) for x in before.split()]
    a = [int(x) for x in after.split()]
    tick_us = 1e6 / os.sysconf("SC_CLK_TCK")
    total = a[2] - b[2]
    return {"server_us_per_req": round((a[0] - b[0]) * tick_us / requests, 2),
            "machine_busy_pct": round(100.0 * (a[1] - b[1]) / total, 1) if total > 0 else 0.0}

def threads(pid):
    # {thread name: utime+stime ticks} of every thread of PID
    out = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            stat = open(f"/proc/{pid}/task/{tid}/stat").read()
        except OSError:
            continue
        name = stat[stat.index("(") + 1:stat.rindex(")")]
        f = stat[stat.rindex(")") + 2:].split()
        out[name] = out.get(name, 0) + int(f[11]) + int(f[12])
    print(json.dumps(out))

def parse_redis(path, before=None, after=None, threads_before=None, threads_after=None):
    text = open(path, errors="replace").read().replace("\r", "\n")
    res = {}
    m = re.search(r"throughput summary:\s*([\d.]+) requests per second", text)
    if m:
        res["throughput_rps"] = float(m.group(1))
    m = re.search(r"latency summary \(msec\):\s*\n\s*(.+)\n\s*(.+)\n", text)
    if m:
        names, vals = m.group(1).split(), m.group(2).split()
        for n_, v_ in zip(names, vals):
            res[n_ + "_ms"] = float(v_)
    m = re.search(r"\n\s*(\d+) requests completed in ([\d.]+) seconds", text)
    if m:
        res["requests"] = int(m.group(1))
        res["elapsed_s"] = float(m.group(2))
    # p99.9: first row of the percentile distribution at or above 99.9%
    for pm, vm in re.findall(r"\n\s*([\d.]+)% <= ([\d.]+) milliseconds", text.split("Cumulative distribution")[0]):
        if float(pm) >= 99.9:
            res["p999_ms"] = float(vm)
            break
    if "throughput_rps" not in res or "p99_ms" not in res:
        sys.exit("cannot parse redis-benchmark output in " + path)
    if "p999_ms" not in res:
        res["p999_ms"] = res.get("max_ms", float("nan"))
    res["errors"] = 0
    if before and after and res.get("requests"):
        # redis-benchmark's own CPU is not measured; the machine's busy share covers it.
        res["cpu"] = cpu_of_run(before, after, res["requests"])
        if threads_before and threads_after:
            tb, ta = json.load(open(threads_before)), json.load(open(threads_after))
            tick_us = 1e6 / os.sysconf("SC_CLK_TCK")
            res["cpu"]["server_threads_us_per_req"] = {
                n: round((ta[n] - tb.get(n, 0)) * tick_us / res["requests"], 2) for n in ta}
    print(json.dumps(res))

def parse_csv_rps(path):
    for line in open(path):
        f = [x.strip('"') for x in line.strip().split('","')]
        if len(f) > 1 and f[0] != "test":
            print(f[1])
            return
    sys.exit("cannot parse redis-benchmark csv in " + path)

def report(results_path, value_bytes, keys, redis_only, strict):
    rows = {}
    for line in open(results_path):
        r = json.loads(line)
        rows[(r["system"], r["op"], int(r["clients"]))] = r
    levels = sorted({k[2] for k in rows})

    def f(x, w=7, d=3):
        return f"{x:{w}.{d}f}" if isinstance(x, (int, float)) and not math.isnan(x) else " " * (w - 1) + "-"

    def frps(x):
        return f"{x:8.0f}" if isinstance(x, (int, float)) else "       -"

    def ratio(a, b):
        return a / b if isinstance(a, (int, float)) and isinstance(b, (int, float)) and b > 0 else None

    print()
    for op, mop, rop, title in (
        ("write", "put", "set", "Durable writes: meridian PUT /v1/docs/{key} ([storage] sync = " + os.environ.get("NODE_SYNC", "true") + ")  vs  redis SET (appendfsync always)"),
        ("read", "get", "get", "Reads: meridian GET /v1/docs/{key}  vs  redis GET"),
    ):
        print(title)
        print(f"value ~{value_bytes} B, {keys} keys, latencies in ms, closed loop (each client waits for its answer)")
        print(" clients |  meridian p50     p99   p99.9      rps  errs |  redis p50     p99   p99.9      rps |  rps m/r  p99 m/r")
        print("---------+----------------------------------------------+------------------------------------+------------------")
        for c in levels:
            m = rows.get(("meridian", mop, c), {})
            r = rows.get(("redis", rop, c), {})
            tr = ratio(m.get("throughput_rps"), r.get("throughput_rps"))
            lr = ratio(m.get("p99_ms"), r.get("p99_ms"))
            errs = f"{m['errors']:5d}" if "errors" in m else "    -"
            print(f" {c:7d} |    {f(m.get('p50_ms'))} {f(m.get('p99_ms'))} {f(m.get('p999_ms'))} {frps(m.get('throughput_rps'))} {errs} |"
                  f" {f(r.get('p50_ms'))} {f(r.get('p99_ms'))} {f(r.get('p999_ms'))} {frps(r.get('throughput_rps'))} |"
                  f"  {f(tr, 6, 2) if tr is not None else '     -'}   {f(lr, 6, 2) if lr is not None else '     -'}")
        print()
        cpu_rows = [(c, rows.get(("meridian", mop, c), {}).get("cpu"), rows.get(("redis", rop, c), {}).get("cpu"))
                    for c in levels]
        if any(m or r for _, m, r in cpu_rows):
            print("CPU time per request in the measured window, in microseconds (machine: % of all cores busy)")
            for c, m, r in cpu_rows:
                line = f" {c:7d} | meridian "
                if m:
                    threads = ", ".join(f"{n} {v:.1f}" for n, v in sorted(m["server_threads_us_per_req"].items(),
                                                                       key=lambda kv: -kv[1]) if v >= 0.5)
                    line += f"{m['server_us_per_req']:.1f} ({threads}); http_load {m['load_us_per_req']:.1f}; machine {m['machine_busy_pct']:.0f}%"
                else:
                    line += "-"
                line += " | redis-server "
                line += f"{r['server_us_per_req']:.1f}; machine {r['machine_busy_pct']:.0f}%" if r else "-"
                print(line)
            print()

    resp_tests = [t for t in ("set", "incr", "hset", "get") if any(k[0] == "meridian-resp" and k[1] == t for k in rows)]
    if resp_tests:
        print("Redis protocol: redis-benchmark against meridian's Redis port ([storage] sync = "
              + os.environ.get("NODE_SYNC", "true") + ")  vs  redis-server (appendfsync always)")
        print(f"value ~{value_bytes} B, {keys} keys, latencies in ms, closed loop, the same client for both")
        print(" test  clients |  meridian p50     p99   p99.9      rps |  redis p50     p99   p99.9      rps |  rps m/r  p99 m/r")
        print("---------------+----------------------------------------+------------------------------------+------------------")
        for t in resp_tests:
            for c in levels:
                m = rows.get(("meridian-resp", t, c), {})
                r = rows.get(("redis", t, c), {})
                if not m and not r:
                    continue
                tr = ratio(m.get("throughput_rps"), r.get("throughput_rps"))
                lr = ratio(m.get("p99_ms"), r.get("p99_ms"))
                print(f" {t:5s} {c:7d} |    {f(m.get('p50_ms'))} {f(m.get('p99_ms'))} {f(m.get('p999_ms'))} {frps(m.get('throughput_rps'))} |"
                      f" {f(r.get('p50_ms'))} {f(r.get('p99_ms'))} {f(r.get('p999_ms'))} {frps(r.get('throughput_rps'))} |"
                      f"  {f(tr, 6, 2) if tr is not None else '     -'}   {f(lr, 6, 2) if lr is not None else '     -'}")
        print()
        print("CPU time per request in the measured window, in microseconds, by thread (machine: % of all cores busy)")
        for t in resp_tests:
            for c in levels:
                m = rows.get(("meridian-resp", t, c), {}).get("cpu")
                r = rows.get(("redis", t, c), {}).get("cpu")
                if not m:
                    continue
                threads = ", ".join(f"{n} {v:.1f}" for n, v in sorted(m.get("server_threads_us_per_req", {}).items(),
                                                                   key=lambda kv: -kv[1]) if v >= 0.5)
                line = f" {t:5s} {c:7d} | meridian {m['server_us_per_req']:.1f} ({threads}); machine {m['machine_busy_pct']:.0f}%"
                line += f" | redis-server {r['server_us_per_req']:.1f}; machine {r['machine_busy_pct']:.0f}%" if r else ""
                print(line)
        print()

    print("Goals")
    failed = False
    def verdict(ok):
        return "n/a (not measured)" if ok is None else ("MET" if ok else "NOT MET")
    m32w = rows.get(("meridian", "put", 32))
    m32r = rows.get(("meridian", "get", 32))
    g1 = None if m32w is None else (m32w["p99_ms"] <= 1.0 and m32w["errors"] == 0)
    g2 = None if m32r is None else (m32r["p99_ms"] <= 0.5 and m32r["errors"] == 0)
    print(f"  durable write p99 <= 1 ms at 32 clients:   {verdict(g1)}"
          + (f"  (p99 {m32w['p99_ms']:.3f} ms, {m32w['errors']} errors)" if m32w else ""))
    print(f"  read p99 <= 0.5 ms at 32 clients:          {verdict(g2)}"
          + (f"  (p99 {m32r['p99_ms']:.3f} ms, {m32r['errors']} errors)" if m32r else ""))
    per_level = []
    for c in levels:
        m = rows.get(("meridian", "put", c))
        r = rows.get(("redis", "set", c))
        if m and r:
            per_level.append((c, m["throughput_rps"] / r["throughput_rps"] if r["throughput_rps"] > 0 else float("inf"),
                              m["errors"]))
    g3 = None if not per_level else all(x >= 1.0 and e == 0 for _, x, e in per_level)
    print(f"  durable-write rps >= redis (always fsync): {verdict(g3)}"
          + ("  (meridian/redis: " + ", ".join(f"{c} clients {x:.2f}" for c, x, _ in per_level) + ")" if per_level else ""))
    top = max(levels) if levels else 0
    resp_goals = []
    for t in ("set", "incr", "hset", "get"):
        m = rows.get(("meridian-resp", t, top))
        r = rows.get(("redis", t, top))
        if m and r and r["throughput_rps"] > 0:
            resp_goals.append((t, m["throughput_rps"] / r["throughput_rps"], m["p99_ms"]))
    g4 = None if not resp_goals else all(x >= 1.0 for _, x, _ in resp_goals)
    g5 = None if not resp_goals else all(p <= 1.0 for _, _, p in resp_goals)
    print(f"  RESP rps >= redis at {top} clients:          {verdict(g4)}"
          + ("  (" + ", ".join(f"{t} {x:.2f}" for t, x, _ in resp_goals) + ")" if resp_goals else ""))
    print(f"  RESP p99 <= 1 ms at {top} clients:           {verdict(g5)}"
          + ("  (" + ", ".join(f"{t} {p:.3f}" for t, _, p in resp_goals) + ")" if resp_goals else ""))
    m_top = rows.get(("meridian", "put", top))
    if m_top and "cpu" in m_top:
        cpu = m_top["cpu"]["server_us_per_req"]
        print(f"  node CPU per durable HTTP write <= 12 us:   {verdict(cpu <= 12.0)}  ({cpu:.1f} us at {top} clients)")
    m_top = rows.get(("meridian-resp", "set", top))
    if m_top and "cpu" in m_top:
        cpu = m_top["cpu"]["server_us_per_req"]
        print(f"  node CPU per durable RESP SET <= 12 us:     {verdict(cpu <= 12.0)}  ({cpu:.1f} us at {top} clients)")
    for g in (g1, g2, g3, g4, g5):
        if g is False:
            failed = True
    if redis_only:
        print("  (--redis-only: meridian not measured)")
    sys.exit(2 if (failed and strict) else 0)

cmd = sys.argv[1]
if cmd == "free-ports":
    free_ports(int(sys.argv[2]))
elif cmd == "redis-populate":
    redis_populate(int(sys.argv[2]), int(sys.argv[3]))
elif cmd == "parse-redis":
    parse_redis(*sys.argv[2:7])
elif cmd == "threads":
    threads(int(sys.argv[2]))
elif cmd == "csv-rps":
    parse_csv_rps(sys.argv[2])
elif cmd == "report":
    report(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5] == "1", sys.argv[6] == "1")
else:
    sys.exit("unknown helper command " + cmd)
PY
helper() { python3 "$TMP/helper.py" "$@"; }
RESULTS=$TMP/results.jsonl
: >"$RESULTS"

# tag_json SYSTEM OP CLIENTS < json  — adds the labels the report needs and appends to RESULTS
tag_json() {
  python3 -c 'import json,sys; r=json.loads(sys.stdin.read()); r.update(system=sys.argv[1], op=sys.argv[2], clients=int(sys.argv[3])); print(json.dumps(r))' \
    "$1" "$2" "$3" >>"$RESULTS"
}

read -r HTTP_PORT REPL_PORT REDIS_PORT RESP_PORT < <(helper free-ports 4)

# cpu_snapshot PID — "<utime+stime ticks of PID> <busy ticks> <total ticks of the machine>"
cpu_snapshot() {
  local stat
  stat=$(<"/proc/$1/stat")
  stat=${stat##*) }  # the fields after the name: state is the first, utime the 12th
  read -r -a f <<<"$stat"
  read -r -a m < <(head -1 /proc/stat)
  local total=0 i
  for ((i = 1; i <= 8 && i < ${#m[@]}; i++)); do total=$((total + m[i])); done
  echo "$((f[11] + f[12])) $((total - m[4] - m[5])) $total"
}

# --- redis-server ---------------------------------------------------------------------------------
mkdir -p "$TMP/redis"
log "starting redis-server on 127.0.0.1:$REDIS_PORT (appendonly yes, appendfsync always)"
redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --appendonly yes --appendfsync always \
  --dir "$TMP/redis" --save '' --daemonize no --logfile "$TMP/redis/redis.log" &
REDIS_PID=$!
for ((i = 0; ; i++)); do
  if [[ $(redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping 2>/dev/null || true) == PONG ]]; then break; fi
  kill -0 "$REDIS_PID" 2>/dev/null || { tail -20 "$TMP/redis/redis.log" >&2 || true; die "redis-server exited"; }
  ((i < 100)) || die "redis-server did not answer PING within 10 s"
  sleep 0.1
done
[[ $(redis-cli -p "$REDIS_PORT" config get appendfsync | tail -1) == always ]] || die "redis appendfsync is not 'always'"
log "populating $KEYS redis keys of $VALUE_BYTES bytes"
helper redis-populate "$KEYS" "$VALUE_BYTES" | redis-cli -h 127.0.0.1 -p "$REDIS_PORT" --pipe >"$TMP/redis/populate.log"

# --- meridian node --------------------------------------------------------------------------------
if ((!REDIS_ONLY)); then
  mkdir -p "$TMP/node"
  {
    echo '[node]'
    echo 'region = "us"'
    echo "data_dir = \"$TMP/node/data\""
    echo
    echo '[[regions]]'
    echo 'name = "us"'
    echo 'id = 1'
    echo "http = \"127.0.0.1:$HTTP_PORT\""
    echo "replication = \"127.0.0.1:$REPL_PORT\""
    echo "resp = \"127.0.0.1:$RESP_PORT\""
    echo
    echo '[storage]'
    echo "sync = $NODE_SYNC"
    if [[ -n $HTTP_THREADS ]]; then
      echo
      echo '[http]'
      echo "threads = $HTTP_THREADS"
    fi
  } >"$TMP/node/node.toml"
  log "starting meridian on 127.0.0.1:$HTTP_PORT ([storage] sync = $NODE_SYNC)"
  (cd "$TMP/node" && exec "$MERIDIAN_BIN" start --config "$TMP/node/node.toml") >"$TMP/node/node.log" 2>&1 &
  NODE_PID=$!
  deadline=$((SECONDS + READY_TIMEOUT_S))
  while :; do
    code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 1 "http://127.0.0.1:$HTTP_PORT/readyz" || true)
    [[ $code == 200 ]] && break
    if ! kill -0 "$NODE_PID" 2>/dev/null; then
      tail -30 "$TMP/node/node.log" >&2 || true
      die "meridian exited before it was ready"
    fi
    if ((SECONDS >= deadline)); then
      tail -30 "$TMP/node/node.log" >&2 || true
      die "meridian's /readyz did not answer 200 within ${READY_TIMEOUT_S} s (last: ${code:-none})"
    fi
    sleep 0.2
  done
  log "meridian is ready"
fi

# --- measurements ---------------------------------------------------------------------------------
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
LOAD_TIMEOUT=$(python3 -c "import math; print(math.ceil($DURATION_S + $WARMUP_S + 60))")

# run_http_load MODE CLIENTS [extra args...]
run_http_load() {
  local mode=$1 c=$2
  shift 2
  local out=$TMP/http_load-$mode-$c.json
  log "meridian $mode, $c clients, ${DURATION_S} s"
  if ! timeout "$LOAD_TIMEOUT" "$HTTP_LOAD_BIN" --target "127.0.0.1:$HTTP_PORT" --mode "$mode" --clients "$c" \
    --threads "$LOAD_THREADS" --duration-s "$DURATION_S" --warmup-s "$WARMUP_S" --keys "$KEYS" \
    --value-bytes "$VALUE_BYTES" --cpu-pid "$NODE_PID" "$@" >"$out" 2>"$TMP/http_load-$mode-$c.err"; then
    cat "$TMP/http_load-$mode-$c.err" >&2
    kill -0 "$NODE_PID" 2>/dev/null || { tail -30 "$TMP/node/node.log" >&2 || true; die "meridian died during the $mode run"; }
    [[ -s $out ]] || die "http_load $mode with $c clients failed"
  fi
  tag_json meridian "$mode" "$c" <"$out"
}

# run_redis TEST CLIENTS [SYSTEM PORT PID] — a short calibration run (also the warm-up) sizes -n to
# about DURATION_S. SYSTEM defaults to redis (on REDIS_PORT); meridian-resp is the node's Redis port.
run_redis() {
  local test=$1 c=$2 system=${3:-redis} port=${4:-$REDIS_PORT} pid=${5:-$REDIS_PID} cal rps n
  local base=(redis-benchmark -h 127.0.0.1 -p "$port" -c "$c" -r "$KEYS") command=()
  if [[ $test == hset ]]; then
    # One small hash per key, as a document store holds objects. redis-benchmark's own HSET test
    # puts every field into one hash ("myhash", KEYS fields): see bench/README.md.
    # (A command goes after every option.)
    command=(HSET "hash:__rand_int__" field "$(head -c "$VALUE_BYTES" /dev/zero | tr '\0' x)")
  else
    base+=(-t "$test" -d "$VALUE_BYTES")
  fi
  cal=$((1000 + 500 * c))
  timeout "$LOAD_TIMEOUT" "${base[@]}" -n "$cal" --csv "${command[@]}" >"$TMP/redis-$test-$c-cal.csv" 2>&1 ||
    die "redis-benchmark calibration ($test, $c clients) failed: $(tail -3 "$TMP/redis-$test-$c-cal.csv")"
  rps=$(helper csv-rps "$TMP/redis-$test-$c-cal.csv")
  n=$(python3 -c "print(max(1000, min(5000000, int(float('$rps') * float('$DURATION_S')))))")
  log "$system $test, $c clients, $n requests (~${DURATION_S} s at the calibrated $rps/s)"
  local before after out=$TMP/$system-$test-$c
  before=$(cpu_snapshot "$pid")
  helper threads "$pid" >"$out.threads-before"
  timeout "$LOAD_TIMEOUT" "${base[@]}" -n "$n" "${command[@]}" >"$out.out" 2>&1 ||
    die "redis-benchmark ($system $test, $c clients) failed: $(tail -3 "$out.out")"
  after=$(cpu_snapshot "$pid")
  helper threads "$pid" >"$out.threads-after"
  helper parse-redis "$out.out" "$before" "$after" "$out.threads-before" "$out.threads-after" |
    tag_json "$system" "$test" "$c"
}

first_get=1
for c in $CLIENTS; do
  if ! [[ $c =~ ^[1-9][0-9]*$ ]]; then die "bad client count '$c' in CLIENTS"; fi
  if ((!REDIS_ONLY)); then run_http_load put "$c"; fi
  run_redis set "$c"
  if ((!REDIS_ONLY)); then
    if ((first_get)); then
      run_http_load get "$c"  # prepopulates every key once
      first_get=0
    else
      run_http_load get "$c" --no-prepopulate
    fi
  fi
  run_redis get "$c"
done

# The Redis protocol: the same client (redis-benchmark) against the node's Redis port and
# redis-server, test by test.
if ((!REDIS_ONLY)); then
  log "populating $KEYS keys through meridian's Redis port"
  helper redis-populate "$KEYS" "$VALUE_BYTES" | redis-cli -h 127.0.0.1 -p "$RESP_PORT" --pipe >"$TMP/node/populate.log"
fi
for c in $CLIENTS; do
  for test in set incr hset get; do
    if ((!REDIS_ONLY)); then run_redis "$test" "$c" meridian-resp "$RESP_PORT" "$NODE_PID"; fi
    [[ $test == set || $test == get ]] || run_redis "$test" "$c"
  done
done

if ((!REDIS_ONLY)); then
  kill -0 "$NODE_PID" 2>/dev/null || die "meridian is no longer running at the end of the run"
fi
if [[ -n $JSON_OUT ]]; then
  cp "$RESULTS" "$JSON_OUT"
  log "raw results in $JSON_OUT"
fi

LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)
echo
echo "machine: $(nproc) cores; load average (1/5/15 min) before: $LOAD_BEFORE, after: $LOAD_AFTER"
if python3 -c "import sys; sys.exit(0 if float('${LOAD_BEFORE%% *}') > 0.5 else 1)"; then
  echo "note: the machine was busy before the run started; absolute figures are noisy, compare the ratios"
fi
rc=0
helper report "$RESULTS" "$VALUE_BYTES" "$KEYS" "$REDIS_ONLY" "$STRICT" || rc=$?
exit "$rc"
