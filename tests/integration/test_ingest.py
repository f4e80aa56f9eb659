"""Ingest: the seed's Python and Node snippets unchanged, validation naming the field, secret
headers replaced by the identity hash, batches (array, NDJSON, gzip, per-item results, agent
tokens, (agent_id, seq) dedup) and the WebSocket stream (docs/api.md "Ingest", EVENTS.md)."""
import json
import time
import unittest

import websocket  # Debian python3-websocket

from harness import BACKEND, ServerTestCase, event, forge_jwt, gz, identity_of

SECRET_ENV = {"SECRET_HEADERS": "X-Api-Key,X-Session-Token", "BATCH_MAX_EVENTS": "100",
              "EVENT_MAX_HEADERS": "20", "EVENT_MAX_ENDPOINT_LENGTH": "512"}


class IngestCase(ServerTestCase):
    server_env = SECRET_ENV

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.api = cls.server.create_api(cls.admin, cls.__name__)
        cls.key = cls.api["ingest_key"]
        cls.agent = cls.server.enroll_agent(cls.admin, cls.__name__)
        cls.identity_key = cls.agent["identity_key"]

    def row(self, event_id):
        for r in self.server.all_logs(self.admin, api_id=self.api["id"]):
            if r["id"] == event_id:
                return r
        self.fail(f"event {event_id} not in /api/logs")

    def assertNowhereStored(self, *values):
        """Not in /api/logs, not in any table, not in the SQLite files, not in any log."""
        logs = json.dumps(self.server.all_logs(self.admin))
        dump = self.server.db_dump()
        files = self.server.db_files_bytes() if BACKEND == "sqlite" else ""
        log_text = self.server.stdout_text() + self.server.log_files_text()
        for v in values:
            self.assertNotIn(v, logs, f"{v!r} in /api/logs output")
            self.assertNotIn(v, dump, f"{v!r} in a database table")
            self.assertNotIn(v, files, f"{v!r} in the SQLite files")
            self.assertNotIn(v, log_text, f"{v!r} in the server's logs")


