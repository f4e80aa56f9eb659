#!/usr/bin/env bash
# The database-down fault test with the issue's one-minute outage (ctest's it_mysql_dbdown runs a
# 15-second one): MariaDB stopped under ingest load for DB_DOWN_SECONDS (default 60) and started
# again. The test starts its own MariaDB (tests/support/mariadb.sh); nothing shared is touched.
#
#   bash scripts/fault-dbdown.sh            # needs build/server/api/boing-server
#   DB_DOWN_SECONDS=120 bash scripts/fault-dbdown.sh
#
# Prints acknowledged events lost, 503s served, the server's RSS during the outage and the time to
# recover; the full output goes to build/fault-dbdown.log too.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${BOING_SERVER_BIN:-$ROOT/build/server/api/boing-server}
[[ -x "$BIN" ]] || { echo "fault-dbdown.sh: $BIN not built (bash scripts/setup.sh)" >&2; exit 1; }
export BOING_SERVER_BIN=$BIN BOING_IT_BACKEND=mysql PYTHONDONTWRITEBYTECODE=1
export DB_DOWN_SECONDS=${DB_DOWN_SECONDS:-60}
mkdir -p "$ROOT/build"
cd "$ROOT/tests/integration"
/usr/bin/python3 -W ignore::ResourceWarning -m unittest -v test_dbdown 2>&1 | tee "$ROOT/build/fault-dbdown.log"
exit "${PIPESTATUS[0]}"
