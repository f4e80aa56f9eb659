"""Fault test: the database (MariaDB) goes down under ingest load and comes back.

The test starts its own MariaDB (tests/support/mariadb.sh in a temporary directory, never the one
the other suites share), a boing-server on it, and senders posting batches with an ingest key and
with an agent token. It stops MariaDB for DB_DOWN_SECONDS (default 15; scripts/fault-dbdown.sh runs
the 60-second version), starts it again on the same port, and checks:

- while the database is down, ingest answers 503 with Retry-After and a JSON error (an agent token
  the server has not cached yet gets 503 too, not 401: the agent must retry, not give up), and
  /readyz answers 503;
- the server's memory stays bounded during the outage (RSS sampled every 100 ms; the ingest queue
  gauge stays under INGEST_QUEUE_MAX);
- it recovers by itself when MariaDB is back (no restart), and every acknowledged (2xx) event is in
  the events table afterwards.

It prints: acknowledged lost, 503s served, RSS max during the outage, time to recover.
test_keys_first_needed_while_the_database_is_down: ingest keys first needed during an outage get
503, and work once the database is back.
"""
import json
import os
import shutil
import subprocess
import tempfile
import threading
import time
import unittest

os.environ["BOING_IT_BACKEND"] = "mysql"  # the fault is the MariaDB server's

import harness  # noqa: E402
from harness import Server, event  # noqa: E402

MARIADB_SH = os.path.join(harness.ROOT, "tests/support/mariadb.sh")
DOWN_SECONDS = float(os.environ.get("DB_DOWN_SECONDS", "15"))
QUEUE_MAX = 20000
# The server's RSS may grow by this much over its maximum under load before the outage: 503s are
# answered from bounded buffers, nothing is kept for later.
RSS_GROWTH_BOUND_KIB = 32 * 1024


def ci():
    return os.environ.get("CI", "").lower() not in ("", "0", "false", "no")


