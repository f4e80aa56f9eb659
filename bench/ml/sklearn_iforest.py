#!/usr/bin/python3
"""scikit-learn's Isolation Forest on the benchmark data, timed like iforest_bench (fit on
train.csv, score every row of test.csv; loading the files is not timed). Also computes the ROC AUC
of the C++ scores (SCORES file written by iforest_bench), so both AUCs come from the same code.

usage: sklearn_iforest.py DATADIR CPP_SCORES_FILE [RUNS]  (one JSON line; RUNS seeds, default 5)"""
import json
import sys
import time

import numpy as np
import sklearn
from sklearn.ensemble import IsolationForest
from sklearn.metrics import roc_auc_score


def main():
    d = sys.argv[1]
    train = np.loadtxt(f"{d}/train.csv", delimiter=",")
    test = np.loadtxt(f"{d}/test.csv", delimiter=",")
    x, y = test[:, :-1], test[:, -1]
    runs = int(sys.argv[3]) if len(sys.argv) > 3 else 5
    fit_s, score_s, auc = [], [], []
    for seed in range(runs):
        t0 = time.perf_counter()
        m = IsolationForest(n_estimators=100, max_samples=256, random_state=seed, n_jobs=1)
        m.fit(train)
        t1 = time.perf_counter()
        scores = -m.score_samples(x)  # higher = more anomalous, as the C++ Score()
        t2 = time.perf_counter()
        fit_s.append(t1 - t0)
        score_s.append(t2 - t1)
        auc.append(roc_auc_score(y, scores))
    cpp = np.loadtxt(sys.argv[2])
    print(json.dumps({"sklearn_version": sklearn.__version__, "fit_s": fit_s, "score_s": score_s,
                      "auc": auc, "cpp_auc_by_sklearn": roc_auc_score(y, cpp)}))


if __name__ == "__main__":
    main()
