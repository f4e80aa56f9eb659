"""Starts the real boing-server for the integration tests, on SQLite or a real MariaDB, and talks to
it over HTTP (http.client) and WebSocket (Debian's python3-websocket).

Environment:
  BOING_SERVER_BIN   the binary (default: ../../build/server/api/boing-server from this file)
  BOING_IT_BACKEND   sqlite (default) | mysql
  BOING_TEST_MYSQL_HOST/PORT/USER/PASSWORD   the MariaDB from tests/support/mariadb.sh; each test
                     class gets a fresh database boing_it_<random>, dropped afterwards. Missing
                     variables skip the MariaDB variant, or fail it when CI is set.
  BOING_IT_KEEP=1    keep data directories (and databases) for inspection.

Everything here uses Python's standard library and Debian python3-* packages only, so run it with
/usr/bin/python3.
"""
import base64
import glob
import gzip
import hashlib
import hmac
import http.client
import json
import os
import re
import secrets
import shutil
import signal
import socket
import sqlite3
import subprocess
import tempfile
import threading
import time
import unittest
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
BINARY = os.environ.get("BOING_SERVER_BIN") or os.path.join(ROOT, "build/server/api/boing-server")
BACKEND = os.environ.get("BOING_IT_BACKEND", "sqlite")
KEEP = os.environ.get("BOING_IT_KEEP") == "1"
# A directory that keeps a copy of every server run's stdout+stderr after the data directory is
# gone: scripts/asan-integration.sh counts UBSan reports there (gcc's UBSan runtime writes them to
# stderr whatever UBSAN_OPTIONS log_path says).
OUTPUT_DIR = os.environ.get("BOING_IT_OUTPUT_DIR")
ADMIN_USER = "admin1"
ADMIN_PASSWORD = "Adm1n-password-123"
PASSWORD = "password-123"

if BACKEND not in ("sqlite", "mysql"):
    raise SystemExit(f"BOING_IT_BACKEND must be sqlite or mysql, not {BACKEND!r}")


def wait_for(fn, timeout=15, interval=0.05):
    """Calls fn until it returns something true or `timeout` seconds pass; returns its last value."""
    deadline = time.time() + timeout
    while True:
        v = fn()
        if v or time.time() > deadline:
            return v
        time.sleep(interval)


# --- MariaDB -----------------------------------------------------------------------------------

def mysql_env():
    host = os.environ.get("BOING_TEST_MYSQL_HOST")
    if not host:
        if os.environ.get("CI", "").lower() not in ("", "0", "false", "no"):
            raise AssertionError("BOING_TEST_MYSQL_* not set but CI is: the MariaDB variant must run")
        raise unittest.SkipTest("no MariaDB (BOING_TEST_MYSQL_* unset; start tests/support/mariadb.sh)")
    return {
        "host": host,
        "port": os.environ.get("BOING_TEST_MYSQL_PORT", "3306"),
        "user": os.environ["BOING_TEST_MYSQL_USER"],
        "password": os.environ.get("BOING_TEST_MYSQL_PASSWORD", ""),
    }


def mysql_cli(db, sql, raw_bytes=False):
    """Runs SQL with the mariadb client; returns the --batch output (tab separated, header row)."""
    m = mysql_env()
    cmd = ["mariadb", "--no-defaults", "--protocol=tcp", "-h", m["host"], "-P", m["port"],
           "-u", m["user"], "-p" + m["password"], "--batch", "--raw", "-e", sql]
    if db:
        cmd.append(db)
    out = subprocess.run(cmd, capture_output=True, timeout=60)
    if out.returncode != 0:
        raise AssertionError(f"mariadb {sql!r}: {out.stderr.decode(errors='replace')}")
    return out.stdout if raw_bytes else out.stdout.decode("utf-8", "replace")


def mysql_rows(db, sql):
    lines = mysql_cli(db, sql).splitlines()
    return [line.split("\t") for line in lines[1:]]


# --- HTTP --------------------------------------------------------------------------------------

class Response:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers
        self.raw = body
        self.body = body.decode("utf-8", "replace")

    def json(self):
        try:
            return json.loads(self.body)
        except ValueError:
            raise AssertionError(f"not a JSON body: {self!r}")

    def header(self, name):
        for k, v in self.headers:
            if k.lower() == name.lower():
                return v
        return None

    def __repr__(self):
        return f"<HTTP {self.status} {self.body[:400]!r}>"


