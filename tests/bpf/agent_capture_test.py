#!/usr/bin/env python3
"""Real-kernel tests of boing-agent (ctest label `bpf`, run as root).

Every server is started by this test inside its own cgroup v2 directory, and the agent is scoped to
that cgroup in the kernel (--cgroup), so nothing else on the host is captured. A second server runs
outside the cgroup at the same time and must produce zero events. Captured payloads are never
printed: assertions compare only method, path, status, client IP, latency and the tls flag.

Under CI=true a kernel or permission refusal is a failure, never a skip.
"""
import argparse
import gzip
import http.client
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.request

AGENT = None
SERVER = None
PYTHON = "/usr/bin/python3"
HERE = os.path.dirname(os.path.abspath(__file__))
CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def skip_or_fail(reason):
    if CI:
        raise AssertionError("CI=true: cannot skip: " + reason)
    raise unittest.SkipTest(reason)


def free_port(family=socket.AF_INET, host="127.0.0.1"):
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def wait_port(host, port, timeout=15.0):
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with socket.socket(family, socket.SOCK_STREAM) as s:
                s.settimeout(0.5)
                s.connect((host, port))
                return
        except OSError:
            time.sleep(0.1)
    raise AssertionError(f"server on {host}:{port} did not start")


def cgroup2_mount():
    with open("/proc/self/mounts") as f:
        for line in f:
            dev, mnt, fstype = line.split()[:3]
            if fstype == "cgroup2":
                return mnt
    return None


class Fixture:
    """Servers in a scratch cgroup, one out-of-scope server, and the agent."""

    def __init__(self, name="boing-test"):
        self.procs = []
        self.tmp = tempfile.mkdtemp(prefix="boing-bpf-test-")
        mnt = cgroup2_mount()
        if not mnt:
            skip_or_fail("no cgroup v2 mount")
        self.cgroup = os.path.join(mnt, f"{name}-{os.getpid()}")
        os.makedirs(self.cgroup, exist_ok=True)
        self.agent = None
        self.agent_out = os.path.join(self.tmp, "events.jsonl")
        self.agent_err = os.path.join(self.tmp, "agent.err")
        self._events = []
        self._read_pos = 0

    def spawn(self, argv, in_scope=True, cwd=None, sub=None):
        """Starts argv in the scratch cgroup (or in its descendant `sub`, e.g. "pod/ctr")."""
        group = os.path.join(self.cgroup, sub) if sub else self.cgroup
        os.makedirs(group, exist_ok=True)
        procs_file = os.path.join(group, "cgroup.procs")

        def enter_cgroup():
            if in_scope:
                with open(procs_file, "w") as f:
                    f.write(str(os.getpid()))

        p = subprocess.Popen(argv, cwd=cwd or self.tmp, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL, preexec_fn=enter_cgroup)
        self.procs.append(p)
        return p

    def self_signed_cert(self):
        """A certificate for localhost and its key, in the fixture's directory: (cert, key)."""
        cert, key = os.path.join(self.tmp, "cert.pem"), os.path.join(self.tmp, "key.pem")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                        "-subj", "/CN=localhost", "-keyout", key, "-out", cert],
                       check=True, capture_output=True)
        return cert, key

    def start_agent(self, extra=(), mode=("--stdout",)):
        with open(self.agent_out, "w") as out, open(self.agent_err, "w") as err:
            self.agent = subprocess.Popen(
                [AGENT, *mode, "--cgroup", self.cgroup, *extra], stdout=out, stderr=err)
        deadline = time.time() + 60
        while time.time() < deadline:
            if self.agent.poll() is not None:
                raise AssertionError("agent exited: " + self.agent_stderr())
            if "capturing" in self.agent_stderr():
                return
            time.sleep(0.1)
        raise AssertionError("agent did not start: " + self.agent_stderr())

    def agent_stderr(self):
        with open(self.agent_err) as f:
            return f.read()

    def events(self, settle=1.0):
        time.sleep(settle)
        with open(self.agent_out) as f:
            f.seek(self._read_pos)
            data = f.read()
            self._read_pos = f.tell()
        for line in data.splitlines():
            if line.strip():
                self._events.append(json.loads(line))
        return list(self._events)

    def close(self):
        if self.agent and self.agent.poll() is None:
            self.agent.terminate()
            try:
                self.agent.wait(10)
            except subprocess.TimeoutExpired:
                self.agent.kill()
        for p in self.procs:
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(10)
                except subprocess.TimeoutExpired:
                    p.kill()
        # A cgroup can only be removed once empty, descendants first.
        groups = [root for root, _, _ in os.walk(self.cgroup)]
        for group in sorted(groups, key=len, reverse=True):
            for _ in range(50):
                try:
                    os.rmdir(group)
                    break
                except OSError:
                    time.sleep(0.1)
        shutil.rmtree(self.tmp, ignore_errors=True)


def curl(url, *extra):
    r = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", *extra, url],
                       capture_output=True, text=True, timeout=30)
    return int(r.stdout or 0)


class AgentCaptureTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        if os.geteuid() != 0:
            skip_or_fail("needs root")
        if not shutil.which("curl"):
            skip_or_fail("needs curl")
        f = cls.f = Fixture()
        try:
            os.chmod(f.tmp, 0o755)  # nginx workers run as www-data
            www = os.path.join(f.tmp, "www")
            os.makedirs(www)
            with open(os.path.join(www, "index.html"), "w") as fh:
                fh.write("hello\n")
            # In scope, started before the agent.
            cls.plain_port = free_port()
            f.spawn([PYTHON, "-m", "http.server", "--bind", "127.0.0.1", str(cls.plain_port)],
                    cwd=www)
            cls.app_port = free_port()
            f.spawn([PYTHON, os.path.join(HERE, "test_server.py"), "--port", str(cls.app_port)])
            cls.v6_port = free_port(socket.AF_INET6, "::1")
            f.spawn([PYTHON, os.path.join(HERE, "test_server.py"), "--bind", "::1",
                     "--port", str(cls.v6_port)])
            cert, key = f.self_signed_cert()
            cls.tls_port = free_port()
            f.spawn([PYTHON, os.path.join(HERE, "test_server.py"), "--port", str(cls.tls_port),
                     "--tls", cert, key])
            # In a descendant of the scoped cgroup (a container under a pod slice), running
            # before the agent: found through the kernel's ancestor check and, for TLS, through
            # the descendants' cgroup.procs.
            cls.nested_tls_port = free_port()
            f.spawn([PYTHON, os.path.join(HERE, "test_server.py"), "--port",
                     str(cls.nested_tls_port), "--tls", cert, key], sub="pod/ctr")
            cls.node_port = None
            if shutil.which("node"):
                cls.node_port = free_port()
                f.spawn(["node", os.path.join(HERE, "node_https_server.js"), str(cls.node_port),
                         key, cert])
            cls.nginx_port = None
            if shutil.which("nginx") or os.path.exists("/usr/sbin/nginx"):
                cls.nginx_port = free_port()
                conf = os.path.join(f.tmp, "nginx.conf")
                with open(conf, "w") as fh:
                    fh.write(f"""
daemon off; worker_processes 1; pid {f.tmp}/nginx.pid; error_log {f.tmp}/nginx.err;
events {{ worker_connections 64; }}
http {{
  access_log off;
  client_body_temp_path {f.tmp}/nb; proxy_temp_path {f.tmp}/np; fastcgi_temp_path {f.tmp}/nf;
  uwsgi_temp_path {f.tmp}/nu; scgi_temp_path {f.tmp}/ns;
  server {{ listen 127.0.0.1:{cls.nginx_port}; root {www};
           location /missing {{ return 404; }} }}
}}
""")
                f.spawn(["/usr/sbin/nginx", "-c", conf, "-p", f.tmp])
            # Out of scope: same kind of server, outside the cgroup.
            cls.outside_port = free_port()
            f.spawn([PYTHON, "-m", "http.server", "--bind", "127.0.0.1", str(cls.outside_port)],
                    in_scope=False, cwd=www)
            for port in (cls.plain_port, cls.app_port, cls.tls_port, cls.outside_port,
                         cls.nested_tls_port):
                wait_port("127.0.0.1", port)
            wait_port("::1", cls.v6_port)
            for port in (cls.nginx_port, cls.node_port):
                if port:
                    wait_port("127.0.0.1", port)
            f.start_agent()
        except BaseException:
            f.close()
            raise

    @classmethod
    def tearDownClass(cls):
        cls.f.close()

    def port_events(self, port, settle=1.0):
        return [e for e in self.f.events(settle) if e.get("server_port") == port]

    def assert_each_once(self, port, paths, status_of, tls=False, client_ip="127.0.0.1"):
        events = self.port_events(port, settle=1.5)
        by_path = {}
        for e in events:
            by_path.setdefault(e["endpoint"], []).append(e)
        for p in paths:
            got = by_path.get(p, [])
            self.assertEqual(len(got), 1, f"{p} seen {len(got)} times on port {port}")
            e = got[0]
            self.assertEqual(e["method"], "GET")
            self.assertEqual(e["status_code"], status_of(p))
            self.assertEqual(e["client_ip"], client_ip)
            self.assertEqual(e["tls"], tls)
        return events

    def test_python_http_server_every_request_once_and_nothing_out_of_scope(self):
        n = 20
        paths = [f"/index.html?plain={i}" if i % 4 else f"/missing/{i}" for i in range(n)]
        for p in paths:
            curl(f"http://127.0.0.1:{self.plain_port}{p}")
            curl(f"http://127.0.0.1:{self.outside_port}{p}")
        self.assert_each_once(self.plain_port, paths,
                              lambda p: 404 if p.startswith("/missing") else 200)
        self.assertEqual(self.port_events(self.outside_port, settle=0), [],
                         "a server outside the scope was captured")

    def test_keep_alive_and_pipelining(self):
        k = 7
        reqs = b"".join(f"GET /pipe/{i} HTTP/1.1\r\nHost: t\r\n\r\n".encode() for i in range(k))
        with socket.create_connection(("127.0.0.1", self.app_port)) as s:
            s.sendall(reqs)  # one write
            got = b""
            s.settimeout(5)
            while got.count(b"HTTP/1.1 200") < k:
                chunk = s.recv(65536)
                if not chunk:
                    break
                got += chunk
        self.assertEqual(got.count(b"HTTP/1.1 200"), k)
        # keep-alive through curl: several URLs on one connection
        urls = [f"http://127.0.0.1:{self.app_port}/ka/{i}" for i in range(5)]
        args = []
        for u in urls:
            args += ["-o", "/dev/null", u]
        subprocess.run(["curl", "-s", *args], check=True, timeout=30)
        self.assert_each_once(self.app_port, [f"/pipe/{i}" for i in range(k)], lambda p: 200)
        self.assert_each_once(self.app_port, [f"/ka/{i}" for i in range(5)], lambda p: 200)

    def test_latency_of_a_50ms_handler(self):
        # The bound is 50-60 ms on a quiet machine. Under CPU contention (ctest runs two
        # tests at once on 2 cores) the Python server itself may take longer than 50 ms, so the
        # upper bound is what the server measured for itself (from before it read the request line
        # to just before its response), plus 10 ms, and never less than the 60 ms.
        handler_ms = {}
        for i in range(3):
            r = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%header{x-handler-ms}",
                                f"http://127.0.0.1:{self.app_port}/sleep/50/{i}"],
                               capture_output=True, text=True, timeout=30)
            handler_ms[f"/sleep/50/{i}"] = float(r.stdout)
        events = self.assert_each_once(self.app_port, [f"/sleep/50/{i}" for i in range(3)],
                                       lambda p: 200)
        for e in events:
            if e["endpoint"] in handler_ms:
                self.assertGreaterEqual(e["latency_ms"], 50.0)
                self.assertLessEqual(e["latency_ms"], max(60.0, handler_ms[e["endpoint"]] + 10.0),
                                     f"server-side time {handler_ms[e['endpoint']]:.1f} ms")

    def test_ipv6_loopback(self):
        paths = [f"/v6/{i}" for i in range(5)]
        for p in paths:
            curl(f"http://[::1]:{self.v6_port}{p}")
        self.assert_each_once(self.v6_port, paths, lambda p: 200, client_ip="::1")

    def test_https_python_ssl_server_is_decrypted(self):
        paths = [f"/tls/{i}" for i in range(10)]
        for p in paths:
            self.assertEqual(curl(f"https://127.0.0.1:{self.tls_port}{p}", "-k"), 200)
        self.assert_each_once(self.tls_port, paths, lambda p: 200, tls=True)

    def test_https_node_static_openssl_is_decrypted(self):
        if not self.node_port:
            skip_or_fail("node not installed")
        paths = [f"/node/{i}" for i in range(10)]
        for p in paths:
            self.assertEqual(curl(f"https://127.0.0.1:{self.node_port}{p}", "-k"), 200)
        self.assert_each_once(self.node_port, paths, lambda p: 200, tls=True)

    def test_nginx(self):
        if not self.nginx_port:
            skip_or_fail("nginx not installed")
        n = 20
        paths = [f"/index.html?n={i}" if i % 5 else f"/missing/{i}" for i in range(n)]
        for p in paths:
            curl(f"http://127.0.0.1:{self.nginx_port}{p}")
        self.assert_each_once(self.nginx_port, paths,
                              lambda p: 404 if p.startswith("/missing") else 200)

    def test_server_started_after_the_agent(self):
        port = free_port()
        self.f.spawn([PYTHON, os.path.join(HERE, "test_server.py"), "--port", str(port)])
        wait_port("127.0.0.1", port)
        paths = [f"/late/{i}" for i in range(5)]
        for p in paths:
            curl(f"http://127.0.0.1:{port}{p}")
        self.assert_each_once(port, paths, lambda p: 200)

    def test_descendant_cgroups_are_in_scope(self):
        # Started before the agent in scope/pod/ctr, HTTPS through libssl.
        paths = [f"/nested-tls/{i}" for i in range(5)]
        for p in paths:
            curl(f"https://127.0.0.1:{self.nested_tls_port}{p}", "-k")
        self.assert_each_once(self.nested_tls_port, paths, lambda p: 200, tls=True)
        # Started after the agent, two levels further down.
        port = free_port()
        self.f.spawn([PYTHON, os.path.join(HERE, "test_server.py"), "--port", str(port)],
                     sub="pod/ctr/deeper/still")
        wait_port("127.0.0.1", port)
        paths = [f"/nested-late/{i}" for i in range(5)]
        for p in paths:
            curl(f"http://127.0.0.1:{port}{p}")
        self.assert_each_once(port, paths, lambda p: 200)

    def test_closed_and_reused_fd_gives_two_connections(self):
        for i in range(2):
            with socket.create_connection(("127.0.0.1", self.app_port)) as s:
                s.sendall(f"GET /reuse/{i} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n".encode())
                s.settimeout(5)
                while s.recv(65536):
                    pass
        self.assert_each_once(self.app_port, [f"/reuse/{i}" for i in range(2)], lambda p: 200)


