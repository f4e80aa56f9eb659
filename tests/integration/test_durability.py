"""Durability: a restart keeps everything; SIGKILL during batch ingest loses no acknowledged event
(EVENTS.md "Durability"); SIGTERM lets an in-flight request finish and its events survive."""
import json
import socket
import threading
import time
import unittest

from harness import ADMIN_PASSWORD, ADMIN_USER, PASSWORD, Server, event


def stored_endpoints(server, prefix):
    return [r[0] for r in server.db_query(f"SELECT endpoint FROM events WHERE endpoint LIKE '{prefix}%'")]


class DurabilityCase(unittest.TestCase):
    def setUp(self):
        self.server = Server().start()

    def tearDown(self):
        self.server.cleanup()


class RestartTest(DurabilityCase):
    def test_restart_keeps_everything(self):
        s = self.server
        admin = s.admin_token()
        kept_user = s.register("keptuser")
        api = s.create_api(kept_user, "kept", settings={"k": 1}, upstream_secret="kept-secret", match_host="kept.example")
        r = s.post("/api/ingest", event(api["ingest_key"], endpoint="/kept/1", headers={"Authorization": "Bearer kept-caller"}))
        self.assertEqual(r.status, 200, r)
        event_id = r.json()["id"]
        identity = s.logs(admin, endpoint="/kept/1")["logs"][0]["identity"]
        agent = s.enroll_agent(admin, "kept-host")
        self.assertEqual(s.post("/api/agents/heartbeat", {"counters": {"captured": 3}}, agent["agent_token"]).status, 200)
        self.assertEqual(s.batch([event(agent_id=agent["agent_id"], seq=1, endpoint="/kept/agent")], token=agent["agent_token"]).json()["accepted"], 1)
        entry = s.post("/api/blacklist", {"kind": "cidr", "value": "10.9.0.0/16", "reason": "kept"}, admin).json()
        det = s.get("/api/detectors", admin).json()["detectors"][0]["id"]
        self.assertEqual(s.put(f"/api/detectors/{det}", {"severity": "critical"}, admin).status, 200)
        logged_out = s.login("keptuser")
        self.assertEqual(s.post("/api/logout", token=logged_out).status, 204)
        audit_before = s.get("/api/audit?limit=1000", admin).json()["entries"]

        self.assertEqual(s.stop(), 0, "SIGTERM is a clean exit")
        s.start()

        # Accounts, and tokens issued before the restart (the signing key is kept).
        self.assertEqual(s.me(kept_user)["username"], "keptuser")
        self.assertEqual(s.get("/api/me", logged_out).status, 401, "a revoked token stays revoked")
        s.login("keptuser")
        s.login(ADMIN_USER, ADMIN_PASSWORD)
        got = s.get(f"/api/apis/{api['id']}", kept_user).json()
        self.assertEqual((got["name"], got["settings"], got["has_upstream_secret"], got["match_host"]),
                         ("kept", {"k": 1}, True, "kept.example"))
        # Events, the identity key (same caller, same hash), the ingest key and the agent token.
        rows = s.logs(admin, endpoint="/kept/1")["logs"]
        self.assertEqual([x["id"] for x in rows], [event_id])
        r = s.post("/api/ingest", event(api["ingest_key"], endpoint="/kept/2", headers={"Authorization": "Bearer kept-caller"}))
        self.assertEqual(r.status, 200, r)
        self.assertEqual(s.logs(admin, endpoint="/kept/2")["logs"][0]["identity"], identity)
        r = s.batch([event(agent_id=agent["agent_id"], seq=1, endpoint="/kept/agent")], token=agent["agent_token"])
        self.assertEqual((r.status, r.json()["duplicates"]), (200, 1), "dedup state survives a restart")
        agents = {a["agent_id"]: a for a in s.get("/api/agents", admin).json()["agents"]}
        self.assertEqual(agents[agent["agent_id"]]["counters"], {"captured": 3})
        self.assertIn(entry["id"], [e["id"] for e in s.get("/api/blacklist", admin).json()["entries"]])
        self.assertEqual([d for d in s.get("/api/detectors", admin).json()["detectors"] if d["id"] == det][0]["severity"], "critical")
        audit_after = s.get("/api/audit?limit=1000", admin).json()["entries"]
        self.assertTrue({e["id"] for e in audit_before} <= {e["id"] for e in audit_after})


