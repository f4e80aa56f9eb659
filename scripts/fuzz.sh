#!/usr/bin/env bash
# Builds the libFuzzer targets (fuzz/, clang, ASan + UBSan) into build-fuzz/ and fuzzes each for a
# set time, starting from its seed corpus (fuzz/corpus/<target>, never modified: new inputs go to
# build-fuzz/fuzz-run/<target>/corpus). Writes one line per target to build-fuzz/fuzz-run/summary.md:
# executions, exec/s, coverage (edges, features), corpus size and findings (crash, timeout, leak,
# oom files, kept in build-fuzz/fuzz-run/<target>/).
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET (default 600)] [TARGET...]
#   FUZZ_JOBS=2 nice -n 19 scripts/fuzz.sh    two targets at a time, on idle CPU only (shared machine)
#   FUZZ_RUN_DIR=DIR                          output directory (default build-fuzz/fuzz-run)
#   FUZZ_TIMEOUT=SECONDS                      per-input timeout (default 25; it is wall-clock time,
#                                             so raise it at nice 19 on a busy machine, where a
#                                             starved process can take longer for one input)
#   scripts/fuzz.sh --replay      build, then replay every seed corpus once (CI)
set -euo pipefail
cd "$(dirname "$0")/.."

BUILD_DIR=${BUILD_DIR:-build-fuzz}
export CCACHE_DIR=${CCACHE_DIR:-$HOME/.cache/boing-ccache}
export CCACHE_BASEDIR=$PWD CCACHE_NOHASHDIR=1
cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_C_COMPILER=clang \
  -DCMAKE_CXX_COMPILER=clang++ -DBOING_FUZZ=ON -DBOING_BUILD_TESTS=OFF >/dev/null
ninja -C "$BUILD_DIR" -j"$(nproc)" fuzzers

if [ "${1:-}" = "--replay" ]; then
  cd "$BUILD_DIR" && exec ctest --output-on-failure -j2 -L fuzz
fi

seconds=${1:-600}
shift || true
targets=("$@")
if ((${#targets[@]} == 0)); then mapfile -t targets < "$BUILD_DIR/fuzz/fuzzers.txt"; fi

out=${FUZZ_RUN_DIR:-$BUILD_DIR/fuzz-run}
jobs=${FUZZ_JOBS:-1}
timeout=${FUZZ_TIMEOUT:-25}
mkdir -p "$out"
summary="$out/summary.md"

# Fuzzes one target; writes its summary line to $out/<target>/summary-line, returns non-zero on a
# failure or finding.
fuzz_one() {
  local t=$1 dir="$out/$1" rc=0
  rm -rf "$dir/corpus"
  mkdir -p "$dir/corpus"
  rm -f "$dir"/crash-* "$dir"/timeout-* "$dir"/leak-* "$dir"/oom-* "$dir/summary-line"
  echo "fuzz.sh: $t for ${seconds}s"
  ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
    "$BUILD_DIR/fuzz/$t" -max_total_time="$seconds" -timeout="$timeout" -rss_limit_mb=2048 \
    -print_final_stats=1 -artifact_prefix="$dir/" "$dir/corpus" "fuzz/corpus/$t" \
    > "$dir/log.txt" 2>&1 || rc=$?
  local execs rate last cov ft corp findings
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$dir/log.txt")
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$dir/log.txt")
  last=$(sed -n '/^#[0-9]/p' "$dir/log.txt" | tail -1)
  cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<< "$last")
  ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<< "$last")
  corp=$(sed -n 's/.* corp: \([0-9]*\/[0-9a-zA-Z]*\).*/\1/p' <<< "$last")
  findings=$(find "$dir" -maxdepth 1 \( -name 'crash-*' -o -name 'timeout-*' -o -name 'leak-*' \
    -o -name 'oom-*' \) | wc -l)
  echo "| $t | $seconds | ${execs:-?} | ${rate:-?} | ${cov:-?} | ${ft:-?} | ${corp:-?} | $findings |" \
    > "$dir/summary-line"
  if ((rc != 0 || findings != 0)); then
    echo "fuzz.sh: $t FAILED (exit $rc, $findings findings): see $dir/log.txt"
    return 1
  fi
  echo "fuzz.sh: $t done"
}

# FUZZ_JOBS targets at a time (default 1, one after the other); one summary table in target order.
status=0
running=0
for t in "${targets[@]}"; do
  if ((running >= jobs)); then
    wait -n || status=1
    running=$((running - 1))
  fi
  fuzz_one "$t" &
  running=$((running + 1))
done
while ((running > 0)); do
  wait -n || status=1
  running=$((running - 1))
done

{
  echo "| target | seconds | executions | exec/s | edges (cov) | features (ft) | corpus | findings |"
  echo "|---|---|---|---|---|---|---|---|"
  for t in "${targets[@]}"; do cat "$out/$t/summary-line" 2>/dev/null || echo "| $t | $seconds | ? | ? | ? | ? | ? | ? |"; done
} > "$summary"
cat "$summary"
exit $status