# Waits for argv[1] to exist, then runs the script argv[2] with the remaining arguments: nothing
# that loads libssl is imported before that (http.server imports http.client, which imports ssl).
DLOPEN_LATER = """
import os, runpy, sys, time
trigger = sys.argv[1]
while not os.path.exists(trigger):
    time.sleep(0.05)
sys.argv = sys.argv[2:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


class DlopenAfterStartTest(unittest.TestCase):
    """A process already running when the agent starts, with no libssl mapped (so nothing in
    scope gives the agent a reason to attach OpenSSL probes), loads libssl later through Python's
    ssl module; the agent must notice the new mapping, attach, and decrypt its HTTPS traffic."""

    @classmethod
    def setUpClass(cls):
        if os.geteuid() != 0:
            skip_or_fail("needs root")
        f = cls.f = Fixture("boing-dlopen")
        try:
            cls.cert, cls.key = f.self_signed_cert()
            cls.port = free_port()
            cls.trigger = os.path.join(f.tmp, "load-ssl-now")
            cls.proc = f.spawn([PYTHON, "-c", DLOPEN_LATER, cls.trigger,
                                os.path.join(HERE, "test_server.py"), "--port", str(cls.port),
                                "--tls", cls.cert, cls.key])
            time.sleep(0.5)  # the interpreter is up and waiting
            f.start_agent()
        except BaseException:
            f.close()
            raise

    @classmethod
    def tearDownClass(cls):
        cls.f.close()

    def test_libssl_loaded_after_the_agent_started_is_probed_and_decrypted(self):
        maps = f"/proc/{self.proc.pid}/maps"
        with open(maps) as fh:
            self.assertNotIn("libssl", fh.read(), "libssl must not be mapped before the trigger")
        self.assertNotIn("libssl", self.f.agent_stderr(), "no OpenSSL probes before the dlopen")
        with open(self.trigger, "w"):
            pass
        wait_port("127.0.0.1", self.port)
        with open(maps) as fh:
            self.assertIn("libssl", fh.read())
        # The agent attaches when it reads the mmap record of the library (documented limit: calls
        # in the first ~100 ms after the dlopen can be missed); wait for its log line.
        deadline = time.time() + 10
        while time.time() < deadline and f"seen in pid {self.proc.pid}" not in self.f.agent_stderr():
            time.sleep(0.1)
        self.assertIn(f"seen in pid {self.proc.pid}", self.f.agent_stderr())
        paths = [f"/dlopen/{i}" for i in range(10)]
        for p in paths:
            self.assertEqual(curl(f"https://127.0.0.1:{self.port}{p}", "-k"), 200)
        time.sleep(1.5)
        events = [e for e in self.f.events() if e.get("server_port") == self.port]
        by_path = {}
        for e in events:
            by_path.setdefault(e["endpoint"], []).append(e)
        for p in paths:
            got = by_path.get(p, [])
            self.assertEqual(len(got), 1, f"{p} seen {len(got)} times")
            self.assertEqual((got[0]["method"], got[0]["status_code"], got[0]["tls"]),
                             ("GET", 200, True))


class AgentToServerTest(unittest.TestCase):
    """End to end: real capture of a Python http.server -> spool -> uplink -> a real boing-server
    (SQLite), enrolled with a token from POST /api/agents; events read back through GET /api/logs
    and the kernel's per-IP rate counters through the heartbeat in GET /api/agents."""

    SECRET = "bpf-e2e-raw-bearer-"

    @classmethod
    def setUpClass(cls):
        if os.geteuid() != 0:
            skip_or_fail("needs root")
        if not SERVER:
            skip_or_fail("--server (boing-server binary) not given")
        sys.path.insert(0, os.path.join(os.path.dirname(HERE), "integration"))
        import harness
        harness.BINARY = SERVER
        cls.harness = harness
        cls.server_port = free_port()
        cls.server = harness.Server(listen=f"127.0.0.1:{cls.server_port}").start()
        cls.admin = cls.server.admin_token()
        cls.metrics_port = free_port()
        f = cls.f = Fixture("boing-e2e")
        try:
            www = os.path.join(f.tmp, "www")
            os.makedirs(os.path.join(www, "e2e"))
            for i in range(10):
                if i % 3:
                    with open(os.path.join(www, "e2e", f"{i}.html"), "w") as fh:
                        fh.write("hello\n")
            cls.port = free_port()
            f.spawn([PYTHON, "-m", "http.server", "--bind", "127.0.0.1", str(cls.port)], cwd=www)
            wait_port("127.0.0.1", cls.port)
            et = cls.server.post("/api/agents", {"name": "bpf-e2e"}, cls.admin).json()[
                "enrollment_token"]
            cls.agent_mode = ("--server", f"http://127.0.0.1:{cls.server_port}",
                              "--enroll-token", et, "--state-dir", os.path.join(f.tmp, "state"),
                              "--batch-interval-ms", "200", "--heartbeat-interval", "1",
                              "--metrics-listen", f"127.0.0.1:{cls.metrics_port}", "--no-tls")
            f.start_agent(mode=cls.agent_mode)
        except BaseException:
            f.close()
            cls.server.kill()
            raise

    @classmethod
    def tearDownClass(cls):
        cls.f.close()
        cls.server.kill()
        shutil.rmtree(cls.server.data_dir, ignore_errors=True)

    def logs(self, prefix="/e2e/"):
        r = self.server.get(f"/api/logs?endpoint={prefix}*&limit=1000", self.admin)
        self.assertEqual(r.status, 200)
        return r.json()["logs"]

    def metric(self, name):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics",
                                        timeout=2) as r:
                for line in r.read().decode().splitlines():
                    if line.startswith(name + " "):
                        return float(line.split()[1])
        except OSError:
            pass
        return None

    def wait_metric(self, name, value, timeout=20):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.metric(name) == value:
                return
            time.sleep(0.2)
        self.fail(f"{name} did not reach {value} (last {self.metric(name)})")

    def all_logs(self, prefix):
        out, cursor = [], None
        while True:
            q = f"/api/logs?endpoint={prefix}*&limit=1000" + (f"&cursor={cursor}" if cursor else "")
            r = self.server.get(q, self.admin)
            self.assertEqual(r.status, 200)
            body = r.json()
            out += body["logs"]
            cursor = body.get("next_cursor")
            if not cursor or not body["logs"]:
                return out

    def test_outage_with_the_agent_sigkilled_loses_nothing(self):
        """Under steady load the server stops for 30 s; requests keep coming and are spooled; the
        agent is SIGKILLed during the outage; server and agent restart and the load goes on:
        every request arrives once, seq in request order."""
        self.wait_metric("boing_agent_spool_pending_events", 0)
        spooled0 = self.metric("boing_agent_events_spooled_total")
        sent, paused, stop = [], threading.Event(), threading.Event()
        idle = threading.Event()

        def load():
            n = 0
            while not stop.is_set():
                if paused.is_set():
                    idle.set()
                    time.sleep(0.01)
                    continue
                idle.clear()
                path = f"/outage/{n}"
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
                conn.request("GET", path)
                conn.getresponse().read()
                conn.close()
                sent.append(path)
                n += 1
                time.sleep(0.005)

        loader = threading.Thread(target=load)
        loader.start()
        try:
            time.sleep(2)
            self.server.stop()
            stopped_at, sent_at_stop = time.time(), len(sent)
            time.sleep(30)  # the outage, with requests flowing and being spooled
            paused.set()
            self.assertTrue(idle.wait(10))
            during = len(sent) - sent_at_stop
            # Requests still in the ring buffer or the tracker die with a SIGKILLed agent; the
            # test is about what was spooled: kill once every request sent is on disk.
            self.wait_metric("boing_agent_events_spooled_total", spooled0 + len(sent))
            self.f.agent.kill()  # SIGKILL, with the spool holding the outage's events
            self.f.agent.wait()
            outage_s = time.time() - stopped_at
            type(self).server = self.harness.Server(data_dir=self.server.data_dir,
                                                    listen=f"127.0.0.1:{self.server_port}").start()
            type(self).admin = self.server.admin_token()
            self.f.start_agent(mode=self.agent_mode)
            m = re.search(r"(\d+) events waiting", self.f.agent_stderr())
            self.assertIsNotNone(m, self.f.agent_stderr())
            self.assertGreater(int(m.group(1)), 0)
            paused.clear()
            time.sleep(3)
        finally:
            stop.set()
            paused.clear()
            loader.join()
        self.assertGreaterEqual(outage_s, 30)
        self.assertGreater(during, 1000, "too little load during the outage")
        deadline = time.time() + 60
        logs = []
        while time.time() < deadline and len(logs) < len(sent):
            time.sleep(1)
            logs = self.all_logs("/outage/")
        time.sleep(1)  # a resent copy would show up now
        logs = self.all_logs("/outage/")
        got = [e["endpoint"] for e in sorted(logs, key=lambda e: e["seq"])]
        print(f"outage: {len(sent)} requests, {during} during a {outage_s:.0f} s outage, "
              f"{len(logs)} stored", file=sys.stderr)
        self.assertEqual(len(got), len(sent))
        self.assertEqual(got, sent, "each request once, seq in request order")
        seqs = sorted(e["seq"] for e in logs)
        self.assertEqual(seqs, list(range(seqs[0], seqs[0] + len(sent))), "no gap in seq")

    def test_captured_requests_reach_the_server_once_with_rates_in_the_heartbeat(self):
        n = 10
        paths = [f"/e2e/{i}.html" for i in range(n)]  # files exist for i % 3 != 0
        for i, p in enumerate(paths):
            curl(f"http://127.0.0.1:{self.port}{p}", "-H",
                 f"Authorization: Bearer {self.SECRET}{i % 2}")
        deadline = time.time() + 30
        logs = []
        while time.time() < deadline and len(logs) < n:
            time.sleep(0.5)
            logs = self.logs()
        by_path = {}
        for e in logs:
            by_path.setdefault(e["endpoint"], []).append(e)
        for i, p in enumerate(paths):
            got = by_path.get(p, [])
            self.assertEqual(len(got), 1, f"{p} stored {len(got)} times")
            e = got[0]
            self.assertEqual(e["method"], "GET")
            self.assertEqual(e["status_code"], 200 if i % 3 else 404)
            self.assertEqual(e["client_ip"], "127.0.0.1")
            self.assertEqual(e["server_port"], self.port)
            self.assertEqual(len(e["identity"]), 32)
        self.assertEqual(len({e["identity"] for e in logs}), 2, "two callers, two identities")
        self.assertEqual(sorted(e["seq"] for e in logs), list(range(1, n + 1)))
        self.assertFalse(self.SECRET in json.dumps(logs), "raw bearer token reached the server")
        for root, _, files in os.walk(os.path.join(self.f.tmp, "state")):
            for name in files:
                with open(os.path.join(root, name), "rb") as fh:
                    self.assertFalse(self.SECRET.encode() in fh.read(),
                                     "raw bearer token in the spool/state file " + name)

        def rates():
            agents = self.server.get("/api/agents", self.admin).json()["agents"]
            return agents[0] if agents and agents[0].get("rates") else None
        agent = None
        deadline = time.time() + 15
        while time.time() < deadline and not agent:
            curl(f"http://127.0.0.1:{self.port}/e2e/rate")
            time.sleep(0.2)
            agent = rates()
        self.assertIsNotNone(agent, "no heartbeat with kernel rate samples")
        self.assertIn("127.0.0.1", {r["ip"] for r in agent["rates"]})
        self.assertGreater(agent["counters"].get("kernel_events", 0), 0)


