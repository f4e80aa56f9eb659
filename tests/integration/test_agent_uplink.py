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


class AgentCase(unittest.TestCase):
    """A server on a fixed port, an enrolment token, and the agent's configuration (replay mode)."""
    spool_config = "spool:\n  max_bytes: 4MiB\n"

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
{self.spool_config.format(tmp=self.tmp)}
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

    def write_events(self, n, pad=0):
        with open(self.replay, "a") as f:
            for _ in range(n):
                i = self.next_event
                self.next_event += 1
                f.write(json.dumps({
                    "timestamp": time.time(), "method": "POST" if i % 2 else "GET",
                    "endpoint": f"/it/{i}", "client_ip": f"198.51.100.{i % 3 + 1}",
                    "status_code": 200 + (i % 2), "latency_ms": 1.5,
                    "headers": {"Host": "shop.example", "User-Agent": "it-client" + "x" * pad,
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


@unittest.skipUnless(AGENT, "BOING_AGENT_BIN not set (agent not built)")
class AgentUplinkTest(AgentCase):
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


@unittest.skipUnless(AGENT, "BOING_AGENT_BIN not set (agent not built)")
class SpoolDiskFullTest(AgentCase):
    """Fault test: the spool's filesystem (a 1 MiB tmpfs the test mounts) fills up while the server
    is down, long before spool.max_bytes. The oldest events are dropped and counted, the newest are
    all kept, the agent keeps running and delivers what it kept when the server is back; then its
    size bound returns to spool.max_bytes. Prints: events spooled, dropped (oldest), delivered after
    recovery."""
    spool_config = "spool:\n  dir: {tmp}/spool\n  max_bytes: 64MiB\n  segment_bytes: 128KiB\n"
    TMPFS = "1m"
    OUTAGE_EVENTS = 3000  # about 1.2 KB each in the spool: 3.6 MB for a 1 MiB filesystem

    def setUp(self):
        if os.geteuid() != 0:
            self.skipTest("mounting the test filesystem needs root")
        super().setUp()
        self.spool_dir = os.path.join(self.tmp, "spool")
        os.makedirs(self.spool_dir, mode=0o700)
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={self.TMPFS},mode=0700",
                            "boing-spool-test", self.spool_dir], capture_output=True, text=True)
        if r.returncode != 0:
            super().tearDown()
            self.fail("cannot mount a tmpfs for the spool: " + r.stderr)

    def tearDown(self):
        if self.agent and self.agent.poll() is None:
            self.agent.kill()
            self.agent.wait()
        subprocess.run(["umount", self.spool_dir], capture_output=True)
        super().tearDown()

    def test_full_disk_drops_the_oldest_and_the_agent_keeps_going(self):
        dropped_key = 'boing_agent_events_dropped_total{cause="spool_full"}'
        error_key = 'boing_agent_events_dropped_total{cause="spool_error"}'
        self.start_agent("events.ndjson")
        self.write_events(10)
        self.wait_stored(10)

        self.server.stop()
        self.write_events(self.OUTAGE_EVENTS, pad=1000)
        total = 10 + self.OUTAGE_EVENTS
        m = wait_until(lambda: (lambda m: m if m.get("boing_agent_events_captured_total") == total
                                else None)(self.metrics()), 120, "the agent to read every event")
        time.sleep(1.5)  # the spool gauges are refreshed every second
        m = self.metrics()
        self.assertIsNone(self.agent.poll(), "the agent died on a full disk: " + self.stderr())
        usage = shutil.disk_usage(self.spool_dir)
        spooled = int(m["boing_agent_events_spooled_total"])
        dropped = int(m[dropped_key])
        pending = int(m["boing_agent_spool_pending_events"])
        disk_full = int(m["boing_agent_spool_disk_full_total"])
        limit = int(m["boing_agent_spool_limit_bytes"])
        self.assertGreaterEqual(disk_full, 1, "the filesystem never refused a write: nothing tested")
        self.assertGreater(dropped, 0)
        self.assertEqual(m[error_key], 0, "newest events lost instead of the oldest: " + self.stderr())
        self.assertEqual(spooled, total, "every event captured is spooled")
        self.assertEqual(pending, self.OUTAGE_EVENTS - dropped, "pending = spooled - sent - dropped")
        self.assertLess(limit, usage.total, "the bound was lowered to what fits")
        self.assertLessEqual(m["boing_agent_spool_bytes"], usage.total)

        # Still capturing while full: more events go in, the oldest keep going out.
        self.write_events(200, pad=1000)
        total += 200
        m = wait_until(lambda: (lambda m: m if m.get("boing_agent_events_captured_total") == total
                                else None)(self.metrics()), 60, "the agent to read 200 more")
        time.sleep(1.5)
        m = self.metrics()
        dropped = int(m[dropped_key])
        self.assertEqual(m[error_key], 0)

        # The server is back: the agent delivers what it kept, and the oldest are the ones gone.
        self.restart_server()
        kept = total - 10 - dropped
        events = self.wait_stored(10 + kept, timeout=120)
        wait_until(lambda: self.metrics().get("boing_agent_spool_pending_events") == 0, 30,
                   "the backlog acknowledged")
        time.sleep(1)
        events = self.stored()
        seqs = sorted(e["seq"] for e in events)
        self.assertEqual(len(seqs), len(set(seqs)), "an event delivered twice")
        self.assertEqual(seqs[:10], list(range(1, 11)))
        kept_seqs = list(range(11 + dropped, total + 1))
        self.assertEqual(seqs[len(seqs) - len(kept_seqs):], kept_seqs, "a kept (newest) event lost")
        # Deleted from disk but already read by the uplink (its batches in flight, retried from
        # memory): at most uplink.max_in_flight (4) batches of 25 arrive although counted dropped.
        in_memory = seqs[10:len(seqs) - len(kept_seqs)]
        self.assertLessEqual(len(in_memory), 4 * 25, in_memory)
        delivered_after = len(events) - 10

        # Forwarding resumes as usual, and the bound returns once the backlog is acknowledged.
        self.write_events(20)
        self.wait_stored(10 + kept + 20, timeout=60)
        m = wait_until(lambda: (lambda m: m if m.get("boing_agent_spool_pending_events") == 0
                                and m.get("boing_agent_spool_limit_bytes") == 64 << 20 else None)(
            self.metrics()), 20, "the backlog acknowledged and the bound restored")
        self.assertEqual(int(m[dropped_key]), dropped, "nothing dropped after the recovery")
        self.assertIsNone(self.agent.poll())

        def heartbeat_counters():
            a = self.server.get("/api/agents", self.admin).json()["agents"][0]
            c = a.get("counters") or {}
            return c if c.get("dropped_spool_full") == dropped else None
        c = wait_until(heartbeat_counters, 15, "a heartbeat with the drop counters")
        self.assertEqual(c["spool_disk_full"], int(m["boing_agent_spool_disk_full_total"]))
        print(f"\nspool on a {self.TMPFS} tmpfs, server down: events spooled {spooled + 200}, "
              f"dropped (oldest) {dropped}, delivered after recovery {delivered_after} "
              f"({len(in_memory)} of them counted dropped but in the uplink's memory), "
              f"disk-full appends {int(m['boing_agent_spool_disk_full_total'])}, "
              f"spool bound while full {limit} bytes (filesystem {usage.total}), "
              f"newest lost 0, agent restarts 0")
