#!/usr/bin/env bash
# The sensor part of the main job: a sample API (nginx over HTTP and HTTPS, in its own cgroup), a
# small traffic loop against it, and boing-agent scoped to that cgroup only, enrolled with the
# running boing-server. Started by scripts/run.sh; stops everything it started on exit.
#
#   scripts/demo-sensor.sh SERVER_URL ADMIN_USER ADMIN_PASSWORD DIR
#
# Needs root and a kernel the agent can use (`boing-agent --check`); otherwise it says why and exits
# 0, and the server keeps running without it.
set -euo pipefail
cd "$(dirname "$0")/.."
SERVER=$1 USER_NAME=$2 PASSWORD=$3 DIR=$4
PY=/usr/bin/python3
say() { printf '[demo] %s\n' "$*" >&2; }

[ "$(id -u)" = 0 ] || { say "not root: the sensor demo is skipped (the server runs on)"; exit 0; }
mkdir -p "$DIR"
mountpoint -q /sys/fs/bpf || mount -t bpf bpf /sys/fs/bpf || true
mountpoint -q /sys/kernel/tracing || mount -t tracefs tracefs /sys/kernel/tracing || true
if ! build/agent/boing-agent --check >"$DIR/agent-check.txt" 2>&1; then
  say "this kernel cannot run the sensor (see $DIR/agent-check.txt); demo skipped"
  exit 0
fi

mkdir -p "$DIR/nginx" "$DIR/agent"
free_port() { $PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
HTTP_PORT=$(free_port)
HTTPS_PORT=$(free_port)
[ -f "$DIR/nginx/cert.pem" ] || openssl req -x509 -newkey rsa:2048 -nodes -days 365 -subj /CN=sample.local \
  -keyout "$DIR/nginx/key.pem" -out "$DIR/nginx/cert.pem" >/dev/null 2>&1
cat >"$DIR/nginx/nginx.conf" <<CONF
daemon off;
worker_processes 1;
pid $DIR/nginx/nginx.pid;
error_log $DIR/nginx/error.log;
events { worker_connections 256; }
http {
  access_log off;
  client_body_temp_path $DIR/nginx/b; proxy_temp_path $DIR/nginx/p; fastcgi_temp_path $DIR/nginx/f;
  uwsgi_temp_path $DIR/nginx/u; scgi_temp_path $DIR/nginx/s;
  server {
    listen 127.0.0.1:$HTTP_PORT;
    listen 127.0.0.1:$HTTPS_PORT ssl;
    ssl_certificate $DIR/nginx/cert.pem;
    ssl_certificate_key $DIR/nginx/key.pem;
    location /missing { return 404 "not here\n"; }
    location / { return 200 "ok\n"; }
  }
}
CONF

# A cgroup of our own: the agent captures nginx in it and nothing else on the host.
CG_ROOT=$(awk '$3 == "cgroup2" { print $2; exit }' /proc/mounts)
[ -n "$CG_ROOT" ] || { say "no cgroup v2 mount; demo skipped"; exit 0; }
CGROUP=$CG_ROOT/boing-demo-$$
mkdir -p "$CGROUP"
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rmdir "$CGROUP" 2>/dev/null || true
}
trap cleanup EXIT
trap 'exit 0' TERM INT
(echo $BASHPID >"$CGROUP/cgroup.procs" && exec nginx -c "$DIR/nginx/nginx.conf" -p "$DIR/nginx") &
PIDS+=($!)

# Log in, create the sample API (events with Host sample.local are assigned to it) and an
# enrolment token for the agent.
api() { curl -s -H 'Content-Type: application/json' -H "Authorization: Bearer $TOKEN" "$@"; }
TOKEN=$(curl -s -H 'Content-Type: application/json' "$SERVER/api/login" \
  -d "{\"username\":\"$USER_NAME\",\"password\":\"$PASSWORD\"}" | $PY -c 'import json,sys; print(json.load(sys.stdin)["token"])')
if ! api "$SERVER/api/apis" | grep -q '"sample nginx"'; then
  api "$SERVER/api/apis" -d '{"name":"sample nginx","base_url":"https://sample.local","match_host":"sample.local"}' >/dev/null
fi
ENROLL=$(api -X POST "$SERVER/api/agents" -d '{"name":"demo"}' | $PY -c 'import json,sys; print(json.load(sys.stdin)["enrollment_token"])')

build/agent/boing-agent --server "$SERVER" --enroll-token "$ENROLL" --state-dir "$DIR/agent" \
  --cgroup "$CGROUP" --batch-interval-ms 500 --heartbeat-interval 10 >"$DIR/agent.log" 2>&1 &
PIDS+=($!)
say "sample API: nginx on http://127.0.0.1:$HTTP_PORT and https://127.0.0.1:$HTTPS_PORT (cgroup $CGROUP)"
say "boing-agent captures it (log: $DIR/agent.log); see the events at $SERVER/api/logs"

# A little traffic, about two requests per second: pages, a missing one, and a login.
i=0
while true; do
  i=$((i + 1))
  curl -s -o /dev/null -H 'Host: sample.local' "http://127.0.0.1:$HTTP_PORT/products/$((i % 50))?page=$((i % 3))" || true
  curl -s -k -o /dev/null -H 'Host: sample.local' -H 'Authorization: Bearer demo-user-token' \
    "https://127.0.0.1:$HTTPS_PORT/users/$((i % 20))/orders" || true
  [ $((i % 10)) = 0 ] && curl -s -k -o /dev/null -H 'Host: sample.local' "https://127.0.0.1:$HTTPS_PORT/missing/$i" || true
  sleep 1
done
