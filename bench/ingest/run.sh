#!/usr/bin/env bash
# Ingest benchmark, in one run on this machine:
#   1. nginx answering a fixed 204 (the baseline), same requests as 2;
#   2. boing-server single-event ingest (POST /api/ingest), SQLite;
#   3. batch ingest (POST /api/ingest/batch, BATCH_SIZE events per JSON array), SQLite;
#   4. the same batch ingest on MariaDB (a throwaway server from tests/support/mariadb.sh);
#   5. RSS of boing-server sampled every second during a longer batch load (SQLite).
# The program under test runs on core 0 (taskset -c 0), wrk on core 1; MariaDB unpinned (or on the
# cores in BENCH_MARIADB_CPUS). Loopback only; every wrk run is bounded by -d. Prints a table at
# the end.
#
#   bash bench/ingest/run.sh                              # ~13 min (10-minute soak)
#   BENCH_SOAK_SECONDS=60 bash bench/ingest/run.sh        # ~3 min
#
# Environment: BENCH_SECONDS (20, per measured run), BENCH_SOAK_SECONDS (600),
# BENCH_CONNECTIONS (64, single-event runs), BENCH_BATCH_CONNECTIONS (8, batch runs),
# BATCH_SIZE (1000), BENCH_MARIADB_CPUS (empty = unpinned; e.g. 1), BENCH_SKIP_MARIADB (unset),
# BENCH_PRIO (empty: normal scheduling; "nice": nice -n -19; "rr": chrt -r 10, real-time
# round-robin — for a shared machine, so other users' processes do not take the pinned cores; the
# kernel's RT throttling still leaves them 5% of each core),
# BOING_SERVER_BIN (build/server/api/boing-server), BENCH_OUT (file that keeps the report,
# default /tmp/boing-bench-report.txt), BENCH_KEEP (keep the work directory).
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
PY=/usr/bin/python3
DUR=${BENCH_SECONDS:-20}
SOAK=${BENCH_SOAK_SECONDS:-600}
CONNS=${BENCH_CONNECTIONS:-64}
BCONNS=${BENCH_BATCH_CONNECTIONS:-8}
BATCH_SIZE=${BATCH_SIZE:-1000}
MARIADB_CPUS=${BENCH_MARIADB_CPUS:-}
PRIO_MODE=${BENCH_PRIO:-}
BIN=${BOING_SERVER_BIN:-$ROOT/build/server/api/boing-server}
OUT=${BENCH_OUT:-/tmp/boing-bench-report.txt}
SERVER_CPU=0
LOAD_CPU=1
# Prefix for every benchmarked program (BENCH_PRIO), then taskset.
PRIO=()
case $PRIO_MODE in
  "") ;;
  nice) PRIO=(nice -n -19) ;;
  rr) PRIO=(chrt -r 10) ;;
  *) echo "BENCH_PRIO must be empty, nice or rr" >&2; exit 2 ;;
esac
export BATCH_SIZE

# The SQLite runs must not pick up a database from the caller's environment.
unset DB_HOST DB_PORT DB_USER DB_PASSWORD DB_NAME SQLITE_PATH LISTEN DATA_DIR THREADS

log() { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() {
  log "error: $*"
  exit 1
}

# --- Tools ---------------------------------------------------------------------------------
need_pkgs=()
command -v wrk >/dev/null 2>&1 || need_pkgs+=(wrk)
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || need_pkgs+=(nginx-light)
command -v taskset >/dev/null 2>&1 || need_pkgs+=(util-linux)
if [ -z "${BENCH_SKIP_MARIADB:-}" ]; then
  command -v mariadbd >/dev/null 2>&1 || [ -x /usr/sbin/mariadbd ] || need_pkgs+=(mariadb-server)
  command -v mariadb >/dev/null 2>&1 || need_pkgs+=(mariadb-client)
fi
if [ ${#need_pkgs[@]} -gt 0 ]; then
  log "installing ${need_pkgs[*]} (Debian packages)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -qq "${need_pkgs[@]}" >/dev/null ||
    { apt-get update -qq && apt-get install -y -qq "${need_pkgs[@]}" >/dev/null; } ||
    die "could not install ${need_pkgs[*]}"
fi
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
[ "$(nproc)" -ge 2 ] || die "needs at least 2 cores (server on core $SERVER_CPU, wrk on core $LOAD_CPU)"

if [ ! -x "$BIN" ]; then
  BIN=$ROOT/build-bench/server/api/boing-server
  if [ ! -x "$BIN" ]; then
    log "no boing-server build found; building $BIN (RelWithDebInfo)"
    cmake -S "$ROOT" -B "$ROOT/build-bench" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
    ninja -C "$ROOT/build-bench" -j1 boing-server >/dev/null
  fi
fi

# --- Process bookkeeping -------------------------------------------------------------------
WORK=$(mktemp -d "${TMPDIR:-/tmp}/boing-bench.XXXXXX")
RESULTS=$WORK/results.env
: >"$RESULTS"
PIDS=()
MARIA_DIR=
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  local p
  for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for _ in $(seq 1 100); do
    local alive=0
    for p in "${PIDS[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
    [ $alive -eq 0 ] && break
    sleep 0.2
  done
  for p in "${PIDS[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
  if [ -n "$MARIA_DIR" ]; then "$ROOT/tests/support/mariadb.sh" stop "$MARIA_DIR" >/dev/null 2>&1 || true; fi
  if [ -n "${BENCH_KEEP:-}" ]; then log "work directory kept: $WORK"; else rm -rf "$WORK"; fi
  exit $rc
}
trap cleanup EXIT
trap 'log interrupted; exit 130' INT
trap 'log terminated; exit 143' TERM

forget_pid() {
  local p keep=()
  for p in "${PIDS[@]}"; do [ "$p" = "$1" ] || keep+=("$p"); done
  PIDS=("${keep[@]}")
}

# Wait for a background process, so that Ctrl-C reaches the trap at once.
wait_pid() {
  local rc=0
  wait "$1" || rc=$?
  forget_pid "$1"
  return $rc
}

free_port() { $PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
put() { echo "$1=$2" >>"$RESULTS"; }
get() { sed -n "s/^$1=//p" "$RESULTS" | tail -1; }

COMMANDS=()

# run_wrk NAME CONNS SECONDS LUA URL: wrk on the load core; its parsed figures go to RESULTS as
# NAME_<key>.
run_wrk() {
  local name=$1 conns=$2 secs=$3 lua=$4 url=$5
  local cmd=("${PRIO[@]}" taskset -c "$LOAD_CPU" wrk -t1 -c"$conns" -d"${secs}s" --timeout 10s --latency -s "$lua" "$url")
  COMMANDS+=("$name: ${cmd[*]}")
  log "$name: ${cmd[*]}"
  $PY "$HERE/bench.py" cpu-snap "$TARGET_PID" "$WORK/$name.cpu0"
  [ -n "${DB_PID:-}" ] && $PY "$HERE/bench.py" cpu-snap "$DB_PID" "$WORK/$name.db0"
  "${cmd[@]}" >"$WORK/$name.wrk" 2>&1 &
  local w=$!
  PIDS+=("$w")
  WRK_PID=$w
  if [ "${6:-}" = "background" ]; then return 0; fi
  wait_pid "$w" || die "wrk failed: $(cat "$WORK/$name.wrk")"
  collect_wrk "$name"
}

# collect_wrk NAME: wrk figures, and the CPU the process under test (TARGET_PID) used meanwhile,
# per thread, and how busy core 0 was with other programs.
collect_wrk() {
  $PY "$HERE/bench.py" cpu-snap "$TARGET_PID" "$WORK/$1.cpu1"
  $PY "$HERE/bench.py" cpu-diff "$WORK/$1.cpu0" "$WORK/$1.cpu1" | sed "s/^/$1_/" >>"$RESULTS"
  if [ -n "${DB_PID:-}" ]; then
    $PY "$HERE/bench.py" cpu-snap "$DB_PID" "$WORK/$1.db1"
    $PY "$HERE/bench.py" cpu-diff "$WORK/$1.db0" "$WORK/$1.db1" | grep -E '^(proc_cpu_pct|runq_wait_pct|threads)=' | sed "s/^/$1_db_/" >>"$RESULTS"
  fi
  $PY "$HERE/bench.py" wrk "$WORK/$1.wrk" | sed "s/^/$1_/" >>"$RESULTS"
}

# start_boing NAME [ENV=VALUE...]: a fresh data dir, server on the server core with one I/O thread;
# sets BOING_PID, BOING_PORT and exports BOING_API_KEY.
start_boing() {
  local name=$1
  shift
  local dir=$WORK/$name
  mkdir -p "$dir"
  local cmd=("$BIN" --listen 127.0.0.1:0 --data-dir "$dir" --threads 1)
  local envs="$* "
  [ -n "${BOING_TEST_MYSQL_PASSWORD:-}" ] &&
    envs=${envs//DB_PASSWORD=$BOING_TEST_MYSQL_PASSWORD/DB_PASSWORD=<from mariadb.sh>}
  COMMANDS+=("$name server: ${envs# }${PRIO[*]}${PRIO:+ }taskset -c $SERVER_CPU ${cmd[*]}")
  env "$@" ADMIN_USERNAME=bench ADMIN_PASSWORD=bench-password-1 \
    "${PRIO[@]}" taskset -c "$SERVER_CPU" "${cmd[@]}" >"$dir/server.log" 2>&1 &
  BOING_PID=$!
  TARGET_PID=$BOING_PID
  PIDS+=("$BOING_PID")
  BOING_PORT=
  for _ in $(seq 1 300); do
    BOING_PORT=$(grep '"msg":"listening"' "$dir/server.log" 2>/dev/null | grep -o '"port":[0-9]*' | head -1 | cut -d: -f2 || true)
    [ -n "$BOING_PORT" ] && break
    kill -0 "$BOING_PID" 2>/dev/null || break
    sleep 0.1
  done
  [ -n "$BOING_PORT" ] || die "boing-server did not start: $(tail -5 "$dir/server.log")"
  BOING_API_KEY=$($PY "$HERE/bench.py" apikey "$BOING_PORT" bench bench-password-1) ||
    die "could not create the bench API"
  export BOING_API_KEY
}

# stop_boing: SIGTERM (graceful drain), SIGKILL after 30 s.
stop_boing() {
  kill -TERM "$BOING_PID" 2>/dev/null || true
  for _ in $(seq 1 300); do
    kill -0 "$BOING_PID" 2>/dev/null || break
    sleep 0.1
  done
  kill -KILL "$BOING_PID" 2>/dev/null || true
  wait_pid "$BOING_PID" || true
}

# check_stored NAME STORED EXPECTED_AT_LEAST
check_stored() {
  put "$1_stored" "$2"
  if [ "$2" -ge "$3" ]; then put "$1_stored_ok" yes; else put "$1_stored_ok" "NO"; fi
}

date_utc=$(date -u +%Y-%m-%dT%H:%M:%SZ)
cpu_model=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')
# A private copy: the build may be replaced while the benchmark runs; every run uses one binary.
cp "$BIN" "$WORK/boing-server"
BIN_INFO="$BIN ($(date -u -r "$BIN" +%Y-%m-%dT%H:%M:%SZ), $(grep -m1 '^CMAKE_BUILD_TYPE' "$(dirname "$BIN")/../../CMakeCache.txt" 2>/dev/null | cut -d= -f2 || echo '?'))"
BIN=$WORK/boing-server
log "work directory $WORK; server binary $BIN_INFO"
{
  echo "date: $date_utc"
  echo "machine: $(nproc) cores, $cpu_model, kernel $(uname -r), $(awk '/MemTotal/ {printf "%.1f GiB RAM", $2/1048576}' /proc/meminfo)"
  echo "server: $BIN_INFO"
  echo "commit: $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)$(git -C "$ROOT" diff --quiet HEAD -- server common 2>/dev/null || echo ' (server/common have uncommitted changes)')"
  echo "tools: $(wrk -v 2>&1 | head -1 | awk '{print $1, $2}'), $("$NGINX" -v 2>&1 | sed 's/.*: //'), $( (command -v mariadbd >/dev/null && mariadbd --version) 2>/dev/null | awk '{print $2, $3}' || echo 'mariadb ?')"
  echo "settings: BENCH_SECONDS=$DUR BENCH_SOAK_SECONDS=$SOAK BENCH_CONNECTIONS=$CONNS BENCH_BATCH_CONNECTIONS=$BCONNS BATCH_SIZE=$BATCH_SIZE BENCH_MARIADB_CPUS=${MARIADB_CPUS:-unpinned} BENCH_PRIO=${PRIO_MODE:-normal}"
} >"$WORK/header.txt"
cat "$WORK/header.txt" >&2
put batch_size "$BATCH_SIZE"

# --- 1. nginx baseline -----------------------------------------------------------------------
NPORT=$(free_port)
mkdir -p "$WORK/nginx"
sed -e "s|@DIR@|$WORK/nginx|g" -e "s|@PORT@|$NPORT|g" "$HERE/nginx.conf.in" >"$WORK/nginx/nginx.conf"
COMMANDS+=("nginx: ${PRIO[*]}${PRIO:+ }taskset -c $SERVER_CPU $NGINX -p $WORK/nginx -e $WORK/nginx/error.log -c $WORK/nginx/nginx.conf (config: bench/ingest/nginx.conf.in)")
"${PRIO[@]}" taskset -c "$SERVER_CPU" "$NGINX" -p "$WORK/nginx" -e "$WORK/nginx/error.log" -c "$WORK/nginx/nginx.conf" \
  >"$WORK/nginx/out.log" 2>&1 &
NGINX_PID=$!
TARGET_PID=$NGINX_PID
PIDS+=("$NGINX_PID")
for _ in $(seq 1 100); do
  (exec 3<>"/dev/tcp/127.0.0.1/$NPORT") 2>/dev/null && break
  kill -0 "$NGINX_PID" 2>/dev/null || die "nginx did not start: $(cat "$WORK/nginx/out.log" "$WORK/nginx/error.log" 2>/dev/null)"
  sleep 0.1
done
export BOING_API_KEY=bk_0123456789abcdef0123456789abcdef  # same length as a Boing ingest key
run_wrk nginx "$CONNS" "$DUR" "$HERE/single.lua" "http://127.0.0.1:$NPORT/api/ingest"
kill -TERM "$NGINX_PID" 2>/dev/null || true
wait_pid "$NGINX_PID" || true
log "nginx: $(get nginx_ok_rps) req/s (2xx), p99 $(get nginx_p99_ms) ms"

# --- 2. Single-event ingest, SQLite ------------------------------------------------------------
start_boing single
run_wrk single "$CONNS" "$DUR" "$HERE/single.lua" "http://127.0.0.1:$BOING_PORT/api/ingest"
stop_boing
check_stored single "$($PY "$HERE/bench.py" sqlite-count "$WORK/single/boing.db")" "$(get single_ok)"
log "single: $(get single_ok_rps) req/s (2xx), p99 $(get single_p99_ms) ms, non-2xx $(get single_bad), stored $(get single_stored) of $(get single_ok) acknowledged"

eps() { $PY -c "print(round($(get "$1_ok") * $BATCH_SIZE / $(get "$1_duration_s")))"; }

# --- 3. Batch ingest, SQLite -------------------------------------------------------------------
start_boing batch
run_wrk batch "$BCONNS" "$DUR" "$HERE/batch.lua" "http://127.0.0.1:$BOING_PORT/api/ingest/batch"
stop_boing
put batch_eps "$(eps batch)"
check_stored batch "$($PY "$HERE/bench.py" sqlite-count "$WORK/batch/boing.db")" "$(get batch_accepted)"
DB_BYTES_PER_EVENT=$($PY -c "import os; n=max(1,$(get batch_stored)); print(sum(os.path.getsize(os.path.join('$WORK/batch',f)) for f in os.listdir('$WORK/batch') if f.startswith('boing.db')) // n)")
put batch_db_bytes_per_event "$DB_BYTES_PER_EVENT"
log "batch SQLite: $(get batch_eps) events/s, p99 $(get batch_p99_ms) ms, non-2xx $(get batch_bad), stored $(get batch_stored); ~$DB_BYTES_PER_EVENT bytes on disk per event"
rm -rf "$WORK/single" "$WORK/batch"

# --- 4. Batch ingest, MariaDB ------------------------------------------------------------------
if [ -n "${BENCH_SKIP_MARIADB:-}" ]; then
  put mysql_skipped "BENCH_SKIP_MARIADB set"
elif [ ! -x "$ROOT/tests/support/mariadb.sh" ] && [ ! -f "$ROOT/tests/support/mariadb.sh" ]; then
  put mysql_skipped "tests/support/mariadb.sh missing"
else
  MARIA_DIR=$WORK/mariadb
  log "starting MariaDB (tests/support/mariadb.sh start $MARIA_DIR)"
  eval "$(bash "$ROOT/tests/support/mariadb.sh" start "$MARIA_DIR")"
  if [ -n "$MARIADB_CPUS" ]; then
    # -a: every thread of mariadbd; threads it creates later inherit the mask.
    taskset -a -c -p "$MARIADB_CPUS" "$(cat "$MARIA_DIR/mariadb.pid")" >/dev/null
  fi
  DB_PID=$(cat "$MARIA_DIR/mariadb.pid")
  # Priority per thread (Linux); threads created later inherit it.
  for t in /proc/"$DB_PID"/task/*; do
    case $PRIO_MODE in
      nice) renice -n -19 -p "${t##*/}" >/dev/null ;;
      rr) chrt -r -p 10 "${t##*/}" >/dev/null ;;
    esac
  done
  COMMANDS+=("mariadb: tests/support/mariadb.sh start DIR (--innodb-buffer-pool-size=128M, innodb_flush_log_at_trx_commit default 1)${MARIADB_CPUS:+; taskset -a -c -p $MARIADB_CPUS <mariadbd pid>}${PRIO:+; ${PRIO[*]} on each mariadbd thread}")
  start_boing mysql DB_HOST="$BOING_TEST_MYSQL_HOST" DB_PORT="$BOING_TEST_MYSQL_PORT" \
    DB_USER="$BOING_TEST_MYSQL_USER" DB_PASSWORD="$BOING_TEST_MYSQL_PASSWORD" DB_NAME=boing_bench
  run_wrk mysql "$BCONNS" "$DUR" "$HERE/batch.lua" "http://127.0.0.1:$BOING_PORT/api/ingest/batch"
  stop_boing
  put mysql_eps "$(eps mysql)"
  MY_STORED=$(MYSQL_PWD="$BOING_TEST_MYSQL_PASSWORD" mariadb --no-defaults -h "$BOING_TEST_MYSQL_HOST" \
    -P "$BOING_TEST_MYSQL_PORT" -u "$BOING_TEST_MYSQL_USER" -N -B -e 'SELECT COUNT(*) FROM events' boing_bench)
  check_stored mysql "$MY_STORED" "$(get mysql_accepted)"
  log "batch MariaDB: $(get mysql_eps) events/s, p99 $(get mysql_p99_ms) ms, non-2xx $(get mysql_bad), stored $(get mysql_stored)"
  bash "$ROOT/tests/support/mariadb.sh" stop "$MARIA_DIR" >/dev/null 2>&1 || true
  rm -rf "$MARIA_DIR"
  MARIA_DIR=
  DB_PID=
fi

# --- 5. Soak: RSS under batch load, SQLite -----------------------------------------------------
put soak_seconds "$SOAK"
NEED_KB=$(( $(get batch_eps) * SOAK * DB_BYTES_PER_EVENT * 12 / 10 / 1024 ))
FREE_KB=$(df -Pk "$WORK" | awk 'NR==2 {print $4}')
if [ "$SOAK" -le 0 ]; then
  put soak_skipped "BENCH_SOAK_SECONDS=0"
elif [ "$NEED_KB" -gt $((FREE_KB * 8 / 10)) ]; then
  put soak_skipped "needs ~$((NEED_KB / 1048576)) GiB of disk, $((FREE_KB / 1048576)) GiB free"
else
  log "soak: ${SOAK}s of batch load; expect ~$((NEED_KB / 1048576)) GiB in $WORK/soak"
  start_boing soak
  # VmRSS (and RssAnon, the heap part) read with bash builtins only, so sampling adds no
  # processes next to the server. Prints "rss_kb anon_kb".
  rss_kb() {
    local k v _ rss= anon=
    while read -r k v _; do
      case $k in
        VmRSS:) rss=$v ;;
        RssAnon:) anon=$v ;;
      esac
    done <"/proc/$BOING_PID/status" 2>/dev/null
    [ -n "$rss" ] && echo "$rss ${anon:-0}"
    return 0
  }
  now() { local t=$EPOCHREALTIME; echo $(( ${t%.*} - T0 )).${t#*.}; }
  : >"$WORK/rss.txt"
  T0=${EPOCHREALTIME%.*}
  echo "0 $(rss_kb)" >>"$WORK/rss.txt"
  run_wrk soak "$BCONNS" "$SOAK" "$HERE/batch.lua" "http://127.0.0.1:$BOING_PORT/api/ingest/batch" background
  while kill -0 "$WRK_PID" 2>/dev/null; do
    sleep 1
    r=$(rss_kb)
    [ -n "$r" ] || break
    echo "$(now) $r" >>"$WORK/rss.txt"
  done
  wait_pid "$WRK_PID" || die "wrk failed: $(cat "$WORK/soak.wrk")"
  collect_wrk soak
  r=$(rss_kb)
  if [ -n "$r" ]; then
    echo "$(now) $r" >>"$WORK/rss.txt"
    put soak_alive yes
  else
    put soak_alive NO
  fi
  $PY "$HERE/bench.py" rss "$WORK/rss.txt" >>"$RESULTS"
  put soak_db_bytes "$(du -sb "$WORK/soak" | cut -f1)"
  stop_boing
  put soak_eps "$(eps soak)"
  check_stored soak "$($PY "$HERE/bench.py" sqlite-count "$WORK/soak/boing.db")" "$(get soak_accepted)"
  cp "$WORK/rss.txt" "${OUT%.txt}-rss.txt" 2>/dev/null || true
  rm -rf "$WORK/soak"
  log "soak: RSS start $(get rss_start_kb) kB, max $(get rss_max_kb) kB, end $(get rss_end_kb) kB, plateau $(get rss_plateau)"
fi

# --- Report ------------------------------------------------------------------------------------
{
  echo
  cat "$WORK/header.txt"
  echo "pinning: servers under test on core $SERVER_CPU, wrk on core $LOAD_CPU, MariaDB on ${MARIADB_CPUS:-any core (unpinned)}"
  echo
  $PY "$HERE/bench.py" report "$RESULTS"
  echo
  echo "commands:"
  for c in "${COMMANDS[@]}"; do echo "  $c"; done
  echo
  echo "raw figures:"
  sed 's/^/  /' "$RESULTS"
} | tee "$OUT"
log "report saved to $OUT"
