#!/usr/bin/python3
"""Writes the Isolation Forest benchmark's data set: per-actor window features as the ml stage
computes them (requests, distinct templates, 404 / auth-failure / 5xx ratios, size and latency
z-scores, inter-arrival variation, write ratio), for a population of ordinary clients of several
kinds, and abusive windows (scraping, enumeration, credential stuffing, error floods, timing bots)
that differ in a few features each. train.csv: ordinary windows only (what the server trains on);
test.csv: ordinary and abusive windows with a label column (1 = abusive).

usage: make_data.py OUTDIR [train_rows] [test_rows] [seed]"""
import os
import sys

import numpy as np


def ordinary(rng, n):
    kind = rng.integers(0, 3, n)  # browsers, mobile apps, server-to-server integrations
    req = np.where(kind == 2, rng.normal(40, 8, n), rng.gamma(3, 3, n) + 5).clip(5, None)
    tmpl = np.where(kind == 2, rng.integers(1, 4, n), rng.integers(2, 12, n)).astype(float)
    nf = rng.beta(1, 30, n)
    auth = np.where(kind == 1, rng.beta(1, 40, n), rng.beta(1, 200, n))
    err = rng.beta(1, 300, n)
    size_z = rng.normal(0, 0.6, n)
    lat_z = rng.normal(0, 0.6, n) + 0.3 * size_z
    cv = np.where(kind == 2, rng.gamma(2, 0.1, n), rng.gamma(4, 0.3, n))
    writes = np.where(kind == 2, rng.beta(8, 4, n), rng.beta(2, 8, n))
    return np.column_stack([np.log1p(req), np.log1p(tmpl), nf, auth, err, size_z, lat_z, cv, writes])


def abusive(rng, n):
    x = ordinary(rng, n)
    kind = rng.integers(0, 5, n)
    for i in range(n):
        k = kind[i]
        if k == 0:  # scraping: many requests over many templates, regular timing
            x[i, 0] = np.log1p(rng.uniform(150, 600))
            x[i, 1] = np.log1p(rng.uniform(15, 40))
            x[i, 7] = rng.uniform(0.0, 0.15)
        elif k == 1:  # enumeration: mostly 404s
            x[i, 0] = np.log1p(rng.uniform(40, 300))
            x[i, 2] = rng.uniform(0.4, 0.95)
        elif k == 2:  # credential stuffing: auth failures, writes
            x[i, 3] = rng.uniform(0.3, 0.9)
            x[i, 8] = rng.uniform(0.8, 1.0)
        elif k == 3:  # error flood / fuzzing: 5xx, odd sizes and latencies
            x[i, 4] = rng.uniform(0.1, 0.6)
            x[i, 5] = rng.normal(4, 2)
            x[i, 6] = rng.normal(3, 1.5)
        else:  # a bot with machine timing and a modest excess of requests
            x[i, 0] = np.log1p(rng.uniform(60, 150))
            x[i, 7] = rng.uniform(0.0, 0.05)
    return x


def main():
    out = sys.argv[1]
    train_n = int(sys.argv[2]) if len(sys.argv) > 2 else 20000
    test_n = int(sys.argv[3]) if len(sys.argv) > 3 else 100000
    seed = int(sys.argv[4]) if len(sys.argv) > 4 else 42
    rng = np.random.default_rng(seed)
    os.makedirs(out, exist_ok=True)
    np.savetxt(os.path.join(out, "train.csv"), ordinary(rng, train_n), delimiter=",", fmt="%.9g")
    n_bad = test_n // 20
    x = np.vstack([ordinary(rng, test_n - n_bad), abusive(rng, n_bad)])
    y = np.concatenate([np.zeros(test_n - n_bad), np.ones(n_bad)])
    order = rng.permutation(test_n)
    np.savetxt(os.path.join(out, "test.csv"), np.column_stack([x[order], y[order]]),
               delimiter=",", fmt="%.9g")


if __name__ == "__main__":
    main()
