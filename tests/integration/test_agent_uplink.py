"""boing-agent's uplink against the real boing-server (SQLite): enrolment, batched gzip ingest,
the on-disk spool through a server outage (agent kept running, then SIGKILLed during the outage),
exactly-once delivery in seq order, identity hashing with the enrolment key, heartbeats with
per-IP rates, Prometheus self-metrics, and configuration errors.

No kernel here: the agent runs in its test-only replay mode (--replay-file, tailed with
--replay-follow), which feeds NDJSON events through the same header policy, spool and uplink as
captured traffic. The real-kernel path to the server is in tests/bpf/agent_capture_test.py.
Raw caller credentials are only written to the replay file; the test asserts they never reach the
spool, the state directory or the server.
"""
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import unittest
import urllib.request

from harness import Server

AGENT = os.environ.get("BOING_AGENT_BIN", "")
SECRET = "it-caller-secret-"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(pred, timeout, what):
    deadline = time.time() + timeout
    while time.time() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(0.1)
    raise AssertionError("timed out waiting for " + what)


@unittest.skipUnless(AGENT, "BOING_AGENT_BIN not set (agent not built)")
class AgentUplinkTest(unittest.TestCase):
    def setUp(self):
        self.port = free_port()
        self.server = Server(listen=f"127.0.0.1:{self.port}").start()
        self.admin = self.server.admin_token()
        self.tmp = tempfile.mkdtemp(prefix="boing-agent-it-")
        self.metrics_port = free_port()
        self.agent = None
        self.next_event = 1
        et = self.server.post("/api/agents", {"name": "it"}, self.admin).json()["enrollment_token"]
        self.config = os.path.join(self.tmp, "agent.yaml")
        with open(self.config, "w") as f:
            f.write(f"""
server:
  url: http://127.0.0.1:{self.port}
  enroll_token: {et}
  timeout_ms: 3000
state_dir: {self.tmp}/state
headers:
  allowlist: [host, user-agent, authorization]
uplink:
  batch_size: 25
  batch_interval_ms: 200
  heartbeat_interval_s: 1
  backoff_initial_ms: 100
  backoff_max_ms: 800
spool:
  max_bytes: 4MiB
metrics:
  listen: 127.0.0.1:{self.metrics_port}
""")

    def tearDown(self):
        if self.agent and self.agent.poll() is None:
            self.agent.kill()
            self.agent.wait()
        self.server.kill()
        shutil.rmtree(self.tmp, ignore_errors=True)
        shutil.rmtree(self.server.data_dir, ignore_errors=True)

    # --- agent -----------------------------------------------------------------------------
    def start_agent(self, replay_name):
        self.replay = os.path.join(self.tmp, replay_name)
        open(self.replay, "a").close()
        self.agent_err = os.path.join(self.tmp, replay_name + ".err")
        with open(self.agent_err, "w") as err:
            self.agent = subprocess.Popen(
                [AGENT, "--config", self.config, "--replay-file", self.replay, "--replay-follow"],
                stdout=subprocess.DEVNULL, stderr=err)
        wait_until(lambda: self.agent.poll() is not None or "capturing" in self.stderr(), 20,
                   "the agent to start")
        self.assertIsNone(self.agent.poll(), self.stderr())

    def stderr(self):
        with open(self.agent_err) as f:
            return f.read()

    def write_events(self, n):
        with open(self.replay, "a") as f:
            for _ in range(n):
                i = self.next_event
                self.next_event += 1
                f.write(json.dumps({
                    "timestamp": time.time(), "method": "POST" if i % 2 else "GET",
                    "endpoint": f"/it/{i}", "client_ip": f"198.51.100.{i % 3 + 1}",
                    "status_code": 200 + (i % 2), "latency_ms": 1.5,
                    "headers": {"Host": "shop.example", "User-Agent": "it-client",
                                "Authorization": f"Bearer {SECRET}{i % 3}",
                                "X-Not-Allowed": "dropped"}}) + "\n")

    def metrics(self):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics",
                                        timeout=2) as r:
                text = r.read().decode()
        except OSError:
            return {}
        out = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                k, v = line.rsplit(" ", 1)
                out[k] = float(v)
        return out

    # --- server ----------------------------------------------------------------------------
    def stored(self):
        events, cursor = [], None
        while True:
            q = "/api/logs?endpoint=/it/*&limit=1000" + (f"&cursor={cursor}" if cursor else "")
            r = self.server.get(q, self.admin)
            self.assertEqual(r.status, 200, r)
            page = r.json()
            events += page["logs"]
            cursor = page.get("next_cursor")
            if not cursor:
                return events

    def wait_stored(self, n, timeout=30):
        return wait_until(lambda: (lambda e: e if len(e) >= n else None)(self.stored()), timeout,
                          f"{n} events at the server")

    def restart_server(self):
        self.server = Server(data_dir=self.server.data_dir, listen=f"127.0.0.1:{self.port}").start()
        self.admin = self.server.admin_token()

    def assert_exactly_once_in_order(self, events, n):
        seqs = sorted(e["seq"] for e in events)
        self.assertEqual(seqs, list(range(1, n + 1)), "every event once, no gaps")
        for e in events:
            # seq follows the order events were produced (replay file order).
            self.assertEqual(e["endpoint"], f"/it/{e['seq']}")
        self.assertEqual(len({e["agent_id"] for e in events}), 1)

    # --- tests -----------------------------------------------------------------------------
    def test_outage_spool_sigkill_and_exactly_once_delivery(self):
        self.start_agent("events-1.ndjson")
        self.assertIn("enrolled as agent", self.stderr())
        state = os.path.join(self.tmp, "state", "agent.json")
        self.assertEqual(os.stat(state).st_mode & 0o777, 0o600)

        # 1. Live delivery.
        self.write_events(30)
        events = self.wait_stored(30)
        self.assert_exactly_once_in_order(events, 30)
        agents = self.server.get("/api/agents", self.admin).json()["agents"]
        self.assertEqual(len(agents), 1)
        self.assertEqual(events[0]["agent_id"], agents[0]["agent_id"])
        e = events[0]
        self.assertNotIn("authorization", {k.lower() for k in e.get("headers", {})})
        self.assertNotIn("x-not-allowed", {k.lower() for k in e.get("headers", {})})
        self.assertEqual(e["headers"].get("User-Agent"), "it-client")

        # The agent hashed the caller with the enrolment key: the server, given the same raw
        # header by an instrumented app, computes the same identity.
        key = self.server.create_api(self.admin, "ref")["ingest_key"]
        for k in range(3):
            r = self.server.post("/api/ingest", {
                "api_key": key, "timestamp": time.time(), "method": "GET",
                "endpoint": f"/ref/{k}", "client_ip": "192.0.2.1", "status_code": 200,
                "latency_ms": 1, "headers": {"Authorization": f"Bearer {SECRET}{k}"}})
            self.assertEqual(r.status, 200, r)
        ref = {e["endpoint"]: e["identity"]
               for e in self.server.get("/api/logs?endpoint=/ref/*", self.admin).json()["logs"]}
        for e in events:
            self.assertEqual(e["identity"], ref[f"/ref/{int(e['endpoint'].split('/')[2]) % 3}"])

        # 2. Outage with the agent running: events wait in the spool, then arrive.
        self.server.stop()
        self.write_events(20)
        wait_until(lambda: self.metrics().get("boing_agent_spool_pending_events") == 20 and
                   self.metrics().get("boing_agent_uplink_errors_total", 0) >= 2, 20,
                   "20 events spooled while the server is down")
        time.sleep(2)  # a while down, retries backing off
        self.restart_server()
        events = self.wait_stored(50)
        self.assert_exactly_once_in_order(events, 50)

        # 3. Outage and the agent SIGKILLed during it; both restart.
        self.server.stop()
        self.write_events(25)
        wait_until(lambda: self.metrics().get("boing_agent_spool_pending_events") == 25, 20,
                   "25 events spooled")
        self.agent.send_signal(signal.SIGKILL)
        self.agent.wait()
        self.restart_server()
        # A fresh replay file: the killed agent's events are in its spool, not to be re-read.
        self.start_agent("events-2.ndjson")
        self.assertIn("25 events waiting", self.stderr())
        self.assertNotIn("enrolled as agent", self.stderr(), "credentials must be reused")
        self.write_events(5)
        events = self.wait_stored(80)
        time.sleep(1)  # anything resent would show up as a second copy
        events = self.stored()
        self.assert_exactly_once_in_order(events, 80)
        self.assertEqual(len(self.server.get("/api/agents", self.admin).json()["agents"]), 1)
        m = wait_until(lambda: (lambda m: m if m.get("boing_agent_spool_pending_events") == 0
                                and m.get("boing_agent_events_sent_total") == 30 else None)(
            self.metrics()), 10, "metrics after the restart")
        self.assertEqual(m["boing_agent_events_captured_total"], 5)
        self.assertEqual(m['boing_agent_events_dropped_total{cause="spool_full"}'], 0)

        # Raw credentials never left the replay file.
        for root, _, files in os.walk(os.path.join(self.tmp, "state")):
            for name in files:
                with open(os.path.join(root, name), "rb") as f:
                    self.assertFalse(SECRET.encode() in f.read(), "raw credential in " + name)
        self.assertFalse(SECRET in json.dumps(self.stored()), "raw credential at the server")

        # 4. Heartbeats carry the version, counters and per-IP rates.
        def heartbeat_with_rates():
            a = self.server.get("/api/agents", self.admin).json()["agents"][0]
            return a if a.get("rates") else None
        self.write_events(30)
        a = wait_until(heartbeat_with_rates, 15, "a heartbeat with rates")
        self.assertTrue(a["version"])
        self.assertIn("captured", a["counters"])
        ips = {r["ip"] for r in a["rates"]}
        self.assertTrue(ips <= {"198.51.100.1", "198.51.100.2", "198.51.100.3"}, ips)
        self.assertTrue(all(r["rps"] > 0 for r in a["rates"]))

    def test_configuration_errors_name_file_line_and_field(self):
        bad = os.path.join(self.tmp, "bad.yaml")
        with open(bad, "w") as f:
            f.write("server:\n  url: http://127.0.0.1:1\nuplink:\n  batch_size: lots\n")
        r = subprocess.run([AGENT, "--config", bad], capture_output=True, text=True, timeout=10)
        self.assertEqual(r.returncode, 2)
        self.assertIn(f"{bad}:4: uplink.batch_size: must be an integer", r.stderr)

    def test_not_enrolled_without_a_token_fails_clearly(self):
        r = subprocess.run([AGENT, "--server", f"http://127.0.0.1:{self.port}", "--state-dir",
                            os.path.join(self.tmp, "empty"), "--replay-file", "/dev/null"],
                           capture_output=True, text=True, timeout=10)
        self.assertEqual(r.returncode, 1)
        self.assertIn("not enrolled yet", r.stderr)

    def test_a_refused_enrolment_token_is_fatal(self):
        r = subprocess.run([AGENT, "--server", f"http://127.0.0.1:{self.port}", "--enroll-token",
                            "et_wrong", "--state-dir", os.path.join(self.tmp, "s2"),
                            "--replay-file", "/dev/null"],
                           capture_output=True, text=True, timeout=20)
        self.assertEqual(r.returncode, 1)
        self.assertIn("enrolment", r.stderr)
        self.assertIn("HTTP 401", r.stderr)


if __name__ == "__main__":
    unittest.main()
