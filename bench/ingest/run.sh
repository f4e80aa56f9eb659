#!/usr/bin/env bash
# Ingest benchmark, one run on this machine: nginx (fixed 204) as the baseline, then boing-server
# single-event ingest and batch ingest on SQLite and MariaDB, then a soak measuring RSS.
# The program under test is pinned to core 0 (taskset -c 0), wrk to core 1. Loopback only.
#
#   bash bench/ingest/run.sh                    # durations from the environment below
#   BENCH_SECONDS=20 BENCH_SOAK_SECONDS=600 bash bench/ingest/run.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$(pwd)
SECONDS_PER_RUN=${BENCH_SECONDS:-15}
SOAK=${BENCH_SOAK_SECONDS:-60}
CONNS=${BENCH_CONNECTIONS:-64}
BIN=${BOING_SERVER_BIN:-$ROOT/build/server/api/boing-server}
PY=/usr/bin/python3

for p in wrk nginx-light; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$p" >/dev/null
done
[ -x "$BIN" ] || bash scripts/setup.sh >/dev/null

WORK=$(mktemp -d /tmp/boing-bench.XXXXXX)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  tests/support/mariadb.sh stop "$WORK/mariadb" >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

free_port() { $PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# wrk_run NAME URL LUA → prints "rps p99_ms non2xx"
wrk_run() {
  local out
  out=$(taskset -c 1 wrk -t1 -c"$CONNS" -d"${SECONDS_PER_RUN}s" --latency -s "$3" "$2")
  echo "$out" >"$WORK/$1.wrk"
  local rps p99 non2xx
  rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
  p99=$(echo "$out" | awk '$1=="99%" {print $2}')
  non2xx=$(echo "$out" | awk '/^non2xx/ {print $2}')
  echo "$rps $p99 ${non2xx:-0}"
}

# start_boing DATA_DIR [ENV...] → sets BOING_PORT, BOING_PID
start_boing() {
  local dir=$1
  shift
  mkdir -p "$dir"
  env "$@" ADMIN_USERNAME=bench ADMIN_PASSWORD=bench-password API_RATE_LIMIT_PER_MINUTE=10000000 \
    BATCH_MAX_EVENTS=20000 MAX_BODY_BYTES=67108864 \
    taskset -c 0 "$BIN" --listen 127.0.0.1:0 --data-dir "$dir" --threads 1 >"$dir/out.log" 2>&1 &
  BOING_PID=$!
  PIDS+=("$BOING_PID")
  for _ in $(seq 1 100); do
    BOING_PORT=$(grep -o '"port":[0-9]*' "$dir/out.log" 2>/dev/null | head -1 | cut -d: -f2 || true)
    [ -n "$BOING_PORT" ] && break
    sleep 0.1
  done
  [ -n "$BOING_PORT" ] || { cat "$dir/out.log"; exit 1; }
  BOING_API_KEY=$($PY - "$BOING_PORT" <<'EOF'
import json, sys, urllib.request
base = f"http://127.0.0.1:{sys.argv[1]}"
def post(path, body, token=None):
    h = {"Content-Type": "application/json"}
    if token: h["Authorization"] = "Bearer " + token
    r = urllib.request.Request(base + path, json.dumps(body).encode(), h)
    return json.load(urllib.request.urlopen(r))
tok = post("/api/login", {"username": "bench", "password": "bench-password"})["token"]
print(post("/api/apis", {"name": "bench"}, tok)["ingest_key"])
EOF
)
  export BOING_API_KEY
}

stop_boing() { kill "$BOING_PID" 2>/dev/null; wait "$BOING_PID" 2>/dev/null || true; }

count_sqlite() { sqlite3 "$1/boing.db" "SELECT COUNT(*) FROM events"; }

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), kernel $(uname -r)"
echo "wrk: -t1 -c$CONNS -d${SECONDS_PER_RUN}s pinned to core 1; servers pinned to core 0"

# 1. nginx baseline.
NPORT=$(free_port)
mkdir -p "$WORK/nginx"
sed -e "s|@DIR@|$WORK/nginx|g" -e "s|@PORT@|$NPORT|g" bench/ingest/nginx.conf.in >"$WORK/nginx/nginx.conf"
taskset -c 0 nginx -c "$WORK/nginx/nginx.conf" -p "$WORK/nginx" &
NGINX_PID=$!
PIDS+=("$NGINX_PID")
sleep 0.5
read -r N_RPS N_P99 N_BAD < <(wrk_run nginx "http://127.0.0.1:$NPORT/api/ingest" bench/ingest/single.lua)
kill "$NGINX_PID"
echo "nginx 204:            $N_RPS req/s, p99 $N_P99"

