"""Monitored APIs: CRUD, validation, ingest keys and upstream secrets, and ownership (a user sees and
changes only their own APIs and those APIs' data; docs/api.md "Monitored APIs")."""
import csv
import io
import time
import unittest

from harness import ServerTestCase, event

API_FIELDS = {"id", "name", "base_url", "owner_id", "settings", "ingest_key_prefix",
              "has_upstream_secret", "match_host", "match_port", "match_base_path", "created_at",
              "updated_at"}


class ApisTest(ServerTestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.alice = cls.server.register("alice")
        cls.bob = cls.server.register("bob")
        cls.alice_id = cls.server.me(cls.alice)["id"]

    def test_create_answer(self):
        r = self.server.post("/api/apis", {"name": "shop", "base_url": "https://shop.example",
                                           "settings": {"tier": "gold", "n": 3},
                                           "upstream_secret": "s3cr3t-upstream-value",
                                           "match_host": "shop.example", "match_port": 8443,
                                           "match_base_path": "/v1"}, self.alice)
        self.assertEqual(r.status, 201, r)
        a = r.json()
        self.assertEqual(set(a) & API_FIELDS, API_FIELDS, a)
        self.assertEqual((a["name"], a["base_url"], a["owner_id"], a["settings"], a["match_host"],
                          a["match_port"], a["match_base_path"], a["has_upstream_secret"]),
                         ("shop", "https://shop.example", self.alice_id, {"tier": "gold", "n": 3},
                          "shop.example", 8443, "/v1", True))
        self.assertTrue(a["ingest_key"].startswith(a["ingest_key_prefix"]), a)
        self.assertGreaterEqual(len(a["ingest_key"]) - len(a["ingest_key_prefix"]), 16)
        self.assertNotIn("s3cr3t-upstream-value", r.body)
        self.assertNotIn("upstream_secret", a)
        # Never returned again: not by GET, not in the list, not by an update without rotation.
        for body in (self.server.get(f"/api/apis/{a['id']}", self.alice).body,
                     self.server.get("/api/apis", self.alice).body,
                     self.server.get("/api/apis", self.admin).body,
                     self.server.put(f"/api/apis/{a['id']}", {"name": "shop2"}, self.alice).body):
            self.assertNotIn(a["ingest_key"], body)
            self.assertNotIn("s3cr3t-upstream-value", body)
            self.assertNotIn('"ingest_key"', body)
        got = self.server.get(f"/api/apis/{a['id']}", self.alice).json()
        self.assertEqual((got["name"], got["has_upstream_secret"], got["settings"]), ("shop2", True, {"tier": "gold", "n": 3}))

    def test_validation_names_the_field(self):
        cases = [({}, "name"), ({"name": ""}, "name"), ({"name": 7}, "name"),
                 ({"name": "x", "base_url": "ftp://x"}, "base_url"),
                 ({"name": "x", "base_url": 5}, "base_url"),
                 ({"name": "x", "match_port": 70000}, "match_port"),
                 ({"name": "x", "match_port": "80"}, "match_port"),
                 ({"name": "x", "match_base_path": "v1"}, "match_base_path"),
                 ({"name": "x", "settings": [1, 2]}, "settings"),
                 ({"name": "x", "upstream_secret": 12}, "upstream_secret")]
        for body, field in cases:
            with self.subTest(body=body):
                self.assertError(self.server.post("/api/apis", body, self.alice), 400, field)
        self.assertError(self.server.post("/api/apis", raw="{oops", token=self.alice), 400)
        names = [a["name"] for a in self.server.get("/api/apis", self.alice).json()["apis"]]
        self.assertNotIn("x", names, "a rejected create stored nothing")
        api = self.server.create_api(self.alice, "valid")
        self.assertError(self.server.put(f"/api/apis/{api['id']}", {"base_url": "javascript:alert(1)"}, self.alice), 400, "base_url")
        self.assertError(self.server.put(f"/api/apis/{api['id']}", {"name": ""}, self.alice), 400, "name")
        self.assertEqual(self.server.get(f"/api/apis/{api['id']}", self.alice).json()["name"], "valid")

    def test_list_is_own_and_admin_sees_all(self):
        a1 = self.server.create_api(self.alice, "alice-list-1")
        a2 = self.server.create_api(self.alice, "alice-list-2")
        b1 = self.server.create_api(self.bob, "bob-list-1")
        alice_ids = {a["id"] for a in self.server.get("/api/apis", self.alice).json()["apis"]}
        bob_ids = {a["id"] for a in self.server.get("/api/apis", self.bob).json()["apis"]}
        admin_ids = {a["id"] for a in self.server.get("/api/apis", self.admin).json()["apis"]}
        self.assertTrue({a1["id"], a2["id"]} <= alice_ids)
        self.assertNotIn(b1["id"], alice_ids)
        self.assertIn(b1["id"], bob_ids)
        self.assertFalse(alice_ids & bob_ids)
        self.assertTrue({a1["id"], a2["id"], b1["id"]} <= admin_ids)
        for a in self.server.get("/api/apis", self.bob).json()["apis"]:
            self.assertEqual(a["owner_id"], self.server.me(self.bob)["id"])

    def test_other_user_cannot_see_or_change(self):
        api = self.server.create_api(self.alice, "alice-private", base_url="https://a.example")
        aid = api["id"]
        for r in (self.server.get(f"/api/apis/{aid}", self.bob),
                  self.server.put(f"/api/apis/{aid}", {"name": "pwned"}, self.bob),
                  self.server.put(f"/api/apis/{aid}", {"rotate_ingest_key": True}, self.bob),
                  self.server.delete(f"/api/apis/{aid}", self.bob)):
            self.assertIn(r.status, (403, 404), r)
            self.assertIn("error", r.json())
            self.assertNotIn("alice-private", r.body)
        # Unknown ids answer the same as other users' ids: nothing to learn from probing.
        self.assertEqual(self.server.get("/api/apis/99999999", self.bob).status,
                         self.server.get(f"/api/apis/{aid}", self.bob).status)
        got = self.server.get(f"/api/apis/{aid}", self.alice).json()
        self.assertEqual(got["name"], "alice-private")
        self.assertEqual(self.server.post("/api/ingest", event(api["ingest_key"])).status, 200,
                         "bob's rotate attempt must not have changed the key")

    def test_other_user_cannot_read_the_apis_data(self):
        api = self.server.create_api(self.alice, "alice-data")
        for i in range(3):
            self.assertEqual(self.server.post("/api/ingest", event(api["ingest_key"], endpoint=f"/alice-secret/{i}",
                                                                   client_ip="198.51.100.77")).status, 200)
        aid = api["id"]
        self.assertIn(self.server.get(f"/api/logs?api_id={aid}", self.bob).status, (403, 404))
        self.assertIn(self.server.get(f"/api/export/logs?api_id={aid}", self.bob).status, (403, 404))
        self.assertIn(self.server.get(f"/api/metrics?api_id={aid}", self.bob).status, (403, 404))
        # Without a filter: bob's view holds none of alice's rows.
        self.assertNotIn("/alice-secret/", self.server.get("/api/logs?limit=1000", self.bob).body)
        export = self.server.get("/api/export/logs", self.bob)
        self.assertEqual(export.status, 200, export)
        self.assertNotIn("/alice-secret/", export.body)
        self.assertEqual(len(list(csv.reader(io.StringIO(export.body, newline="")))), 1, "header only")
        metrics = self.server.get("/api/metrics", self.bob).json()
        self.assertNotIn(aid, [m["api_id"] for m in metrics["apis"]])
        self.assertNotIn("198.51.100.77", self.server.get("/api/metrics", self.bob).body)
        # The owner and the admin do see them.
        self.assertEqual(len(self.server.logs(self.alice, api_id=aid)["logs"]), 3)
        self.assertEqual(len(self.server.logs(self.admin, api_id=aid)["logs"]), 3)

    def test_admin_can_change_any_api(self):
        api = self.server.create_api(self.alice, "alice-admin-managed")
        r = self.server.put(f"/api/apis/{api['id']}", {"name": "renamed-by-admin"}, self.admin)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json()["owner_id"], self.alice_id, "the owner does not change")
        self.assertEqual(self.server.get(f"/api/apis/{api['id']}", self.alice).json()["name"], "renamed-by-admin")
        self.assertEqual(self.server.delete(f"/api/apis/{api['id']}", self.admin).status, 204)
        self.assertEqual(self.server.get(f"/api/apis/{api['id']}", self.alice).status, 404)

    def test_update_fields_secret_and_rotation(self):
        api = self.server.create_api(self.alice, "rotating")
        aid, old_key = api["id"], api["ingest_key"]
        self.assertFalse(api["has_upstream_secret"])
        time.sleep(1.1)
        r = self.server.put(f"/api/apis/{aid}", {"upstream_secret": "new-upstream-secret", "match_port": 9000,
                                                 "settings": {"a": 1}}, self.alice)
        self.assertEqual(r.status, 200, r)
        j = r.json()
        self.assertEqual((j["has_upstream_secret"], j["match_port"], j["settings"], j["name"]), (True, 9000, {"a": 1}, "rotating"))
        self.assertGreater(j["updated_at"], api["updated_at"])
        self.assertEqual(j["created_at"], api["created_at"])
        self.assertNotIn("ingest_key", j)
        r = self.server.put(f"/api/apis/{aid}", {"upstream_secret": None}, self.alice)
        self.assertEqual((r.status, r.json()["has_upstream_secret"]), (200, False), r)
        r = self.server.put(f"/api/apis/{aid}", {"rotate_ingest_key": True}, self.alice)
        self.assertEqual(r.status, 200, r)
        new_key = r.json()["ingest_key"]
        self.assertNotEqual(new_key, old_key)
        self.assertTrue(new_key.startswith(r.json()["ingest_key_prefix"]))
        self.assertError(self.server.post("/api/ingest", event(old_key)), 401, "api_key")
        self.assertEqual(self.server.post("/api/ingest", event(new_key)).status, 200)
        self.assertEqual(self.server.post("/api/ingest/batch", raw="[]", headers={"X-Api-Key": old_key}).status, 401)

    def test_delete_removes_the_api_and_its_events(self):
        api = self.server.create_api(self.alice, "doomed")
        aid, key = api["id"], api["ingest_key"]
        r = self.server.batch([event(endpoint=f"/doomed/{i}") for i in range(5)], headers={"X-Api-Key": key})
        self.assertEqual(r.json()["accepted"], 5, r)
        self.assertEqual(self.server.db_query(f"SELECT COUNT(*) FROM events WHERE api_id = {aid}"), [["5"]])
        r = self.server.delete(f"/api/apis/{aid}", self.alice)
        self.assertEqual((r.status, r.raw), (204, b""), r)
        self.assertEqual(self.server.get(f"/api/apis/{aid}", self.alice).status, 404)
        self.assertEqual(self.server.delete(f"/api/apis/{aid}", self.alice).status, 404)
        self.assertNotIn(aid, [a["id"] for a in self.server.get("/api/apis", self.admin).json()["apis"]])
        self.assertError(self.server.post("/api/ingest", event(key)), 401)
        self.assertEqual(self.server.db_query(f"SELECT COUNT(*) FROM events WHERE api_id = {aid}"), [["0"]])
        self.assertNotIn("/doomed/", self.server.get("/api/logs?limit=1000", self.admin).body)

    def test_anonymous_is_401(self):
        self.assertError(self.server.get("/api/apis"), 401)
        self.assertError(self.server.post("/api/apis", {"name": "anon"}), 401)


if __name__ == "__main__":
    unittest.main()