def http_request(port, method, path, body=None, token=None, headers=None, raw=None,
                 gzip_body=False, timeout=30):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        h = {}
        data = None
        if raw is not None:
            data = raw.encode() if isinstance(raw, str) else raw
        elif body is not None:
            data = json.dumps(body).encode()
        if data is not None:
            h["Content-Type"] = "application/json"
            if gzip_body:
                data = gzip.compress(data)
                h["Content-Encoding"] = "gzip"
        if token:
            h["Authorization"] = "Bearer " + token
        h.update(headers or {})
        conn.request(method, path, body=data, headers=h)
        r = conn.getresponse()
        return Response(r.status, r.getheaders(), r.read())
    finally:
        conn.close()


def qs(**params):
    return urllib.parse.urlencode({k: v for k, v in params.items() if v is not None})


class Server:
    """One boing-server process with its own data dir (and, on MariaDB, its own database)."""

    def __init__(self, env=None, data_dir=None, db_name=None, admin=True, args=(), listen="127.0.0.1:0"):
        self.own_dir = data_dir is None
        self.listen = listen  # a fixed port lets a restarted server come back where agents expect it
        self.data_dir = data_dir or tempfile.mkdtemp(prefix="boing-it-")
        self.log_file = os.path.join(self.data_dir, "server.log")
        self.env = dict(os.environ)
        for k in list(self.env):  # the test runner's own settings must not leak in
            if k.startswith(("DB_", "JWT_", "ADMIN_", "EVENT_", "LOG_")) or k in (
                    "ENCRYPTION_KEY", "BOING_ENV", "CORS_ORIGINS", "METRICS_TOKEN",
                    "MAX_BODY_BYTES", "MAX_HEADER_BYTES", "SECRET_HEADERS", "LISTEN", "DATA_DIR"):
                del self.env[k]
        self.env.update({"LOG_FILE": self.log_file,
                         "AUTH_RATE_LIMIT_PER_MINUTE": "100000",
                         "API_RATE_LIMIT_PER_MINUTE": "1000000",
                         "THREADS": "2"})
        if admin:
            self.env.update({"ADMIN_USERNAME": ADMIN_USER, "ADMIN_PASSWORD": ADMIN_PASSWORD})
        self.db_name = db_name
        self.own_db = False
        if BACKEND == "mysql":
            m = mysql_env()
            if not self.db_name:
                self.db_name = "boing_it_" + secrets.token_hex(5)
                mysql_cli(None, f"CREATE DATABASE `{self.db_name}` CHARACTER SET utf8mb4")
                self.own_db = True
            self.env.update({"DB_HOST": m["host"], "DB_PORT": m["port"], "DB_USER": m["user"],
                             "DB_PASSWORD": m["password"], "DB_NAME": self.db_name})
        self.env.update(env or {})
        self.args = list(args)
        self.proc = None
        self.port = None
        self.stdout_lines = []
        self.all_stdout = []  # every run's stdout, for the secrets-in-logs checks
        self._pump = None
        self._admin = None

    # --- process -------------------------------------------------------------------------------
    def start(self, timeout=30):
        self.stdout_lines = []
        self.port = None
        self._admin = None
        self.proc = subprocess.Popen(
            [BINARY, "--listen", self.listen, "--data-dir", self.data_dir] + self.args,
            env=self.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        ready = threading.Event()
        lines = self.stdout_lines

        def pump(proc):
            copy = None
            if OUTPUT_DIR:
                os.makedirs(OUTPUT_DIR, exist_ok=True)
                copy = open(os.path.join(OUTPUT_DIR, f"server.{proc.pid}.txt"), "ab")
            with open(os.path.join(self.data_dir, "stdout.txt"), "ab") as keep:
                for raw in proc.stdout:
                    keep.write(raw)
                    keep.flush()
                    if copy:
                        copy.write(raw)
                        copy.flush()
                    line = raw.decode("utf-8", "replace")
                    lines.append(line)
                    self.all_stdout.append(line)
                    if self.port is None and '"listening"' in line:
                        m = re.search(r'"port":(\d+)', line)
                        if m:
                            self.port = int(m.group(1))
                            ready.set()
            proc.stdout.close()
            if copy:
                copy.close()
            ready.set()

        self._pump = threading.Thread(target=pump, args=(self.proc,), daemon=True)
        self._pump.start()
        if not ready.wait(timeout) or self.port is None:
            self.kill()
            raise AssertionError(f"server did not start (exit {self.proc.returncode}):\n"
                                 + "".join(self.stdout_lines)[-4000:])
        return self

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def _join_pump(self):
        if self._pump:
            self._pump.join(10)

    def stop(self, timeout=30):
        """SIGTERM and wait; returns the exit status."""
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                self._join_pump()
                raise AssertionError(f"server ignored SIGTERM for {timeout} s")
        self._join_pump()
        return self.proc.returncode if self.proc else None

    def kill(self):
        """SIGKILL (a crash, as far as the server can tell)."""
        if self.alive():
            self.proc.kill()
            self.proc.wait()
        self._join_pump()

    def restart(self):
        self.stop()
        return self.start()

    def cleanup(self):
        self.kill()
        if KEEP:
            print(f"\nkept {self.data_dir}" + (f" and database {self.db_name}" if self.db_name else ""))
            return
        if self.own_db:
            mysql_cli(None, f"DROP DATABASE IF EXISTS `{self.db_name}`")
        if self.own_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)

    def stdout_text(self):
        return "".join(self.all_stdout)

    def log_files_text(self):
        out = []
        for f in sorted(glob.glob(os.path.join(self.data_dir, "*.log*"))):
            with open(f, "rb") as fh:
                out.append(fh.read().decode("utf-8", "replace"))
        return "".join(out)

    def secrets(self):
        out = {}
        with open(os.path.join(self.data_dir, "secrets.env")) as f:
            for line in f:
                line = line.strip()
                if "=" in line and not line.startswith("#"):
                    k, v = line.split("=", 1)
                    out[k] = v
        return out

    # --- database ------------------------------------------------------------------------------
    def db_tables(self):
        if BACKEND == "mysql":
            return [r[0] for r in mysql_rows(None, "SELECT table_name FROM information_schema.tables "
                                                   f"WHERE table_schema = '{self.db_name}'")]
        con = sqlite3.connect(f"file:{self.data_dir}/boing.db?mode=ro", uri=True, timeout=30)
        try:
            return [r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        finally:
            con.close()

    def db_query(self, sql):
        """Rows of a query as lists of strings (the same text on both backends)."""
        if BACKEND == "mysql":
            return mysql_rows(self.db_name, sql)
        con = sqlite3.connect(f"file:{self.data_dir}/boing.db?mode=ro", uri=True, timeout=30)
        try:
            return [["NULL" if v is None else (v.decode("latin-1") if isinstance(v, bytes) else str(v))
                     for v in row] for row in con.execute(sql)]
        finally:
            con.close()

    def db_dump(self):
        """Every row of every table, as text (binary columns decoded as latin-1)."""
        parts = []
        for t in self.db_tables():
            if BACKEND == "mysql":
                parts.append(mysql_cli(self.db_name, f"SELECT * FROM `{t}`", raw_bytes=True)
                             .decode("latin-1"))
                # The hex and base64 forms of binary columns would hide nothing, but a secret stored
                # as text is caught by the plain dump above.
            else:
                parts.append("\n".join("\t".join(r) for r in self.db_query(f'SELECT * FROM "{t}"')))
        return "\n".join(parts)

    def db_files_bytes(self):
        """The raw SQLite files (database, WAL), so freed pages and the journal are searched too."""
        out = b""
        for f in glob.glob(os.path.join(self.data_dir, "boing.db*")):
            with open(f, "rb") as fh:
                out += fh.read()
        return out.decode("latin-1")

    # --- HTTP ----------------------------------------------------------------------------------
    def request(self, method, path, body=None, token=None, **kw):
        return http_request(self.port, method, path, body=body, token=token, **kw)

    def get(self, path, token=None, **kw):
        return self.request("GET", path, token=token, **kw)

    def post(self, path, body=None, token=None, **kw):
        return self.request("POST", path, body=body, token=token, **kw)

    def put(self, path, body=None, token=None, **kw):
        return self.request("PUT", path, body=body, token=token, **kw)

    def delete(self, path, token=None, **kw):
        return self.request("DELETE", path, token=token, **kw)

    def register(self, username, password=PASSWORD, **extra):
        r = self.post("/api/register", dict({"username": username, "password": password}, **extra))
        assert r.status == 201, f"register {username}: {r}"
        return r.json()["token"]

    def login(self, username, password=PASSWORD):
        r = self.post("/api/login", {"username": username, "password": password})
        assert r.status == 200, f"login {username}: {r}"
        return r.json()["token"]

    def me(self, token):
        r = self.get("/api/me", token)
        assert r.status == 200, r
        return r.json()

    def admin_token(self):
        """A token of the admin created from ADMIN_USERNAME/ADMIN_PASSWORD."""
        if self._admin is None:
            self._admin = self.login(ADMIN_USER, ADMIN_PASSWORD)
        return self._admin

    def create_api(self, token, name="shop", **fields):
        r = self.post("/api/apis", dict({"name": name}, **fields), token)
        assert r.status == 201, f"create API: {r}"
        return r.json()

    def enroll_agent(self, admin_token, hostname="host-1"):
        r = self.post("/api/agents", {"name": hostname}, admin_token)
        assert r.status == 201, r
        et = r.json()["enrollment_token"]
        r = self.post("/api/agents/enroll", {"enrollment_token": et, "hostname": hostname,
                                             "version": "0.1.0"})
        assert r.status == 201, r
        return dict(r.json(), enrollment_token=et)

    def ingest(self, ev, **kw):
        return self.post("/api/ingest", ev, **kw)

    def batch(self, events, token=None, headers=None, **kw):
        return self.post("/api/ingest/batch", raw=json.dumps(events), token=token,
                         headers=headers, **kw)

    def logs(self, token, **filters):
        r = self.get("/api/logs?" + qs(**filters), token)
        assert r.status == 200, r
        return r.json()

    def all_logs(self, token, page=1000, **filters):
        """Every row through keyset pagination."""
        rows, cursor = [], None
        for _ in range(100000):
            j = self.logs(token, limit=page, cursor=cursor, **filters)
            rows += j["logs"]
            cursor = j.get("next_cursor")
            if not cursor:
                return rows
        raise AssertionError("pagination does not end")

    def ws(self, path="/ws/ingest", headers=None, timeout=10):
        import websocket  # Debian python3-websocket (websocket-client)
        return websocket.create_connection(f"ws://127.0.0.1:{self.port}{path}",
                                           header=headers or [], timeout=timeout)


def raw_http(port, data, timeout=10):
    """Sends raw bytes and returns (status, headers dict lower-cased, body bytes) or None."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        s.sendall(data)
        buf = b""
        while True:
            try:
                chunk = s.recv(65536)
            except (ConnectionResetError, socket.timeout):
                break
            if not chunk:
                break
            buf += chunk
            if b"\r\n\r\n" in buf:
                head, _, rest = buf.partition(b"\r\n\r\n")
                m = re.search(rb"(?i)content-length:\s*(\d+)", head)
                if m and len(rest) >= int(m.group(1)):
                    break
        if not buf:
            return None
        head, _, body = buf.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        hdrs = {}
        for line in lines[1:]:
            k, _, v = line.partition(":")
            hdrs[k.strip().lower()] = v.strip()
        return status, hdrs, body
    finally:
        s.close()


# --- events and tokens ---------------------------------------------------------------------------

def event(api_key=None, **fields):
    e = {"timestamp": time.time(), "method": "GET", "endpoint": "/users/42",
         "client_ip": "203.0.113.9", "status_code": 200, "latency_ms": 12.5, "body_size": 0}
    if api_key:
        e["api_key"] = api_key
    e.update(fields)
    return e


def gz(data):
    return gzip.compress(data.encode() if isinstance(data, str) else data)


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def forge_jwt(header, payload, secret, alg=hashlib.sha256):
    h = b64url(json.dumps(header, separators=(",", ":")).encode())
    p = b64url(json.dumps(payload, separators=(",", ":")).encode())
    sig = hmac.new(secret.encode(), f"{h}.{p}".encode(), alg).digest()
    return f"{h}.{p}.{b64url(sig)}"


def jwt_payload(token):
    p = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(p + "=" * (-len(p) % 4)))


def identity_of(identity_key_hex, credential):
    """EVENTS.md: HMAC-SHA256(identity_key, credential) truncated to 16 bytes, hex."""
    return hmac.new(bytes.fromhex(identity_key_hex), credential.encode(),
                    hashlib.sha256).digest()[:16].hex()


def nearest_rank(values, q):
    """The smallest value with at least q of the data at or below it."""
    import math
    v = sorted(values)
    return v[max(1, math.ceil(q * len(v))) - 1]


# --- test base ---------------------------------------------------------------------------------

class ServerTestCase(unittest.TestCase):
    """One server per test class; `server_env` adds environment variables."""
    server_env = {}
    maxDiff = 4000

    @classmethod
    def setUpClass(cls):
        cls.server = Server(cls.server_env)
        try:
            cls.server.start()
            cls.admin = cls.server.admin_token()
        except BaseException:
            cls.server.cleanup()
            raise

    @classmethod
    def tearDownClass(cls):
        try:
            cls.server.stop()
        finally:
            cls.server.cleanup()

    def assertError(self, r, status, field=None):
        """The documented error shape: the status, a JSON body with "error", and "field"."""
        self.assertEqual(r.status, status, r)
        self.assertTrue((r.header("Content-Type") or "").startswith("application/json"), r.headers)
        j = r.json()
        self.assertIsInstance(j.get("error"), str, r)
        self.assertTrue(j["error"], r)
        if field is not None:
            self.assertEqual(j.get("field"), field, r)
        return j

    def assertAlive(self):
        self.assertTrue(self.server.alive(), "the server process died:\n" +
                        "".join(self.server.stdout_lines)[-3000:])
        self.assertEqual(self.server.get("/healthz").status, 200)
