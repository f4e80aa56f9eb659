"""The role matrix: one row per route that `boing-server routes` lists, with the expected outcome for
four callers, each exercised for real against a running server.

Callers:
  anonymous  no credential at all
  user       a plain user who owns nothing involved (their dashboard JWT)
  owner      the holder of the thing the route is about: the owner of the API (or of the list
             entry's API), the target account itself for /api/users/:id, and for the routes that
             take another credential the holder of that credential (ingest key, enrolment token,
             agent token); otherwise simply a second plain user
  admin      an admin (their dashboard JWT)

Outcomes: an exact status; OK = any 2xx; DENY = 403 or 404 (docs/api.md lets a server hide other
users' objects behind 404); NONE = the request may be taken but must store nothing (a batch or
WebSocket message without any credential is answered per item: every item rejected).

The test fails when the router lists a route the table lacks, or the table has a row the router lacks.
"""
import json
import secrets
import subprocess
import time
import unittest

import websocket  # Debian python3-websocket

from harness import ADMIN_PASSWORD, ADMIN_USER, BINARY, PASSWORD, ServerTestCase, event

OK, DENY, NONE = "2xx", "403/404", "nothing stored"

#        (method, pattern):                     anonymous, user, owner, admin
MATRIX = {
    ("POST", "/api/register"):                  (OK, OK, OK, OK),
    ("POST", "/api/login"):                     (OK, OK, OK, OK),
    ("POST", "/api/logout"):                    (401, 204, 204, 204),
    ("GET", "/api/me"):                         (401, 200, 200, 200),
    ("GET", "/api/users"):                      (401, 403, 403, 200),
    ("PUT", "/api/users/:id"):                  (401, 403, 403, 200),   # owner = the target account
    ("DELETE", "/api/users/:id"):               (401, 403, 403, 204),
    ("POST", "/api/apis"):                      (401, 201, 201, 201),
    ("GET", "/api/apis"):                       (401, 200, 200, 200),
    ("GET", "/api/apis/:id"):                   (401, DENY, 200, 200),
    ("PUT", "/api/apis/:id"):                   (401, DENY, 200, 200),
    ("DELETE", "/api/apis/:id"):                (401, DENY, 204, 204),
    ("POST", "/api/agents"):                    (401, 403, 403, 201),
    ("POST", "/api/agents/enroll"):             (401, 401, 201, 401),   # owner = enrolment token holder
    ("POST", "/api/agents/heartbeat"):          (401, 401, 200, 401),   # owner = agent token holder
    ("GET", "/api/agents"):                     (401, 403, 403, 200),
    ("DELETE", "/api/agents/:agent_id"):        (401, 403, 403, 204),
    ("POST", "/api/ingest"):                    (401, 401, 200, 401),   # owner = ingest key holder
    ("POST", "/api/ingest/batch"):              (NONE, 401, 200, 401),  # owner = ingest key holder
    ("WS", "/ws/ingest"):                       (NONE, 401, OK, 401),   # owner = agent token holder
    ("GET", "/api/logs"):                       (401, DENY, 200, 200),  # ?api_id= the owner's API
    ("GET", "/api/export/logs"):                (401, DENY, 200, 200),  # ?api_id= the owner's API
    ("GET", "/api/metrics"):                    (401, DENY, 200, 200),  # ?api_id= the owner's API
    ("GET", "/api/detectors"):                  (401, 200, 200, 200),
    ("PUT", "/api/detectors/:id"):              (401, 403, 403, 200),
    ("POST", "/api/whitelist"):                 (401, DENY, 201, 201),  # api_id = the owner's API
    ("GET", "/api/whitelist"):                  (401, 200, 200, 200),
    ("DELETE", "/api/whitelist/:id"):           (401, DENY, 204, 204),  # an entry of the owner's API
    ("POST", "/api/blacklist"):                 (401, DENY, 201, 201),
    ("GET", "/api/blacklist"):                  (401, 200, 200, 200),
    ("DELETE", "/api/blacklist/:id"):           (401, DENY, 204, 204),
    ("GET", "/api/audit"):                      (401, 403, 403, 200),
    ("GET", "/api/findings"):                   (401, DENY, 200, 200),  # ?api_id= the owner's API
    ("GET", "/api/alerts"):                     (401, DENY, 200, 200),  # ?api_id= the owner's API
    ("GET", "/api/alerts/summary"):             (401, DENY, 200, 200),  # ?api_id= the owner's API
    ("GET", "/api/alerts/:id"):                 (401, DENY, 200, 200),  # an alert of the owner's API
    ("POST", "/api/alerts/:id/ack"):            (401, DENY, 200, 200),
    ("POST", "/api/alerts/:id/resolve"):        (401, DENY, 200, 200),
    ("PUT", "/api/alerts/:id/mute"):            (401, DENY, 200, 200),
    ("GET", "/api/alerts/:id/deliveries"):      (401, DENY, 200, 200),
    ("POST", "/api/mutes"):                     (401, DENY, 201, 201),  # api_id = the owner's API
    ("GET", "/api/mutes"):                      (401, 200, 200, 200),
    ("DELETE", "/api/mutes/:id"):               (401, DENY, 204, 204),  # owner = the mute's creator
    ("POST", "/api/channels"):                  (401, 403, 403, 201),
    ("GET", "/api/channels"):                   (401, 403, 403, 200),
    ("GET", "/api/channels/:id"):               (401, 403, 403, 200),
    ("PUT", "/api/channels/:id"):               (401, 403, 403, 200),
    ("DELETE", "/api/channels/:id"):            (401, 403, 403, 204),
    ("POST", "/api/channels/:id/test"):         (401, 403, 403, 202),
    ("WS", "/ws/alerts"):                       (401, DENY, OK, OK),    # ?api_id= the owner's API
    ("WS", "/ws/stream"):                       (401, DENY, OK, OK),
    ("WS", "/ws/metrics"):                      (401, DENY, OK, OK),
    ("GET", "/healthz"):                        (200, 200, 200, 200),
    ("GET", "/readyz"):                         (200, 200, 200, 200),
    ("GET", "/metrics"):                        (200, 200, 200, 200),
}
CALLERS = ("anonymous", "user", "owner", "admin")


