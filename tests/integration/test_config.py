"""Configuration: detectors (list for users, update for admins), white/black lists with ownership and
expiry, and the audit log of admin actions (docs/api.md "Configuration")."""
import json
import time
import unittest

from harness import ADMIN_USER, ServerTestCase, qs

DETECTOR_FIELDS = {"id", "name", "stage", "enabled", "severity", "config", "updated_at"}
ENTRY_FIELDS = {"id", "kind", "value", "reason", "api_id", "expires_at"}


class DetectorsTest(ServerTestCase):
    def test_list(self):
        user = self.server.register("det-reader")
        r = self.server.get("/api/detectors", user)
        self.assertEqual(r.status, 200, r)
        dets = r.json()["detectors"]
        self.assertGreater(len(dets), 0)
        self.assertEqual(len({d["id"] for d in dets}), len(dets))
        for d in dets:
            self.assertEqual(set(d) & DETECTOR_FIELDS, DETECTOR_FIELDS, d)
            self.assertIsInstance(d["enabled"], bool)
            self.assertIsInstance(d["config"], dict)
        self.assertError(self.server.get("/api/detectors"), 401)

    def test_update_admin_only_and_persisted(self):
        dets = self.server.get("/api/detectors", self.admin).json()["detectors"]
        d = [x for x in dets if any(isinstance(v, (int, float)) and not isinstance(v, bool)
                                    for v in x["config"].values())][0]
        num_key = [k for k, v in d["config"].items() if isinstance(v, (int, float)) and not isinstance(v, bool)][0]
        user = self.server.register("det-writer")
        self.assertError(self.server.put(f"/api/detectors/{d['id']}", {"enabled": False}, user), 403)
        self.assertError(self.server.put(f"/api/detectors/{d['id']}", {"enabled": False}), 401)
        r = self.server.put(f"/api/detectors/{d['id']}", {"enabled": not d["enabled"], "severity": "critical",
                                                          "config": {num_key: 7}}, self.admin)
        self.assertEqual(r.status, 200, r)
        j = r.json()
        self.assertEqual((j["enabled"], j["severity"], j["config"][num_key]), (not d["enabled"], "critical", 7))
        for k, v in d["config"].items():  # other keys kept (merge)
            if k != num_key:
                self.assertEqual(j["config"][k], v)
        again = [x for x in self.server.get("/api/detectors", user).json()["detectors"] if x["id"] == d["id"]][0]
        self.assertEqual((again["enabled"], again["severity"], again["config"][num_key]), (not d["enabled"], "critical", 7))
        self.assertGreaterEqual(again["updated_at"], d["updated_at"])

    def test_update_validation(self):
        det = self.server.get("/api/detectors", self.admin).json()["detectors"][0]["id"]
        for body, field in (({"enabled": "yes"}, "enabled"), ({"severity": "urgent"}, "severity"),
                            ({"severity": 3}, "severity"), ({"config": [1]}, "config")):
            with self.subTest(body):
                self.assertError(self.server.put(f"/api/detectors/{det}", body, self.admin), 400, field)
        self.assertError(self.server.put("/api/detectors/no-such-detector", {"enabled": True}, self.admin), 404)
        self.assertError(self.server.put(f"/api/detectors/{det}", raw="{x", token=self.admin), 400)