class SingleIngestTest(IngestCase):
    def test_seed_python_snippet_payload(self):
        # The README's Flask/FastAPI middleware, unchanged: requests.post(url, json={...}).
        token = "PY-RAW-TOKEN-7f3a9c"
        cookie = "session=PY-COOKIE-51d2e0"
        sent_ts = time.time()
        payload = {
            "api_key": self.key,
            "timestamp": sent_ts,
            "method": "POST",
            "endpoint": "/py/orders",
            "client_ip": "198.51.100.4",
            "headers": {"Host": "shop.example:5000", "User-Agent": "Mozilla/5.0 (X11)",
                        "Accept": "application/json", "Authorization": "Bearer " + token,
                        "Cookie": cookie, "Content-Type": "application/json",
                        "Content-Length": "12"},
            "status_code": 201,
            "latency_ms": 0.123456 * 1000,
            "body_size": 12,
        }
        # What python-requests puts on the wire for json=: ", "/": " separators and its headers.
        r = self.server.post("/api/ingest", raw=json.dumps(payload),
                             headers={"User-Agent": "python-requests/2.31.0",
                                      "Accept-Encoding": "gzip, deflate", "Accept": "*/*",
                                      "Connection": "keep-alive"}, timeout=1)
        self.assertEqual(r.status, 200, r)
        j = r.json()
        self.assertEqual(j["status"], "accepted", j)
        self.assertIsInstance(j["id"], int)
        row = self.row(j["id"])
        self.assertEqual((row["method"], row["endpoint"], row["client_ip"], row["status_code"], row["body_size"]),
                         ("POST", "/py/orders", "198.51.100.4", 201, 12))
        self.assertAlmostEqual(row["latency_ms"], 123.456, places=3)
        self.assertAlmostEqual(row["timestamp"], sent_ts, delta=0.001, msg="fractional seconds kept (ms)")
        self.assertEqual(row["api_id"], self.api["id"])
        self.assertNotIn("api_key", row)
        headers = {k.lower(): v for k, v in row.get("headers", {}).items()}
        self.assertNotIn("authorization", headers)
        self.assertNotIn("cookie", headers)
        self.assertEqual(headers.get("user-agent"), "Mozilla/5.0 (X11)", "ordinary headers are kept")
        # identity = HMAC-SHA256(identity_key, bearer token)[:16] hex (EVENTS.md), the same key agents get.
        self.assertEqual(row["identity"], identity_of(self.identity_key, token))
        self.assertNowhereStored(token, cookie, "PY-COOKIE-51d2e0", self.key)

    def test_seed_node_snippet_payload(self):
        # The README's Express middleware: req.headers is lower-case, Date.now()/1000, req.ip.
        jwt = forge_jwt({"alg": "HS256", "typ": "JWT"}, {"sub": "customer-77", "iat": 1700000000},
                        "the-app's-own-secret")
        now_ms = int(time.time() * 1000)
        payload = {
            "api_key": self.key,
            "timestamp": now_ms / 1000,
            "method": "GET",
            "endpoint": "/node/items",
            "client_ip": "::ffff:127.0.0.1",
            "headers": {"host": "localhost:3000", "connection": "keep-alive",
                        "authorization": "Bearer " + jwt, "cookie": "sid=NODE-COOKIE-9b1e",
                        "accept": "*/*", "user-agent": "curl/8.4.0"},
            "status_code": 200,
            "latency_ms": 7,
            "body_size": 78,
        }
        # axios: compact JSON.stringify, application/json.
        r = self.server.post("/api/ingest", raw=json.dumps(payload, separators=(",", ":")),
                             headers={"User-Agent": "axios/1.6.2", "Accept": "application/json, text/plain, */*"})
        self.assertEqual(r.status, 200, r)
        row = self.row(r.json()["id"])
        self.assertEqual((row["client_ip"], row["latency_ms"], row["body_size"]), ("::ffff:127.0.0.1", 7, 78))
        self.assertAlmostEqual(row["timestamp"], now_ms / 1000, delta=0.0005)
        self.assertTrue(row["identity"])
        self.assertEqual(len(row["identity"]), 32)
        int(row["identity"], 16)
        self.assertNotIn("authorization", row.get("headers", {}))
        self.assertNotIn("cookie", row.get("headers", {}))
        self.assertNowhereStored(jwt, jwt.split(".")[2], "NODE-COOKIE-9b1e")
        # The same caller (same JWT subject, a fresh token) hashes the same; another caller does not.
        jwt2 = forge_jwt({"alg": "HS256"}, {"sub": "customer-77", "iat": 1700000999}, "the-app's-own-secret")
        jwt3 = forge_jwt({"alg": "HS256"}, {"sub": "customer-78", "iat": 1700000000}, "the-app's-own-secret")
        ids = []
        for tok in (jwt2, jwt3):
            r = self.server.post("/api/ingest", dict(payload, headers={"authorization": "Bearer " + tok}))
            ids.append(self.row(r.json()["id"])["identity"])
        self.assertEqual(ids[0], row["identity"], "a JWT's identity follows its sub claim")
        self.assertNotEqual(ids[1], row["identity"])

    def test_x_api_key_header_and_unknown_keys(self):
        r = self.server.post("/api/ingest", event(endpoint="/via-header"), headers={"X-Api-Key": self.key})
        self.assertEqual((r.status, r.json()["status"]), (200, "accepted"), r)
        self.assertError(self.server.post("/api/ingest", event("bk_unknown_key_123")), 401)
        self.assertError(self.server.post("/api/ingest", event()), 401)
        self.assertError(self.server.post("/api/ingest", event(), headers={"X-Api-Key": "bk_nope"}), 401)
        # A dashboard JWT is not an ingest credential.
        self.assertError(self.server.post("/api/ingest", event(), token=self.admin), 401)
        self.assertNotIn("/nothing-stored", self.server.get("/api/logs?limit=1000", self.admin).body)

    def test_bad_events_name_the_field(self):
        def without(field):
            e = event(self.key, endpoint="/bad")
            del e[field]
            return e
        cases = [(without(f), f) for f in ("timestamp", "method", "endpoint", "client_ip", "status_code", "latency_ms")]
        cases += [
            (event(self.key, status_code="200"), "status_code"),
            (event(self.key, status_code=99), "status_code"),
            (event(self.key, status_code=600), "status_code"),
            (event(self.key, status_code=200.5), "status_code"),
            (event(self.key, timestamp="now"), "timestamp"),
            (event(self.key, timestamp=-5), "timestamp"),
            (event(self.key, timestamp=time.time() * 1000), "timestamp"),  # milliseconds, not seconds
            (event(self.key, method=7), "method"),
            (event(self.key, method="GET /x"), "method"),
            (event(self.key, endpoint=["/x"]), "endpoint"),
            (event(self.key, endpoint="/" + "a" * 600), "endpoint"),  # EVENT_MAX_ENDPOINT_LENGTH=512
            (event(self.key, client_ip="999.1.1.1"), "client_ip"),
            (event(self.key, client_ip="not-an-ip"), "client_ip"),
            (event(self.key, latency_ms="fast"), "latency_ms"),
            (event(self.key, latency_ms=-5), "latency_ms"),
            (event(self.key, headers=["Accept: */*"]), "headers"),
            (event(self.key, headers={"Accept": {"nested": "x"}}), "headers"),
            (event(self.key, headers={f"X-H{i}": "v" for i in range(21)}), "headers"),  # EVENT_MAX_HEADERS=20
            (event(self.key, body_size=-1), "body_size"),
            (event(self.key, body_size="12"), "body_size"),
            (event(self.key, response_size=1.5), "response_size"),
            (event(self.key, tls="yes"), "tls"),
            (event(self.key, server_port=70000), "server_port"),
        ]
        for body, field in cases:
            with self.subTest(field=field, body={k: v for k, v in body.items() if k != "api_key"}):
                self.assertError(self.server.post("/api/ingest", body), 400, field)
        for raw in ("{not json", "[]", '"string"', "", "null"):
            with self.subTest(raw=raw):
                self.assertError(self.server.post("/api/ingest", raw=raw), 400)
        deep = event(self.key)
        deep["extra"] = json.loads("[" * 100 + "]" * 100)
        self.assertError(self.server.post("/api/ingest", deep), 400)
        self.assertNotIn("/bad", [r["endpoint"] for r in self.server.all_logs(self.admin)])

    def test_unknown_fields_ignored_and_not_stored(self):
        r = self.server.post("/api/ingest", event(self.key, endpoint="/unknown-fields", future_field={"a": 1},
                                                  another="UNKNOWN-FIELD-VALUE-55"))
        self.assertEqual(r.status, 200, r)
        row = self.row(r.json()["id"])
        self.assertNotIn("future_field", row)
        self.assertNotIn("another", row)
        self.assertNotIn("UNKNOWN-FIELD-VALUE-55", self.server.db_dump())

    def test_configured_secret_headers_and_identity_rules(self):
        token = "OPAQUE-TOKEN-c0ffee"
        cases = {
            "X-Session-Token": ({"X-Session-Token": "SESSION-TOKEN-abc123"}, "SESSION-TOKEN-abc123"),
            "Proxy-Authorization": ({"Proxy-Authorization": "Bearer PROXY-TOKEN-1"}, "PROXY-TOKEN-1"),
            "lower-case bearer": ({"authorization": "bearer " + token}, token),
        }
        for name, (headers, credential) in cases.items():
            with self.subTest(name):
                r = self.server.post("/api/ingest", event(self.key, endpoint="/secret-hdr", headers=dict(headers, Accept="*/*")))
                self.assertEqual(r.status, 200, r)
                row = self.row(r.json()["id"])
                self.assertEqual({k.lower() for k in row.get("headers", {})}, {"accept"}, row)
                self.assertEqual(row["identity"], identity_of(self.identity_key, credential))
        self.assertNowhereStored("SESSION-TOKEN-abc123", "PROXY-TOKEN-1", token)
        # No credential, no identity (unless the sender computed one, e.g. an agent).
        r = self.server.post("/api/ingest", event(self.key, headers={"Accept": "*/*"}))
        self.assertFalse(self.row(r.json()["id"]).get("identity"))