class UplinkRecorder:
    """A loopback TCP relay between the agent and boing-server that keeps every byte the agent
    sends, so a test can look at the uplink exactly as it leaves the agent (request heads and
    gzip'ed bodies decoded)."""

    def __init__(self, target_port):
        self.target_port = target_port
        self.lock = threading.Lock()
        self.streams = []  # one bytearray per connection, agent -> server
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            try:
                u = socket.create_connection(("127.0.0.1", self.target_port))
            except OSError:
                c.close()  # the server is down: the agent sees a refused/reset connection
                continue
            buf = bytearray()
            with self.lock:
                self.streams.append(buf)
            threading.Thread(target=self._pump, args=(c, u, buf), daemon=True).start()
            threading.Thread(target=self._pump, args=(u, c, None), daemon=True).start()

    def _pump(self, src, dst, keep):
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                if keep is not None:
                    with self.lock:
                        keep += data
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def requests(self):
        """Every complete request the agent sent: (head bytes, decoded body bytes)."""
        with self.lock:
            streams = [bytes(b) for b in self.streams]
        out = []
        for data in streams:
            pos = 0
            while True:
                end = data.find(b"\r\n\r\n", pos)
                if end < 0:
                    break
                head = data[pos:end]
                m = re.search(rb"(?im)^content-length:\s*(\d+)", head)
                if re.search(rb"(?im)^transfer-encoding:", head):
                    raise AssertionError("uplink request with a transfer coding: not decoded here")
                n = int(m.group(1)) if m else 0
                if end + 4 + n > len(data):
                    break  # still in flight
                body = data[end + 4:end + 4 + n]
                if re.search(rb"(?im)^content-encoding:\s*gzip", head):
                    body = gzip.decompress(body)
                out.append((head, body))
                pos = end + 4 + n
        return out

    def raw(self):
        with self.lock:
            return b"".join(bytes(b) for b in self.streams)

    def close(self):
        self.sock.close()


