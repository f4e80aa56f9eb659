"""Every endpoint of boing-server, over real HTTP, on the backend named by BOING_IT_BACKEND."""
import csv
import io
import json
import math
import os
import time
import unittest

import websocket  # Debian python3-websocket

from harness import ServerTestCase, Server, event, forge_jwt, gz


class AuthTest(ServerTestCase):
    server_env = {"LOGIN_MAX_FAILURES": "3", "LOGIN_LOCKOUT_SECONDS": "60"}

    def test_env_admin_then_registered_users(self):
        me = self.server.get("/api/me", self.admin).json()
        self.assertEqual(me["role"], "admin")
        tok = self.server.register("plainuser")
        self.assertEqual(self.server.get("/api/me", tok).json()["role"], "user")
        r = self.server.post("/api/register", {"username": "plainuser", "password": "password-123"})
        self.assertEqual(r.status, 409)
        r = self.server.post("/api/register", {"username": "shortpw", "password": "abc"})
        self.assertEqual((r.status, r.json()["field"]), (400, "password"))
        r = self.server.post("/api/register", {"username": "x"}, )
        self.assertEqual(r.status, 400)

    def test_wrong_password_and_lockout(self):
        self.server.register("lockme")
        for _ in range(3):
            self.assertEqual(self.server.post("/api/login", {"username": "lockme", "password": "wrong-pass"}).status, 401)
        r = self.server.post("/api/login", {"username": "lockme", "password": "password-123"})
        self.assertEqual(r.status, 423, r)
        self.assertGreater(int(r.header("Retry-After")), 0)
        self.assertEqual(self.server.post("/api/login", {"username": "nobody", "password": "x"}).status, 401)

    def test_logout_revokes(self):
        self.server.register("leaver")
        tok = self.server.login("leaver")
        self.assertEqual(self.server.get("/api/me", tok).status, 200)
        self.assertEqual(self.server.post("/api/logout", token=tok).status, 204)
        self.assertEqual(self.server.get("/api/me", tok).status, 401)

    def test_jwt_attacks_rejected(self):
        secret = self.server.secrets()["JWT_SECRET"]
        me = self.server.get("/api/me", self.admin).json()
        now = int(time.time())
        good = {"sub": str(me["id"]), "role": "admin", "jti": "x1", "iss": "boing",
                "aud": "boing-dashboard", "iat": now, "nbf": now, "exp": now + 600}
        self.assertEqual(self.server.get("/api/me", forge_jwt({"alg": "HS256", "typ": "JWT"}, good, secret)).status, 200)
        cases = {
            "alg none": forge_jwt({"alg": "none"}, good, secret).rsplit(".", 1)[0] + ".",
            "HS512": forge_jwt({"alg": "HS512", "typ": "JWT"}, good, secret),
            "RS256 confusion": forge_jwt({"alg": "RS256", "typ": "JWT"}, good, secret),
            "expired": forge_jwt({"alg": "HS256"}, dict(good, exp=now - 3600), secret),
            "not yet valid": forge_jwt({"alg": "HS256"}, dict(good, nbf=now + 3600), secret),
            "wrong audience": forge_jwt({"alg": "HS256"}, dict(good, aud="other"), secret),
            "wrong issuer": forge_jwt({"alg": "HS256"}, dict(good, iss="evil"), secret),
            "wrong secret": forge_jwt({"alg": "HS256"}, good, "not-the-secret"),
        }
        valid = self.admin.split(".")
        tampered_payload = forge_jwt({"alg": "HS256"}, dict(good, sub="999"), "x").split(".")[1]
        cases["tampered"] = ".".join([valid[0], tampered_payload, valid[2]])
        for name, tok in cases.items():
            r = self.server.get("/api/me", tok)
            self.assertEqual(r.status, 401, name)
            self.assertIn("error", r.json())

    def test_admin_user_management(self):
        tok = self.server.register("managed")
        uid = self.server.get("/api/me", tok).json()["id"]
        self.assertEqual(self.server.get("/api/users", tok).status, 403)
        users = self.server.get("/api/users", self.admin).json()["users"]
        self.assertIn("managed", [u["username"] for u in users])
        r = self.server.request("PUT", f"/api/users/{uid}", {"disabled": True}, self.admin)
        self.assertEqual(r.status, 200)
        self.assertEqual(self.server.get("/api/me", tok).status, 401)
        me = self.server.get("/api/me", self.admin).json()
        self.assertEqual(self.server.request("PUT", f"/api/users/{me['id']}", {"role": "user"}, self.admin).status, 400)
        self.assertEqual(self.server.request("DELETE", f"/api/users/{uid}", token=self.admin).status, 204)
        self.assertEqual(self.server.request("DELETE", f"/api/users/{uid}", token=self.admin).status, 404)


