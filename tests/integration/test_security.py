"""Hostile input against the management API, and Fernet interoperability at rest.

What other modules already cover is not repeated here: the role matrix is test_roles.py, JWT
attacks (none, HS384/HS512, RS256 confusion, tampered, expired, audience, issuer) and login lockout
are test_auth.py, planted secrets searched in every table and log are test_secrets.py, body/header
limits and million-deep JSON on every JSON endpoint are test_ops.py.

Here:
  - SQL injection: every route `boing-server routes` lists, with injection strings in each path
    parameter, in each query parameter the server reads, and in each string field of each JSON
    body. Nothing may answer 500, nothing may show another user's data, the tables stay intact,
    and text that was accepted is stored literally (it was bound, not spliced).
  - Oversized and deeply nested values in every field of every JSON body: 4xx, never 5xx, and
    the server stays up.
  - Fernet interoperability with Python's `cryptography` (Debian python3-cryptography) in both
    directions, for a 44-character key and for the seed's 32-raw-character key form: the server's
    ciphertexts in the database decrypt in Python, and a Python ciphertext planted in the database
    is what the server uses after a restart.
"""
import base64
import json
import os
import secrets
import sqlite3
import subprocess
import unittest
import urllib.parse

from cryptography.fernet import Fernet  # Debian python3-cryptography

from harness import BACKEND, BINARY, PASSWORD, Server, ServerTestCase, event, mysql_cli

INJECTIONS = [
    "' OR '1'='1",
    "' OR 1=1 --",
    "1 OR 1=1",
    "1' UNION SELECT username, password_hash FROM users --",
    "1; DROP TABLE users; --",
    "'); DELETE FROM apis; --",
    "\" OR \"\"=\"",
    "1)) OR ((1=1",
    "admin1'--",
    "1' AND SLEEP(3)--",
    "\\' OR 1=1 #",
    "%27 OR 1=1--",
    "-1",
    "99999999999999999999999",
    "1e309",
    "0x7fffffffffffffff",
]

# The query parameters the handlers read (server/api: QueryParam and the metrics/logs filters).
QUERY_PARAMS = ["api_id", "limit", "cursor", "before_id", "endpoint", "method", "client_ip",
                "status_min", "status_max", "from", "to", "bucket", "top", "actor", "detector",
                "severity", "identity", "token"]


def body_for(method, pattern, ctx):
    """A valid JSON body for the route (None for routes without one); string fields are the
    ones the injection sweep replaces."""
    if method not in ("POST", "PUT"):
        return None
    return {
        "/api/register": lambda: {"username": "sqli-" + secrets.token_hex(3), "password": PASSWORD,
                                  "email": "a@example.com"},
        "/api/login": lambda: {"username": "sqli-victim", "password": PASSWORD},
        "/api/logout": lambda: None,
        "/api/users/:id": lambda: {"email": "b@example.com", "role": "user"},
        "/api/apis": lambda: {"name": "sqli-api", "base_url": "https://example.com",
                              "upstream_secret": "s", "match_host": "example.com",
                              "match_base_path": "/v1"},
        "/api/apis/:id": lambda: {"name": "sqli-api-2", "upstream_secret": "s2"},
        "/api/agents": lambda: {"name": "sqli-agent"},
        "/api/agents/enroll": lambda: {"enrollment_token": "be_x", "hostname": "h", "version": "1"},
        "/api/agents/heartbeat": lambda: {"counters": {"captured": 1}, "version": "1"},
        "/api/ingest": lambda: event(ctx["attacker_key"], endpoint="/sqli/x"),
        "/api/ingest/batch": lambda: [event(ctx["attacker_key"], endpoint="/sqli/batch")],
        "/api/detectors/:id": lambda: {"enabled": True, "severity": "high"},
        "/api/whitelist": lambda: {"kind": "ip", "value": "192.0.2.9", "api_id": ctx["attacker_api"],
                                   "reason": "r"},
        "/api/blacklist": lambda: {"kind": "ip", "value": "192.0.2.9", "api_id": ctx["attacker_api"],
                                   "reason": "r"},
        "/api/alerts/:id/ack": lambda: {"comment": "c"},
        "/api/alerts/:id/resolve": lambda: {"comment": "c"},
        "/api/alerts/:id/mute": lambda: {"duration_seconds": 60},
        "/api/mutes": lambda: {"detector": "sqli", "actor": "ip:192.0.2.9",
                               "api_id": ctx["attacker_api"], "duration_seconds": 60,
                               "comment": "c"},
        "/api/channels": lambda: {"name": "c", "kind": "webhook",
                                  "config": {"url": "http://127.0.0.1:9/hook", "secret": "s"}},
        "/api/channels/:id": lambda: {"name": "c2", "min_severity": "high"},
        "/api/channels/:id/test": lambda: None,
    }.get(pattern, lambda: {"name": "x"})()