NGINX_CONF = """
daemon off; worker_processes 1; pid {tmp}/nginx.pid; error_log {tmp}/nginx.err;
events {{ worker_connections 256; }}
http {{
  log_format paths '$request_uri $status';
  access_log {tmp}/access.log paths;
  client_body_temp_path {tmp}/nb; proxy_temp_path {tmp}/np; fastcgi_temp_path {tmp}/nf;
  uwsgi_temp_path {tmp}/nu; scgi_temp_path {tmp}/ns;
  keepalive_requests 1000000;
  server {{
    listen 127.0.0.1:{http_port};
    listen 127.0.0.1:{https_port} ssl;
    ssl_certificate {cert}; ssl_certificate_key {key};
    root {www};
    location /missing {{ return 404; }}
    location /wrk/ {{ return 200 "ok\\n"; }}
  }}
}}
"""


class NginxToServerTest(unittest.TestCase):
    """nginx (HTTP and HTTPS through Debian's libssl) in the test's cgroup, captured by the agent
    and delivered to a real boing-server through UplinkRecorder: each request stored once with
    method, path, status, client IP and the tls flag; wrk with keep-alive: every request nginx
    logged arrives; the raw bearer token sent by the clients is nowhere in the uplink bytes, the
    spool or the server."""

    SECRET = "nginx-raw-bearer-3f9c1d"

    @classmethod
    def setUpClass(cls):
        if os.geteuid() != 0:
            skip_or_fail("needs root")
        if not SERVER:
            skip_or_fail("--server (boing-server binary) not given")
        if not os.path.exists("/usr/sbin/nginx"):
            skip_or_fail("nginx not installed (nginx-light)")
        sys.path.insert(0, os.path.join(os.path.dirname(HERE), "integration"))
        import harness
        harness.BINARY = SERVER
        cls.server = harness.Server().start()
        cls.admin = cls.server.admin_token()
        cls.recorder = UplinkRecorder(cls.server.port)
        cls.metrics_port = free_port()
        f = cls.f = Fixture("boing-nginx")
        try:
            os.chmod(f.tmp, 0o755)  # nginx workers run as www-data
            www = os.path.join(f.tmp, "www")
            os.makedirs(os.path.join(www, "n"))
            for i in range(24):
                if i % 4:
                    with open(os.path.join(www, "n", f"{i}.html"), "w") as fh:
                        fh.write("hello\n")
            cert, key = f.self_signed_cert()
            cls.http_port, cls.https_port = free_port(), free_port()
            conf = os.path.join(f.tmp, "nginx.conf")
            with open(conf, "w") as fh:
                fh.write(NGINX_CONF.format(tmp=f.tmp, www=www, cert=cert, key=key,
                                           http_port=cls.http_port, https_port=cls.https_port))
            cls.access_log = os.path.join(f.tmp, "access.log")
            f.spawn(["/usr/sbin/nginx", "-c", conf, "-p", f.tmp])
            wait_port("127.0.0.1", cls.http_port)
            wait_port("127.0.0.1", cls.https_port)
            et = cls.server.post("/api/agents", {"name": "bpf-nginx"}, cls.admin).json()[
                "enrollment_token"]
            cls.state_dir = os.path.join(f.tmp, "state")
            f.start_agent(mode=("--server", f"http://127.0.0.1:{cls.recorder.port}",
                                "--enroll-token", et, "--state-dir", cls.state_dir,
                                "--batch-interval-ms", "200", "--batch-size", "500",
                                "--metrics-listen", f"127.0.0.1:{cls.metrics_port}"))
        except BaseException:
            f.close()
            cls.recorder.close()
            cls.server.kill()
            raise

    @classmethod
    def tearDownClass(cls):
        cls.f.close()
        cls.recorder.close()
        cls.server.kill()
        shutil.rmtree(cls.server.data_dir, ignore_errors=True)

    def logs(self, prefix):
        return self.server.all_logs(self.admin, endpoint=prefix + "*")

    def wait_logs(self, prefix, n, timeout=60):
        deadline = time.time() + timeout
        logs = []
        while time.time() < deadline:
            logs = self.logs(prefix)
            if len(logs) >= n:
                break
            time.sleep(0.5)
        time.sleep(1)  # a second copy would show up now
        return self.logs(prefix)

    def nginx_logged(self, prefix):
        with open(self.access_log) as fh:
            return [line.split()[0] for line in fh if line.startswith(prefix)]

    def test_https_and_http_each_request_once_with_method_path_status_ip(self):
        n = 24  # /n/<i>.html exists unless i % 4 == 0 (nginx answers 404); odd i over HTTPS
        cases = [("https" if i % 2 else "http", f"/n/{i}.html", 404 if i % 4 == 0 else 200)
                 for i in range(n)]
        for scheme, path, status in cases:
            port = self.https_port if scheme == "https" else self.http_port
            self.assertEqual(curl(f"{scheme}://127.0.0.1:{port}{path}", "-k", "-H",
                                  f"Authorization: Bearer {self.SECRET}"), status)
        logs = self.wait_logs("/n/", n)
        by_path = {}
        for e in logs:
            by_path.setdefault(e["endpoint"], []).append(e)
        self.assertEqual(sorted(by_path), sorted(p for _, p, _ in cases))
        for scheme, path, status in cases:
            got = by_path.get(path, [])
            self.assertEqual(len(got), 1, f"{scheme} {path} stored {len(got)} times")
            e = got[0]
            self.assertEqual(e["method"], "GET")
            self.assertEqual(e["status_code"], status, path)
            self.assertEqual(e["client_ip"], "127.0.0.1")
            self.assertEqual(e["tls"], scheme == "https", path)
            self.assertEqual(e["server_port"],
                             self.https_port if scheme == "https" else self.http_port)
        self.assertEqual(len({e["identity"] for e in logs}), 1, "one caller, one identity")
        self.assert_secret_absent()

    def test_wrk_keep_alive_every_request_arrives(self):
        secs, conns = 3, 4
        r = subprocess.run(["wrk", "-t1", f"-c{conns}", f"-d{secs}s",
                            "-s", os.path.join(HERE, "wrk_paths.lua"),
                            f"http://127.0.0.1:{self.http_port}", "--", self.SECRET],
                           capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        m = re.search(r"(\d+) requests in", r.stdout)
        self.assertIsNotNone(m, r.stdout)
        wrk_count = int(m.group(1))
        self.assertNotIn("Non-2xx", r.stdout)
        time.sleep(1)  # nginx writes its access log line after the response
        logged = self.nginx_logged("/wrk/")
        self.assertEqual(len(logged), len(set(logged)), "wrk sent a path twice")
        # nginx may have answered requests wrk sent just before it stopped (not in its count).
        self.assertGreaterEqual(len(logged), wrk_count)
        self.assertLessEqual(len(logged), wrk_count + conns)
        self.assertGreater(wrk_count, 1000, "wrk made too few requests to be a load test")
        logs = self.wait_logs("/wrk/", len(logged), timeout=120)
        stored = [e["endpoint"] for e in logs]
        dup = len(stored) - len(set(stored))
        missing = set(logged) - set(stored)
        self.assertEqual((dup, len(missing)), (0, 0),
                         f"{len(logged)} requests served, {len(stored)} stored, {dup} twice, "
                         f"{len(missing)} missing (e.g. {sorted(missing)[:3]}); "
                         f"agent: {self.kernel_drops()}")
        self.assertEqual(set(stored), set(logged))
        for e in logs:
            self.assertEqual((e["method"], e["status_code"], e["client_ip"], e["tls"]),
                             ("GET", 200, "127.0.0.1", False))
        self.assert_secret_absent()

    def kernel_drops(self):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics",
                                        timeout=2) as r:
                return [line for line in r.read().decode().splitlines()
                        if "drop" in line and not line.startswith("#")]
        except OSError as e:
            return [str(e)]

    def assert_secret_absent(self):
        secret = self.SECRET.encode()
        reqs = self.recorder.requests()
        self.assertTrue(any(b"/api/ingest" in h for h, _ in reqs), "no uplink batch recorded")
        bodies = b"".join(b for _, b in reqs)
        # The recorder must have seen the events themselves (else the check below proves nothing).
        self.assertIn(b'"client_ip"', bodies)
        for head, body in reqs:
            self.assertNotIn(secret, head, "raw bearer token in an uplink request head")
            self.assertNotIn(secret, body, "raw bearer token in an uplink body (decoded)")
        self.assertNotIn(secret, self.recorder.raw())
        for root, _, files in os.walk(self.state_dir):
            for name in files:
                with open(os.path.join(root, name), "rb") as fh:
                    self.assertNotIn(secret, fh.read(), "raw bearer token in " + name)
        self.assertNotIn(self.SECRET, self.server.db_files_bytes())


