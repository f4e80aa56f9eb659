"""Scale-out (BUS_URL): three boing-server instances share one MariaDB and a NATS JetStream server
(Debian nats-server, started here on a loopback port chosen at run time, its store in a temporary
directory). Batches with ingest keys, an enrolled agent's batches (retried on the next instance
until answered) and boing-sim are sent to all three; one instance is SIGKILLed mid-stream. Asserted:
every acknowledged (2xx) event is in the events table, agent events exactly once; boing-sim's
scenarios are each detected; every acknowledged attack event went through
detection (its sqli finding exists), including those the killed instance had taken from the bus but
not acknowledged; the killed instance's partitions move to the survivors within the lease TTL of
the kill; no alert fingerprint is raised twice across the instances.

MariaDB only: several servers cannot share one SQLite database (BOING_IT_BACKEND=mysql; the ctest
entry is it_mysql_scaleout)."""
import json
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import unittest

from cryptography.fernet import Fernet

from harness import BACKEND, ROOT, Server, event, mysql_env

SIM = os.environ.get("BOING_SIM_BIN") or os.path.join(ROOT, "build/tools/sim/boing-sim")
# boing-sim scenarios and the detector each must trigger (rate_abuse needs the default rate limit,
# raised here so the batch senders never trip it).
SIM_SCENARIOS = {"brute_force": "brute_force", "credential_stuffing": "brute_force",
                 "scraping": "scraping", "enumeration": "enumeration", "sqli": "sqli",
                 "xss": "xss", "path_traversal": "path_traversal"}

LEASE_S = 4
PARTITIONS = 12
APIS = 6
BATCH = 40
SQLI_QUERY = "q=1%27%20OR%20%271%27%3D%271"