class FirstAccountTest(unittest.TestCase):
    """Production mode: no generated admin; the first registered account becomes admin."""

    def test_first_registered_account_is_admin(self):
        server = Server({"BOING_ENV": "production", "JWT_SECRET": "j" * 48,
                         "ENCRYPTION_KEY": "0123456789abcdef0123456789abcdef",
                         "ADMIN_USERNAME": ""})
        server.start()
        try:
            first = server.register("founder")
            second = server.register("joiner")
            self.assertEqual(server.get("/api/me", first).json()["role"], "admin")
            self.assertEqual(server.get("/api/me", second).json()["role"], "user")
        finally:
            server.stop()
            server.drop_database()

    def test_production_refuses_weak_secrets(self):
        server = Server({"BOING_ENV": "production", "JWT_SECRET": "your-secret-key-change-this"})
        server.start_expecting_failure = True
        import subprocess
        from harness import BINARY
        out = subprocess.run([BINARY, "--listen", "127.0.0.1:0", "--data-dir", server.data_dir],
                             env=server.env, capture_output=True, text=True, timeout=30)
        self.assertEqual(out.returncode, 2)
        self.assertIn("JWT_SECRET", out.stderr)
        self.assertIn("ENCRYPTION_KEY", out.stderr)
        server.drop_database()


class AuthRateLimitTest(ServerTestCase):
    server_env = {"AUTH_RATE_LIMIT_PER_MINUTE": "5"}

    @classmethod
    def setUpClass(cls):
        cls.server = Server(cls.server_env)
        cls.server.env["AUTH_RATE_LIMIT_PER_MINUTE"] = "5"
        cls.server.start()
        cls.admin = cls.server.admin_token()

    def test_login_flood_gets_429(self):
        statuses = [self.server.post("/api/login", {"username": "admin1", "password": "bad-password"}).status
                    for _ in range(8)]
        self.assertIn(429, statuses)
        r = self.server.post("/api/login", {"username": "admin1", "password": "bad-password"})
        self.assertEqual(r.status, 429)
        self.assertGreater(int(r.header("Retry-After")), 0)