def start_paths_nginx(f):
    """nginx in the fixture's cgroup whose answer depends on the path (a request paired with
    another's answer shows) and which logs "<path> <status>" per request; returns its port."""
    os.chmod(f.tmp, 0o755)
    port = free_port()
    conf = os.path.join(f.tmp, "nginx.conf")
    with open(conf, "w") as fh:
        fh.write(f"""
daemon off; worker_processes 1; pid {f.tmp}/nginx.pid; error_log {f.tmp}/nginx.err;
events {{ worker_connections 64; }}
http {{
  log_format paths "$request_uri $status";
  access_log {f.tmp}/access.log paths;
  client_body_temp_path {f.tmp}/nb; proxy_temp_path {f.tmp}/np; fastcgi_temp_path {f.tmp}/nf;
  uwsgi_temp_path {f.tmp}/nu; scgi_temp_path {f.tmp}/ns;
  keepalive_requests 1000000;
  server {{
    listen 127.0.0.1:{port};
    location ~ [13579]$ {{ return 404 "odd\\n"; }}
    location /wrk/ {{ return 200 "even\\n"; }}
  }}
}}
""")
    f.spawn(["/usr/sbin/nginx", "-c", conf, "-p", f.tmp])
    wait_port("127.0.0.1", port)
    return port