class Fixture:
    """Fresh objects for one (row, caller) call, so destructive rows can succeed for every caller."""

    def __init__(self, t):
        self.t, self.s = t, t.server

    def api(self):
        if not hasattr(self, "_api"):
            self._api = self.s.create_api(self.t.owner, "role-api-" + secrets.token_hex(3))
            assert self.s.post("/api/ingest", event(self._api["ingest_key"])).status == 200
        return self._api

    def entry(self, list_name):
        r = self.s.post(f"/api/{list_name}", {"kind": "ip", "value": "192.0.2.7", "api_id": self.api()["id"]}, self.t.owner)
        assert r.status == 201, r
        return r.json()

    def victim(self):
        name = "victim-" + secrets.token_hex(4)
        tok = self.s.register(name)
        return self.s.me(tok)["id"], tok

    def agent(self):
        return self.s.enroll_agent(self.t.admin, "role-agent")

    def alert(self):
        """A new alert of the owner's API (an SQL injection from a fresh client IP)."""
        ip = f"198.18.{secrets.randbelow(250)}.{secrets.randbelow(250) + 1}"
        r = self.s.post("/api/ingest", event(self.api()["ingest_key"], client_ip=ip,
                                             endpoint="/s?q=1%27%20OR%20%271%27%3D%271"))
        assert r.status == 200, r
        deadline = time.time() + 15
        while time.time() < deadline:
            found = self.s.get(f"/api/alerts?api_id={self.api()['id']}&actor=ip:{ip}", self.t.owner).json()["alerts"]
            if found:
                return found[0]
            time.sleep(0.05)
        raise AssertionError("no alert for the fixture's event")

    def mute(self):
        r = self.s.post("/api/mutes", {"actor": "ip:192.0.2.9", "api_id": self.api()["id"],
                                       "duration_seconds": 60}, self.t.owner)
        assert r.status == 201, r
        return r.json()

    def channel(self):
        r = self.s.post("/api/channels", {"name": "role-" + secrets.token_hex(4), "kind": "webhook",
                                          "config": {"url": "http://127.0.0.1:9/role"}}, self.t.admin)
        assert r.status == 201, r
        return r.json()