class ApisTest(ServerTestCase):
    def test_crud_and_ownership(self):
        alice = self.server.register("alice")
        bob = self.server.register("bob")
        api = self.server.create_api(alice, "alice-api", base_url="https://a.example",
                                     upstream_secret="s3cr3t-upstream", match_host="a.example")
        self.assertTrue(api["ingest_key"].startswith("bk_"))
        self.assertTrue(api["has_upstream_secret"])
        self.assertNotIn("upstream_secret", api)
        aid = api["id"]
        listed = self.server.get("/api/apis", alice).json()["apis"]
        self.assertEqual([a["id"] for a in listed], [aid])
        self.assertNotIn("ingest_key", listed[0])
        self.assertEqual(self.server.get("/api/apis", bob).json()["apis"], [])
        self.assertEqual(self.server.get(f"/api/apis/{aid}", bob).status, 404)
        self.assertEqual(self.server.request("PUT", f"/api/apis/{aid}", {"name": "x"}, bob).status, 404)
        self.assertEqual(self.server.request("DELETE", f"/api/apis/{aid}", token=bob).status, 404)
        self.assertIn(aid, [a["id"] for a in self.server.get("/api/apis", self.admin).json()["apis"]])
        r = self.server.request("PUT", f"/api/apis/{aid}", {"name": "renamed", "rotate_ingest_key": True}, alice)
        self.assertEqual(r.status, 200)
        self.assertEqual(r.json()["name"], "renamed")
        new_key = r.json()["ingest_key"]
        self.assertEqual(self.server.post("/api/ingest", event(api["ingest_key"])).status, 401)
        self.assertEqual(self.server.post("/api/ingest", event(new_key)).status, 200)
        bad = self.server.post("/api/apis", {"name": "x", "base_url": "ftp://x"}, alice)
        self.assertEqual((bad.status, bad.json()["field"]), (400, "base_url"))
        self.assertEqual(self.server.request("DELETE", f"/api/apis/{aid}", token=alice).status, 204)
        self.assertEqual(self.server.get(f"/api/apis/{aid}", alice).status, 404)
        self.assertEqual(self.server.post("/api/ingest", event(new_key)).status, 401)


