#!/usr/bin/env bash
# AddressSanitizer + UndefinedBehaviorSanitizer under the Python integration suites: builds
# boing-server (with its payload model), boing-sim and boing-agent into build-asan/ (-DBOING_SANITIZE=ON, the same build
# dir as scripts/test.sh's unit sanitizer tier) and runs every SQLite integration module
# (tests/integration/test_<module>.py) against those binaries. Sanitizer reports go to
# build-asan/asan-reports/<module>.<pid> (ASAN_OPTIONS log_path; the harness passes the environment
# to the server). UBSan reports do not: with gcc the UBSan runtime is its own library that prints to
# stderr whatever UBSAN_OPTIONS log_path says (and its log_path is what ends up applying to ASan), so
# the harness keeps a copy of every server's stdout+stderr in build-asan/asan-reports/<module>-output/
# (BOING_IT_OUTPUT_DIR) and "runtime error:" lines are counted there. Any report (ASan,
# LeakSanitizer on a graceful exit, UBSan) fails the run, as does a failing test. Writes
# build-asan/asan-it-summary.txt.
#
#   scripts/asan-integration.sh
#   ASAN_IT_MODULES="ingest security" scripts/asan-integration.sh     # a subset
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)

MODULES=${ASAN_IT_MODULES-auth apis ingest agents queries config ops roles durability secrets detect sim security alerts llm agent_uplink}
# payload_model: the payload classifier's built-in model next to boing-server (trained by the
# ASan binary), which the server loads at start; without it payload_classifier does not run and
# test_detect's AnalyzeTest fails.
targets="boing-server payload_model"
case " $MODULES " in *" sim "*) targets+=" boing-sim" ;; esac
case " $MODULES " in *" agent_uplink "*) targets+=" boing-agent" ;; esac
BUILD_DIR=build-asan CMAKE_ARGS="-DBOING_SANITIZE=ON" NINJA_TARGETS="$targets" \
  bash scripts/setup.sh >/dev/null
echo "asan-integration.sh: build done in $(( $(date +%s) - start ))s"

bin=$PWD/build-asan
reports=$bin/asan-reports
rm -rf "$reports"
mkdir -p "$reports"
summary=$bin/asan-it-summary.txt
: > "$summary"
status=0
for m in $MODULES; do
  rc=0
  t0=$(date +%s)
  (cd tests/integration &&
    BOING_SERVER_BIN=$bin/server/api/boing-server BOING_SIM_BIN=$bin/tools/sim/boing-sim \
    BOING_AGENT_BIN=$bin/agent/boing-agent BOING_IT_BACKEND=sqlite PYTHONDONTWRITEBYTECODE=1 \
    BOING_IT_OUTPUT_DIR="$reports/$m-output" \
    ASAN_OPTIONS="detect_leaks=1:log_path=$reports/$m" \
    UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1:log_path=$reports/$m" \
    /usr/bin/python3 -W ignore::ResourceWarning -m unittest "test_$m") \
    > "$bin/asan-it-$m.log" 2>&1 || rc=$?
  n=$(cat "$reports/$m".* "$reports/$m-output"/* 2>/dev/null |
    grep -cE '^==[0-9]+==ERROR: (Address|Leak)Sanitizer|^[^ {]*:[0-9]+:[0-9]+: runtime error:' ||
    true)
  tests=$(sed -n 's/^Ran \([0-9]*\) tests\? .*/\1/p' "$bin/asan-it-$m.log" | tail -1)
  echo "integration $m: ${tests:-?} tests, exit $rc, sanitizer reports $n, $(( $(date +%s) - t0 ))s" |
    tee -a "$summary"
  if ((rc != 0 || n != 0)); then status=1; fi
done
echo "asan-integration.sh: finished in $(( $(date +%s) - start ))s with status $status" |
  tee -a "$summary"
for f in "$reports"/*; do [ -f "$f" ] && { echo "== $f"; head -60 "$f"; }; done
grep -rE -A20 '^[^ {]*:[0-9]+:[0-9]+: runtime error:' "$reports"/*-output 2>/dev/null | head -200 || true
exit $status
