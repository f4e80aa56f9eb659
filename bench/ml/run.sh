#!/usr/bin/env bash
# Isolation Forest: boing's C++ implementation against scikit-learn's (Debian python3-sklearn) on
# the same data in one run, both pinned to CPU ${BENCH_CPU:-1}. Prints both ROC AUCs and the
# fit + score times, and checks the targets (AUC within 0.01, fit + score >= 10x faster).
# Each side runs RUNS times (default 10) with different seeds; the table shows the means (one forest's
# AUC varies with its seed by about +-0.006 here), the C++ AUC of seed 1 is cross-checked with
# sklearn.metrics.roc_auc_score.
# usage: bench/ml/run.sh [train_rows] [test_rows]   (BUILD_DIR defaults to build; RUNS=10)
set -euo pipefail
cd "$(dirname "$0")/../.."
BUILD_DIR=${BUILD_DIR:-build}
CPU=${BENCH_CPU:-1}
TRAIN=${1:-20000}
TEST=${2:-100000}
ninja -C "$BUILD_DIR" iforest_bench >/dev/null
work=$(mktemp -d /tmp/boing-bench-ml.XXXXXX)
trap 'rm -rf "$work"' EXIT
/usr/bin/python3 bench/ml/make_data.py "$work" "$TRAIN" "$TEST"
RUNS=${RUNS:-10}
cpp=$(taskset -c "$CPU" "$BUILD_DIR/server/detect/iforest_bench" "$work" "$work/cpp_scores.txt" "$RUNS")
py=$(taskset -c "$CPU" /usr/bin/python3 bench/ml/sklearn_iforest.py "$work" "$work/cpp_scores.txt" "$RUNS")
/usr/bin/python3 - "$cpp" "$py" <<'PY'
import json, sys
c, p = json.loads(sys.argv[1]), json.loads(sys.argv[2])
mean = lambda v: sum(v) / len(v)
spread = lambda v: f"{min(v):.4f}-{max(v):.4f}"
print(f"runs: {len(c['auc'])} seeds each; AUC range C++ {spread(c['auc'])}, scikit-learn {spread(p['auc'])}")
for d in (c, p):
    for k in ("fit_s", "score_s", "auc"):
        d[k] = mean(d[k])
ct, pt = c["fit_s"] + c["score_s"], p["fit_s"] + p["score_s"]
print(f"data: {c['train_rows']} training rows, {c['test_rows']} scored rows, {c['dims']} features")
print(f"{'(means)':24}{'fit s':>10}{'score s':>10}{'total s':>10}{'ROC AUC':>10}")
print(f"{'boing (C++)':24}{c['fit_s']:10.4f}{c['score_s']:10.4f}{ct:10.4f}{c['auc']:10.4f}")
print(f"{'scikit-learn ' + p['sklearn_version']:24}{p['fit_s']:10.4f}{p['score_s']:10.4f}{pt:10.4f}{p['auc']:10.4f}")
print(f"C++ AUC of the first seed recomputed by sklearn.metrics: {p['cpp_auc_by_sklearn']:.4f}")
diff, speed = abs(c["auc"] - p["auc"]), pt / ct
ok_auc, ok_speed = diff <= 0.01, speed >= 10
print(f"AUC difference {diff:.4f} (target <= 0.01): {'met' if ok_auc else 'NOT MET'}")
print(f"speed-up {speed:.1f}x (target >= 10x): {'met' if ok_speed else 'NOT MET'}")
sys.exit(0 if ok_auc and ok_speed else 1)
PY
