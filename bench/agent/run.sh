#!/usr/bin/env bash
# Sensor benchmark (issue 3): wrk against nginx over HTTP and HTTPS with keep-alive, without and
# with boing-agent, in one run. nginx on core 0, wrk and the agent on core 1 (taskset). The agent is
# scoped to the scratch cgroup nginx runs in, never host-wide, and forwards to a real boing-server
# (SQLite, also on core 1: a 2-core machine has no third core). Prints a table with ratios and the
# issue's targets; captured payloads are never printed.
#
#   sudo bash bench/agent/run.sh                   # ~2 min
#   BENCH_SECONDS=20 sudo bash bench/agent/run.sh
#
# Environment: BENCH_SECONDS (10, per wrk run), BENCH_CONNECTIONS (32), BOING_AGENT_BIN
# (build/agent/boing-agent), BOING_SERVER_BIN (build/server/api/boing-server), BENCH_OUT
# (/tmp/boing-bench-agent.txt), BENCH_KEEP (keep the work directory).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
[ "$(id -u)" -eq 0 ] || { echo "run as root (the agent loads eBPF programs)" >&2; exit 1; }
[ "$(nproc)" -ge 2 ] || { echo "needs at least 2 cores" >&2; exit 1; }
for t in wrk taskset openssl; do
  command -v $t >/dev/null || { echo "missing $t (bash scripts/setup.sh)" >&2; exit 1; }
done
[ -x /usr/sbin/nginx ] || { echo "missing nginx (nginx-light; bash scripts/setup.sh)" >&2; exit 1; }
mountpoint -q /sys/fs/bpf || mount -t bpf bpf /sys/fs/bpf
mountpoint -q /sys/kernel/tracing || mount -t tracefs tracefs /sys/kernel/tracing
exec /usr/bin/python3 "$HERE/bench_agent.py" \
  --agent "${BOING_AGENT_BIN:-$ROOT/build/agent/boing-agent}" \
  --server "${BOING_SERVER_BIN:-$ROOT/build/server/api/boing-server}" \
  --seconds "${BENCH_SECONDS:-10}" --connections "${BENCH_CONNECTIONS:-32}" \
  --out "${BENCH_OUT:-/tmp/boing-bench-agent.txt}" ${BENCH_KEEP:+--keep}
