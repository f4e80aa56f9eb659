#!/usr/bin/env bash
# ThreadSanitizer run of the server's concurrent parts (build-tsan/, gcc -fsanitize=thread):
#  1. unit tests with threads: the HTTP server (I/O threads, WebSocket, graceful drain), the store
#     (concurrent writers and readers, SQLite), the detection worker, the agent spool and uplink
#     (capture thread appending while the uplink reads, syncs and acks), logging;
#  2. the TSan-built boing-server under integration suites that drive it from many connections:
#     ingest (group commit from concurrent senders, batches, WebSocket), durability (SIGTERM drain,
#     concurrent batch senders), detection (the worker fed by ingest) — on SQLite.
# The server's payload model (payload_model, trained by the TSan binary) is built next to it, as
# in a normal build. Any TSan report fails the run. Writes build-tsan/tsan-summary.txt (one line
# per test binary and module: tests, exit, reports, seconds).
#
#   scripts/tsan.sh
#   TSAN_UNIT_TESTS="http_test store_test" TSAN_IT_MODULES="" scripts/tsan.sh   # a subset
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)

UNIT_TESTS=${TSAN_UNIT_TESTS-http_test store_test api_unit_test agent_uplink_test base_test}
IT_MODULES=${TSAN_IT_MODULES-ingest durability detect}
BUILD_DIR=build-tsan CMAKE_ARGS="-DBOING_TSAN=ON" \
  NINJA_TARGETS="$UNIT_TESTS ${IT_MODULES:+boing-server payload_model}" bash scripts/setup.sh >/dev/null

reports=build-tsan/tsan-reports
rm -rf "$reports"
mkdir -p "$reports"
summary=build-tsan/tsan-summary.txt
: > "$summary"
status=0
# setarch -R: TSan of gcc 12 cannot map its shadow under high-entropy ASLR on newer kernels.
run() { setarch "$(uname -m)" -R "$@"; }

for t in $UNIT_TESTS; do
  rc=0
  t0=$(date +%s)
  TSAN_OPTIONS="halt_on_error=0 second_deadlock_stack=1 log_path=$PWD/$reports/$t" \
    run "build-tsan/$(cd build-tsan && find . -name "$t" -type f -perm -u+x | head -1)" \
    > "build-tsan/$t.log" 2>&1 || rc=$?
  n=$(cat "$reports/$t".* 2>/dev/null | grep -c '^WARNING: ThreadSanitizer' || true)
  tests=$(sed -n 's/^\[==========\] \([0-9]*\) tests\? from .* ran\..*/\1/p' "build-tsan/$t.log" | tail -1)
  echo "unit $t: ${tests:-?} tests, exit $rc, TSan reports $n, $(( $(date +%s) - t0 ))s" |
    tee -a "$summary"
  if ((rc != 0 || n != 0)); then status=1; fi
done

for m in $IT_MODULES; do
  rc=0
  t0=$(date +%s)
  (cd tests/integration &&
    BOING_SERVER_BIN=$PWD/../../build-tsan/server/api/boing-server BOING_IT_BACKEND=sqlite \
    TSAN_OPTIONS="halt_on_error=0 second_deadlock_stack=1 log_path=$PWD/../../$reports/server-$m" \
    run /usr/bin/python3 -W ignore::ResourceWarning -m unittest "test_$m") \
    > "build-tsan/it_$m.log" 2>&1 || rc=$?
  n=$(cat "$reports/server-$m".* 2>/dev/null | grep -c '^WARNING: ThreadSanitizer' || true)
  tests=$(sed -n 's/^Ran \([0-9]*\) tests\? .*/\1/p' "build-tsan/it_$m.log" | tail -1)
  echo "integration $m (TSan boing-server): ${tests:-?} tests, exit $rc, TSan reports $n," \
    "$(( $(date +%s) - t0 ))s" | tee -a "$summary"
  if ((rc != 0 || n != 0)); then status=1; fi
done
echo "tsan.sh: finished in $(( $(date +%s) - start ))s with status $status" | tee -a "$summary"
for f in "$reports"/*; do [ -e "$f" ] && { echo "== $f"; head -60 "$f"; }; done
exit $status
