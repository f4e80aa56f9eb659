#!/usr/bin/env bash
# Pipeline throughput on one core: builds detect_bench and runs it pinned to CPU ${BENCH_CPU:-1}.
# usage: bench/detect/run.sh [events]   (BUILD_DIR defaults to build)
set -euo pipefail
cd "$(dirname "$0")/../.."
BUILD_DIR=${BUILD_DIR:-build}
ninja -C "$BUILD_DIR" detect_bench >/dev/null
taskset -c "${BENCH_CPU:-1}" "$BUILD_DIR/server/detect/detect_bench" "${1:-1000000}"
