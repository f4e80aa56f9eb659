#!/usr/bin/env bash
# The main job: install, build, and run boing-server on embedded SQLite in ./.data.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
DATA_DIR=${DATA_DIR:-.data}
LISTEN=${LISTEN:-0.0.0.0:8000}
mkdir -p "$DATA_DIR"
# The dashboard built by setup.sh, served at / (DASHBOARD_DIR= turns it off).
export DASHBOARD_DIR=${DASHBOARD_DIR-$PWD/dashboard/dist}
port=${LISTEN##*:}
cat <<MSG

  Boing is starting on http://localhost:${port} (the dashboard is at that address)
  Log in with user 'admin' and the password in ${DATA_DIR}/initial-admin-password
  (created on the first start; or set ADMIN_USERNAME/ADMIN_PASSWORD), e.g.:
    curl -s localhost:${port}/api/login -H 'Content-Type: application/json' \\
      -d "{\"username\":\"admin\",\"password\":\"\$(cat ${DATA_DIR}/initial-admin-password)\"}"
  Stop with Ctrl-C. Logs (JSON) follow.

MSG
if [ "${BOING_DEMO:-1}" = 0 ]; then
  exec build/server/api/boing-server --listen "$LISTEN" --data-dir "$DATA_DIR" ${CONFIG:+--config "$CONFIG"}
fi

# With the sensor demo (BOING_DEMO=0 turns it off): the server runs in the background of this
# script, and scripts/demo-sensor.sh starts a sample nginx API (HTTP and HTTPS) in its own cgroup,
# a little traffic against it, and boing-agent scoped to that cgroup, so events arrive at once.
build/server/api/boing-server --listen "$LISTEN" --data-dir "$DATA_DIR" ${CONFIG:+--config "$CONFIG"} &
server=$!
demo=
stop() {
  [ -z "$demo" ] || kill "$demo" 2>/dev/null || true
  [ -z "$demo" ] || wait "$demo" 2>/dev/null || true
  kill -TERM "$server" 2>/dev/null || true
  wait "$server" 2>/dev/null || true
}
trap stop EXIT
trap 'exit 0' INT TERM
for _ in $(seq 1 100); do
  curl -s -o /dev/null "http://127.0.0.1:${port}/healthz" && break
  kill -0 "$server" 2>/dev/null || exit 1
  sleep 0.1
done
admin_user=${ADMIN_USERNAME:-admin}
admin_password=${ADMIN_PASSWORD:-$(cat "$DATA_DIR/initial-admin-password" 2>/dev/null || true)}
if [ -n "$admin_password" ] && [ -z "${TLS_CERT_FILE:-}" ]; then
  bash scripts/demo-sensor.sh "http://127.0.0.1:${port}" "$admin_user" "$admin_password" "$DATA_DIR/demo" &
  demo=$!
else
  echo "[demo] no admin password available (or TLS on); the sensor demo is skipped" >&2
fi
wait "$server"