class TinyRingBufferTest(unittest.TestCase):
    """A ring buffer of one page and an agent stopped (SIGSTOP) now and then under wrk load: the
    kernel loses records, and every request nginx served is accounted for exactly: captured as an
    event with the right status (no request paired with another's answer), or counted as lost
    (in the kernel or by the tracker) or unanswered. The sending application is unaffected."""

    def test_every_request_is_captured_or_counted_when_the_ring_overflows(self):
        if os.geteuid() != 0:
            skip_or_fail("needs root")
        if not os.path.exists("/usr/sbin/nginx") or not shutil.which("wrk"):
            skip_or_fail("needs nginx and wrk")
        f = Fixture("boing-tiny-ring")
        self.addCleanup(f.close)
        port = start_paths_nginx(f)
        f.start_agent(extra=("--ringbuf-bytes", "4096", "--max-payload", "256"))

        stop = threading.Event()

        def pause_agent():
            while not stop.wait(0.4):
                os.kill(f.agent.pid, signal.SIGSTOP)
                time.sleep(0.2)
                os.kill(f.agent.pid, signal.SIGCONT)

        pauser = threading.Thread(target=pause_agent)
        pauser.start()
        try:
            r = subprocess.run(["wrk", "-t1", "-c4", "-d3s", "-s",
                                os.path.join(HERE, "wrk_paths.lua"),
                                f"http://127.0.0.1:{port}", "--", "-"],
                               capture_output=True, text=True, timeout=60)
        finally:
            stop.set()
            pauser.join()
            os.kill(f.agent.pid, signal.SIGCONT)
        self.assertEqual(r.returncode, 0, r.stderr)
        time.sleep(1)
        f.agent.terminate()
        f.agent.wait(30)
        err = f.agent_stderr()

        def counter(line_prefix, name):
            line = next((ln for ln in err.splitlines() if line_prefix in ln), None)
            self.assertIsNotNone(line, f"no '{line_prefix}' line in the agent's log")
            m = re.search(rf"\b{name}=(\d+)", line)
            self.assertIsNotNone(m, f"{name} missing in: {line}")
            return int(m.group(1))

        ring_full = counter("kernel counters:", "drop_ringbuf_full")
        kernel_lost = counter("kernel counters:", "lost_requests")
        tracker_lost = counter("tracker:", "lost_requests")
        unanswered = counter("tracker:", "unanswered_requests")
        with open(os.path.join(f.tmp, "access.log")) as fh:
            served = {}
            for line in fh:
                path, status = line.split()
                if path.startswith("/wrk/"):
                    served[path] = int(status)
        events = [e for e in f.events(settle=0) if e.get("server_port") == port]
        captured = [e["endpoint"] for e in events]
        summary = (f"served {len(served)}, captured {len(captured)}, kernel lost {kernel_lost}, "
                   f"tracker lost {tracker_lost}, unanswered {unanswered}, "
                   f"ring full {ring_full}")
        print("tiny ring buffer: " + summary, file=sys.stderr)
        self.assertGreater(len(served), 1000, "wrk made too few requests: " + summary)
        self.assertGreater(ring_full, 0, "the ring never overflowed: " + summary)
        self.assertEqual(len(captured), len(set(captured)), "a request captured twice")
        self.assertLessEqual(set(captured), set(served), "captured a request nginx never served")
        for e in events:
            self.assertEqual(e["status_code"], served[e["endpoint"]],
                             f"{e['endpoint']} paired with another request's answer")
        self.assertEqual(len(captured) + kernel_lost + tracker_lost + unanswered, len(served),
                         summary)


