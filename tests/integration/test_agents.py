"""Agents: enrolment tokens (admin, single use), enrolment, heartbeats with counters, listing,
revocation, and assignment of agent events to APIs by match rules (docs/api.md "Agents")."""
import json
import time
import unittest
from concurrent.futures import ThreadPoolExecutor

from harness import ServerTestCase, event


class AgentsTest(ServerTestCase):
    def test_enrolment_token_admin_only(self):
        user = self.server.register("agent-nonadmin")
        self.assertError(self.server.post("/api/agents", {"name": "x"}, user), 403)
        self.assertError(self.server.post("/api/agents", {"name": "x"}), 401)
        before = int(time.time())
        r = self.server.post("/api/agents", {"name": "web-1", "ttl_seconds": 600}, self.admin)
        self.assertEqual(r.status, 201, r)
        j = r.json()
        self.assertTrue(j["enrollment_token"])
        self.assertTrue(before + 600 <= j["expires_at"] <= int(time.time()) + 601, j)
        self.assertError(self.server.post("/api/agents", {"ttl_seconds": "soon"}, self.admin), 400, "ttl_seconds")
        self.assertError(self.server.post("/api/agents", {"ttl_seconds": -1}, self.admin), 400, "ttl_seconds")

    def test_enroll_single_use(self):
        et = self.server.post("/api/agents", {"name": "once"}, self.admin).json()["enrollment_token"]
        r = self.server.post("/api/agents/enroll", {"enrollment_token": et, "hostname": "once-host", "version": "1.2.3"})
        self.assertEqual(r.status, 201, r)
        a = r.json()
        self.assertTrue(a["agent_id"])
        self.assertTrue(a["agent_token"])
        self.assertEqual(len(bytes.fromhex(a["identity_key"])), 32)
        self.assertError(self.server.post("/api/agents/enroll", {"enrollment_token": et, "hostname": "again", "version": "1"}), 401)
        self.assertError(self.server.post("/api/agents/enroll", {"enrollment_token": "be_forged", "hostname": "h", "version": "1"}), 401)
        self.assertError(self.server.post("/api/agents/enroll", {"hostname": "h"}), 400, "enrollment_token")
        # A dashboard JWT is not an enrolment token.
        self.assertError(self.server.post("/api/agents/enroll", {"enrollment_token": self.admin, "hostname": "h", "version": "1"}), 401)
        # Every agent gets the same identity key (one caller hashes the same on every host).
        other = self.server.enroll_agent(self.admin, "other-host")
        self.assertEqual(other["identity_key"], a["identity_key"])
        self.assertNotEqual(other["agent_token"], a["agent_token"])
        listed = {x["agent_id"]: x for x in self.server.get("/api/agents", self.admin).json()["agents"]}
        self.assertEqual((listed[a["agent_id"]]["hostname"], listed[a["agent_id"]]["version"]), ("once-host", "1.2.3"))
        self.assertNotIn(a["agent_token"], json.dumps(listed))

    def test_enrolment_token_single_use_under_concurrency(self):
        for _ in range(3):
            et = self.server.post("/api/agents", {}, self.admin).json()["enrollment_token"]
            with ThreadPoolExecutor(8) as ex:
                statuses = list(ex.map(lambda _: self.server.post("/api/agents/enroll", {
                    "enrollment_token": et, "hostname": "racer", "version": "1"}).status, range(8)))
            self.assertEqual(sorted(statuses), [201] + [401] * 7, statuses)

    def test_heartbeat_and_list(self):
        a = self.server.enroll_agent(self.admin, "hb-host")
        before = self.server.get("/api/agents", self.admin).json()["agents"]
        mine = [x for x in before if x["agent_id"] == a["agent_id"]][0]
        self.assertEqual(set(mine) >= {"agent_id", "hostname", "version", "enrolled_at", "last_seen", "revoked", "counters", "rates"}, True, mine)
        self.assertFalse(mine["revoked"])
        time.sleep(1.1)
        r = self.server.post("/api/agents/heartbeat", {"version": "0.2.0", "counters": {"captured": 10, "dropped_ringbuf": 1},
                                                       "rates": [{"ip": "10.1.1.1", "rps": 4.5}]}, a["agent_token"])
        self.assertEqual((r.status, r.json()), (200, {"ok": True}), r)
        mine = [x for x in self.server.get("/api/agents", self.admin).json()["agents"] if x["agent_id"] == a["agent_id"]][0]
        self.assertEqual((mine["version"], mine["counters"], mine["rates"][0]["ip"], mine["rates"][0]["rps"]),
                         ("0.2.0", {"captured": 10, "dropped_ringbuf": 1}, "10.1.1.1", 4.5))
        self.assertGreater(mine["last_seen"], mine["enrolled_at"])
        # Counters are replaced by the newest heartbeat.
        self.server.post("/api/agents/heartbeat", {"counters": {"captured": 25}}, a["agent_token"])
        mine = [x for x in self.server.get("/api/agents", self.admin).json()["agents"] if x["agent_id"] == a["agent_id"]][0]
        self.assertEqual(mine["counters"]["captured"], 25)

    def test_heartbeat_rejections(self):
        a = self.server.enroll_agent(self.admin, "hb-bad")
        self.assertError(self.server.post("/api/agents/heartbeat", {}), 401)
        self.assertError(self.server.post("/api/agents/heartbeat", {}, "bt_unknown"), 401)
        self.assertError(self.server.post("/api/agents/heartbeat", {}, self.admin), 401)
        self.assertError(self.server.post("/api/agents/heartbeat", {"counters": [1]}, a["agent_token"]), 400, "counters")
        self.assertError(self.server.post("/api/agents/heartbeat", {"rates": {"ip": 1}}, a["agent_token"]), 400, "rates")
        self.assertError(self.server.post("/api/agents/heartbeat", raw="[]", token=a["agent_token"]), 400)
        self.assertError(self.server.post("/api/agents/heartbeat", raw="{x", token=a["agent_token"]), 400)

    def test_list_admin_only(self):
        user = self.server.register("agent-lister")
        self.assertError(self.server.get("/api/agents", user), 403)
        self.assertError(self.server.get("/api/agents"), 401)

    def test_revoke(self):
        a = self.server.enroll_agent(self.admin, "revoked-host")
        tok = a["agent_token"]
        self.assertEqual(self.server.batch([event(agent_id=a["agent_id"], seq=1)], token=tok).json()["accepted"], 1)
        user = self.server.register("agent-revoker")
        self.assertError(self.server.delete(f"/api/agents/{a['agent_id']}", user), 403)
        r = self.server.delete(f"/api/agents/{a['agent_id']}", self.admin)
        self.assertEqual((r.status, r.raw), (204, b""), r)
        self.assertError(self.server.batch([event(agent_id=a["agent_id"], seq=2)], token=tok), 401)
        self.assertError(self.server.post("/api/agents/heartbeat", {}, tok), 401)
        listed = [x for x in self.server.get("/api/agents", self.admin).json()["agents"] if x["agent_id"] == a["agent_id"]]
        self.assertTrue(listed and listed[0]["revoked"], listed)
        self.assertError(self.server.delete("/api/agents/ag_does_not_exist", self.admin), 404)
        # Other agents are unaffected.
        b = self.server.enroll_agent(self.admin, "still-fine")
        self.assertEqual(self.server.post("/api/agents/heartbeat", {}, b["agent_token"]).status, 200)