# 2. Single-event durable ingest, SQLite.
start_boing "$WORK/single"
read -r S_RPS S_P99 S_BAD < <(wrk_run single "http://127.0.0.1:$BOING_PORT/api/ingest" bench/ingest/single.lua)
stop_boing
S_STORED=$(count_sqlite "$WORK/single")
S_OK=$(awk '/requests in/ {print $1}' "$WORK/single.wrk")
echo "boing single ingest:  $S_RPS req/s, p99 $S_P99, non-2xx $S_BAD, stored $S_STORED of $S_OK sent"

# 3. Batch ingest, SQLite.
export BATCH_SIZE=${BATCH_SIZE:-1000}
start_boing "$WORK/batch"
read -r B_RPS B_P99 B_BAD < <(CONNS=8 wrk_run batch "http://127.0.0.1:$BOING_PORT/api/ingest/batch" bench/ingest/batch.lua)
stop_boing
B_EPS=$($PY -c "print(round($B_RPS * $BATCH_SIZE))")
B_STORED=$(count_sqlite "$WORK/batch")
echo "boing batch SQLite:   $B_EPS events/s ($B_RPS batches/s of $BATCH_SIZE), p99 $B_P99, failed $B_BAD, stored $B_STORED"

# 4. Batch ingest, MariaDB (server on core 0, MariaDB unpinned).
eval "$(tests/support/mariadb.sh start "$WORK/mariadb")"
start_boing "$WORK/batch-mysql" DB_HOST="$BOING_TEST_MYSQL_HOST" DB_PORT="$BOING_TEST_MYSQL_PORT" \
  DB_USER="$BOING_TEST_MYSQL_USER" DB_PASSWORD="$BOING_TEST_MYSQL_PASSWORD" DB_NAME=boing_bench
read -r M_RPS M_P99 M_BAD < <(CONNS=8 wrk_run batch-mysql "http://127.0.0.1:$BOING_PORT/api/ingest/batch" bench/ingest/batch.lua)
stop_boing
M_EPS=$($PY -c "print(round($M_RPS * $BATCH_SIZE))")
echo "boing batch MariaDB:  $M_EPS events/s ($M_RPS batches/s), p99 $M_P99, failed $M_BAD"

# 5. Soak: RSS during sustained batch ingest on SQLite.
start_boing "$WORK/soak"
rss() { awk '/VmRSS/ {print $2}' "/proc/$BOING_PID/status"; }
RSS_START=$(rss)
(SECONDS_PER_RUN=$SOAK CONNS=8 wrk_run soak "http://127.0.0.1:$BOING_PORT/api/ingest/batch" bench/ingest/batch.lua >"$WORK/soak.result") &
WRK_SOAK=$!
RSS_MAX=$RSS_START
: >"$WORK/rss.txt"
while kill -0 "$WRK_SOAK" 2>/dev/null; do
  r=$(rss)
  echo "$r" >>"$WORK/rss.txt"
  [ "$r" -gt "$RSS_MAX" ] && RSS_MAX=$r
  sleep 1
done
RSS_END=$(rss)
HALF=$(( $(wc -l <"$WORK/rss.txt") / 2 ))
RSS_MAX_FIRST=$(head -n "$HALF" "$WORK/rss.txt" | sort -n | tail -1)
RSS_MAX_SECOND=$(tail -n +"$((HALF + 1))" "$WORK/rss.txt" | sort -n | tail -1)
read -r SOAK_RPS _ SOAK_BAD <"$WORK/soak.result"
stop_boing
SOAK_STORED=$(count_sqlite "$WORK/soak")
echo "soak ${SOAK}s:            RSS start $((RSS_START / 1024)) MiB, max $((RSS_MAX / 1024)) MiB (first half $((RSS_MAX_FIRST / 1024)), second half $((RSS_MAX_SECOND / 1024))), end $((RSS_END / 1024)) MiB; $SOAK_STORED events stored"

$PY - <<EOF
n, s = float("$N_RPS"), float("$S_RPS")
b, m = float("$B_EPS"), float("$M_EPS")
print()
print("| benchmark | result | target | met |")
print("|---|---|---|---|")
print(f"| nginx fixed 204 (baseline) | {n:,.0f} req/s, p99 $N_P99 | — | — |")
print(f"| single-event durable ingest, SQLite | {s:,.0f} req/s, p99 $S_P99 ({s / n:.0%} of nginx) | ≥ 50% of nginx | {'yes' if s >= 0.5 * n else 'no'} |")
print(f"| batch ingest (1000/batch), SQLite | {b:,.0f} events/s, p99 $B_P99 | ≥ 200,000 events/s | {'yes' if b >= 200000 else 'no'} |")
print(f"| batch ingest (1000/batch), MariaDB | {m:,.0f} events/s, p99 $M_P99 | ≥ 50,000 events/s | {'yes' if m >= 50000 else 'no'} |")
print(f"| RSS under ${SOAK}s batch load | start $((RSS_START / 1024)) MiB, max $((RSS_MAX / 1024)) MiB, end $((RSS_END / 1024)) MiB | bounded | {'yes' if $RSS_MAX_SECOND <= $RSS_MAX_FIRST * 1.1 else 'no'} |")
EOF
