"""Role matrix: every route the router knows, exercised as anonymous, user (not owner), owner and
admin. Fails when the router has a route this table lacks, or the table a route the router lacks."""
import json
import subprocess
import unittest

from harness import BINARY, ServerTestCase, event

# Expected status class per caller: "2" = success (any 2xx), or an exact status.
# anon, user (owns nothing), owner (owns the API / entry), admin.
ANY = "2"
MATRIX = {
    ("POST", "/api/register"): None,  # exercised in test_api (creates accounts)
    ("POST", "/api/login"): None,     # exercised in test_api
    ("POST", "/api/logout"): (401, ANY, ANY, ANY),
    ("GET", "/api/me"): (401, ANY, ANY, ANY),
    ("GET", "/api/users"): (401, 403, 403, ANY),
    ("PUT", "/api/users/:id"): (401, 403, 403, ANY),
    ("DELETE", "/api/users/:id"): (401, 403, 403, ANY),
    ("POST", "/api/apis"): (401, ANY, ANY, ANY),
    ("GET", "/api/apis"): (401, ANY, ANY, ANY),
    ("GET", "/api/apis/:id"): (401, 404, ANY, ANY),
    ("PUT", "/api/apis/:id"): (401, 404, ANY, ANY),
    ("DELETE", "/api/apis/:id"): (401, 404, ANY, ANY),
    ("POST", "/api/agents"): (401, 403, 403, ANY),
    ("POST", "/api/agents/enroll"): None,     # enrolment token, not a role: test_api
    ("POST", "/api/agents/heartbeat"): None,  # agent token: test_api
    ("GET", "/api/agents"): (401, 403, 403, ANY),
    ("DELETE", "/api/agents/:agent_id"): (401, 403, 403, ANY),
    ("POST", "/api/ingest"): None,        # ingest key: test_api
    ("POST", "/api/ingest/batch"): None,  # ingest key / agent token: test_api
    ("WS", "/ws/ingest"): None,           # ingest key / agent token: test_api
    ("GET", "/api/logs"): (401, ANY, ANY, ANY),
    ("GET", "/api/export/logs"): (401, ANY, ANY, ANY),
    ("GET", "/api/metrics"): (401, ANY, ANY, ANY),
    ("GET", "/api/detectors"): (401, ANY, ANY, ANY),
    ("PUT", "/api/detectors/:id"): (401, 403, 403, ANY),
    ("POST", "/api/whitelist"): (401, 404, ANY, ANY),  # 404: another user's API is not revealed
    ("GET", "/api/whitelist"): (401, ANY, ANY, ANY),
    ("DELETE", "/api/whitelist/:id"): (401, 404, ANY, ANY),
    ("POST", "/api/blacklist"): (401, 404, ANY, ANY),
    ("GET", "/api/blacklist"): (401, ANY, ANY, ANY),
    ("DELETE", "/api/blacklist/:id"): (401, 404, ANY, ANY),
    ("GET", "/api/audit"): (401, 403, 403, ANY),
    ("GET", "/api/findings"): (401, ANY, ANY, ANY),  # each sees only findings of own APIs
    ("GET", "/healthz"): (ANY, ANY, ANY, ANY),
    ("GET", "/readyz"): (ANY, ANY, ANY, ANY),
    ("GET", "/metrics"): (ANY, ANY, ANY, ANY),
}


class RoleMatrixTest(ServerTestCase):
    def test_matrix_covers_every_route(self):
        routes = json.loads(subprocess.run([BINARY, "routes"], capture_output=True, text=True,
                                           check=True).stdout)
        known = {(r["method"], r["pattern"]) for r in routes}
        self.assertEqual(sorted(known - set(MATRIX)), [], "routes without a row in the role matrix")
        self.assertEqual(sorted(set(MATRIX) - known), [], "matrix rows for routes that do not exist")

    def test_every_row(self):
        s = self.server
        tokens = {}
        for who in ("roleuser", "roleowner"):
            tokens[who] = s.register(who)
        callers = [None, tokens["roleuser"], tokens["roleowner"], self.admin]
        names = ["anonymous", "user", "owner", "admin"]
        counter = 0
        for (method, pattern), expected in sorted(MATRIX.items()):
            if expected is None:
                continue
            for caller, name, want in zip(callers, names, expected):
                # Fresh objects per call so destructive rows can succeed for each caller.
                owner_tok = tokens["roleowner"]
                api = s.create_api(owner_tok, "role-api")
                entry_list = "whitelist" if "whitelist" in pattern else "blacklist"
                entry = s.post(f"/api/{entry_list}", {"kind": "ip", "value": "192.0.2.7",
                                                      "api_id": api["id"]}, owner_tok).json()
                counter += 1
                victim = s.register(f"victim{counter}")
                victim_id = s.get("/api/me", victim).json()["id"]
                et = s.post("/api/agents", {}, self.admin).json()["enrollment_token"]
                agent = s.post("/api/agents/enroll", {"enrollment_token": et}).json()
                path = (pattern.replace(":id", str(api["id"]) if "/apis/" in pattern else
                                        str(entry["id"]) if "list/" in pattern else
                                        "sqli" if "detectors" in pattern else str(victim_id))
                        .replace(":agent_id", agent["agent_id"]))
                body = None
                if method in ("POST", "PUT"):
                    body = {"name": "n", "kind": "ip", "value": "192.0.2.8", "enabled": True,
                            "api_id": api["id"]} if "list" in pattern else {"name": "n", "enabled": True}
                    if pattern == "/api/users/:id":
                        body = {"email": "x@example.com"}
                if pattern == "/api/logout" and caller is not None:
                    caller = s.login({"user": "roleuser", "owner": "roleowner", "admin": "admin1"}[name])
                r = s.request(method, path, body, caller)
                if want == ANY:
                    self.assertEqual(r.status // 100, 2, f"{method} {pattern} as {name}: {r}")
                else:
                    self.assertEqual(r.status, want, f"{method} {pattern} as {name}: {r}")
                    self.assertIn("error", r.json())


if __name__ == "__main__":
    unittest.main()
