#!/usr/bin/env bash
# A throwaway MariaDB server on loopback for the integration tests.
#
#   eval "$(tests/support/mariadb.sh start DIR)"   # prints BOING_TEST_MYSQL_* export lines
#   tests/support/mariadb.sh stop DIR
#
# Replication (DB_READ_HOST tests): `start-primary DIR` is `start` with a binary log (server-id 1,
# row format) and a replication user; `start-replica DIR PRIMARY_DIR` starts a second server
# (server-id 2, read_only) replicating everything from the primary's first binary log, so the
# users and databases created there arrive too; it prints BOING_TEST_MYSQL_REPLICA_HOST/PORT.
#
# Everything lives in DIR (datadir, socket, pid file, logs). The server reads no option file
# (--no-defaults), so the system instance (/var/lib/mysql, port 3306) is never touched. `start` is
# idempotent: when the server in DIR is already up it prints the same exports again.
#
# MARIADB_PORT and MARIADB_PASSWORD, when set, fix the port and the test user's password instead of
# choosing new ones (tests/integration/test_dbdown.py restarts a stopped server where its clients
# expect it).
set -euo pipefail

die() {
  echo "mariadb.sh: $*" >&2
  exit 1
}

find_bin() {
  local name
  for name in "$@"; do
    if command -v "$name" >/dev/null 2>&1; then
      command -v "$name"
      return 0
    fi
    for d in /usr/sbin /usr/local/sbin /usr/bin /usr/local/bin; do
      if [[ -x "$d/$name" ]]; then
        echo "$d/$name"
        return 0
      fi
    done
  done
  return 1
}

free_port() {
  if command -v python3 >/dev/null 2>&1; then
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
    return
  fi
  local p
  for _ in $(seq 1 200); do
    p=$((20000 + RANDOM % 40000))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
      echo "$p"
      return
    fi
  done
  die "no free port found"
}