def string_fields(body):
    if isinstance(body, dict):
        return [k for k, v in body.items() if isinstance(v, str)]
    return []


class InjectionTest(ServerTestCase):
    server_env = {"API_RATE_LIMIT_PER_MINUTE": "10000000", "AUTH_RATE_LIMIT_PER_MINUTE": "1000000",
                  "LOGIN_MAX_FAILURES": "1000"}

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        s = cls.server
        # The victim: an API with events and list entries the attacker must never see.
        cls.victim = s.register("sqli-victim")
        cls.victim_api = s.create_api(cls.victim, "VICTIM-API-MARKER", upstream_secret="VICTIM-UPSTREAM")
        for i in range(3):
            assert s.post("/api/ingest", event(cls.victim_api["ingest_key"], endpoint=f"/victim-marker/{i}")).status == 200
        assert s.post("/api/blacklist", {"kind": "ip", "value": "198.51.100.77", "api_id": cls.victim_api["id"]},
                      cls.victim).status == 201
        # The attacker: a plain user with an API of their own.
        cls.attacker = s.register("sqli-attacker")
        cls.attacker_api = s.create_api(cls.attacker, "attacker-api")
        cls.ctx = {"attacker_key": cls.attacker_api["ingest_key"], "attacker_api": cls.attacker_api["id"]}
        out = subprocess.run([BINARY, "routes"], capture_output=True, text=True, timeout=30)
        assert out.returncode == 0, out.stderr
        cls.routes = [(r["method"], r["pattern"]) for r in json.loads(out.stdout) if r["method"] != "WS"]

    def counts(self):
        return {t: int(self.server.db_query(f"SELECT COUNT(*) FROM {t}")[0][0])
                for t in ("users", "apis", "events", "list_entries")}

    def check(self, r, what, seen_problems, inj=""):
        if r.status >= 500:
            seen_problems.append(f"{what}: {r.status} {r.body[:200]!r}")
        # The injection text itself may come back (an accepted value, an error naming it).
        text = r.body
        if inj:
            text = text.replace(inj, "").replace(json.dumps(inj)[1:-1], "")
        for marker in ("VICTIM-API-MARKER", "VICTIM-UPSTREAM", "/victim-marker/", "198.51.100.77",
                       "$argon2"):
            if marker in text:
                seen_problems.append(f"{what}: response shows {marker!r}: {text[:200]!r}")

    def test_injection_everywhere_is_inert(self):
        s = self.server
        before = self.counts()
        problems = []
        calls = 0
        for method, pattern in self.routes:
            segments = pattern.split("/")
            params = [i for i, seg in enumerate(segments) if seg.startswith(":")]
            base = body_for(method, pattern, self.ctx)
            for inj in INJECTIONS:
                quoted = urllib.parse.quote(inj, safe="")
                # Path parameters.
                for i in params:
                    path = "/".join(urllib.parse.quote(inj, safe="") if j == i else
                                    (str(self.attacker_api["id"]) if seg.startswith(":") else seg)
                                    for j, seg in enumerate(segments))
                    r = s.request(method, path, base, self.attacker)
                    calls += 1
                    self.check(r, f"{method} {path}", problems, inj)
                # Query parameters (GET routes), with a fixed pattern path.
                if method == "GET":
                    path = "/".join(str(self.attacker_api["id"]) if seg.startswith(":") else seg
                                    for seg in segments)
                    q = "&".join(f"{p}={quoted}" for p in QUERY_PARAMS)
                    r = s.get(f"{path}?{q}", self.attacker)
                    calls += 1
                    self.check(r, f"GET {path}?<every param>={inj!r}", problems, inj)
                    r = s.get(f"{path}?{q}", self.admin)  # the admin may see everything, never a 500
                    calls += 1
                    if r.status >= 500:
                        problems.append(f"admin GET {path}?<every param>={inj!r}: {r.status}")
                    for p in QUERY_PARAMS:
                        r = s.get(f"{path}?{p}={quoted}", self.attacker)
                        calls += 1
                        self.check(r, f"GET {path}?{p}={inj!r}", problems, inj)
                # Each string field of the body.
                for field in string_fields(base):
                    path = "/".join(str(self.attacker_api["id"]) if seg.startswith(":") else seg
                                    for seg in segments)
                    body = dict(base, **{field: inj})
                    if pattern == "/api/register":
                        body["username"] = body["username"] if field == "username" else "sqli-" + secrets.token_hex(3)
                    r = s.request(method, path, body, None if pattern in ("/api/register", "/api/login", "/api/ingest")
                                  else self.attacker)
                    calls += 1
                    self.check(r, f"{method} {path} {field}={inj!r}", problems, inj)
        self.assertEqual(problems[:20], [], f"{len(problems)} of {calls} calls")
        self.assertGreater(calls, 500)
        self.assertAlive()
        after = self.counts()
        # Nothing was deleted; the only rows added are the attacker's own accepted registrations,
        # APIs, list entries and events.
        for table in before:
            self.assertGreaterEqual(after[table], before[table], f"rows disappeared from {table}")
        self.assertEqual(s.get(f"/api/apis/{self.victim_api['id']}", self.victim).json()["name"], "VICTIM-API-MARKER")
        self.assertEqual(len(s.all_logs(self.victim, api_id=self.victim_api["id"])), 3)

    def test_injected_text_is_stored_literally(self):
        s = self.server
        for inj in INJECTIONS[:8]:
            with self.subTest(inj):
                tok = s.register("lit-" + secrets.token_hex(4))
                api = s.create_api(tok, inj)
                self.assertEqual(s.get(f"/api/apis/{api['id']}", tok).json()["name"], inj)
                rows = s.db_query(f"SELECT name FROM apis WHERE id = {int(api['id'])}")
                self.assertEqual(rows, [[inj]])
                r = s.post("/api/ingest", event(api["ingest_key"], endpoint="/q/" + inj, query="a=" + inj))
                self.assertEqual(r.status, 200, r)
                logs = s.all_logs(tok, api_id=api["id"])
                self.assertEqual([e["endpoint"] for e in logs], ["/q/" + inj])
                # Filters with injection text match literally: nothing, not everything.
                self.assertEqual(s.all_logs(tok, api_id=api["id"], endpoint="' OR '1'='1"), [])

    def test_login_injection_never_authenticates(self):
        for username in ("admin1'--", "admin1' #", "' OR '1'='1", "admin1\" --", "admin1'/*"):
            for password in ("x", "' OR '1'='1", "') OR ('1'='1"):
                with self.subTest(username=username, password=password):
                    r = self.server.post("/api/login", {"username": username, "password": password})
                    self.assertIn(r.status, (400, 401, 423, 429), r)


