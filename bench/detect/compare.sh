#!/usr/bin/env bash
# Payload detection side by side: Boing vs ModSecurity v3 + OWASP CRS 3.3.4 (paranoia level 1) on
# the held-out (odd) rows of tests/data/http-params/payload_train.csv, the half Boing's signatures
# were not tuned on and its classifier not trained on. Each engine runs single-threaded, pinned to
# CPU ${BENCH_CPU:-1}, one after the other; each value is one parameter `q` of the same request.
# usage: bench/detect/compare.sh            (MODE=query|body, default query; BUILD_DIR=build;
#        SHOW_MISSES=N prints N missed values per class and N false positives of each engine)
set -euo pipefail
cd "$(dirname "$0")/../.."
BUILD_DIR=${BUILD_DIR:-build}
MODE=${MODE:-query}
CPU=${BENCH_CPU:-1}
CSV=tests/data/http-params/payload_train.csv
MODEL=$BUILD_DIR/server/api/payload_classifier.model
ninja -C "$BUILD_DIR" payload_compare payload_model >/dev/null
BIN=$BUILD_DIR/server/detect/payload_compare
[ -x "$BIN" ] || { echo "compare.sh: $BIN not built (libmodsecurity-dev missing?)" >&2; exit 1; }

echo "date $(date -u +%FT%TZ)  commit $(git rev-parse --short HEAD)  cpu $CPU  mode $MODE"
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
out=$(mktemp -d /tmp/crs-compare.XXXXXX)
trap 'rm -rf "$out"' EXIT
taskset -c "$CPU" "$BIN" --engine boing --csv "$CSV" --mode "$MODE" --model "$MODEL" \
  --show-misses "${SHOW_MISSES:-0}" >"$out/boing"
taskset -c "$CPU" "$BIN" --engine boing --csv "$CSV" --mode "$MODE" >"$out/rules"
taskset -c "$CPU" "$BIN" --engine crs --csv "$CSV" --mode "$MODE" \
  --show-misses "${SHOW_MISSES:-0}" >"$out/crs"
echo "load average after:  $(cut -d' ' -f1-3 /proc/loadavg)"

awk '
  function field(line, key,   n, i, kv) {
    n = split(line, kv, " ")
    for (i = 1; i <= n; i++) if (index(kv[i], key "=") == 1) return substr(kv[i], length(key) + 2)
    return ""
  }
  /^result / {
    e = field($0, "engine"); c = field($0, "class")
    total[c] = field($0, "values"); det[e, c] = field($0, "detected"); classes[c] = 1
  }
  /^speed / {
    e = field($0, "engine"); speed[e] = field($0, "values_per_s"); cpu[e] = field($0, "values_per_cpu_s")
  }
  /^(boing|crs) / { print }
  END {
    split("boing boing-rules crs", eng, " ")
    printf "\n%-18s %6s  %-18s %-18s %-18s\n", "held-out class", "values", "Boing", \
      "Boing rules only", "ModSecurity+CRS PL1"
    n = split("sqli xss path_traversal cmdi", order, " ")
    for (i = 1; i <= n; i++) {
      c = order[i]
      if (!(c in classes)) continue
      printf "%-18s %6d ", c, total[c]
      for (k = 1; k <= 3; k++) printf " recall %7.2f%%   ", 100 * det[eng[k], c] / total[c]
      printf "\n"
    }
    c = "norm"
    printf "%-18s %6d ", "benign", total[c]
    for (k = 1; k <= 3; k++) printf " FP %3d (%6.3f%%) ", det[eng[k], c], 100 * det[eng[k], c] / total[c]
    printf "\n%-26s", "values/s per CPU second"
    for (k = 1; k <= 3; k++) printf " %-18s", cpu[eng[k]]
    printf "\n%-26s", "values/s wall"
    for (k = 1; k <= 3; k++) printf " %-18s", speed[eng[k]]
    printf "\n"
    if (cpu["crs"] > 0 && speed["crs"] > 0) {
      printf "Boing / CRS speed: %.1fx per CPU second, %.1fx wall", cpu["boing"] / cpu["crs"], \
        speed["boing"] / speed["crs"]
      printf " (rules only: %.1fx, %.1fx)\n", cpu["boing-rules"] / cpu["crs"], \
        speed["boing-rules"] / speed["crs"]
    }
  }' "$out/boing" "$out/rules" "$out/crs"