def rss_kib(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


class DatabaseDownTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        if not shutil.which("mariadbd") and not os.path.exists("/usr/sbin/mariadbd"):
            if ci():
                raise AssertionError("mariadbd not installed but CI is set")
            raise unittest.SkipTest("mariadbd not installed")
        cls.dir = tempfile.mkdtemp(prefix="boing-dbdown-")
        cls.saved_env = {k: os.environ.get(k) for k in os.environ if k.startswith("BOING_TEST_MYSQL_")}
        cls.mysql = cls.mariadb("start")
        os.environ.update(cls.mysql)

    @classmethod
    def tearDownClass(cls):
        subprocess.run(["bash", MARIADB_SH, "stop", cls.dir], capture_output=True, timeout=120)
        for k in list(os.environ):
            if k.startswith("BOING_TEST_MYSQL_"):
                del os.environ[k]
        os.environ.update({k: v for k, v in cls.saved_env.items() if v is not None})
        shutil.rmtree(cls.dir, ignore_errors=True)

    @classmethod
    def mariadb(cls, action, env=None):
        out = subprocess.run(["bash", MARIADB_SH, action, cls.dir], capture_output=True, text=True,
                             timeout=180, env={**os.environ, **(env or {})})
        if out.returncode != 0:
            raise AssertionError(f"mariadb.sh {action}: {out.stderr}")
        exports = {}
        for line in out.stdout.splitlines():
            if line.startswith("export "):
                k, v = line[len("export "):].split("=", 1)
                exports[k] = v
        return exports

    def setUp(self):
        self.server = Server(env={"INGEST_QUEUE_MAX": str(QUEUE_MAX)}).start()

    def tearDown(self):
        self.server.kill()
        if self.mariadb_running():
            self.server.cleanup()

    def mariadb_running(self):
        try:
            harness.mysql_cli(None, "SELECT 1")
            return True
        except AssertionError:
            return False

    def test_database_down_then_back_under_load(self):
        s = self.server
        admin = s.admin_token()
        key = s.create_api(admin, "dbdown")["ingest_key"]
        agent = s.enroll_agent(admin, "dbdown-host")
        spare = s.enroll_agent(admin, "dbdown-spare")  # its token is first used during the outage
        pid = s.proc.pid

        lock = threading.Lock()
        acked, statuses, bad_503 = [], {}, []
        state = {"phase": "before", "first_ok_after": None}
        stop = threading.Event()
        rss = {"before": 0, "down": 0, "down_samples": []}
        queue_max_seen = [0]

        def record(status):
            with lock:
                statuses[(state["phase"], status)] = statuses.get((state["phase"], status), 0) + 1

        def sender(worker):
            n = 0
            while not stop.is_set():
                use_agent = worker == 2
                size = 1 if worker == 0 else 50
                batch = [event(None if use_agent else key, endpoint=f"/db/{worker}/{n}/{i}",
                               **({"agent_id": agent["agent_id"], "seq": n * 1000 + i + 1}
                                  if use_agent else {}))
                         for i in range(size)]
                n += 1
                try:
                    if size == 1:
                        r = s.post("/api/ingest", batch[0], timeout=30)
                    else:
                        r = s.post("/api/ingest/batch", raw=json.dumps(batch), timeout=30,
                                   token=agent["agent_token"] if use_agent else None)
                except OSError as e:
                    record("error:" + type(e).__name__)
                    time.sleep(0.05)
                    continue
                record(r.status)
                if r.status == 200:
                    ok = r.json().get("status") in ("accepted", "duplicate") if size == 1 else \
                        r.json()["accepted"] + r.json()["duplicates"] == len(batch)
                    if ok:
                        with lock:
                            acked.extend(e["endpoint"] for e in batch)
                            if state["phase"] in ("starting", "after") and state["first_ok_after"] is None:
                                state["first_ok_after"] = time.monotonic()
                elif r.status == 503:
                    body = r.json() if r.body.startswith("{") else {}
                    if not r.header("Retry-After") or not body.get("error"):
                        bad_503.append(r)
                    time.sleep(0.02)

        def sampler():
            while not stop.is_set():
                v = rss_kib(pid)
                with lock:
                    phase = state["phase"]
                if phase == "before":
                    rss["before"] = max(rss["before"], v)
                elif phase == "down":
                    rss["down"] = max(rss["down"], v)
                    rss["down_samples"].append(v)
                    try:
                        m = s.get("/metrics", timeout=5).body
                        for line in m.splitlines():
                            if line.startswith("boing_ingest_queue_events "):
                                queue_max_seen[0] = max(queue_max_seen[0], float(line.split()[1]))
                    except OSError:
                        pass
                time.sleep(0.1)

        threads = [threading.Thread(target=sender, args=(w,)) for w in range(3)]
        threads.append(threading.Thread(target=sampler))
        for t in threads:
            t.start()
        try:
            time.sleep(4)
            self.assertEqual(s.get("/readyz").status, 200)
            with lock:
                ok_before = len(acked)
            # --- the outage --------------------------------------------------------------
            with lock:
                state["phase"] = "stopping"  # MariaDB's shutdown: requests may still commit
            t_down = time.monotonic()
            self.mariadb("stop")
            with lock:
                state["phase"] = "down"
            readyz_down, spare_status = [], []
            while time.monotonic() - t_down < DOWN_SECONDS:
                r = s.get("/readyz", timeout=10)
                readyz_down.append((r.status, r.header("Retry-After")))
                if not spare_status:
                    r = s.post("/api/ingest/batch", raw=json.dumps([event(agent_id=spare["agent_id"], seq=1,
                                                                          endpoint="/db/spare")]),
                               token=spare["agent_token"])
                    spare_status.append((r.status, r.header("Retry-After"), r.body))
                time.sleep(0.5)
            outage = time.monotonic() - t_down
            # --- back ----------------------------------------------------------------------
            with lock:
                state["phase"] = "starting"  # MariaDB accepts connections before start returns
            t_start = time.monotonic()
            self.mariadb("start", env={"MARIADB_PORT": self.mysql["BOING_TEST_MYSQL_PORT"],
                                       "MARIADB_PASSWORD": self.mysql["BOING_TEST_MYSQL_PASSWORD"]})
            t_up = time.monotonic()  # MariaDB up, the test user (re)created
            with lock:
                state["phase"] = "after"
            ready_after = None
            while time.monotonic() - t_up < 60:
                if ready_after is None and s.get("/readyz", timeout=10).status == 200:
                    ready_after = time.monotonic() - t_up
                with lock:
                    first_ok = state["first_ok_after"]
                if ready_after is not None and first_ok is not None:
                    break
                time.sleep(0.05)
            time.sleep(3)  # load after the recovery
        finally:
            stop.set()
            for t in threads:
                t.join(60)
        self.assertTrue(s.alive(), "the server died during the outage")

        found = {r[0] for r in s.db_query("SELECT endpoint FROM events WHERE endpoint LIKE '/db/%'")}
        lost = [e for e in acked if e not in found]
        served_503 = sum(v for (phase, st), v in statuses.items() if st == 503)
        # From the restart of MariaDB (its boot included) to the first acknowledged ingest.
        recover = (state["first_ok_after"] - t_start) if state["first_ok_after"] else None
        samples = rss["down_samples"]
        print(f"\nMariaDB stopped and down {outage:.1f} s under ingest load: acknowledged {len(acked)} "
              f"({ok_before} before the outage), acknowledged lost {len(lost)}, 503s served {served_503}, "
              f"RSS max before {rss['before'] // 1024} MiB, RSS max during the outage {rss['down'] // 1024} MiB "
              f"(first {samples[0] // 1024 if samples else 0} MiB, last {samples[-1] // 1024 if samples else 0} MiB), "
              f"ingest queue max {queue_max_seen[0]:.0f} events, time to recover: first 2xx "
              f"{recover if recover is None else round(recover, 2)} s after MariaDB's restart began "
              f"(mariadb.sh start took {t_up - t_start:.2f} s), /readyz 200 "
              f"{ready_after if ready_after is None else round(ready_after, 2)} s after it returned\nstatuses by phase: {dict(sorted((f'{p} {st}', v) for (p, st), v in statuses.items()))}")

        self.assertGreater(ok_before, 0, "nothing acknowledged before the outage")
        self.assertEqual(lost[:10], [], f"{len(lost)} acknowledged events lost")
        self.assertGreater(served_503, 0, "no 503 during the outage")
        self.assertEqual(bad_503[:3], [], "a 503 without Retry-After or JSON error")
        unexpected = {k: v for k, v in statuses.items() if k[1] not in (200, 503)}
        self.assertEqual(unexpected, {}, "ingest answered something else than 200 or 503")
        self.assertEqual({k for k in statuses if k[0] == "down" and k[1] == 200}, set(),
                         "2xx while the database was down")
        self.assertTrue(readyz_down and all(st == 503 and ra for st, ra in readyz_down),
                        f"/readyz during the outage: {readyz_down}")
        self.assertEqual(spare_status[0][:1], (503,), f"uncached agent token during the outage: {spare_status}")
        self.assertTrue(spare_status[0][1], "503 without Retry-After")
        self.assertIsNotNone(recover, "ingest did not recover within 60 s of MariaDB's return")
        self.assertIsNotNone(ready_after, "/readyz did not recover within 60 s")
        self.assertLess(recover, 30)
        self.assertLessEqual(queue_max_seen[0], QUEUE_MAX)
        self.assertLess(rss["down"] - rss["before"], RSS_GROWTH_BOUND_KIB,
                        f"RSS grew from {rss['before']} KiB to {rss['down']} KiB during the outage")
        # The spare agent's event, refused with 503, is accepted now.
        r = s.post("/api/ingest/batch", raw=json.dumps([event(agent_id=spare["agent_id"], seq=1,
                                                              endpoint="/db/spare")]),
                   token=spare["agent_token"])
        self.assertEqual((r.status, r.json()["accepted"]), (200, 1), r)

    def test_keys_first_needed_while_the_database_is_down(self):
        # The server loads its ingest keys on first use (and again after any API change). If that
        # first use falls in an outage it answers 503, and must not keep an empty key list that
        # would refuse every key with 401 after the database is back.
        s = self.server
        key = s.create_api(s.admin_token(), "late")["ingest_key"]
        self.mariadb("stop")
        try:
            r = s.post("/api/ingest", event(key, endpoint="/late/1"))
            self.assertEqual(r.status, 503, r)
            self.assertTrue(r.header("Retry-After"))
            r = s.post("/api/ingest/batch", raw=json.dumps([event(endpoint="/late/2")]),
                       headers={"X-Api-Key": key})
            self.assertEqual(r.status, 503, r)
            r = s.post("/api/ingest/batch", raw=json.dumps([event(key, endpoint="/late/3")]))
            self.assertEqual(r.status, 503, r)
        finally:
            self.mariadb("start", env={"MARIADB_PORT": self.mysql["BOING_TEST_MYSQL_PORT"],
                                       "MARIADB_PASSWORD": self.mysql["BOING_TEST_MYSQL_PASSWORD"]})
        r = s.post("/api/ingest", event(key, endpoint="/late/1"))
        self.assertEqual(r.status, 200, r)
        r = s.post("/api/ingest/batch", raw=json.dumps([event(endpoint="/late/2")]),
                   headers={"X-Api-Key": key})
        self.assertEqual((r.status, r.json()["accepted"]), (200, 1), r)


if __name__ == "__main__":
    unittest.main()