class IngestTest(ServerTestCase):
    server_env = {"BATCH_MAX_EVENTS": "100"}

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.api = cls.server.create_api(cls.admin, "ingest-api")
        cls.key = cls.api["ingest_key"]

    def logs(self, **q):
        qs = "&".join(f"{k}={v}" for k, v in q.items())
        return self.server.get(f"/api/logs?{qs}", self.admin).json()["logs"]

    def test_seed_python_snippet_payload(self):
        # Exactly what the product description's Python middleware sends.
        payload = {"api_key": self.key, "timestamp": time.time(), "method": "POST",
                   "endpoint": "/py/orders", "client_ip": "198.51.100.4",
                   "headers": {"Host": "shop.example", "User-Agent": "python-requests/2.31",
                               "Authorization": "Bearer PY-RAW-TOKEN-abc", "Content-Length": "12"},
                   "status_code": 201, "latency_ms": 0.123 * 1000, "body_size": 12}
        r = self.server.post("/api/ingest", payload)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json()["status"], "accepted")
        row = self.logs(endpoint="/py/orders")[0]
        self.assertEqual((row["method"], row["status_code"], row["client_ip"]), ("POST", 201, "198.51.100.4"))
        self.assertEqual(len(row["identity"]), 32)
        self.assertNotIn("PY-RAW-TOKEN", json.dumps(row))
        self.assertNotIn("Authorization", [k for k in row.get("headers", {})])

    def test_seed_node_snippet_payload(self):
        payload = {"api_key": self.key, "timestamp": int(time.time() * 1000) / 1000, "method": "GET",
                   "endpoint": "/node/items", "client_ip": "::ffff:127.0.0.1",
                   "headers": {"host": "localhost:3000", "cookie": "sid=NODE-COOKIE-1",
                               "accept": "*/*"},
                   "status_code": 200, "latency_ms": 7, "body_size": 78}
        r = self.server.post("/api/ingest", payload)
        self.assertEqual(r.status, 200, r)
        row = self.logs(endpoint="/node/items")[0]
        self.assertNotIn("NODE-COOKIE", json.dumps(row))
        self.assertTrue(row["identity"])

    def test_bad_events_name_the_field(self):
        cases = [({"status_code": "ok"}, "status_code"), ({"timestamp": "now"}, "timestamp"),
                 ({"client_ip": "999.1.1.1"}, "client_ip"), ({"headers": [1]}, "headers"),
                 ({"timestamp": time.time() * 1000}, "timestamp"), ({"latency_ms": -5}, "latency_ms")]
        for fields, field in cases:
            r = self.server.post("/api/ingest", event(self.key, **fields))
            self.assertEqual(r.status, 400, fields)
            self.assertEqual(r.json()["field"], field)
        e = event(self.key)
        del e["method"]
        self.assertEqual(self.server.post("/api/ingest", e).json()["field"], "method")
        self.assertEqual(self.server.post("/api/ingest", raw="{not json").status, 400)
        self.assertEqual(self.server.post("/api/ingest", event("bk_wrong")).status, 401)
        self.assertEqual(self.server.post("/api/ingest", event()).status, 401)
        deep = event(self.key)
        deep["x"] = json.loads("[" * 40 + "]" * 40)
        r = self.server.post("/api/ingest", deep)
        self.assertEqual(r.status, 400)
        self.assertIn("depth", r.json()["error"])
        many = event(self.key, headers={f"h{i}": "v" for i in range(150)})
        self.assertEqual(self.server.post("/api/ingest", many).json()["field"], "headers")

    def test_batch_array_ndjson_gzip_and_per_item_results(self):
        items = [event(endpoint=f"/batch/a{i}") for i in range(3)] + [{"endpoint": "/broken"}]
        r = self.server.post("/api/ingest/batch", raw=json.dumps(items), headers={"X-Api-Key": self.key})
        self.assertEqual(r.status, 200, r)
        j = r.json()
        self.assertEqual((j["accepted"], j["rejected"]), (3, 1))
        self.assertEqual(j["results"][3]["status"], "rejected")
        nd = "\n".join(json.dumps(event(self.key, endpoint=f"/batch/n{i}")) for i in range(4)) + "\n{garbage\n"
        r = self.server.post("/api/ingest/batch", raw=gz(nd), headers={"Content-Encoding": "gzip"})
        self.assertEqual(r.status, 200, r)
        self.assertEqual((r.json()["accepted"], r.json()["rejected"]), (4, 1))
        self.assertEqual(len(self.logs(endpoint="/batch/n*")), 4)
        too_many = json.dumps([event(self.key)] * 101)
        r = self.server.post("/api/ingest/batch", raw=too_many)
        self.assertEqual(r.status, 400)
        self.assertIn("100", r.json()["error"])
        self.assertEqual(self.server.post("/api/ingest/batch", raw="[{").status, 400)

    def test_agents_enrol_dedup_heartbeat_revoke(self):
        et = self.server.post("/api/agents", {"name": "host-1"}, self.admin).json()["enrollment_token"]
        r = self.server.post("/api/agents/enroll", {"enrollment_token": et, "hostname": "host-1", "version": "0.1"})
        self.assertEqual(r.status, 201, r)
        agent = r.json()
        self.assertEqual(len(bytes.fromhex(agent["identity_key"])), 32)
        self.assertEqual(self.server.post("/api/agents/enroll", {"enrollment_token": et}).status, 401)
        tok = agent["agent_token"]
        events = [event(agent_id=agent["agent_id"], seq=i, endpoint=f"/agent/{i}") for i in (1, 2, 3)]
        r = self.server.post("/api/ingest/batch", raw=json.dumps(events), token=tok)
        self.assertEqual(r.json()["accepted"], 3)
        # Retry of the same batch (at-least-once delivery): accepted once.
        r = self.server.post("/api/ingest/batch", raw=json.dumps(events), token=tok)
        self.assertEqual((r.json()["accepted"], r.json()["duplicates"]), (0, 3))
        self.assertEqual(len(self.logs(endpoint="/agent/*")), 3)
        spoof = [event(agent_id="someone-else", seq=9)]
        self.assertEqual(self.server.post("/api/ingest/batch", raw=json.dumps(spoof), token=tok).json()["rejected"], 1)
        hb = self.server.post("/api/agents/heartbeat", {"version": "0.2", "counters": {"captured": 10, "dropped_ringbuf": 1},
                                                        "rates": [{"ip": "10.1.1.1", "rps": 4.5}]}, tok)
        self.assertEqual(hb.status, 200)
        agents = self.server.get("/api/agents", self.admin).json()["agents"]
        mine = [a for a in agents if a["agent_id"] == agent["agent_id"]][0]
        self.assertEqual((mine["version"], mine["counters"]["captured"], mine["rates"][0]["ip"]), ("0.2", 10, "10.1.1.1"))
        self.assertEqual(self.server.request("DELETE", f"/api/agents/{agent['agent_id']}", token=self.admin).status, 204)
        self.assertEqual(self.server.post("/api/ingest/batch", raw=json.dumps(events), token=tok).status, 401)
        self.assertEqual(self.server.post("/api/agents/heartbeat", {}, tok).status, 401)

    def test_websocket_ingest_acks_each_message(self):
        ws = websocket.create_connection(f"ws://127.0.0.1:{self.server.port}/ws/ingest", timeout=10)
        ws.send(json.dumps(event(self.key, endpoint="/ws/one")))
        self.assertEqual(json.loads(ws.recv())["status"], "accepted")
        ws.send(json.dumps(event(self.key, status_code="bad")))
        reply = json.loads(ws.recv())
        self.assertEqual((reply["status"], reply["field"]), ("rejected", "status_code"))
        ws.send(json.dumps(event("bk_nope")))
        self.assertEqual(json.loads(ws.recv())["status"], "rejected")
        ws.close()
        self.assertEqual(len(self.logs(endpoint="/ws/one")), 1)
        with self.assertRaises(websocket.WebSocketBadStatusException):
            websocket.create_connection(f"ws://127.0.0.1:{self.server.port}/ws/ingest?token=bt_bad", timeout=10)