class MatchRulesTest(ServerTestCase):
    """Agent events carry no ingest key: they go to the API whose rules fit, most specific first,
    or stay unassigned (api_id 0, visible to admins only)."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        s = cls.server
        cls.owner = s.register("rules-owner")
        cls.apis = {
            "host": s.create_api(cls.owner, "host-only", match_host="shop.example")["id"],
            "host+path": s.create_api(cls.owner, "host-and-path", match_host="shop.example", match_base_path="/v2")["id"],
            "host+port+path": s.create_api(cls.owner, "host-port-path", match_host="shop.example", match_port=8443,
                                           match_base_path="/v2/admin")["id"],
            "port": s.create_api(cls.owner, "port-only", match_port=9443)["id"],
        }
        cls.agent = s.enroll_agent(cls.admin, "rules-agent")
        cls.seq = 0

    def send(self, endpoint, **fields):
        MatchRulesTest.seq += 1
        ev = event(agent_id=self.agent["agent_id"], seq=self.seq, endpoint=endpoint, **fields)
        r = self.server.batch([ev], token=self.agent["agent_token"])
        self.assertEqual(r.json()["accepted"], 1, r)
        rows = self.server.all_logs(self.admin, endpoint=endpoint)
        self.assertEqual(len(rows), 1, rows)
        return rows[0]["api_id"]

    def test_most_specific_rule_wins(self):
        a = self.apis
        self.assertEqual(self.send("/v1/items", host="shop.example"), a["host"])
        self.assertEqual(self.send("/v2/items", host="shop.example"), a["host+path"])
        self.assertEqual(self.send("/v2/admin/users", host="shop.example", server_port=8443), a["host+port+path"])
        self.assertEqual(self.send("/v2/admin/other", host="shop.example", server_port=80), a["host+path"])
        self.assertEqual(self.send("/anything", host="other.example", server_port=9443), a["port"])
        self.assertEqual(self.send("/v1/with-port", host="shop.example:8080"), a["host"], "the port of a Host value is not part of the host")

    def test_host_header_alone_is_matched(self):
        # `host` is only a convenience copy of the Host header (EVENTS.md): the header alone must do.
        self.assertEqual(self.send("/v1/hdr-only", headers={"Host": "shop.example"}), self.apis["host"])
        self.assertEqual(self.send("/v1/hdr-lower", headers={"host": "shop.example:443"}), self.apis["host"])

    def test_host_match_is_case_insensitive(self):
        self.assertEqual(self.send("/v1/upper", host="SHOP.Example"), self.apis["host"])

    def test_unmatched_is_unassigned_and_admin_only(self):
        self.assertEqual(self.send("/nowhere/1", host="unknown.example"), 0)
        self.assertNotIn("/nowhere/1", self.server.get("/api/logs?limit=1000", self.owner).body)
        self.assertNotIn("/nowhere/1", self.server.get("/api/export/logs", self.owner).body)
        self.assertIn("/nowhere/1", self.server.get("/api/logs?limit=1000", self.admin).body)
        self.assertEqual([x["endpoint"] for x in self.server.all_logs(self.admin, api_id=0, endpoint="/nowhere/1")], ["/nowhere/1"])
        r = self.server.get("/api/logs?api_id=0&limit=1000", self.owner)
        self.assertIn(r.status, (403, 404), r)
        self.assertNotIn("/nowhere/1", r.body)
        # The owner sees what the rules gave their APIs.
        self.send("/v2/owned", host="shop.example")
        self.assertIn("/v2/owned", self.server.get("/api/logs?limit=1000", self.owner).body)

    def test_rules_follow_api_updates(self):
        api = self.server.create_api(self.owner, "late-rule")
        self.assertEqual(self.send("/late/1", host="late.example"), 0)
        self.assertEqual(self.server.put(f"/api/apis/{api['id']}", {"match_host": "late.example"}, self.owner).status, 200)
        self.assertEqual(self.send("/late/2", host="late.example"), api["id"])
        self.assertEqual(self.server.delete(f"/api/apis/{api['id']}", self.owner).status, 204)
        self.assertEqual(self.send("/late/3", host="late.example"), 0)


if __name__ == "__main__":
    unittest.main()