class ListsTest(ServerTestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        s = cls.server
        cls.alice = s.register("list-alice")
        cls.bob = s.register("list-bob")
        cls.alice_api = s.create_api(cls.alice, "alice-lists")
        cls.bob_api = s.create_api(cls.bob, "bob-lists")

    def entries(self, name, token):
        r = self.server.get(f"/api/{name}", token)
        self.assertEqual(r.status, 200, r)
        return {e["id"]: e for e in r.json()["entries"]}

    def test_admin_add_list_delete_every_kind(self):
        for name in ("whitelist", "blacklist"):
            for kind, value in (("ip", "203.0.113.5"), ("ip", "2001:db8::1"), ("cidr", "10.0.0.0/8"),
                                ("cidr", "2001:db8::/32"), ("identity", "a3f1c2d4e5f60718293a4b5c6d7e8f90")):
                with self.subTest(name=name, kind=kind, value=value):
                    r = self.server.post(f"/api/{name}", {"kind": kind, "value": value, "reason": "test " + kind}, self.admin)
                    self.assertEqual(r.status, 201, r)
                    e = r.json()
                    self.assertEqual(set(e) & ENTRY_FIELDS, ENTRY_FIELDS, e)
                    self.assertEqual((e["kind"], e["value"], e["reason"]), (kind, value, "test " + kind))
                    self.assertIn(e["id"], self.entries(name, self.admin))
                    other = "blacklist" if name == "whitelist" else "whitelist"
                    self.assertNotIn(e["id"], self.entries(other, self.admin))
                    self.assertError(self.server.delete(f"/api/{other}/{e['id']}", self.admin), 404)
                    r = self.server.delete(f"/api/{name}/{e['id']}", self.admin)
                    self.assertEqual((r.status, r.raw), (204, b""), r)
                    self.assertNotIn(e["id"], self.entries(name, self.admin))
                    self.assertError(self.server.delete(f"/api/{name}/{e['id']}", self.admin), 404)

    def test_validation(self):
        for name in ("whitelist", "blacklist"):
            for body, field in (({"kind": "ip", "value": "10.0.0"}, "value"), ({"kind": "ip", "value": "10.0.0.0/8"}, "value"),
                                ({"kind": "cidr", "value": "10.0.0.0/33"}, "value"), ({"kind": "cidr", "value": "nope"}, "value"),
                                ({"kind": "identity", "value": ""}, "value"), ({"kind": "ip"}, "value"),
                                ({"kind": "ip", "value": 12}, "value"),
                                ({"kind": "email", "value": "a@b"}, "kind"), ({"value": "1.2.3.4"}, "kind"),
                                ({"kind": 5, "value": "1.2.3.4"}, "kind"),
                                ({"kind": "ip", "value": "1.2.3.4", "ttl_seconds": 0}, "ttl_seconds"),
                                ({"kind": "ip", "value": "1.2.3.4", "ttl_seconds": "1h"}, "ttl_seconds"),
                                ({"kind": "ip", "value": "1.2.3.4", "expires_at": int(time.time()) - 10}, "expires_at"),
                                ({"kind": "ip", "value": "1.2.3.4", "api_id": "one"}, "api_id")):
                with self.subTest(name=name, body=body):
                    self.assertError(self.server.post(f"/api/{name}", body, self.admin), 400, field)
            self.assertError(self.server.post(f"/api/{name}", raw="{x", token=self.admin), 400)
            self.assertError(self.server.post(f"/api/{name}", {"kind": "ip", "value": "1.2.3.4"}), 401)

    def test_expiry(self):
        # Times are whole seconds: a 2-second TTL is still listed for at least one second.
        for name in ("whitelist", "blacklist"):
            short = self.server.post(f"/api/{name}", {"kind": "ip", "value": "192.0.2.1", "ttl_seconds": 2}, self.admin)
            self.assertEqual(short.status, 201, short)
            self.assertAlmostEqual(short.json()["expires_at"], time.time() + 2, delta=2)
            future = int(time.time()) + 3600
            r = self.server.post(f"/api/{name}", {"kind": "ip", "value": "192.0.2.2", "expires_at": future}, self.admin)
            self.assertEqual((r.status, r.json()["expires_at"]), (201, future), r)
            forever = self.server.post(f"/api/{name}", {"kind": "ip", "value": "192.0.2.3"}, self.admin).json()
            self.assertIn(short.json()["id"], self.entries(name, self.admin))
            self.short_ids = getattr(self, "short_ids", []) + [(name, short.json()["id"], r.json()["id"], forever["id"])]
        time.sleep(3.2)
        for name, expired, later, forever in self.short_ids:
            listed = self.entries(name, self.admin)
            self.assertNotIn(expired, listed, "expired entries are not listed")
            self.assertIn(later, listed)
            self.assertIn(forever, listed)

    def test_user_scope(self):
        for name in ("whitelist", "blacklist"):
            with self.subTest(name):
                # Users manage entries of their own APIs only; global entries are for admins.
                self.assertError(self.server.post(f"/api/{name}", {"kind": "ip", "value": "1.2.3.4"}, self.alice), 403)
                r = self.server.post(f"/api/{name}", {"kind": "ip", "value": "1.2.3.4", "api_id": self.bob_api["id"]}, self.alice)
                self.assertIn(r.status, (403, 404), r)
                r = self.server.post(f"/api/{name}", {"kind": "ip", "value": "1.2.3.4", "api_id": 99999}, self.alice)
                self.assertIn(r.status, (403, 404), r)
                own = self.server.post(f"/api/{name}", {"kind": "identity", "value": "alice-own", "api_id": self.alice_api["id"]}, self.alice)
                self.assertEqual(own.status, 201, own)
                own = own.json()
                self.assertEqual(own["api_id"], self.alice_api["id"])
                bobs = self.server.post(f"/api/{name}", {"kind": "identity", "value": "bob-own", "api_id": self.bob_api["id"]}, self.bob).json()
                glob = self.server.post(f"/api/{name}", {"kind": "cidr", "value": "198.18.0.0/15"}, self.admin).json()
                alice_view = self.entries(name, self.alice)
                self.assertIn(own["id"], alice_view)
                self.assertIn(glob["id"], alice_view, "global entries are visible to users")
                self.assertNotIn(bobs["id"], alice_view, "other users' API entries are not")
                admin_view = self.entries(name, self.admin)
                self.assertTrue({own["id"], bobs["id"], glob["id"]} <= set(admin_view))
                # Deleting: only the entry's API owner or an admin.
                for eid in (bobs["id"], glob["id"]):
                    r = self.server.delete(f"/api/{name}/{eid}", self.alice)
                    self.assertIn(r.status, (403, 404), r)
                self.assertIn(bobs["id"], self.entries(name, self.bob))
                self.assertIn(glob["id"], self.entries(name, self.admin))
                self.assertEqual(self.server.delete(f"/api/{name}/{own['id']}", self.alice).status, 204)
                self.assertEqual(self.server.delete(f"/api/{name}/{bobs['id']}", self.admin).status, 204)
                self.assertEqual(self.server.delete(f"/api/{name}/{glob['id']}", self.admin).status, 204)


class AuditTest(ServerTestCase):
    def newest(self, n=50):
        r = self.server.get(f"/api/audit?limit={n}", self.admin)
        self.assertEqual(r.status, 200, r)
        return r.json()["entries"]

    def assertAudited(self, before_id, target_bits, forbidden=()):
        new = [e for e in self.newest() if e["id"] > before_id]
        self.assertTrue(new, "no audit entry for the admin action")
        e = new[0] if len(new) == 1 else max(new, key=lambda x: x["id"])
        self.assertEqual((e["username"], e["user_id"], e["client_ip"]), (ADMIN_USER, self.admin_id, "127.0.0.1"), e)
        self.assertLess(abs(e["ts_ms"] / 1000 - time.time()), 30, e)
        self.assertTrue(e["action"])
        blob = json.dumps(e)
        for bit in target_bits:
            self.assertIn(str(bit), blob, e)
        for secret in forbidden:
            self.assertNotIn(secret, blob, "a secret in the audit log")
        return e

    def last_id(self):
        entries = self.newest(1)
        return entries[0]["id"] if entries else 0

    def test_admin_actions_are_audited(self):
        self.admin_id = self.server.me(self.admin)["id"]
        user_tok = self.server.register("audited-user")
        uid = self.server.me(user_tok)["id"]
        actions = []
        b = self.last_id()
        api = self.server.create_api(self.admin, "audited-api", upstream_secret="AUDIT-UPSTREAM-SECRET")
        actions.append(self.assertAudited(b, [api["id"]], [api["ingest_key"], "AUDIT-UPSTREAM-SECRET"])["action"])
        b = self.last_id()
        r = self.server.put(f"/api/apis/{api['id']}", {"upstream_secret": "AUDIT-SECRET-2", "rotate_ingest_key": True}, self.admin)
        actions.append(self.assertAudited(b, [api["id"]], ["AUDIT-SECRET-2", r.json()["ingest_key"]])["action"])
        b = self.last_id()
        self.server.put(f"/api/users/{uid}", {"role": "admin", "password": "AUDIT-NEW-PASSWORD"}, self.admin)
        actions.append(self.assertAudited(b, [uid], ["AUDIT-NEW-PASSWORD"])["action"])
        det = self.server.get("/api/detectors", self.admin).json()["detectors"][0]["id"]
        b = self.last_id()
        self.server.put(f"/api/detectors/{det}", {"severity": "low"}, self.admin)
        actions.append(self.assertAudited(b, [det])["action"])
        b = self.last_id()
        entry = self.server.post("/api/blacklist", {"kind": "ip", "value": "203.0.113.66"}, self.admin).json()
        actions.append(self.assertAudited(b, ["203.0.113.66"])["action"])
        b = self.last_id()
        self.server.delete(f"/api/blacklist/{entry['id']}", self.admin)
        actions.append(self.assertAudited(b, [entry["id"]])["action"])
        b = self.last_id()
        et = self.server.post("/api/agents", {"name": "audited-agent"}, self.admin).json()["enrollment_token"]
        actions.append(self.assertAudited(b, [], [et])["action"])
        agent = self.server.post("/api/agents/enroll", {"enrollment_token": et, "hostname": "h", "version": "1"}).json()
        b = self.last_id()
        self.server.delete(f"/api/agents/{agent['agent_id']}", self.admin)
        actions.append(self.assertAudited(b, [agent["agent_id"]], [agent["agent_token"]])["action"])
        b = self.last_id()
        self.server.delete(f"/api/apis/{api['id']}", self.admin)
        actions.append(self.assertAudited(b, [api["id"]])["action"])
        b = self.last_id()
        self.server.put(f"/api/users/{uid}", {"role": "user"}, self.admin)
        self.server.delete(f"/api/users/{uid}", self.admin)
        self.assertGreaterEqual(len([e for e in self.newest() if e["id"] > b]), 2)
        self.assertEqual(len(set(actions)), len(actions), f"each kind of action has its own name: {actions}")

    def test_pagination_and_access(self):
        for i in range(5):
            self.server.post("/api/blacklist", {"kind": "ip", "value": f"198.51.100.{i}"}, self.admin)
        page = self.server.get("/api/audit?limit=2", self.admin).json()["entries"]
        self.assertEqual(len(page), 2)
        self.assertGreater(page[0]["id"], page[1]["id"], "newest first")
        older = self.server.get("/api/audit?" + qs(limit=3, before_id=page[1]["id"]), self.admin).json()["entries"]
        self.assertEqual(len(older), 3)
        self.assertTrue(all(e["id"] < page[1]["id"] for e in older))
        self.assertEqual([e["id"] for e in older], sorted((e["id"] for e in older), reverse=True))
        full = [e["id"] for e in self.newest(5)]
        self.assertEqual(full, [page[0]["id"], page[1]["id"]] + [e["id"] for e in older])
        self.assertError(self.server.get("/api/audit?limit=5000", self.admin), 400, "limit")
        user = self.server.register("audit-reader")
        self.assertError(self.server.get("/api/audit", user), 403)
        self.assertError(self.server.get("/api/audit"), 401)


if __name__ == "__main__":
    unittest.main()