class RoleMatrixTest(ServerTestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.user = cls.server.register("role-user")
        cls.owner = cls.server.register("role-owner")
        cls.tokens = {"anonymous": None, "user": cls.user, "owner": cls.owner, "admin": cls.admin}

    def test_matrix_covers_every_route(self):
        out = subprocess.run([BINARY, "routes"], capture_output=True, text=True, timeout=30)
        self.assertEqual(out.returncode, 0, out.stderr)
        routes = json.loads(out.stdout)
        known = {(r["method"], r["pattern"]) for r in routes}
        self.assertEqual(len(known), len(routes), "a route is listed twice")
        self.assertEqual(sorted(known - set(MATRIX)), [], "routes without a row in the role matrix")
        self.assertEqual(sorted(set(MATRIX) - known), [], "matrix rows for routes the router does not have")

    # --- one request per (row, caller) ----------------------------------------------------------
    def build(self, method, pattern, who, fx):
        """Returns (method, path, body, token, headers) for this caller."""
        token = self.tokens[who]
        body, headers, path = None, None, pattern
        if pattern == "/api/register":
            body = {"username": f"reg-{who}-{secrets.token_hex(3)}", "password": PASSWORD}
        elif pattern == "/api/login":
            name, pw = {"anonymous": ("role-user", PASSWORD), "user": ("role-user", PASSWORD),
                        "owner": ("role-owner", PASSWORD), "admin": (ADMIN_USER, ADMIN_PASSWORD)}[who]
            body = {"username": name, "password": pw}
        elif pattern == "/api/logout":
            if who != "anonymous":
                token = self.server.login(*{"user": ("role-user", PASSWORD), "owner": ("role-owner", PASSWORD),
                                            "admin": (ADMIN_USER, ADMIN_PASSWORD)}[who])
        elif pattern == "/api/users/:id":
            uid, victim_tok = fx.victim()
            path = f"/api/users/{uid}"
            if who == "owner":
                token = victim_tok
            body = {"email": "changed@example.com"} if method == "PUT" else None
        elif pattern == "/api/apis":
            body = {"name": "made-by-" + who} if method == "POST" else None
        elif pattern == "/api/apis/:id":
            path = f"/api/apis/{fx.api()['id']}"
            body = {"name": "renamed"} if method == "PUT" else None
        elif pattern == "/api/agents":
            body = {"name": "role"} if method == "POST" else None
        elif pattern == "/api/agents/enroll":
            et = self.server.post("/api/agents", {}, self.admin).json()["enrollment_token"]
            body = {"enrollment_token": et if who == "owner" else "be_not_a_real_token", "hostname": "h", "version": "1"}
            if who == "anonymous":
                body = {"enrollment_token": "be_not_a_real_token", "hostname": "h", "version": "1"}
        elif pattern == "/api/agents/heartbeat":
            body = {"counters": {"captured": 1}}
            if who == "owner":
                token = fx.agent()["agent_token"]
        elif pattern == "/api/agents/:agent_id":
            path = f"/api/agents/{fx.agent()['agent_id']}"
        elif pattern == "/api/ingest":
            body = event(fx.api()["ingest_key"] if who == "owner" else None, endpoint=f"/role/ingest/{who}")
            if who == "owner":
                token = None
        elif pattern == "/api/ingest/batch":
            body = [event(endpoint=f"/role/batch/{who}")]
            if who == "owner":  # the ingest key alone (a Bearer here would be read as an agent token)
                headers, token = {"X-Api-Key": fx.api()["ingest_key"]}, None
        elif pattern in ("/api/logs", "/api/export/logs", "/api/metrics", "/api/findings",
                         "/api/alerts", "/api/alerts/summary"):
            path = f"{pattern}?api_id={fx.api()['id']}"
        elif pattern == "/api/detectors/:id":
            det = self.server.get("/api/detectors", self.admin).json()["detectors"][0]["id"]
            path, body = f"/api/detectors/{det}", {"enabled": True}
        elif pattern in ("/api/whitelist", "/api/blacklist") and method == "POST":
            body = {"kind": "ip", "value": "192.0.2.8", "api_id": fx.api()["id"]}
        elif pattern in ("/api/whitelist/:id", "/api/blacklist/:id"):
            list_name = pattern.split("/")[2]
            path = f"/api/{list_name}/{fx.entry(list_name)['id']}"
        elif pattern.startswith("/api/alerts/:id"):
            path = pattern.replace(":id", str(fx.alert()["id"]))
            body = {"duration_seconds": 60} if method == "PUT" else ({} if method == "POST" else None)
        elif pattern == "/api/mutes" and method == "POST":
            body = {"actor": "ip:192.0.2.9", "api_id": fx.api()["id"], "duration_seconds": 60}
        elif pattern == "/api/mutes/:id":
            path = f"/api/mutes/{fx.mute()['id']}"
        elif pattern == "/api/channels" and method == "POST":
            body = {"name": f"role-{who}-{secrets.token_hex(3)}", "kind": "webhook",
                    "config": {"url": "http://127.0.0.1:9/role"}}
        elif pattern.startswith("/api/channels/:id"):
            path = pattern.replace(":id", str(fx.channel()["id"]))
            body = {"enabled": False} if method == "PUT" else None
        return method, path, body, token, headers

    def check_ws_live(self, pattern, who, fx, want):
        hdrs = ["Authorization: Bearer " + self.tokens[who]] if self.tokens[who] else []
        try:
            ws = self.server.ws(f"{pattern}?api_id={fx.api()['id']}", headers=hdrs)
        except websocket.WebSocketBadStatusException as e:
            if want == DENY:
                self.assertIn(e.status_code, (403, 404), f"WS {pattern} as {who}")
            else:
                self.assertEqual(e.status_code, want, f"WS {pattern} as {who}")
            return
        ws.close()
        self.assertEqual(want, OK, f"WS {pattern} as {who}: handshake accepted")

    def check_ws(self, who, fx, want):
        endpoint = f"/role/ws/{who}-{secrets.token_hex(3)}"
        hdrs = []
        if who == "owner":
            hdrs = ["Authorization: Bearer " + fx.agent()["agent_token"]]
        elif self.tokens[who]:
            hdrs = ["Authorization: Bearer " + self.tokens[who]]
        try:
            ws = self.server.ws(headers=hdrs)
        except websocket.WebSocketBadStatusException as e:
            self.assertEqual(401 if want == NONE else want, e.status_code, f"WS /ws/ingest as {who}")
            return
        try:
            ws.send(json.dumps(event(endpoint=endpoint)))
            reply = json.loads(ws.recv())
        finally:
            ws.close()
        if want == OK:
            self.assertEqual(reply["status"], "accepted", f"WS /ws/ingest as {who}: {reply}")
        elif want == NONE:
            self.assertEqual(reply["status"], "rejected", f"WS /ws/ingest as {who}: {reply}")
        else:
            self.fail(f"WS /ws/ingest as {who}: handshake accepted, expected {want}; reply {reply}")
        stored = self.server.all_logs(self.admin, endpoint=endpoint)
        self.assertEqual(len(stored), 1 if want == OK else 0)

    def test_every_row(self):
        failures = []
        for (method, pattern), expected in sorted(MATRIX.items()):
            for who, want in zip(CALLERS, expected):
                fx = Fixture(self)
                with self.subTest(route=f"{method} {pattern}", caller=who):
                    if method == "WS" and pattern != "/ws/ingest":
                        self.check_ws_live(pattern, who, fx, want)
                        continue
                    if method == "WS":
                        self.check_ws(who, fx, want)
                        continue
                    m, path, body, token, headers = self.build(method, pattern, who, fx)
                    if isinstance(body, list):
                        r = self.server.request(m, path, raw=json.dumps(body), token=token, headers=headers)
                    else:
                        r = self.server.request(m, path, body, token, headers=headers)
                    where = f"{method} {pattern} as {who}: {r!r}"
                    if want == OK:
                        self.assertEqual(r.status // 100, 2, where)
                    elif want == DENY:
                        self.assertIn(r.status, (403, 404), where)
                        self.assertIn("error", r.json(), where)
                    elif want == NONE:
                        if r.status == 200:
                            self.assertEqual(r.json()["accepted"], 0, where)
                        else:
                            self.assertEqual(r.status, 401, where)
                    else:
                        self.assertEqual(r.status, want, where)
                        if want >= 400:
                            self.assertIn("error", r.json(), where)

    def test_other_credentials_are_not_dashboard_tokens(self):
        """An agent token, an ingest key or an enrolment token never works as a dashboard JWT."""
        fx = Fixture(self)
        others = {"agent token": fx.agent()["agent_token"], "ingest key": fx.api()["ingest_key"],
                  "enrolment token": self.server.post("/api/agents", {}, self.admin).json()["enrollment_token"]}
        for (method, pattern), expected in sorted(MATRIX.items()):
            if expected[0] != 401 or method == "WS" or pattern in (
                    "/api/agents/enroll", "/api/agents/heartbeat", "/api/ingest"):
                continue
            for name, cred in others.items():
                with self.subTest(route=f"{method} {pattern}", credential=name):
                    m, path, body, _, headers = self.build(method, pattern, "admin", Fixture(self))
                    r = self.server.request(m, path, body, cred, headers=headers)
                    self.assertEqual(r.status, 401, f"{method} {pattern} with an {name}: {r!r}")


if __name__ == "__main__":
    unittest.main()
