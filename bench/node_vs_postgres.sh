#!/usr/bin/env bash
# node_vs_postgres.sh — durable document writes of one Meridian region node (PUT /v1/docs/{key},
# [storage] sync = true) next to PostgreSQL 15 doing the same job: a JSONB upsert per request
# (INSERT ... ON CONFLICT DO UPDATE) with synchronous_commit = on, through pgbench, on the same
# machine in the same run. Goal: the node's requests per second >= 2x PostgreSQL's at 32 clients.
#
# usage: bench/node_vs_postgres.sh [--strict] [MERIDIAN_BIN [HTTP_LOAD_BIN]]
#   --strict   exit 2 when the goal is not met (default: exit 0 whenever the run completed)
# Environment knobs (defaults): DURATION_S=3 WARMUP_S=1 CLIENTS="1 32" KEYS=10000 VALUE_BYTES=200
#   PG_BIN=/usr/lib/postgresql/15/bin READY_TIMEOUT_S=30 BENCH_TMPDIR=${TMPDIR:-/tmp} KEEP_TMP=0
# PostgreSQL runs as the `postgres` user when this runs as root (it refuses to run as root).
set -euo pipefail

BENCH_NAME=node_vs_postgres.sh
BENCH_TAG=pg
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
bench_setup "$@"
DURATION_S=${DURATION_S:-3}
WARMUP_S=${WARMUP_S:-1}
CLIENTS=${CLIENTS:-"1 32"}
KEYS=${KEYS:-10000}
VALUE_BYTES=${VALUE_BYTES:-200}
PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}

for tool in initdb postgres pg_ctl; do
  [[ -x $PG_BIN/$tool ]] || die "no $PG_BIN/$tool (apt-get install postgresql-15, or set PG_BIN)"
done
command -v pgbench >/dev/null || die "pgbench not found (apt-get install postgresql-15)"
PG_RUN=()
if [[ $(id -u) == 0 ]]; then
  id postgres >/dev/null 2>&1 || die "running as root needs the postgres user to run PostgreSQL"
  PG_RUN=(runuser -u postgres --)
  chmod 755 "$TMP"
fi
PG_PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')

# --- the node -----------------------------------------------------------------------------------
mkdir -p "$TMP/node"
printf '[storage]\nsync = true\n' >"$TMP/node/extra.toml"
bench_start_node "$TMP/node"
for c in $CLIENTS; do
  log "meridian PUT, $c clients, ${DURATION_S} s"
  timeout 600 "$HTTP_LOAD_BIN" --target "127.0.0.1:$HTTP_PORT" --mode put --clients "$c" \
    --duration-s "$DURATION_S" --warmup-s "$WARMUP_S" --keys "$KEYS" --value-bytes "$VALUE_BYTES" \
    --cpu-pid "$NODE_PID" >"$TMP/meridian-$c.json" || die "http_load ($c clients) failed"
done
bench_stop_node