class OversizedInputTest(ServerTestCase):
    server_env = {"API_RATE_LIMIT_PER_MINUTE": "10000000", "AUTH_RATE_LIMIT_PER_MINUTE": "1000000",
                  "MAX_BODY_BYTES": str(4 << 20)}

    def test_huge_and_deep_values_in_every_field(self):
        s = self.server
        user = s.register("big-user")
        api = s.create_api(user, "big-api")
        ctx = {"attacker_key": api["ingest_key"], "attacker_api": api["id"]}
        out = subprocess.run([BINARY, "routes"], capture_output=True, text=True, timeout=30)
        routes = [(r["method"], r["pattern"]) for r in json.loads(out.stdout)
                  if r["method"] in ("POST", "PUT")]
        # JSON text of each value (a 5000-deep array is beyond Python's own encoder).
        values = {"1 MiB string": json.dumps("A" * (1 << 20)),
                  "64 KiB of quotes": json.dumps("'\"" * (32 << 10)),
                  "5000-deep array": "[" * 5000 + "]" * 5000,
                  "100k-element array": json.dumps(list(range(100000))),
                  "NUL": json.dumps("a\u0000b"),
                  "lone surrogate": r'"a\udcff\ud800c"',
                  "raw invalid UTF-8": b'"a\xff\xfe\xc0\xafb"'.decode("latin-1"),
                  "huge integer": "1" + "0" * 400}
        problems = []
        for method, pattern in routes:
            base = body_for(method, pattern, ctx)
            if not isinstance(base, dict):
                continue
            path = "/".join(str(api["id"]) if seg.startswith(":") else seg for seg in pattern.split("/"))
            if pattern == "/api/detectors/:id":
                path = "/api/detectors/" + s.get("/api/detectors", self.admin).json()["detectors"][0]["id"]
            for field in base:
                for what, value in values.items():
                    raw = json.dumps(dict(base, **{field: "@@VALUE@@"})).replace('"@@VALUE@@"', value)
                    raw = raw.encode("latin-1") if what == "raw invalid UTF-8" else raw.encode()
                    r = s.request(method, path, token=self.admin if pattern.startswith("/api/detectors") else user,
                                  raw=raw, headers={"Content-Type": "application/json"})
                    if r.status >= 500 or r.status < 200:
                        problems.append(f"{method} {path} {field}={what}: {r.status} {r.body[:120]!r}")
                    elif r.status < 400 and what in ("1 MiB string", "5000-deep array", "100k-element array"):
                        problems.append(f"{method} {path} {field}={what}: accepted ({r.status})")
        self.assertAlive()
        self.assertEqual(problems, [])


