#!/usr/bin/env bash
# The main job: install, build, and run boing-server on embedded SQLite in ./.data.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
DATA_DIR=${DATA_DIR:-.data}
LISTEN=${LISTEN:-0.0.0.0:8000}
mkdir -p "$DATA_DIR"
port=${LISTEN##*:}
cat <<MSG

  Boing is starting on http://localhost:${port}
  Log in with user 'admin' and the password in ${DATA_DIR}/initial-admin-password
  (created on the first start; or set ADMIN_USERNAME/ADMIN_PASSWORD), e.g.:
    curl -s localhost:${port}/api/login -H 'Content-Type: application/json' \\
      -d "{\"username\":\"admin\",\"password\":\"\$(cat ${DATA_DIR}/initial-admin-password)\"}"
  Stop with Ctrl-C. Logs (JSON) follow.

MSG
exec build/server/api/boing-server --listen "$LISTEN" --data-dir "$DATA_DIR" ${CONFIG:+--config "$CONFIG"}