class CrashTest(DurabilityCase):
    def test_sigkill_during_batch_ingest_loses_nothing_acknowledged(self):
        s = self.server
        admin = s.admin_token()
        key = s.create_api(admin, "kill")["ingest_key"]
        agent = s.enroll_agent(admin, "kill-host")
        lock = threading.Lock()
        acked, sent, in_flight = [], [0], {}
        stop = threading.Event()

        def sender(worker):
            n = 0
            while not stop.is_set():
                use_agent = worker % 2 == 1
                batch = [event(key if not use_agent else None, endpoint=f"/k/{worker}/{n}/{i}",
                               **({"agent_id": agent["agent_id"], "seq": worker * 10_000_000 + n * 1000 + i} if use_agent else {}))
                         for i in range(200)]
                n += 1
                with lock:
                    sent[0] += len(batch)
                    in_flight[worker] = batch
                try:
                    r = s.post("/api/ingest/batch", raw=json.dumps(batch), timeout=15,
                               token=agent["agent_token"] if use_agent else None)
                except OSError:
                    continue  # the server died under this request: not acknowledged
                if r.status == 200 and r.json()["accepted"] + r.json()["duplicates"] == len(batch):
                    with lock:
                        acked.extend(e["endpoint"] for e in batch)

        threads = [threading.Thread(target=sender, args=(w,)) for w in range(4)]
        for t in threads:
            t.start()
        time.sleep(1.5)
        s.kill()  # SIGKILL mid-stream
        stop.set()
        for t in threads:
            t.join(30)
        s.start()
        found = set(stored_endpoints(s, "/k/"))
        lost = [e for e in acked if e not in found]
        print(f"\nSIGKILL during batch ingest: sent {sent[0]}, acknowledged {len(acked)}, "
              f"found after restart {len(found)}, acknowledged but lost {len(lost)}")
        self.assertGreater(len(acked), 0, "nothing was acknowledged before the kill: the test proved nothing")
        self.assertLess(len(acked), sent[0] + 1)
        self.assertEqual(lost[:10], [], f"{len(lost)} acknowledged events lost")
        # The agents' in-flight batches are retried (at-least-once): each (agent_id, seq) once.
        for worker, batch in in_flight.items():
            if worker % 2 == 1:
                r = s.post("/api/ingest/batch", raw=json.dumps(batch), token=agent["agent_token"])
                self.assertEqual(r.status, 200, r)
                self.assertEqual(r.json()["accepted"] + r.json()["duplicates"], len(batch), r)
        dupes = s.db_query("SELECT agent_id, seq, COUNT(*) FROM events WHERE agent_id IS NOT NULL AND agent_id <> '' "
                           "GROUP BY agent_id, seq HAVING COUNT(*) > 1")
        self.assertEqual(dupes, [], "an (agent_id, seq) stored twice")
        endpoints = stored_endpoints(s, "/k/")
        self.assertEqual(len(endpoints), len(set(endpoints)), "an event stored twice")


class GracefulShutdownTest(DurabilityCase):
    def test_sigterm_while_a_slow_batch_is_in_flight(self):
        s = self.server
        key = s.create_api(s.admin_token(), "drain")["ingest_key"]
        body = json.dumps([event(key, endpoint=f"/drain/{i}") for i in range(300)]).encode()
        head = (f"POST /api/ingest/batch HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode()
        sock = socket.create_connection(("127.0.0.1", s.port), timeout=30)
        try:
            sock.sendall(head + body[:len(body) // 2])
            time.sleep(0.3)
            s.proc.send_signal(15)  # SIGTERM while the request body is still arriving
            time.sleep(0.5)
            self.assertTrue(s.alive(), "the server quit with a request in flight")
            for i in range(len(body) // 2, len(body), 4096):  # the rest, slowly
                sock.sendall(body[i:i + 4096])
                time.sleep(0.02)
            data = b""
            while True:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                data += chunk
        finally:
            sock.close()
        self.assertTrue(data, "no response to the in-flight request")
        status = int(data.split(b" ", 2)[1])
        self.assertEqual(status, 200, data[:500])
        answer = json.loads(data.split(b"\r\n\r\n", 1)[1].decode())
        self.assertEqual(answer["accepted"], 300, answer)
        self.assertEqual(s.stop(), 0)
        s.start()
        self.assertEqual(len(set(stored_endpoints(s, "/drain/"))), 300)

    def test_sigterm_refuses_new_work_then_exits(self):
        s = self.server
        key = s.create_api(s.admin_token(), "drain2")["ingest_key"]
        results = []

        def send():
            try:
                r = s.batch([event(key, endpoint=f"/drain2/{i}") for i in range(5000)], timeout=30)
                results.append(r)
            except OSError as e:
                results.append(e)

        t = threading.Thread(target=send)
        t.start()
        time.sleep(0.05)
        self.assertEqual(s.stop(), 0)
        t.join()
        r = results[0]
        s.start()
        stored = len(set(stored_endpoints(s, "/drain2/")))
        if hasattr(r, "status") and r.status == 200:
            self.assertEqual(stored, r.json()["accepted"], "acknowledged but not stored")
        else:
            # Refused before it was read (connection closed or 503): nothing acknowledged.
            self.assertTrue(not hasattr(r, "status") or r.status == 503, r)


if __name__ == "__main__":
    unittest.main()