class BatchIngestTest(IngestCase):
    def test_array_with_one_bad_item(self):
        items = [event(endpoint=f"/batch/a{i}") for i in range(3)]
        items.insert(2, {"endpoint": "/batch/broken", "method": "GET"})
        r = self.server.batch(items, headers={"X-Api-Key": self.key})
        self.assertEqual(r.status, 200, r)
        j = r.json()
        self.assertEqual((j["accepted"], j["duplicates"], j["rejected"]), (3, 0, 1), j)
        self.assertEqual([x["index"] for x in j["results"]], [0, 1, 2, 3])
        self.assertEqual([x["status"] for x in j["results"]], ["accepted", "accepted", "rejected", "accepted"])
        self.assertEqual(j["results"][2]["field"], "timestamp")
        self.assertTrue(j["results"][2]["error"])
        stored = sorted(r["endpoint"] for r in self.server.all_logs(self.admin, endpoint="/batch/*"))
        self.assertEqual(stored, ["/batch/a0", "/batch/a1", "/batch/a2"])

    def test_per_item_api_keys(self):
        other = self.server.create_api(self.admin, "batch-other")
        items = [event(self.key, endpoint="/perkey/1"), event(other["ingest_key"], endpoint="/perkey/2"),
                 event("bk_wrong_key", endpoint="/perkey/3"), event(endpoint="/perkey/4")]
        r = self.server.batch(items)
        self.assertEqual(r.status, 200, r)
        j = r.json()
        self.assertEqual([x["status"] for x in j["results"]], ["accepted", "accepted", "rejected", "rejected"])
        self.assertEqual(j["results"][2]["field"], "api_key")
        self.assertEqual({(x["endpoint"], x["api_id"]) for x in self.server.all_logs(self.admin, endpoint="/perkey/*")},
                         {("/perkey/1", self.api["id"]), ("/perkey/2", other["id"])})

    def test_ndjson_and_gzip(self):
        nd = "\n".join(json.dumps(event(self.key, endpoint=f"/nd/plain{i}")) for i in range(4)) + "\n"
        r = self.server.post("/api/ingest/batch", raw=nd, headers={"Content-Type": "application/x-ndjson"})
        self.assertEqual((r.status, r.json()["accepted"]), (200, 4), r)
        nd = "\n".join(json.dumps(event(self.key, endpoint=f"/nd/gz{i}")) for i in range(4)) + "\n{garbage\n"
        r = self.server.post("/api/ingest/batch", raw=gz(nd), headers={"Content-Encoding": "gzip",
                                                                        "Content-Type": "application/x-ndjson"})
        self.assertEqual(r.status, 200, r)
        j = r.json()
        self.assertEqual((j["accepted"], j["rejected"]), (4, 1), j)
        self.assertEqual(j["results"][4]["status"], "rejected")
        arr = [event(endpoint=f"/nd/gzarr{i}") for i in range(5)]
        r = self.server.post("/api/ingest/batch", raw=json.dumps(arr), gzip_body=True, headers={"X-Api-Key": self.key})
        self.assertEqual((r.status, r.json()["accepted"]), (200, 5), r)
        self.assertEqual(len(self.server.all_logs(self.admin, endpoint="/nd/*")), 13)

    def test_unreadable_documents_and_limits(self):
        for raw in ("[{", "{\"a\":", "not json at all"):
            with self.subTest(raw=raw):
                r = self.server.post("/api/ingest/batch", raw=raw, headers={"X-Api-Key": self.key})
                # An unreadable document is a 400; NDJSON lines that are not JSON are per-item rejects.
                if r.status == 200:
                    self.assertEqual(r.json()["accepted"], 0, r)
                else:
                    self.assertError(r, 400)
        self.assertError(self.server.post("/api/ingest/batch", raw="[{", headers={"X-Api-Key": self.key}), 400)
        r = self.server.post("/api/ingest/batch", raw=b"\x1f\x8bnot-gzip-at-all", headers={"Content-Encoding": "gzip", "X-Api-Key": self.key})
        self.assertIn(r.status, (400, 415), r)
        self.assertIn("error", r.json())
        r = self.server.batch([event(endpoint="/too-many")] * 101, headers={"X-Api-Key": self.key})  # BATCH_MAX_EVENTS=100
        self.assertIn(r.status, (400, 413), r)
        self.assertIn("error", r.json())
        self.assertEqual(self.server.all_logs(self.admin, endpoint="/too-many"), [], "a refused batch stores nothing")
        r = self.server.batch([event(endpoint="/exactly-max")] * 100, headers={"X-Api-Key": self.key})
        self.assertEqual((r.status, r.json().get("accepted")), (200, 100), r)

    def test_credentials(self):
        self.assertError(self.server.batch([event()], headers={"X-Api-Key": "bk_unknown"}), 401)
        self.assertError(self.server.batch([event()], token="bt_not_an_agent_token"), 401)
        self.assertError(self.server.batch([event()], token=self.admin), 401)  # a dashboard JWT is not an agent token
        r = self.server.batch([event(endpoint="/no-credential")])
        if r.status == 200:
            self.assertEqual((r.json()["accepted"], r.json()["rejected"]), (0, 1), r)
        else:
            self.assertError(r, 401)

    def test_agent_batches_and_dedup(self):
        agent = self.server.enroll_agent(self.admin, "dedup-host")
        tok, aid = agent["agent_token"], agent["agent_id"]
        events = [event(agent_id=aid, seq=i, endpoint=f"/agent-dedup/{i}") for i in (1, 2, 3)]
        r = self.server.batch(events, token=tok)
        self.assertEqual(r.status, 200, r)
        self.assertEqual((r.json()["accepted"], r.json()["duplicates"]), (3, 0), r)
        # At-least-once delivery: the retried batch is acknowledged but stored once.
        r = self.server.batch(events, token=tok)
        self.assertEqual((r.status, r.json()["accepted"], r.json()["duplicates"]), (200, 0, 3), r)
        self.assertEqual([x["status"] for x in r.json()["results"]], ["duplicate"] * 3)
        # Duplicates inside one batch, and a retry mixed with new events.
        r = self.server.batch([event(agent_id=aid, seq=10, endpoint="/agent-dedup/10"),
                               event(agent_id=aid, seq=10, endpoint="/agent-dedup/10"),
                               event(agent_id=aid, seq=3, endpoint="/agent-dedup/3"),
                               event(agent_id=aid, seq=11, endpoint="/agent-dedup/11")], token=tok)
        self.assertEqual([x["status"] for x in r.json()["results"]], ["accepted", "duplicate", "duplicate", "accepted"], r)
        # An event without agent_id/seq from an agent is still the agent's.
        r = self.server.batch([event(endpoint="/agent-dedup/noseq")], token=tok)
        self.assertEqual(r.json()["accepted"], 1, r)
        rows = self.server.all_logs(self.admin, endpoint="/agent-dedup/*")
        self.assertEqual(sorted(x.get("seq", 0) for x in rows), [0, 1, 2, 3, 10, 11])
        self.assertTrue(all(x["agent_id"] == aid for x in rows), rows)
        # The same seq from another agent is another event.
        other = self.server.enroll_agent(self.admin, "dedup-host-2")
        r = self.server.batch([event(agent_id=other["agent_id"], seq=1, endpoint="/agent-dedup/other1")], token=other["agent_token"])
        self.assertEqual(r.json()["accepted"], 1, r)
        # An agent cannot write as another agent.
        r = self.server.batch([event(agent_id=aid, seq=99, endpoint="/agent-dedup/spoof")], token=other["agent_token"])
        self.assertEqual((r.json()["rejected"], r.json()["results"][0]["field"]), (1, "agent_id"), r)
        self.assertEqual(len(self.server.all_logs(self.admin, endpoint="/agent-dedup/*")), 7)

    def test_agent_identity_kept_and_same_hash_everywhere(self):
        # An agent hashes the credential itself with identity_key; the server hashes the seed
        # snippets' raw headers with the same key: one caller, one identity.
        token = "SHARED-CALLER-TOKEN-42"
        agent_side = identity_of(self.identity_key, token)
        r = self.server.batch([event(agent_id=self.agent["agent_id"], seq=500, endpoint="/same-caller/agent",
                                     identity=agent_side)], token=self.agent["agent_token"])
        self.assertEqual(r.json()["accepted"], 1, r)
        r = self.server.post("/api/ingest", event(self.key, endpoint="/same-caller/app",
                                                  headers={"Authorization": "Bearer " + token}))
        self.assertEqual(r.status, 200, r)
        rows = {x["endpoint"]: x["identity"] for x in self.server.all_logs(self.admin, endpoint="/same-caller/*")}
        self.assertEqual(rows, {"/same-caller/agent": agent_side, "/same-caller/app": agent_side})


