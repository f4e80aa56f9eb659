#!/usr/bin/env bash
# Every test: install, build once, start the services tests need (MariaDB on loopback, on a port
# chosen at run time), run all ctest tiers from that one build, stop the services.
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)
bash scripts/setup.sh

work=$(mktemp -d /tmp/boing-test.XXXXXX)
cleanup() {
  tests/support/mariadb.sh stop "$work/mariadb" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
eval "$(tests/support/mariadb.sh start "$work/mariadb")"
# The kernel tier (ctest -L bpf) needs bpffs and tracefs; a fresh machine may have neither.
mountpoint -q /sys/fs/bpf || mount -t bpf bpf /sys/fs/bpf
mountpoint -q /sys/kernel/tracing || mount -t tracefs tracefs /sys/kernel/tracing

status=0
(cd build && ctest --output-on-failure -j2 --timeout 900) || status=$?

# Sanitizer tier: parsers and the network under ASan + UBSan (unit tests, separate build dir).
if [ "${BOING_SKIP_ASAN:-0}" != 1 ]; then
  BUILD_DIR=build-asan CMAKE_ARGS="-DBOING_SANITIZE=ON" \
    NINJA_TARGETS="common_unit_test crypto_test base_test http_test store_test api_unit_test agent_http_test agent_uplink_test detect_unit_test detect_quality_test" \
    bash scripts/setup.sh >/dev/null
  (cd build-asan && ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
    ctest --output-on-failure -j2 -L unit --timeout 900) || status=$?
fi
# Fuzz tier: build every libFuzzer target (clang, ASan + UBSan) and replay its seed corpus once.
if [ "${BOING_SKIP_FUZZ:-0}" != 1 ]; then
  bash scripts/fuzz.sh --replay || status=$?
fi
echo "test.sh: finished in $(( $(date +%s) - start ))s with status $status"
exit $status