running() {
  local pid
  [[ -f "$PIDFILE" ]] || return 1
  pid=$(cat "$PIDFILE" 2>/dev/null || true)
  [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null
}

client() {
  "$MARIADB" --no-defaults --protocol=socket --socket="$SOCK" -uroot "$@"
}

start() {
  local role=${1:-standalone}
  mkdir -p "$DIR"
  if running && [[ -s "$ENVFILE" ]] && client -e 'SELECT 1' >/dev/null 2>&1; then
    cat "$ENVFILE"
    return
  fi
  stop_server
  local other
  other=$(pgrep -f -- "--datadir=$DATA( |\$)" | head -n 1 || true)
  [[ -z "$other" ]] || die "another mariadbd (pid $other) uses $DATA; stop it or use another DIR"
  local mariadbd install_db user_args=()
  mariadbd=$(find_bin mariadbd mysqld) || die "mariadbd not found (install mariadb-server)"
  install_db=$(find_bin mariadb-install-db mysql_install_db) || die "mariadb-install-db not found"
  [[ $(id -u) -eq 0 ]] && user_args=(--user=root)
  case "$role" in
    primary) user_args+=(--server-id=1 --log-bin=binlog --binlog-format=ROW) ;;
    replica) user_args+=(--server-id=2 --relay-log=relay --skip-slave-start) ;;
  esac

  if [[ ! -d "$DATA/mysql" ]]; then
    rm -rf "$DATA"
    "$install_db" --no-defaults --datadir="$DATA" --auth-root-authentication-method=normal \
      --skip-test-db "${user_args[@]}" >"$DIR/install.log" 2>&1 ||
      die "mariadb-install-db failed, see $DIR/install.log"
  fi

  local port attempt ok=0
  for attempt in 1 2 3; do
    port=${MARIADB_PORT:-$(free_port)}
    rm -f "$SOCK"
    # setsid: the server outlives the shell that ran `start` (e.g. a CI step).
    setsid "$mariadbd" --no-defaults "${user_args[@]}" --datadir="$DATA" \
      --bind-address=127.0.0.1 --port="$port" --skip-networking=0 --socket="$SOCK" \
      --pid-file="$PIDFILE" --log-error="$DIR/error.log" --skip-name-resolve \
      --innodb-buffer-pool-size=128M --max-connections=200 --character-set-server=utf8mb4 \
      --collation-server=utf8mb4_bin </dev/null >/dev/null 2>&1 &
    local launcher=$!
    for _ in $(seq 1 300); do
      if client -e 'SELECT 1' >/dev/null 2>&1; then
        ok=1
        break
      fi
      kill -0 "$launcher" 2>/dev/null || break
      sleep 0.1
    done
    [[ $ok -eq 1 ]] && break
    kill "$launcher" 2>/dev/null || true
    wait "$launcher" 2>/dev/null || true
    echo "mariadb.sh: attempt $attempt on port $port failed" >&2
  done
  if [[ $ok -ne 1 ]]; then
    tail -n 20 "$DIR/error.log" >&2 || true
    die "mariadbd did not start"
  fi
  # The pid file is written by mariadbd itself; keep ours in case it lags behind.
  [[ -s "$PIDFILE" ]] || echo "$launcher" >"$PIDFILE"

  if [[ "$role" == replica ]]; then
    start_replication "$port"
    return
  fi
  local password
  password=${MARIADB_PASSWORD:-$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' | head -c 24)}
  [[ $password =~ ^[A-Za-z0-9]+$ ]] || die "MARIADB_PASSWORD must be letters and digits"
  if [[ "$role" == primary ]]; then
    client <<SQL || die "could not create the replication user"
CREATE USER IF NOT EXISTS 'repl'@'127.0.0.1' IDENTIFIED BY '$password';
GRANT REPLICATION SLAVE ON *.* TO 'repl'@'127.0.0.1';
SQL
  fi
  client <<SQL || die "could not create the test user"
CREATE DATABASE IF NOT EXISTS boing_test CHARACTER SET utf8mb4 COLLATE utf8mb4_bin;
CREATE USER IF NOT EXISTS 'boing'@'127.0.0.1' IDENTIFIED BY '$password';
ALTER USER 'boing'@'127.0.0.1' IDENTIFIED BY '$password';
GRANT ALL PRIVILEGES ON \`boing_test\`.* TO 'boing'@'127.0.0.1';
GRANT ALL PRIVILEGES ON \`boing\\_%\`.* TO 'boing'@'127.0.0.1';
FLUSH PRIVILEGES;
SQL
  umask 077
  cat >"$ENVFILE" <<EOF
export BOING_TEST_MYSQL_HOST=127.0.0.1
export BOING_TEST_MYSQL_PORT=$port
export BOING_TEST_MYSQL_USER=boing
export BOING_TEST_MYSQL_PASSWORD=$password
export BOING_TEST_MYSQL_DB=boing_test
EOF
  cat "$ENVFILE"
}

# The replica: everything from the primary's first binary log (its test user and databases
# included), then read-only for everyone without SUPER (the test user).
start_replication() {
  local port=$1 penv io=""
  penv="$PRIMARY_DIR/env.sh"
  [[ -s "$penv" ]] || die "no primary in $PRIMARY_DIR (run start-primary first)"
  local pport ppass
  pport=$(sed -n 's/^export BOING_TEST_MYSQL_PORT=//p' "$penv")
  ppass=$(sed -n 's/^export BOING_TEST_MYSQL_PASSWORD=//p' "$penv")
  client <<SQL || die "could not start replication"
CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT=$pport, MASTER_USER='repl',
  MASTER_PASSWORD='$ppass', MASTER_LOG_FILE='binlog.000001', MASTER_LOG_POS=4;
START SLAVE;
SET GLOBAL read_only = 1;
SQL
  for _ in $(seq 1 100); do
    io=$(client -e 'SHOW SLAVE STATUS\G' | awk '/Slave_IO_Running:/ {print $2}')
    [[ "$io" == Yes ]] && break
    sleep 0.1
  done
  [[ "$io" == Yes ]] || die "replica did not connect to the primary: $(client -e 'SHOW SLAVE STATUS\G' | grep -E 'Last_(IO_)?Error:' | head -2)"
  umask 077
  printf 'export BOING_TEST_MYSQL_REPLICA_HOST=127.0.0.1\nexport BOING_TEST_MYSQL_REPLICA_PORT=%s\n' \
    "$port" >"$ENVFILE"
  cat "$ENVFILE"
}

stop_server() {
  local pid
  if running; then
    pid=$(cat "$PIDFILE")
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 300); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
      kill -KILL "$pid" 2>/dev/null || true
    fi
  fi
  rm -f "$PIDFILE" "$SOCK" "$ENVFILE"
}

usage="usage: $0 start|start-primary|stop DIR | start-replica DIR PRIMARY_DIR"
[[ $# -eq 2 || ($# -eq 3 && "$1" == start-replica) ]] || die "$usage"
DIR=$(realpath -m "$2")
PRIMARY_DIR=$(realpath -m "${3:-.}")
DATA="$DIR/data"
SOCK="$DIR/sock"
PIDFILE="$DIR/mariadb.pid"
ENVFILE="$DIR/env.sh"
MARIADB=$(find_bin mariadb mysql) || die "mariadb client not found (install mariadb-client)"

case "$1" in
  start) start ;;
  start-primary) start primary ;;
  start-replica) start replica ;;
  stop) stop_server ;;
  *) die "$usage" ;;
esac