class WebSocketIngestTest(IngestCase):
    def test_api_key_per_message_acked_in_order(self):
        ws = self.server.ws()
        try:
            ws.send(json.dumps(event(self.key, endpoint="/ws/one")))
            reply = json.loads(ws.recv())
            self.assertEqual(reply["status"], "accepted", reply)
            # Committed before the ack: visible at once.
            self.assertEqual(len(self.server.all_logs(self.admin, endpoint="/ws/one")), 1)
            ws.send(json.dumps(event(self.key, status_code="bad")))
            reply = json.loads(ws.recv())
            self.assertEqual((reply["status"], reply["field"]), ("rejected", "status_code"), reply)
            self.assertTrue(reply["error"])
            ws.send(json.dumps(event("bk_nope", endpoint="/ws/nokey")))
            reply = json.loads(ws.recv())
            self.assertEqual((reply["status"], reply.get("field")), ("rejected", "api_key"), reply)
            ws.send("{not json")
            self.assertEqual(json.loads(ws.recv())["status"], "rejected")
            # Still open after rejections; pipelined messages get one reply each.
            for i in range(20):
                ws.send(json.dumps(event(self.key, endpoint=f"/ws/pipe{i}")))
            replies = [json.loads(ws.recv()) for _ in range(20)]
            self.assertEqual([x["status"] for x in replies], ["accepted"] * 20)
        finally:
            ws.close()
        self.assertEqual(len(self.server.all_logs(self.admin, endpoint="/ws/pipe*")), 20)
        self.assertEqual(self.server.all_logs(self.admin, endpoint="/ws/nokey"), [])

    def test_agent_token_header_and_query_with_seq(self):
        agent = self.server.enroll_agent(self.admin, "ws-agent")
        tok, aid = agent["agent_token"], agent["agent_id"]
        ws = self.server.ws(headers=["Authorization: Bearer " + tok])
        try:
            ws.send(json.dumps(event(agent_id=aid, seq=1, endpoint="/ws/agent/1")))
            reply = json.loads(ws.recv())
            self.assertEqual((reply["status"], reply["seq"]), ("accepted", 1), reply)
            ws.send(json.dumps(event(agent_id=aid, seq=1, endpoint="/ws/agent/1")))
            reply = json.loads(ws.recv())
            self.assertEqual((reply["status"], reply["seq"]), ("duplicate", 1), reply)
            ws.send(json.dumps(event(agent_id="ag_someone_else", seq=2)))
            reply = json.loads(ws.recv())
            self.assertEqual((reply["status"], reply["field"], reply["seq"]), ("rejected", "agent_id", 2), reply)
        finally:
            ws.close()
        ws = self.server.ws(path="/ws/ingest?token=" + tok)
        try:
            ws.send(json.dumps(event(agent_id=aid, seq=2, endpoint="/ws/agent/2")))
            reply = json.loads(ws.recv())
            self.assertEqual((reply["status"], reply["seq"]), ("accepted", 2), reply)
        finally:
            ws.close()
        rows = self.server.all_logs(self.admin, endpoint="/ws/agent/*")
        self.assertEqual(sorted(r["seq"] for r in rows), [1, 2])

    def test_bad_tokens_refused_at_handshake(self):
        for kw in ({"path": "/ws/ingest?token=bt_bad"}, {"headers": ["Authorization: Bearer bt_bad"]}):
            with self.subTest(**kw):
                with self.assertRaises(websocket.WebSocketBadStatusException) as cm:
                    self.server.ws(**kw)
                self.assertEqual(cm.exception.status_code, 401)
        agent = self.server.enroll_agent(self.admin, "ws-revoked")
        self.assertEqual(self.server.delete(f"/api/agents/{agent['agent_id']}", self.admin).status, 204)
        with self.assertRaises(websocket.WebSocketBadStatusException):
            self.server.ws(path="/ws/ingest?token=" + agent["agent_token"])


if __name__ == "__main__":
    unittest.main()