def partition(api_id, partitions=PARTITIONS):
    """BusPartition: FNV-1a of the decimal id."""
    h = 2166136261
    for c in str(api_id).encode():
        h = ((h ^ c) * 16777619) & 0xFFFFFFFF
    return h % partitions


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Nats:
    """nats-server with JetStream on 127.0.0.1, file store in a temporary directory."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="boing-nats-")
        self.port = free_port()
        self.conf = os.path.join(self.dir, "nats.conf")
        with open(self.conf, "w") as fh:
            fh.write(f'listen: "127.0.0.1:{self.port}"\n'
                     f'jetstream {{ store_dir: "{self.dir}/js", max_file_store: 1G, '
                     f'max_memory_store: 64M }}\n')
        self.log = open(os.path.join(self.dir, "nats.log"), "ab")
        self.url = f"nats://127.0.0.1:{self.port}"
        self.proc = None
        self.resume()

    def resume(self):
        """Starts nats-server (again: same port, same JetStream store)."""
        exe = shutil.which("nats-server") or "/usr/bin/nats-server"
        self.proc = subprocess.Popen([exe, "-c", self.conf], stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.time() + 15
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                break
            except OSError:
                if time.time() > deadline or self.proc.poll() is not None:
                    self.stop()
                    raise AssertionError("nats-server did not start")
                time.sleep(0.05)

    def pause(self):
        """Stops nats-server, keeping its store (an outage)."""
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def stop(self):
        self.pause()
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


@unittest.skipIf(BACKEND != "mysql",
                 "scale-out needs MariaDB: several servers cannot share one SQLite database")
class ScaleOutTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        mysql_env()  # skip (or fail under CI) without MariaDB
        cls.nats = Nats()
        cls.servers = []
        try:
            common = {"BUS_URL": cls.nats.url, "BUS_PARTITIONS": str(PARTITIONS),
                      "BUS_LEASE_SECONDS": str(LEASE_S), "JWT_SECRET": "j" * 48,
                      "ENCRYPTION_KEY": Fernet.generate_key().decode(),
                      "RATE_LIMIT_THRESHOLD": "100000"}
            cls.common = common
            first = Server(dict(common, BUS_INSTANCE_ID="s1")).start()
            cls.servers.append(first)
            for name in ("s2", "s3"):
                cls.servers.append(Server(dict(common, BUS_INSTANCE_ID=name),
                                          db_name=first.db_name).start())
        except BaseException:
            cls.tearDownClass()
            raise

    @classmethod
    def tearDownClass(cls):
        for s in cls.servers:
            try:
                s.stop()
            except AssertionError:
                pass
        for s in reversed(cls.servers):  # the first one owns the database
            s.cleanup()
        cls.nats.stop()

    def db(self, sql):
        return self.servers[0].db_query(sql)

    def live(self):
        """{instance id: server} of the instances still running."""
        return {s.env["BUS_INSTANCE_ID"]: s for s in self.servers if s.alive()}

    def detected(self, detector, prefix):
        """user_agent markers (LIKE prefix%) of events with a finding of `detector`."""
        rows = self.db("SELECT DISTINCT e.user_agent FROM findings f JOIN events e ON "
                       f"e.id = f.event_id WHERE f.detector = '{detector}' AND "
                       f"e.user_agent LIKE '{prefix}%'")
        return {r[0] for r in rows}

    def wait_detected(self, detector, markers, timeout):
        prefix = os.path.commonprefix(sorted(markers))
        deadline = time.time() + timeout
        while True:
            missing = set(markers) - self.detected(detector, prefix)
            if not missing or time.time() > deadline:
                return missing
            time.sleep(0.25)

    def leases(self):
        now_ms = int(time.time() * 1000)
        rows = self.db("SELECT part, holder, expires_at_ms FROM bus_leases ORDER BY part")
        return {int(p): (h if int(e) >= now_ms else "") for p, h, e in rows}

    def wait_balanced(self, holders, timeout):
        deadline = time.time() + timeout
        while True:
            held = self.leases()
            per = {h: sum(1 for v in held.values() if v == h) for h in holders}
            share = -(-PARTITIONS // len(holders))  # what each aims for: no more moves after it
            if (len(held) == PARTITIONS and all(v in holders for v in held.values())
                    and max(per.values()) <= share):
                return held
            if time.time() > deadline:
                self.fail(f"partitions not spread over {holders} in {timeout} s: {held}")
            time.sleep(0.2)

    def test_api_keys_follow_changes_made_on_another_instance(self):
        live = [s for s in self.servers if s.alive()]
        a, b = live[0], live[-1]
        for s in live:  # every instance has its API cache loaded before the change
            s.batch([event(endpoint="/warm")], headers={"X-Api-Key": "bk_unknown_warm"})
        admin = a.admin_token()
        api = a.create_api(admin, f"registry-{time.time_ns()}")
        r = b.batch([event(endpoint="/new")], headers={"X-Api-Key": api["ingest_key"]})
        self.assertEqual(r.status, 200, "a key created on another instance is accepted at once")
        r = a.put(f"/api/apis/{api['id']}", {"rotate_ingest_key": True}, admin)
        self.assertEqual(r.status, 200, r)
        new_key = r.json()["ingest_key"]
        self.assertEqual(b.batch([event()], headers={"X-Api-Key": new_key}).status, 200)
        deadline = time.time() + 7  # the caches are re-read when older than 5 s
        while b.batch([event()], headers={"X-Api-Key": api["ingest_key"]}).status != 401:
            self.assertLess(time.time(), deadline, "the rotated-out key still works elsewhere")
            time.sleep(0.25)

    def test_kill_one_instance_mid_stream(self):
        s1, s2, s3 = self.servers
        self.wait_balanced({"s1", "s2", "s3"}, 6 * LEASE_S)
        admin = s1.admin_token()
        apis = [s1.create_api(admin, f"scale-{i}") for i in range(APIS)]
        keys = [a["ingest_key"] for a in apis]
        # The victim: the instance holding the first API's partition, so the kill moves live work.
        victim_api = apis[0]["id"]
        victim_name = self.wait_balanced({"s1", "s2", "s3"}, 2 * LEASE_S)[partition(victim_api)]
        victim = {"s1": s1, "s2": s2, "s3": s3}[victim_name]
        survivors = [s for s in (s1, s2, s3) if s is not victim]
        survivor_names = {"s1", "s2", "s3"} - {victim_name}

        agent = s1.enroll_agent(admin, "scale-host")
        acked_seqs = set()   # (agent_id, seq) of agent events answered 2xx
        acked = set()        # user_agent markers of events answered 2xx
        acked_sqli = set()
        lock = threading.Lock()
        stop = threading.Event()
        killed = threading.Event()
        sent = [0]

        def make_batch(worker, n):
            items = []
            for i in range(BATCH):
                k = n * BATCH + i
                api = k % APIS
                marker = f"it-{worker}-{k}"
                if (k // APIS) % 10 == 0:  # every API gets an attack in every 10th round
                    # The same attacker and endpoint per API all along: one alert fingerprint per
                    # API, fed by whichever instance holds its partition (before and after the
                    # kill).
                    e = event(keys[api], endpoint="/search", query=SQLI_QUERY,
                              client_ip=f"198.51.100.{api + 1}", user_agent=marker)
                else:
                    e = event(keys[api], endpoint=f"/items/{k}", client_ip=f"10.1.{worker}.{i}",
                              user_agent=marker)
                items.append(e)
            return items

        def sender(worker):
            targets = [s1, s2, s3]
            n = 0
            while not stop.is_set():
                items = make_batch(worker, n)
                n += 1
                # Round-robin over the instances; after the kill the dead one refuses connections
                # and the batch goes to the next one (unanswered batches are not counted).
                for attempt in range(3):
                    srv = targets[(n + worker + attempt) % 3]
                    try:
                        r = srv.batch(items, timeout=15)
                    except OSError:
                        continue
                    if r.status == 200 and r.json().get("accepted") == len(items):
                        with lock:
                            for e in items:
                                acked.add(e["user_agent"])
                                if e["endpoint"] == "/search":
                                    acked_sqli.add(e["user_agent"])
                            sent[0] += 1
                        break
                if n % 5 == 0:
                    # An agent's batch: retried on the next instance until answered, as agents do;
                    # (agent_id, seq) makes the retry of a batch committed before a crash harmless.
                    seqs = [worker * 1_000_000 + n * 100 + i for i in range(20)]
                    items = [event(agent_id=agent["agent_id"], seq=q, endpoint=f"/agent/{q}")
                             for q in seqs]
                    for attempt in range(6):
                        srv = targets[(n + worker + attempt) % 3]
                        try:
                            r = srv.batch(items, token=agent["agent_token"], timeout=15)
                        except OSError:
                            continue
                        if r.status == 200:
                            with lock:
                                acked_seqs.update(seqs)
                            break
                time.sleep(0.01)

        threads = [threading.Thread(target=sender, args=(w,), daemon=True) for w in range(3)]
        for t in threads:
            t.start()
        # boing-sim against each instance at once, one API: its detection state is on the one
        # instance holding that API's partition, whichever instance took the events.
        sim_api = s1.create_api(admin, "scale-sim")
        sims = [subprocess.Popen([SIM, "--server", f"http://127.0.0.1:{srv.port}", "--api-key",
                                  sim_api["ingest_key"], "--scenario", ",".join(SIM_SCENARIOS),
                                  "--events", "2000", "--seed", str(i + 1), "--batch", "200"],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
                for i, srv in enumerate((s1, s2, s3))]
        sim_accepted = 0
        for p in sims:
            err = p.communicate(timeout=60)[1].decode()
            self.assertEqual(p.returncode, 0, err)
            summary = json.loads(err.strip().splitlines()[-1])
            self.assertEqual(summary["accepted"], summary["events"], summary)
            sim_accepted += summary["accepted"]
        time.sleep(3)
        before = self.leases()
        victim_parts = sorted(p for p, h in before.items() if h == victim_name)
        self.assertIn(partition(victim_api), victim_parts, before)
        with lock:
            acked_before_kill = set(acked_sqli)
        killed_at = time.time()  # taken before the signal: the measured move can only be longer
        victim.kill()  # SIGKILL mid-stream
        moved_after = None
        while time.time() - killed_at < 3 * LEASE_S:
            held = self.leases()
            if all(held.get(p) in survivor_names for p in victim_parts):
                # When the last of them was taken (the taker's clock when it took the lease).
                taken = self.db("SELECT MAX(acquired_at_ms) FROM bus_leases WHERE part IN (" +
                                ",".join(map(str, victim_parts)) + ")")[0][0]
                moved_after = int(taken) / 1000 - killed_at
                break
            time.sleep(0.05)
        time.sleep(max(0.0, 6 - (time.time() - killed_at)))
        stop.set()
        for t in threads:
            t.join(30)
        print(f"\nbatches acknowledged: {sent[0]} ({len(acked)} events, {len(acked_sqli)} attacks); "
              f"killed {victim_name} holding partitions {victim_parts}; moved after {moved_after} s",
              flush=True)
        self.assertIsNotNone(moved_after, f"{victim_name}'s partitions did not move: {self.leases()}")
        # The victim's leases and heartbeat were last renewed before the kill, so they expire at
        # most LEASE_S after it, and the survivors wake at that expiry to take them.
        self.assertLessEqual(moved_after, LEASE_S)
        self.wait_balanced(survivor_names, 2 * LEASE_S)

        # No acknowledged event lost.
        stored = {r[0] for r in self.db("SELECT user_agent FROM events WHERE user_agent LIKE 'it-%'")}
        missing = acked - stored
        self.assertFalse(missing, f"{len(missing)} acknowledged events missing, e.g. {sorted(missing)[:5]}")

        # Agent events: every acknowledged (agent_id, seq) stored, none twice despite the retries.
        rows = self.db(f"SELECT seq, COUNT(*) FROM events WHERE agent_id = '{agent['agent_id']}' "
                       "GROUP BY seq")
        self.assertTrue(acked_seqs)
        self.assertEqual([r for r in rows if r[1] != "1"], [], "an agent event stored twice")
        self.assertFalse(acked_seqs - {int(r[0]) for r in rows}, "acknowledged agent events lost")

        # Every acknowledged attack went through detection (redeliveries after AckWait included).
        def detected():
            rows = self.db("SELECT DISTINCT e.user_agent FROM findings f JOIN events e ON "
                           "e.id = f.event_id WHERE f.detector = 'sqli' AND e.user_agent LIKE 'it-%'")
            return {r[0] for r in rows}
        deadline = time.time() + 4 * LEASE_S
        while True:
            undetected = acked_sqli - detected()
            if not undetected or time.time() > deadline:
                break
            time.sleep(0.5)
        self.assertFalse(undetected, f"{len(undetected)} acknowledged attack events never detected, "
                                     f"e.g. {sorted(undetected)[:5]}")
        # When the last attack acknowledged before the kill was detected (those the victim had
        # fetched but not acknowledged come to the new holder with its fresh consumer).
        markers = ",".join(f"'{m}'" for m in acked_before_kill)
        last = self.db("SELECT MAX(t) FROM (SELECT MIN(f.created_at) AS t FROM findings f JOIN events "
                       "e ON e.id = f.event_id WHERE f.detector = 'sqli' AND e.user_agent IN "
                       f"({markers}) GROUP BY e.id) x")[0][0]
        print(f"attacks acknowledged before the kill: all detected {float(last) - killed_at:.2f} s "
              "after it", flush=True)

        # The simulated attacks, sent to all three instances, were each recognised.
        stored_sim = int(self.db(f"SELECT COUNT(*) FROM events WHERE api_id = {sim_api['id']}")[0][0])
        self.assertEqual(stored_sim, sim_accepted)
        deadline = time.time() + 4 * LEASE_S
        while True:
            fired = {r[0] for r in self.db("SELECT DISTINCT detector FROM findings WHERE "
                                            f"api_id = {sim_api['id']}")}
            if set(SIM_SCENARIOS.values()) <= fired or time.time() > deadline:
                break
            time.sleep(0.5)
        self.assertLessEqual(set(SIM_SCENARIOS.values()), fired, "boing-sim scenarios not detected")

        # One alert per fingerprint across the instances; each attacker's alert exists.
        dupes = self.db("SELECT fingerprint, COUNT(*) FROM alerts GROUP BY fingerprint "
                        "HAVING COUNT(*) > 1")
        self.assertEqual(dupes, [], "an alert raised twice")
        sqli_alerts = self.db("SELECT api_id, actor, count FROM alerts WHERE detector = 'sqli' "
                              "AND endpoint_template = '/search'")
        self.assertEqual(len(sqli_alerts), APIS, sqli_alerts)
        self.assertEqual(len({r[0] for r in sqli_alerts}), APIS, sqli_alerts)
        # The first API's alert was fed by the victim before the kill and by a survivor after it:
        # still one alert.
        before_kill = self.db(f"SELECT COUNT(*) FROM findings WHERE api_id = {victim_api} AND "
                              f"detector = 'sqli' AND created_at < {killed_at}")[0][0]
        after_move = self.db(f"SELECT COUNT(*) FROM findings WHERE api_id = {victim_api} AND "
                             f"detector = 'sqli' AND created_at > {killed_at + moved_after}")[0][0]
        self.assertGreater(int(before_kill), 0)
        self.assertGreater(int(after_move), 0)
        self.assertEqual(len([r for r in sqli_alerts if int(r[0]) == victim_api]), 1)
        # Every attack event of each attacker is counted in its one alert, whichever instance
        # detected it. (A finding stored by the killed instance whose alert update it did not
        # live to write is found again on redelivery, so count >= distinct events, not = findings.)
        def counts():
            return self.db("SELECT a.api_id, a.count, (SELECT COUNT(DISTINCT f.event_id) FROM "
                           "findings f WHERE f.detector = 'sqli' AND f.api_id = a.api_id AND "
                           "f.actor = a.actor AND f.endpoint_template = '/search') FROM alerts a "
                           "WHERE a.detector = 'sqli' AND a.endpoint_template = '/search'")
        deadline = time.time() + 5
        while any(int(r[1]) < int(r[2]) for r in counts()) and time.time() < deadline:
            time.sleep(0.2)
        self.assertEqual([r for r in counts() if int(r[1]) < int(r[2])], [],
                         "attack events not counted in their alert")
        # The survivors' metrics agree: they hold every partition between them.
        held = 0
        for s in survivors:
            m = s.get("/metrics").body
            line = [x for x in m.splitlines() if x.startswith("boing_bus_partitions_held ")]
            self.assertTrue(line, "boing_bus_partitions_held missing from /metrics")
            held += int(float(line[0].split()[1]))
        self.assertEqual(held, PARTITIONS)

    def test_live_streams_show_detection_of_every_instance(self):
        """/ws/stream and /ws/alerts clients of an instance that does not hold the API's partition
        see its events, findings and alerts (relayed by the holder over core NATS)."""
        live = self.live()
        held = self.wait_balanced(set(live), 6 * LEASE_S)
        admin = next(iter(live.values())).admin_token()
        api = next(iter(live.values())).create_api(admin, f"live-{time.time_ns()}")
        holder = live[held[partition(api["id"])]]
        other = next(s for s in live.values() if s is not holder)
        ws = other.ws(f"/ws/stream?token={admin}&api_id={api['id']}")
        wa = other.ws(f"/ws/alerts?token={admin}")
        try:
            time.sleep(2.5)  # the other instance announces its clients once a second
            marker = f"live-{time.time_ns()}"
            r = holder.batch([event(api["ingest_key"], endpoint="/search", query=SQLI_QUERY,
                                    client_ip="192.0.2.77", user_agent=marker)])
            self.assertEqual(r.status, 200, r)
            seen = {}
            ws.settimeout(10)
            deadline = time.time() + 10
            while len(seen) < 2 and time.time() < deadline:
                m = json.loads(ws.recv())
                if m["type"] == "event" and m["event"]["user_agent"] == marker:
                    seen["event"] = m["event"]
                if m["type"] == "finding" and "event" in seen and \
                        m["finding"]["event_id"] == seen["event"]["id"]:
                    seen["finding"] = m["finding"]
            self.assertEqual(set(seen), {"event", "finding"}, seen)
            self.assertEqual(seen["event"]["api_id"], api["id"])
            self.assertEqual(seen["finding"]["detector"], "sqli")
            wa.settimeout(10)
            deadline = time.time() + 10
            alert = None
            while alert is None and time.time() < deadline:
                m = json.loads(wa.recv())
                if m["type"] == "alert" and m["alert"]["actor"] == "ip:192.0.2.77":
                    alert = m["alert"]
            self.assertIsNotNone(alert, "the holder's alert did not reach the other instance")
            self.assertEqual(alert["api_id"], api["id"])
        finally:
            ws.close()
            wa.close()
        m = holder.get("/metrics").body
        self.assertRegex(m, r'(?m)^boing_bus_live_messages_total\{direction="relayed"\} [1-9]')

    def test_nats_outage_events_replayed_from_the_outbox(self):
        """nats-server stops during ingest and comes back: events committed meanwhile are answered
        once they are in the publish outbox (database), and republished from it afterwards — also
        those of an instance SIGKILLed before NATS came back."""
        live = self.live()
        # A fourth instance with a tiny publish queue: what does not fit goes to the outbox at once.
        s4 = Server(dict(self.common, BUS_INSTANCE_ID="s4", BUS_PUBLISH_QUEUE_MAX="20",
                         BUS_PUBLISH_TIMEOUT_MS="1000"), db_name=self.servers[0].db_name).start()
        self.servers.append(s4)
        targets = list(live.values()) + [s4]
        admin = targets[0].admin_token()
        key = targets[0].create_api(admin, f"outage-{time.time_ns()}")["ingest_key"]

        def attacks(tag, n, ip="198.51.100.77"):
            return [event(key, endpoint="/search", query=SQLI_QUERY, client_ip=ip,
                          user_agent=f"{tag}-{i}") for i in range(n)]

        warm = attacks("ob-warm", 3)
        self.assertEqual(targets[0].batch(warm).status, 200)
        self.assertFalse(self.wait_detected("sqli", {e["user_agent"] for e in warm}, 4 * LEASE_S))

        acked, lock, stop = set(), threading.Lock(), threading.Event()

        def sender(w):
            n = 0
            while not stop.is_set():
                srv = targets[(n + w) % len(targets)]
                items = attacks(f"ob-{w}-{n}", 30)
                n += 1
                try:
                    r = srv.batch(items, timeout=30)
                except OSError:
                    continue
                if r.status == 200 and r.json().get("accepted") == len(items):
                    with lock:
                        acked.update(e["user_agent"] for e in items)
                time.sleep(0.05)

        threads = [threading.Thread(target=sender, args=(w,), daemon=True) for w in range(2)]
        for t in threads:
            t.start()
        time.sleep(1)
        self.nats.pause()
        try:
            time.sleep(2)
            # During the outage: answered (after BUS_PUBLISH_TIMEOUT_MS) because the events are in
            # the outbox; the small queue of s4 overflows into it at once.
            items = attacks("ob-s4", 60)
            r = s4.batch(items, timeout=30)
            self.assertEqual((r.status, r.json().get("accepted")), (200, 60), r)
            acked.update(e["user_agent"] for e in items)
            m = s4.get("/metrics").body
            spilled = [float(x.split()[1]) for x in m.splitlines()
                       if x.startswith("boing_bus_outbox_spilled_total ")]
            self.assertTrue(spilled and spilled[0] >= 60, m)
            self.assertRegex(m, r"(?m)^boing_bus_outbox_events [1-9]")
            # Its answer is sent: killing it now loses nothing, the others replay its events.
            s4.kill()
            time.sleep(1)
        finally:
            self.nats.resume()
        outbox = int(self.db("SELECT CAST(COALESCE(SUM(last_id - first_id + 1), 0) AS SIGNED) "
                             "FROM bus_outbox")[0][0])
        time.sleep(2)
        stop.set()
        for t in threads:
            t.join(60)
        print(f"\noutage: {len(acked)} attack events acknowledged, {outbox} in the outbox when NATS "
              "came back", flush=True)
        self.assertGreater(outbox, 60)
        missing = self.wait_detected("sqli", acked, 6 * LEASE_S)
        self.assertFalse(missing, f"{len(missing)} acknowledged events never detected, "
                                  f"e.g. {sorted(missing)[:5]}")
        deadline = time.time() + 10
        while self.db("SELECT COUNT(*) FROM bus_outbox")[0][0] != "0":
            self.assertLess(time.time(), deadline, "the outbox was not emptied")
            time.sleep(0.25)
        replayed = 0
        for srv in live.values():
            m = srv.get("/metrics").body
            replayed += sum(float(x.split()[1]) for x in m.splitlines()
                            if x.startswith("boing_bus_outbox_replayed_total "))
        self.assertGreaterEqual(replayed, outbox)

    def test_settings_follow_changes_made_on_another_instance(self):
        """Detector settings, whitelist entries and matcher mutes changed through one instance
        apply to the detection of another instance (the holder of the API's partition) within
        about a second, without a restart."""
        live = self.live()
        self.assertGreaterEqual(len(live), 2)
        held = self.wait_balanced(set(live), 6 * LEASE_S)
        admin_any = next(iter(live.values())).admin_token()
        api = next(iter(live.values())).create_api(admin_any, f"settings-{time.time_ns()}")
        key = api["ingest_key"]
        holder = live[held[partition(api["id"])]]
        other = next(s for s in live.values() if s is not holder)  # where every change is made
        admin = other.admin_token()
        xss = "q=%3Cscript%3Ealert(1)%3C%2Fscript%3E"

        def run(tag, ip, expect):
            """An SQL injection from `ip` then an XSS control from another address, in one batch
            (one partition, in order): once the control is detected, the first was processed."""
            items = [event(key, endpoint="/search", query=SQLI_QUERY, client_ip=ip,
                           user_agent=f"{tag}-attack"),
                     event(key, endpoint="/find", query=xss, client_ip="192.0.2.200",
                           user_agent=f"{tag}-control")]
            self.assertEqual(holder.batch(items).status, 200)
            self.assertFalse(self.wait_detected("xss", {f"{tag}-control"}, 4 * LEASE_S),
                             "the control event was not detected")
            self.assertEqual(bool(self.detected("sqli", f"{tag}-attack")), expect, tag)

        run("set-before", "192.0.2.10", True)
        # A detector switched off through the other instance.
        r = other.put("/api/detectors/sqli", {"enabled": False}, admin)
        self.assertEqual(r.status, 200, r)
        try:
            time.sleep(2.5)
            run("set-off", "192.0.2.11", False)
        finally:
            self.assertEqual(other.put("/api/detectors/sqli", {"enabled": True}, admin).status, 200)
        time.sleep(2.5)
        run("set-on", "192.0.2.12", True)

        # A whitelisted address, through the other instance.
        r = other.post("/api/whitelist", {"kind": "ip", "value": "192.0.2.13", "reason": "scan"}, admin)
        self.assertEqual(r.status, 201, r)
        entry = r.json()
        time.sleep(2.5)
        run("set-wl", "192.0.2.13", False)
        self.assertEqual(other.delete(f"/api/whitelist/{entry['id']}", admin).status, 204)
        time.sleep(2.5)
        run("set-unwl", "192.0.2.13", True)

        # A matcher mute, through the other instance: the holder raises the alert, muted.
        r = other.post("/api/channels", {"name": f"mute-check-{time.time_ns()}", "kind": "webhook",
                                         "min_severity": "info", "api_ids": [api["id"]],
                                         "config": {"url": "http://127.0.0.1:9/hook"}}, admin)
        self.assertEqual(r.status, 201, r)
        r = other.post("/api/mutes", {"actor": "ip:192.0.2.14", "api_id": api["id"],
                                      "duration_seconds": 600}, admin)
        self.assertEqual(r.status, 201, r)
        time.sleep(2.5)
        run("set-muted", "192.0.2.14", True)
        run("set-unmuted", "192.0.2.15", True)

        def delivery_status(ip):
            deadline = time.time() + 10
            while True:
                rows = self.db(f"SELECT id FROM alerts WHERE api_id = {api['id']} AND "
                               f"actor = 'ip:{ip}' AND detector = 'sqli'")
                if rows:
                    d = other.get(f"/api/alerts/{rows[0][0]}/deliveries", admin).json()["deliveries"]
                    if d:
                        return {x["status"] for x in d}
                self.assertLess(time.time(), deadline, f"no alert delivery for {ip}")
                time.sleep(0.25)

        self.assertEqual(delivery_status("192.0.2.14"), {"muted"})
        self.assertNotIn("muted", delivery_status("192.0.2.15"))


if __name__ == "__main__":
    unittest.main()