# --- PostgreSQL ---------------------------------------------------------------------------------
mkdir -p "$TMP/pg"
[[ ${#PG_RUN[@]} -eq 0 ]] || chown postgres "$TMP/pg"
"${PG_RUN[@]}" "$PG_BIN/initdb" -D "$TMP/pg/data" -A trust -U postgres >"$TMP/pg/initdb.log" 2>&1 ||
  { tail -20 "$TMP/pg/initdb.log" >&2; die "initdb failed"; }
"${PG_RUN[@]}" "$PG_BIN/pg_ctl" -D "$TMP/pg/data" -l "$TMP/pg/server.log" -w -t "$READY_TIMEOUT_S" \
  -o "-p $PG_PORT -k $TMP/pg -c listen_addresses=127.0.0.1 -c fsync=on -c synchronous_commit=on -c max_connections=100 -c shared_buffers=256MB" \
  start >/dev/null || { tail -20 "$TMP/pg/server.log" >&2; die "PostgreSQL did not start"; }
pg_stop() { "${PG_RUN[@]}" "$PG_BIN/pg_ctl" -D "$TMP/pg/data" -m fast stop >/dev/null 2>&1 || true; }
trap 'rc=$?; pg_stop; (exit $rc); bench_cleanup' EXIT
PSQL=(psql -h 127.0.0.1 -p "$PG_PORT" -U postgres -d postgres -v ON_ERROR_STOP=1 -q)
"${PSQL[@]}" -c "CREATE TABLE docs (key text PRIMARY KEY, doc jsonb NOT NULL)" ||
  die "cannot create the table"
"${PSQL[@]}" -c "INSERT INTO docs SELECT 'bench:' || i, jsonb_build_object('v', repeat('x', $VALUE_BYTES - 8)) FROM generate_series(0, $KEYS - 1) i" ||
  die "cannot populate the table"
# The same document http_load PUTs: {"v":"xx..."} of about VALUE_BYTES.
cat >"$TMP/pg/upsert.sql" <<SQL
\\set k random(0, $((KEYS - 1)))
INSERT INTO docs (key, doc) VALUES ('bench:' || :k, jsonb_build_object('v', repeat('x', $((VALUE_BYTES - 8)))))
  ON CONFLICT (key) DO UPDATE SET doc = EXCLUDED.doc;
SQL
chmod 644 "$TMP/pg/upsert.sql"
for c in $CLIENTS; do
  log "PostgreSQL JSONB upsert, $c clients, ${DURATION_S} s"
  pgbench -h 127.0.0.1 -p "$PG_PORT" -U postgres -n -M prepared -c "$c" -j 1 -T "$WARMUP_S" \
    -f "$TMP/pg/upsert.sql" postgres >/dev/null 2>&1 || die "pgbench warm-up failed"
  rm -f "$TMP"/pg/log.*
  (cd "$TMP/pg" && pgbench -h 127.0.0.1 -p "$PG_PORT" -U postgres -n -M prepared -c "$c" -j 1 \
    -T "$DURATION_S" -l --log-prefix="$TMP/pg/log" -f "$TMP/pg/upsert.sql" postgres) \
    >"$TMP/pg/pgbench-$c.out" 2>&1 || { tail -5 "$TMP/pg/pgbench-$c.out" >&2; die "pgbench failed"; }
  # Per-transaction latencies (µs, the third column of every log line) into percentiles.
  python3 - "$TMP/pg" "$c" <<'PY' >"$TMP/pg-$c.json"
import glob, json, re, sys
d, c = sys.argv[1], sys.argv[2]
lat = []
for path in glob.glob(d + "/log.*"):
    for line in open(path):
        f = line.split()
        if len(f) >= 3:
            lat.append(int(f[2]) / 1000.0)
lat.sort()
text = open(f"{d}/pgbench-{c}.out").read()
m = re.search(r"tps = ([\d.]+) \(without initial connection time\)", text)
pick = lambda q: lat[min(len(lat) - 1, int(q * len(lat)))] if lat else float("nan")
print(json.dumps({"throughput_rps": float(m.group(1)) if m else float("nan"),
                  "p50_ms": pick(0.50), "p99_ms": pick(0.99), "requests": len(lat)}))
PY
done
pg_stop

python3 - "$TMP" "$CLIENTS" "$STRICT" <<'PY'
import json, sys
tmp, clients, strict = sys.argv[1], sys.argv[2].split(), sys.argv[3] == "1"
print("Durable document writes: meridian PUT /v1/docs/{key} ([storage] sync = true)  vs  "
      "PostgreSQL 15 JSONB upsert (synchronous_commit = on, pgbench -M prepared)")
print(f"{'clients':>7}  {'meridian p50':>12} {'p99':>7} {'rps':>8}  {'postgres p50':>12} {'p99':>7} {'rps':>8}  {'rps m/p':>7}")
ratios = {}
for c in clients:
    m = json.load(open(f"{tmp}/meridian-{c}.json"))
    p = json.load(open(f"{tmp}/pg-{c}.json"))
    ratios[c] = m["throughput_rps"] / p["throughput_rps"] if p["throughput_rps"] > 0 else float("inf")
    print(f"{c:>7}  {m['p50_ms']:12.3f} {m['p99_ms']:7.3f} {m['throughput_rps']:8.0f}  "
          f"{p['p50_ms']:12.3f} {p['p99_ms']:7.3f} {p['throughput_rps']:8.0f}  {ratios[c]:7.2f}")
top = clients[-1]
ok = ratios[top] >= 2.0
print(f"goal: meridian >= 2x PostgreSQL at {top} clients: {'MET' if ok else 'NOT MET'} ({ratios[top]:.2f}x)")
sys.exit(2 if strict and not ok else 0)
PY