class QueryTest(ServerTestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.api = cls.server.create_api(cls.admin, "query-api")
        t0 = int(time.time()) - 300
        cls.t0 = t0
        cls.latencies = [float(i) for i in range(1, 101)]
        evs = []
        for i, lat in enumerate(cls.latencies):
            evs.append(event(timestamp=t0 + i % 3, endpoint="/q/" + ("a" if i % 4 else "b"),
                             client_ip=f"10.0.0.{i % 5}", status_code=500 if i % 10 == 0 else 200,
                             latency_ms=lat))
        evs.append(event(timestamp=t0, endpoint="/=1+2", client_ip="10.9.9.9", latency_ms=1,
                         headers={"User-Agent": "=HYPERLINK(\"http://evil\")"}))
        r = cls.server.post("/api/ingest/batch", raw=json.dumps(evs), headers={"X-Api-Key": cls.api["ingest_key"]})
        assert r.json()["accepted"] == 101, r

    def test_keyset_pagination_visits_every_row_once(self):
        seen, cursor = [], None
        for _ in range(50):
            q = f"/api/logs?api_id={self.api['id']}&limit=7" + (f"&cursor={cursor}" if cursor else "")
            j = self.server.get(q, self.admin).json()
            seen += [row["id"] for row in j["logs"]]
            cursor = j["next_cursor"]
            if not cursor:
                break
        self.assertEqual(len(seen), 101)
        self.assertEqual(len(set(seen)), 101)

    def test_filters(self):
        base = f"/api/logs?api_id={self.api['id']}&limit=1000"
        self.assertEqual(len(self.server.get(base + "&status_min=500", self.admin).json()["logs"]), 10)
        self.assertEqual(len(self.server.get(base + "&client_ip=10.0.0.1", self.admin).json()["logs"]), 20)
        self.assertEqual(len(self.server.get(base + "&endpoint=/q/b", self.admin).json()["logs"]), 25)
        self.assertEqual(len(self.server.get(base + f"&from={self.t0 + 2}", self.admin).json()["logs"]), 33)
        self.assertEqual(self.server.get(f"/api/logs?limit=5000", self.admin).status, 400)
        self.assertEqual(self.server.get("/api/logs?cursor=garbage", self.admin).status, 400)
        other = self.server.register("nosy")
        self.assertEqual(self.server.get(base, other).status, 404)
        self.assertEqual(self.server.get("/api/logs", other).json()["logs"], [])

    def test_csv_export_is_rfc4180_and_neutralised(self):
        r = self.server.get(f"/api/export/logs?api_id={self.api['id']}", self.admin)
        self.assertEqual(r.status, 200)
        self.assertTrue(r.header("Content-Type").startswith("text/csv"))
        self.assertEqual(r.header("Transfer-Encoding"), "chunked")
        rows = list(csv.reader(io.StringIO(r.body, newline="")))
        self.assertEqual(rows[0][:5], ["id", "api_id", "timestamp", "method", "endpoint"])
        self.assertEqual(len(rows), 102)
        evil = [row for row in rows if "1+2" in row[4]][0]
        self.assertEqual(evil[4], "/=1+2")  # starts with '/': data, not a formula
        self.assertTrue(evil[11].startswith("'="), evil[11])

    def test_metrics_match_exact_values(self):
        r = self.server.get(f"/api/metrics?api_id={self.api['id']}&from={self.t0}&to={self.t0 + 60}&bucket=60&top=3", self.admin)
        self.assertEqual(r.status, 200, r)
        m = r.json()["apis"][0]
        self.assertEqual(m["totals"]["requests"], 101)
        self.assertEqual(m["totals"]["errors"], 10)
        lat = sorted(self.latencies + [1.0])

        def nearest_rank(q):
            return lat[math.ceil(q * len(lat)) - 1]
        for q, k in ((0.5, "p50"), (0.95, "p95"), (0.99, "p99")):
            self.assertEqual(m["totals"][k], nearest_rank(q), k)
        self.assertEqual(m["top_endpoints"][0], {"endpoint": "/q/a", "count": 75})
        self.assertEqual(len(m["top_ips"]), 3)
        self.assertEqual(sum(b["requests"] for b in m["buckets"]), 101)
        self.assertEqual(self.server.get("/api/metrics?bucket=0", self.admin).status, 400)


class ConfigTest(ServerTestCase):
    def test_detectors(self):
        dets = self.server.get("/api/detectors", self.admin).json()["detectors"]
        ids = {d["id"] for d in dets}
        self.assertTrue({"rate_limit", "sqli", "xss", "zscore", "isolation_forest"} <= ids)
        rl = [d for d in dets if d["id"] == "rate_limit"][0]
        self.assertEqual(rl["config"]["per_minute"], 100)
        user = self.server.register("det-user")
        self.assertEqual(self.server.request("PUT", "/api/detectors/sqli", {"enabled": False}, user).status, 403)
        r = self.server.request("PUT", "/api/detectors/rate_limit", {"config": {"per_minute": 7}, "severity": "high"}, self.admin)
        self.assertEqual(r.status, 200, r)
        self.assertEqual((r.json()["config"]["per_minute"], r.json()["severity"]), (7, "high"))
        self.assertEqual(self.server.request("PUT", "/api/detectors/rate_limit", {"severity": "urgent"}, self.admin).status, 400)
        self.assertEqual(self.server.request("PUT", "/api/detectors/nope", {"enabled": True}, self.admin).status, 404)

    def test_lists_with_expiry_and_ownership(self):
        r = self.server.post("/api/blacklist", {"kind": "cidr", "value": "10.0.0.0/8", "reason": "scanner"}, self.admin)
        self.assertEqual(r.status, 201, r)
        eid = r.json()["id"]
        self.assertEqual(self.server.post("/api/blacklist", {"kind": "ip", "value": "10.0.0"}, self.admin).json()["field"], "value")
        short = self.server.post("/api/whitelist", {"kind": "ip", "value": "192.0.2.1", "ttl_seconds": 1}, self.admin)
        self.assertEqual(short.status, 201)
        time.sleep(2.1)
        self.assertNotIn(short.json()["id"], [e["id"] for e in self.server.get("/api/whitelist", self.admin).json()["entries"]])
        user = self.server.register("list-user")
        self.assertEqual(self.server.post("/api/blacklist", {"kind": "ip", "value": "1.2.3.4"}, user).status, 403)
        own = self.server.create_api(user, "own")
        r = self.server.post("/api/whitelist", {"kind": "identity", "value": "abc", "api_id": own["id"]}, user)
        self.assertEqual(r.status, 201)
        self.assertEqual(self.server.request("DELETE", f"/api/blacklist/{eid}", token=user).status, 404)
        self.assertEqual(self.server.request("DELETE", f"/api/blacklist/{eid}", token=self.admin).status, 204)
        self.assertNotIn(eid, [e["id"] for e in self.server.get("/api/blacklist", self.admin).json()["entries"]])

    def test_audit_records_admin_actions(self):
        self.server.create_api(self.admin, "audited")
        self.server.request("PUT", "/api/detectors/xss", {"enabled": False}, self.admin)
        entries = self.server.get("/api/audit?limit=50", self.admin).json()["entries"]
        actions = [e["action"] for e in entries]
        self.assertIn("api.create", actions)
        self.assertIn("detector.update", actions)
        e = [x for x in entries if x["action"] == "detector.update"][0]
        self.assertEqual((e["username"], e["client_ip"]), ("admin1", "127.0.0.1"))
        user = self.server.register("audit-user")
        self.assertEqual(self.server.get("/api/audit", user).status, 403)


class OpsAndLimitsTest(ServerTestCase):
    server_env = {"MAX_BODY_BYTES": "20000", "MAX_HEADER_BYTES": "4096", "CORS_ORIGINS": "http://localhost:5173"}

    def test_health_ready_prometheus(self):
        self.assertEqual(self.server.get("/healthz").json(), {"status": "ok"})
        self.assertEqual(self.server.get("/readyz").status, 200)
        text = self.server.get("/metrics").body
        samples = [line for line in text.splitlines() if line and not line.startswith("#")]
        for line in samples:
            name, value = line.rsplit(" ", 1)
            float(value)
            self.assertRegex(name, r'^[a-zA-Z_:][a-zA-Z0-9_:]*(\{.*\})?$')
        self.assertIn('boing_ingest_events_total{result="accepted"}', text)

    def test_limits_give_json_errors(self):
        r = self.server.post("/api/ingest/batch", raw="x" * 30000)
        self.assertEqual(r.status, 413)
        self.assertIn("20000", r.json()["error"])
        r = self.server.get("/healthz", headers={"X-Big": "a" * 8000})
        self.assertEqual(r.status, 431)
        self.assertIn("error", r.json())
        bomb = gz(b"[" + b" " * 10_000_000 + b"]")
        r = self.server.post("/api/ingest/batch", raw=bomb, headers={"Content-Encoding": "gzip"})
        self.assertEqual(r.status, 413)

    def test_cors(self):
        r = self.server.request("OPTIONS", "/api/apis", headers={"Origin": "http://localhost:5173", "Access-Control-Request-Method": "POST"})
        self.assertEqual(r.status, 204)
        self.assertEqual(r.header("Access-Control-Allow-Origin"), "http://localhost:5173")
        r = self.server.get("/healthz", headers={"Origin": "http://evil.example"})
        self.assertIsNone(r.header("Access-Control-Allow-Origin"))

    def test_unknown_and_wrong_method(self):
        self.assertEqual(self.server.get("/api/nothing").status, 404)
        r = self.server.request("DELETE", "/api/login")
        self.assertEqual(r.status, 405)
        self.assertEqual(r.header("Allow"), "POST")


if __name__ == "__main__":
    unittest.main()