# --- Fernet interoperability -----------------------------------------------------------------------

def python_fernet(key):
    """The seed's key forms: a 44-character Fernet key, or 32 raw characters used as key bytes."""
    if len(key) == 32:
        return Fernet(base64.urlsafe_b64encode(key.encode()))
    return Fernet(key.encode())


class FernetInteropTest(unittest.TestCase):
    def run_both_directions(self, key):
        s = Server({"ENCRYPTION_KEY": key})
        try:
            s.start()
            f = python_fernet(key)
            admin = s.admin_token()
            user = s.register("fernet-user")
            secret = "UPSTREAM-" + secrets.token_hex(8)
            api = s.create_api(user, "fernet-api", upstream_secret=secret)
            # Server → Python: the stored ciphertext is a Fernet token under ENCRYPTION_KEY.
            enc = s.db_query(f"SELECT upstream_secret_enc FROM apis WHERE id = {int(api['id'])}")[0][0]
            self.assertNotIn(secret, enc)
            self.assertTrue(enc.startswith("gAAAAA"), enc[:10])
            self.assertEqual(f.decrypt(enc.encode()).decode(), secret)
            enc_identity = s.db_query("SELECT value FROM settings WHERE `key` = 'identity_key_enc'")[0][0]
            agent = s.enroll_agent(admin, "fernet-host")
            self.assertEqual(f.decrypt(enc_identity.encode()).hex(), agent["identity_key"].lower())

            # Python → server: a Python-encrypted identity key planted in the database while the
            # server is down is the key the server hands to agents after the restart.
            self.assertEqual(s.stop(), 0)
            planted = os.urandom(32)
            token = f.encrypt(planted).decode()
            self.write_setting(s, "identity_key_enc", token)
            s.start()
            admin = s.admin_token()
            agent = s.enroll_agent(admin, "fernet-host-2")
            self.assertEqual(agent["identity_key"].lower(), planted.hex())
            # And a value encrypted under another key is refused at start-up, with a message.
            self.assertEqual(s.stop(), 0)
            self.write_setting(s, "identity_key_enc", Fernet(Fernet.generate_key()).encrypt(planted).decode())
            with self.assertRaises(AssertionError) as cm:
                s.start(timeout=20)
            self.assertIn("cannot be decrypted with ENCRYPTION_KEY", str(cm.exception))
        finally:
            s.cleanup()

    @staticmethod
    def write_setting(s, key, value):
        if BACKEND == "mysql":
            mysql_cli(s.db_name, f"UPDATE settings SET value = '{value}' WHERE `key` = '{key}'")
            return
        con = sqlite3.connect(os.path.join(s.data_dir, "boing.db"))
        try:
            with con:
                n = con.execute("UPDATE settings SET value = ? WHERE key = ?", (value, key)).rowcount
            assert n == 1, n
        finally:
            con.close()

    def test_fernet_key(self):
        self.run_both_directions(Fernet.generate_key().decode())

    def test_raw_32_character_key(self):
        self.run_both_directions(secrets.token_urlsafe(24)[:32])


if __name__ == "__main__":
    unittest.main()
