#!/usr/bin/env bash
# Scale-out benchmark: one vs two pinned boing-servers on NATS JetStream + MariaDB, and partition
# failover times. Needs a built server (bash scripts/setup.sh). Report: stdout and
# /tmp/boing-bench-scaleout.txt. See bench/README.md.
set -euo pipefail
cd "$(dirname "$0")/../.."
[[ -x build/server/api/boing-server ]] || { echo "build first: bash scripts/setup.sh" >&2; exit 1; }
/usr/bin/python3 -W ignore::ResourceWarning bench/scaleout/bench_scaleout.py 2>&1 |
  tee /tmp/boing-bench-scaleout.txt