def wrk_latency(url, seconds, connections=4):
    """Runs wrk with its latency distribution; returns (requests, p50 ms, p99 ms)."""
    r = subprocess.run(["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", "-s",
                        os.path.join(HERE, "wrk_paths.lua"), url, "--", "-"],
                       capture_output=True, text=True, timeout=seconds + 60)
    if r.returncode != 0:
        raise AssertionError("wrk: " + r.stderr)
    unit = {"us": 0.001, "ms": 1.0, "s": 1000.0}

    def pct(p):
        m = re.search(rf"^\s+{p}%\s+([\d.]+)(us|ms|s)\s*$", r.stdout, re.M)
        if not m:
            raise AssertionError(f"no {p}% line in wrk's output:\n{r.stdout}")
        return float(m.group(1)) * unit[m.group(2)]
    m = re.search(r"(\d+) requests in", r.stdout)
    return int(m.group(1)), pct(50), pct(99)


class RingBufferBurstLatencyTest(unittest.TestCase):
    """A burst that overflows a one-page ring buffer (the agent also stopped now and then, so that
    nobody drains it): the drops are counted by the agent, and the application's latency — nginx in
    the test's cgroup under wrk — is measured with and without the agent attached, in alternating
    rounds. The kernel side only ever fails a reservation when the ring is full; it never waits for
    the agent, so the application's p99 stays within P99_BOUND of the runs without the agent."""
    ROUNDS = 3
    SECONDS = 3
    # With the agent, p99 may be at most this factor of the worst p99 without it, plus 1 ms of
    # scheduling noise (2 shared cores: the agent's own CPU time competes with nginx and wrk).
    P99_FACTOR = 2.0
    P99_SLACK_MS = 1.0

    def test_burst_overflowing_the_ring_is_counted_and_the_app_is_not_slowed(self):
        if os.geteuid() != 0:
            skip_or_fail("needs root")
        if not os.path.exists("/usr/sbin/nginx") or not shutil.which("wrk"):
            skip_or_fail("needs nginx and wrk")
        f = Fixture("boing-ring-burst")
        self.addCleanup(f.close)
        port = start_paths_nginx(f)
        url = f"http://127.0.0.1:{port}"
        wrk_latency(url, 1)  # warm up
        without, with_agent, drops, served_with = [], [], [], 0
        for i in range(self.ROUNDS):
            without.append(wrk_latency(url, self.SECONDS))
            f.start_agent(extra=("--ringbuf-bytes", "4096", "--max-payload", "256"))
            stop = threading.Event()

            def pause_agent(agent=f.agent):
                while not stop.wait(0.3):
                    os.kill(agent.pid, signal.SIGSTOP)
                    time.sleep(0.3)
                    os.kill(agent.pid, signal.SIGCONT)

            pauser = threading.Thread(target=pause_agent)
            pauser.start()
            try:
                with_agent.append(wrk_latency(url, self.SECONDS))
            finally:
                stop.set()
                pauser.join()
                os.kill(f.agent.pid, signal.SIGCONT)
            served_with += with_agent[-1][0]
            f.agent.terminate()
            f.agent.wait(30)
            err = f.agent_stderr()
            line = next((ln for ln in err.splitlines() if "kernel counters:" in ln), "")
            m = re.search(r"\bdrop_ringbuf_full=(\d+)", line)
            self.assertIsNotNone(m, "no ring-full counter in the agent's log:\n" + err[-2000:])
            drops.append(int(m.group(1)))
        p50_without = statistics.median(r[1] for r in without)
        p50_with = statistics.median(r[1] for r in with_agent)
        p99_without = max(r[2] for r in without)
        p99_with = statistics.median(r[2] for r in with_agent)
        bound = self.P99_FACTOR * p99_without + self.P99_SLACK_MS
        summary = (f"{self.ROUNDS} rounds of {self.SECONDS} s, wrk -c4 against nginx: without the "
                   f"agent p50 {p50_without:.3f} ms, p99 {p99_without:.3f} ms (worst round), "
                   f"{sum(r[0] for r in without)} requests; with the agent (4 KiB ring, agent "
                   f"stopped half the time) p50 {p50_with:.3f} ms, p99 {p99_with:.3f} ms (median "
                   f"round), {served_with} requests; ring-full drops counted {sum(drops)} "
                   f"(per round {drops}); p99 bound {bound:.3f} ms")
        print("ring buffer burst: " + summary, file=sys.stderr)
        self.assertTrue(all(d > 0 for d in drops), "a round without ring overflow: " + summary)
        self.assertLessEqual(p99_with, bound, summary)


def main():
    global AGENT, SERVER
    parser = argparse.ArgumentParser()
    parser.add_argument("--agent", required=True)
    parser.add_argument("--server")
    args, rest = parser.parse_known_args()
    AGENT = os.path.abspath(args.agent)
    SERVER = os.path.abspath(args.server) if args.server else None
    unittest.main(argv=[sys.argv[0], "-v", *rest])


if __name__ == "__main__":
    main()
