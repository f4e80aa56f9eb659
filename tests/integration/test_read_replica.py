"""DB_READ_HOST: log and metrics queries go to a MySQL/MariaDB replica. The test starts its own pair
on loopback (tests/support/mariadb.sh start-primary / start-replica: binary log, server ids,
CHANGE MASTER TO the primary) and a boing-server writing to the primary and reading logs and
metrics from the replica. With replication stopped, events ingested meanwhile are in the primary
but not in /api/logs, /api/export/logs and /api/metrics; once it runs again they appear. A replica
that cannot be reached stops start-up with a message naming it. MariaDB only (ctest
it_mysql_read_replica)."""
import os
import shutil
import subprocess
import tempfile
import time
import unittest

from harness import BACKEND, ROOT, Server, event, mysql_rows

SCRIPT = os.path.join(ROOT, "tests/support/mariadb.sh")


def exports(text):
    out = {}
    for line in text.splitlines():
        if line.startswith("export ") and "=" in line:
            k, v = line[len("export "):].split("=", 1)
            out[k] = v
    return out


@unittest.skipIf(BACKEND != "mysql", "DB_READ_HOST is for MySQL/MariaDB replicas")
class ReadReplicaTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        if not shutil.which("mariadbd") and not os.path.exists("/usr/sbin/mariadbd"):
            raise unittest.SkipTest("mariadbd not installed")
        cls.tmp = tempfile.mkdtemp(prefix="boing-replica-")
        cls.saved = {k: os.environ.get(k) for k in ("BOING_TEST_MYSQL_HOST", "BOING_TEST_MYSQL_PORT",
                                                    "BOING_TEST_MYSQL_USER", "BOING_TEST_MYSQL_PASSWORD")}
        cls.server = None
        try:
            p = subprocess.run(["bash", SCRIPT, "start-primary", cls.tmp + "/primary"],
                               capture_output=True, text=True, timeout=120)
            assert p.returncode == 0, p.stderr
            primary = exports(p.stdout)
            r = subprocess.run(["bash", SCRIPT, "start-replica", cls.tmp + "/replica", cls.tmp + "/primary"],
                               capture_output=True, text=True, timeout=120)
            assert r.returncode == 0, r.stderr
            replica = exports(r.stdout)
            # The harness creates (and drops) the test database through these: on the primary.
            os.environ.update({k: primary[k] for k in cls.saved})
            cls.replica_port = replica["BOING_TEST_MYSQL_REPLICA_PORT"]
            cls.server = Server({"DB_READ_HOST": "127.0.0.1", "DB_READ_PORT": cls.replica_port})
            cls.server.start()
            cls.admin = cls.server.admin_token()
            cls.api = cls.server.create_api(cls.admin, "replicated")
        except BaseException:
            cls.tearDownClass()
            raise

    @classmethod
    def tearDownClass(cls):
        if cls.server:
            cls.server.stop()
            cls.server.cleanup()
        for d in ("replica", "primary"):
            subprocess.run(["bash", SCRIPT, "stop", os.path.join(cls.tmp, d)], capture_output=True, timeout=120)
        for k, v in cls.saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def replica_root(self, sql):
        r = subprocess.run(["mariadb", "--no-defaults", "--protocol=socket",
                            "--socket=" + os.path.join(self.tmp, "replica/sock"), "-uroot", "-e", sql],
                           capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)

    def send(self, tag, n):
        items = [event(endpoint=f"/replica/{tag}/{i}", client_ip="192.0.2.7") for i in range(n)]
        r = self.server.batch(items, headers={"X-Api-Key": self.api["ingest_key"]})
        self.assertEqual(r.status, 200, r)

    def seen(self):
        """(rows in /api/logs, rows in the CSV export, requests in /api/metrics) for this API."""
        q = f"api_id={self.api['id']}&limit=1000"
        logs = self.server.get("/api/logs?" + q, self.admin)
        self.assertEqual(logs.status, 200, logs)
        export = self.server.get(f"/api/export/logs?api_id={self.api['id']}", self.admin)
        self.assertEqual(export.status, 200, export)
        now = int(time.time())
        m = self.server.get(f"/api/metrics?api_id={self.api['id']}&from={now - 600}&to={now + 60}", self.admin)
        self.assertEqual(m.status, 200, m)
        apis = m.json()["apis"]
        requests = apis[0]["totals"]["requests"] if apis else 0
        return len(logs.json()["logs"]), len(export.body.strip().splitlines()) - 1, requests

    def wait_seen(self, want, timeout=20):
        deadline = time.time() + timeout
        while True:
            got = self.seen()
            if got == (want, want, want) or time.time() > deadline:
                return got
            time.sleep(0.2)

    def primary_count(self):
        return int(mysql_rows(self.server.db_name,
                              f"SELECT COUNT(*) FROM events WHERE api_id = {self.api['id']}")[0][0])

    def test_logs_and_metrics_read_the_replica(self):
        self.send("a", 5)
        self.assertEqual(self.wait_seen(5), (5, 5, 5))
        self.replica_root("STOP SLAVE")
        try:
            self.send("b", 3)  # writes go to the primary while the replica stands still
            self.assertEqual(self.primary_count(), 8)
            time.sleep(1)
            self.assertEqual(self.seen(), (5, 5, 5), "logs/metrics did not come from the replica")
        finally:
            self.replica_root("START SLAVE")
        self.assertEqual(self.wait_seen(8), (8, 8, 8))

    def test_unreachable_replica_stops_start_up(self):
        bad = Server({"DB_READ_HOST": "127.0.0.1", "DB_READ_PORT": "1"}, db_name=self.server.db_name)
        try:
            with self.assertRaises(AssertionError) as ctx:
                bad.start(timeout=30)
            self.assertIn("read replica 127.0.0.1:1", str(ctx.exception))
        finally:
            bad.cleanup()


if __name__ == "__main__":
    unittest.main()
