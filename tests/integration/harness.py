"""Starts the real boing-server for integration tests, on SQLite or a real MariaDB.

Backend: BOING_IT_BACKEND=sqlite|mysql. MariaDB comes from tests/support/mariadb.sh
(BOING_TEST_MYSQL_*); each server gets its own fresh database. Under CI=true a missing MariaDB
fails the test instead of skipping it.
"""
import base64
import gzip
import hashlib
import hmac
import json
import os
import re
import secrets
import signal
import subprocess
import tempfile
import threading
import time
import unittest
import http.client

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
BINARY = os.environ.get("BOING_SERVER_BIN", os.path.join(ROOT, "build/server/api/boing-server"))
BACKEND = os.environ.get("BOING_IT_BACKEND", "sqlite")


def mysql_env():
    host = os.environ.get("BOING_TEST_MYSQL_HOST")
    if not host:
        if os.environ.get("CI"):
            raise AssertionError("BOING_TEST_MYSQL_* not set under CI")
        raise unittest.SkipTest("no MariaDB (BOING_TEST_MYSQL_* unset)")
    return {
        "host": host,
        "port": os.environ["BOING_TEST_MYSQL_PORT"],
        "user": os.environ["BOING_TEST_MYSQL_USER"],
        "password": os.environ["BOING_TEST_MYSQL_PASSWORD"],
    }


def mysql_cli(db, sql):
    m = mysql_env()
    out = subprocess.run(
        ["mariadb", "--no-defaults", "-h", m["host"], "-P", m["port"], "-u", m["user"],
         "-p" + m["password"], "--batch", "--raw", "-e", sql] + ([db] if db else []),
        capture_output=True, text=True, check=True)
    return out.stdout


class Response:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers
        self.body = body

    def json(self):
        return json.loads(self.body)

    def header(self, name):
        for k, v in self.headers:
            if k.lower() == name.lower():
                return v
        return None

    def __repr__(self):
        return f"<{self.status} {self.body[:300]!r}>"


class Server:
    """One boing-server process with its own data dir (and database for MariaDB)."""

    def __init__(self, env=None, data_dir=None, db_name=None, listen="127.0.0.1:0"):
        self.listen = listen
        self.data_dir = data_dir or tempfile.mkdtemp(prefix="boing-it-")
        self.env = dict(os.environ)
        self.env.update({"LOG_FILE": os.path.join(self.data_dir, "server.log"),
                         "ADMIN_USERNAME": "admin1", "ADMIN_PASSWORD": "password-123",
                         "AUTH_RATE_LIMIT_PER_MINUTE": "1000",
                         "API_RATE_LIMIT_PER_MINUTE": "100000"})
        self.db_name = db_name
        if BACKEND == "mysql":
            m = mysql_env()
            self.db_name = db_name or "boing_it_" + secrets.token_hex(4)
            self.env.update({"DB_HOST": m["host"], "DB_PORT": m["port"], "DB_USER": m["user"],
                             "DB_PASSWORD": m["password"], "DB_NAME": self.db_name})
        self.env.update(env or {})
        self.proc = None
        self.port = None
        self.stdout_lines = []

    def start(self, timeout=20):
        self.stdout_lines = []
        self.proc = subprocess.Popen(
            [BINARY, "--listen", self.listen, "--data-dir", self.data_dir],
            env=self.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        ready = threading.Event()

        def pump():
            for line in self.proc.stdout:
                self.stdout_lines.append(line)
                m = re.search(r'"msg":"listening".*"port":(\d+)', line)
                if m:
                    self.port = int(m.group(1))
                    ready.set()
            ready.set()

        threading.Thread(target=pump, daemon=True).start()
        if not ready.wait(timeout) or self.port is None:
            self.kill()
            raise AssertionError("server did not start:\n" + "".join(self.stdout_lines))
        return self

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def drop_database(self):
        if BACKEND == "mysql" and self.db_name:
            mysql_cli(None, f"DROP DATABASE IF EXISTS `{self.db_name}`")

    def secrets(self):
        out = {}
        with open(os.path.join(self.data_dir, "secrets.env")) as f:
            for line in f:
                if "=" in line and not line.startswith("#"):
                    k, v = line.strip().split("=", 1)
                    out[k] = v
        return out

    # --- HTTP -----------------------------------------------------------------------------
    def request(self, method, path, body=None, token=None, headers=None, raw=None, timeout=30):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        h = {}
        if body is not None or raw is not None:
            h["Content-Type"] = "application/json"
        if token:
            h["Authorization"] = "Bearer " + token
        h.update(headers or {})
        data = raw if raw is not None else (json.dumps(body) if body is not None else None)
        conn.request(method, path, body=data, headers=h)
        r = conn.getresponse()
        resp = Response(r.status, r.getheaders(), r.read().decode("utf-8", "replace"))
        conn.close()
        return resp

    def get(self, path, token=None, **kw):
        return self.request("GET", path, token=token, **kw)

    def post(self, path, body=None, token=None, **kw):
        return self.request("POST", path, body=body, token=token, **kw)

    def register(self, username, password="password-123"):
        r = self.post("/api/register", {"username": username, "password": password})
        assert r.status == 201, r
        return r.json()["token"]

    def login(self, username, password="password-123"):
        r = self.post("/api/login", {"username": username, "password": password})
        assert r.status == 200, r
        return r.json()["token"]

    def create_api(self, token, name="shop", **fields):
        r = self.post("/api/apis", dict({"name": name}, **fields), token)
        assert r.status == 201, r
        return r.json()

    def admin_token(self):
        """The admin created from ADMIN_USERNAME/ADMIN_PASSWORD."""
        if not hasattr(self, "_admin"):
            self._admin = self.login("admin1")
        return self._admin


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


def forge_jwt(header, payload, secret):
    h = b64url(json.dumps(header).encode())
    p = b64url(json.dumps(payload).encode())
    sig = hmac.new(secret.encode(), f"{h}.{p}".encode(), hashlib.sha256).digest()
    return f"{h}.{p}.{b64url(sig)}"


class ServerTestCase(unittest.TestCase):
    """One server per test class."""
    server_env = {}

    @classmethod
    def setUpClass(cls):
        cls.server = Server(cls.server_env).start()
        cls.admin = cls.server.admin_token()

    @classmethod
    def tearDownClass(cls):
        cls.server.stop()
        cls.server.drop_database()
