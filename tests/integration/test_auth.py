"""Accounts and authentication: register/login/logout, lockout, JWT attacks, rate limits, user
administration (docs/api.md "Accounts")."""
import hashlib
import subprocess
import time
import unittest
from concurrent.futures import ThreadPoolExecutor

from harness import (ADMIN_PASSWORD, ADMIN_USER, BINARY, PASSWORD, Server, ServerTestCase,
                     forge_jwt, jwt_payload)

USER_FIELDS = {"id", "username", "email", "role", "disabled", "created_at"}


class AuthTest(ServerTestCase):
    server_env = {"LOGIN_MAX_FAILURES": "3", "LOGIN_LOCKOUT_SECONDS": "60",
                  "JWT_TTL_SECONDS": "1800", "PASSWORD_MIN_LENGTH": "10"}

    def test_register_answer_and_roles(self):
        r = self.server.post("/api/register", {"username": "plainuser", "password": PASSWORD,
                                               "email": "plain@example.com"})
        self.assertEqual(r.status, 201, r)
        j = r.json()
        self.assertEqual(set(j["user"]) & USER_FIELDS, USER_FIELDS, j)
        self.assertEqual((j["user"]["username"], j["user"]["email"], j["user"]["role"],
                          j["user"]["disabled"]), ("plainuser", "plain@example.com", "user", False))
        for leak in ("password", "password_hash", "hash"):
            self.assertNotIn(leak, j["user"])
        self.assertNotIn(PASSWORD, r.body)
        self.assertEqual(jwt_payload(j["token"])["exp"], j["expires_at"])
        # The admin from ADMIN_USERNAME exists, so a registered account is a plain user.
        self.assertEqual(self.server.me(j["token"])["role"], "user")
        self.assertEqual(self.server.me(self.admin)["role"], "admin")

    def test_register_rejections(self):
        self.server.register("taken")
        self.assertError(self.server.post("/api/register", {"username": "taken", "password": PASSWORD}),
                         409, "username")
        self.assertError(self.server.post("/api/register", {"username": "shortpw", "password": "123456789"}),
                         400, "password")  # PASSWORD_MIN_LENGTH=10
        self.assertError(self.server.post("/api/register", {"username": "nopw"}), 400, "password")
        self.assertError(self.server.post("/api/register", {"password": PASSWORD}), 400, "username")
        self.assertError(self.server.post("/api/register", raw="{not json"), 400)
        self.assertError(self.server.post("/api/register", raw="[]"), 400)
        # Refused registrations created nothing.
        self.assertEqual(self.server.post("/api/login", {"username": "shortpw", "password": "123456789"}).status, 401)

    def test_login_token_claims(self):
        self.server.register("claims")
        before = int(time.time())
        r = self.server.post("/api/login", {"username": "claims", "password": PASSWORD})
        self.assertEqual(r.status, 200, r)
        j = r.json()
        self.assertEqual(j["user"]["username"], "claims")
        header = jwt_payload("x." + j["token"].split(".")[0])
        self.assertEqual(header["alg"], "HS256")
        c = jwt_payload(j["token"])
        self.assertEqual(c["sub"], str(j["user"]["id"]))
        self.assertEqual((c["role"], c["iss"], c["aud"]), ("user", "boing", "boing-dashboard"))
        self.assertTrue(c["jti"])
        self.assertLessEqual(abs(c["iat"] - before), 5)
        self.assertEqual(c["exp"] - c["iat"], 1800)  # JWT_TTL_SECONDS
        self.assertEqual(j["expires_at"], c["exp"])
        other = self.server.login("claims")
        self.assertNotEqual(jwt_payload(other)["jti"], c["jti"], "every token has its own jti")

    def test_wrong_credentials_401(self):
        self.server.register("wrongpw")
        self.assertError(self.server.post("/api/login", {"username": "wrongpw", "password": "not-the-password"}), 401)
        self.assertError(self.server.post("/api/login", {"username": "nobody-here", "password": PASSWORD}), 401)
        self.assertError(self.server.post("/api/login", {"username": "wrongpw"}), 400, "password")

    def test_lockout_423_with_retry_after(self):
        self.server.register("lockme")
        for _ in range(3):  # LOGIN_MAX_FAILURES=3
            self.assertError(self.server.post("/api/login", {"username": "lockme", "password": "wrong-password"}), 401)
        r = self.server.post("/api/login", {"username": "lockme", "password": PASSWORD})
        self.assertError(r, 423)
        self.assertTrue(0 < int(r.header("Retry-After")) <= 60, r.headers)
        # Still locked for the right password, and another account is not affected.
        self.assertEqual(self.server.post("/api/login", {"username": "lockme", "password": PASSWORD}).status, 423)
        self.server.register("notlocked")
        self.assertEqual(self.server.post("/api/login", {"username": "notlocked", "password": PASSWORD}).status, 200)

    def test_lockout_holds_under_parallel_attempts(self):
        # Guessing in parallel must not get around the lock: a stale concurrent update may not
        # clear the lock another attempt just set.
        unlocked = []
        for round_ in range(4):
            name = f"parallel-lock-{round_}"
            self.server.register(name)
            with ThreadPoolExecutor(16) as ex:
                statuses = list(ex.map(lambda _: self.server.post(
                    "/api/login", {"username": name, "password": "wrong-password"}).status, range(30)))
            self.assertEqual(set(statuses) - {401, 423}, set(), statuses)
            self.assertLessEqual(statuses.count(401), 30)
            r = self.server.post("/api/login", {"username": name, "password": PASSWORD})
            if r.status != 423:
                unlocked.append(f"round {round_}: {statuses.count(401)} x 401, {statuses.count(423)} x 423, "
                                f"then the right password got {r.status}")
        self.assertEqual(unlocked, [], "30 parallel wrong passwords (LOGIN_MAX_FAILURES=3) left the account unlocked")

    def test_failures_below_the_limit_do_not_lock(self):
        self.server.register("almost")
        for _ in range(2):
            self.server.post("/api/login", {"username": "almost", "password": "wrong-password"})
        self.server.login("almost")  # success resets the count
        for _ in range(2):
            self.server.post("/api/login", {"username": "almost", "password": "wrong-password"})
        self.server.login("almost")

    def test_logout_revokes_only_that_token(self):
        self.server.register("leaver")
        tok = self.server.login("leaver")
        other = self.server.login("leaver")
        self.assertEqual(self.server.get("/api/me", tok).status, 200)
        r = self.server.post("/api/logout", token=tok)
        self.assertEqual(r.status, 204, r)
        self.assertEqual(r.raw, b"")
        self.assertError(self.server.get("/api/me", tok), 401)
        self.assertError(self.server.post("/api/logout", token=tok), 401)
        self.assertEqual(self.server.get("/api/me", other).status, 200)

    def test_jwt_attacks_rejected(self):
        secret = self.server.secrets()["JWT_SECRET"]
        self.server.register("victim")
        user_tok = self.server.login("victim")
        me = self.server.me(self.admin)
        now = int(time.time())
        good = {"sub": str(me["id"]), "role": "admin", "jti": "forged-1", "iss": "boing",
                "aud": "boing-dashboard", "iat": now, "nbf": now, "exp": now + 600}
        # The forging itself is right: a correctly signed token is accepted.
        self.assertEqual(self.server.get("/api/me", forge_jwt({"alg": "HS256", "typ": "JWT"}, good, secret)).status, 200)
        unsigned = forge_jwt({"alg": "none", "typ": "JWT"}, good, secret).rsplit(".", 1)[0]
        user_parts = user_tok.split(".")
        escalated = dict(jwt_payload(user_tok), role="admin", sub=str(me["id"]))
        cases = {
            "alg none, empty signature": unsigned + ".",
            "alg none, no signature part": unsigned,
            "alg None": forge_jwt({"alg": "None"}, good, secret).rsplit(".", 1)[0] + ".",
            "alg none with a valid HS256 signature": forge_jwt({"alg": "none"}, good, secret),
            "HS512 header and signature": forge_jwt({"alg": "HS512", "typ": "JWT"}, good, secret, hashlib.sha512),
            "HS512 header, HS256 signature": forge_jwt({"alg": "HS512", "typ": "JWT"}, good, secret),
            "HS384": forge_jwt({"alg": "HS384"}, good, secret, hashlib.sha384),
            "RS256 confusion": forge_jwt({"alg": "RS256", "typ": "JWT"}, good, secret),
            "expired": forge_jwt({"alg": "HS256"}, dict(good, iat=now - 7200, nbf=now - 7200, exp=now - 3600), secret),
            "expired just now": forge_jwt({"alg": "HS256"}, dict(good, exp=now - 5), secret),
            "not yet valid": forge_jwt({"alg": "HS256"}, dict(good, nbf=now + 3600), secret),
            "no exp": forge_jwt({"alg": "HS256"}, {k: v for k, v in good.items() if k != "exp"}, secret),
            "wrong audience": forge_jwt({"alg": "HS256"}, dict(good, aud="other-app"), secret),
            "no audience": forge_jwt({"alg": "HS256"}, {k: v for k, v in good.items() if k != "aud"}, secret),
            "wrong issuer": forge_jwt({"alg": "HS256"}, dict(good, iss="evil"), secret),
            "no issuer": forge_jwt({"alg": "HS256"}, {k: v for k, v in good.items() if k != "iss"}, secret),
            "wrong secret": forge_jwt({"alg": "HS256"}, good, "not-the-secret-" * 3),
            "unknown user": forge_jwt({"alg": "HS256"}, dict(good, sub="987654"), secret),
            "tampered payload (user escalated to admin)": ".".join(
                [user_parts[0], forge_jwt({"alg": "HS256"}, escalated, "x").split(".")[1], user_parts[2]]),
            "signature stripped": ".".join(user_parts[:2]) + ".",
            "garbage": "not-a-jwt",
            "two parts": ".".join(user_parts[:2]),
        }
        for name, tok in cases.items():
            with self.subTest(name):
                self.assertError(self.server.get("/api/me", tok), 401)
                self.assertError(self.server.get("/api/users", tok), 401)
        self.assertError(self.server.get("/api/me", headers={"Authorization": "Bearer"}), 401)
        self.assertError(self.server.get("/api/me", headers={"Authorization": "Basic " + user_tok}), 401)
        self.assertError(self.server.get("/api/me", headers={"Authorization": user_tok}), 401)

    def test_users_admin_endpoints(self):
        tok = self.server.register("managed", email="m@example.com")
        uid = self.server.me(tok)["id"]
        self.assertError(self.server.get("/api/users", tok), 403)
        r = self.server.get("/api/users", self.admin)
        self.assertEqual(r.status, 200, r)
        users = r.json()["users"]
        row = [u for u in users if u["username"] == "managed"][0]
        self.assertEqual(set(row) & USER_FIELDS, USER_FIELDS)
        self.assertNotIn("password_hash", r.body)
        self.assertNotIn("$argon2", r.body)
        self.assertEqual(self.server.put(f"/api/users/{uid}", {"email": "new@example.com"}, self.admin).json()["email"],
                         "new@example.com")
        self.assertError(self.server.put(f"/api/users/{uid}", {"role": "root"}, self.admin), 400, "role")
        self.assertError(self.server.put(f"/api/users/{uid}", {"disabled": "yes"}, self.admin), 400, "disabled")
        self.assertError(self.server.put(f"/api/users/{uid}", {"password": "short"}, self.admin), 400, "password")
        self.assertError(self.server.put("/api/users/999999", {"email": "x@example.com"}, self.admin), 404)
        self.assertError(self.server.put(f"/api/users/{uid}", {"role": "admin"}, tok), 403)
        # Password reset by an admin.
        r = self.server.put(f"/api/users/{uid}", {"password": "brand-new-password"}, self.admin)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(self.server.post("/api/login", {"username": "managed", "password": PASSWORD}).status, 401)
        self.server.login("managed", "brand-new-password")
        # Disabled: existing tokens stop working and login fails.
        r = self.server.put(f"/api/users/{uid}", {"disabled": True}, self.admin)
        self.assertEqual((r.status, r.json()["disabled"]), (200, True), r)
        self.assertError(self.server.get("/api/me", tok), 401)
        self.assertNotEqual(self.server.post("/api/login", {"username": "managed", "password": "brand-new-password"}).status, 200)
        self.assertEqual(self.server.put(f"/api/users/{uid}", {"disabled": False}, self.admin).status, 200)
        self.assertEqual(self.server.get("/api/me", tok).status, 200)
        # Deleted: 204, then 404, and the account's tokens are dead.
        r = self.server.delete(f"/api/users/{uid}", self.admin)
        self.assertEqual(r.status, 204, r)
        self.assertError(self.server.delete(f"/api/users/{uid}", self.admin), 404)
        self.assertError(self.server.get("/api/me", tok), 401)
        self.assertNotIn("managed", [u["username"] for u in self.server.get("/api/users", self.admin).json()["users"]])

    def test_deleted_account_leaves_nothing_to_inherit(self):
        tok = self.server.register("departing")
        uid = self.server.me(tok)["id"]
        api = self.server.create_api(tok, "departing-api")
        self.assertEqual(self.server.post("/api/ingest", {**{"api_key": api["ingest_key"]}, **{
            "timestamp": time.time(), "method": "GET", "endpoint": "/departing-data", "client_ip": "192.0.2.1",
            "status_code": 200, "latency_ms": 1}}).status, 200)
        self.assertEqual(self.server.delete(f"/api/users/{uid}", self.admin).status, 204)
        newcomer = self.server.register("newcomer")
        self.assertNotEqual(self.server.me(newcomer)["id"], uid, "a deleted account's id is not reused")
        self.assertEqual(self.server.get("/api/apis", newcomer).json()["apis"], [])
        self.assertNotIn("/departing-data", self.server.get("/api/logs?limit=1000", newcomer).body)
        self.assertNotIn(self.server.get(f"/api/apis/{api['id']}", newcomer).status, (200,))

    def test_admin_cannot_demote_disable_or_delete_themself(self):
        me = self.server.me(self.admin)
        self.assertError(self.server.put(f"/api/users/{me['id']}", {"role": "user"}, self.admin), 400, "role")
        self.assertError(self.server.put(f"/api/users/{me['id']}", {"disabled": True}, self.admin), 400, "disabled")
        self.assertError(self.server.delete(f"/api/users/{me['id']}", self.admin), 400)
        self.assertEqual(self.server.me(self.admin)["role"], "admin")

    def test_role_comes_from_the_account_not_the_token(self):
        tok = self.server.register("promoted")
        uid = self.server.me(tok)["id"]
        self.assertError(self.server.get("/api/users", tok), 403)
        self.assertEqual(self.server.put(f"/api/users/{uid}", {"role": "admin"}, self.admin).status, 200)
        self.assertEqual(self.server.get("/api/users", tok).status, 200)
        admin_tok = self.server.login("promoted")
        self.assertEqual(self.server.put(f"/api/users/{uid}", {"role": "user"}, self.admin).status, 200)
        # A token issued while the account was admin carries role=admin; it must not keep the power.
        self.assertError(self.server.get("/api/users", admin_tok), 403)


class AuthRateLimitTest(ServerTestCase):
    server_env = {"AUTH_RATE_LIMIT_PER_MINUTE": "5"}

    def test_login_flood_gets_429_with_retry_after(self):
        statuses = [self.server.post("/api/login", {"username": ADMIN_USER, "password": "bad-password"}).status
                    for _ in range(10)]
        self.assertIn(429, statuses)
        self.assertLessEqual(statuses.count(401), 5, statuses)
        r = self.server.post("/api/login", {"username": ADMIN_USER, "password": ADMIN_PASSWORD})
        self.assertError(r, 429)
        self.assertTrue(0 < int(r.header("Retry-After")) <= 60, r.headers)
        # Registration shares the per-IP budget.
        self.assertError(self.server.post("/api/register", {"username": "flood", "password": PASSWORD}), 429)
        # Authenticated management traffic has its own budget.
        self.assertEqual(self.server.get("/api/me", self.admin).status, 200)


class ApiRateLimitTest(ServerTestCase):
    server_env = {"API_RATE_LIMIT_PER_MINUTE": "8"}

    def test_management_endpoints_rate_limited_per_user(self):
        statuses = [self.server.get("/api/apis", self.admin).status for _ in range(12)]
        self.assertIn(429, statuses)
        self.assertLessEqual(statuses.count(200), 8, statuses)
        r = self.server.get("/api/me", self.admin)
        self.assertError(r, 429)
        self.assertTrue(0 < int(r.header("Retry-After")) <= 60, r.headers)
        other = self.server.register("someone-else")
        self.assertEqual(self.server.get("/api/me", other).status, 200, "the limit is per user")


# Production mode: no generated local admin (local mode creates one, README "initial-admin-password").
PRODUCTION = {"BOING_ENV": "production", "JWT_SECRET": "j8Kq" * 12,
              "ENCRYPTION_KEY": "0123456789abcdef0123456789abcdef"}


class FirstAccountTest(unittest.TestCase):
    """Without ADMIN_USERNAME (production mode) the first registered account becomes admin."""

    def test_first_registered_account_is_admin(self):
        server = Server(PRODUCTION, admin=False)
        try:
            server.start()
            first = server.register("founder")
            second = server.register("joiner")
            self.assertEqual(server.me(first)["role"], "admin")
            self.assertEqual(server.me(second)["role"], "user")
            self.assertEqual(server.get("/api/users", first).status, 200)
            self.assertEqual(server.get("/api/users", second).status, 403)
        finally:
            server.cleanup()

    def test_concurrent_first_registrations_make_one_admin(self):
        for _ in range(2):
            server = Server(PRODUCTION, admin=False)
            try:
                server.start()
                with ThreadPoolExecutor(6) as ex:
                    answers = list(ex.map(lambda i: server.post(
                        "/api/register", {"username": f"racer{i}", "password": PASSWORD}), range(6)))
                self.assertEqual([r.status for r in answers], [201] * 6, answers)
                roles = sorted(r.json()["user"]["role"] for r in answers)
                self.assertEqual(roles, ["admin"] + ["user"] * 5, "exactly one first account")
            finally:
                server.cleanup()

    def test_registration_can_be_closed(self):
        server = Server(dict(PRODUCTION, ALLOW_REGISTRATION="false"), admin=False)
        try:
            server.start()
            first = server.register("only-founder")  # the very first account is always allowed
            self.assertEqual(server.me(first)["role"], "admin")
            r = server.post("/api/register", {"username": "latecomer", "password": PASSWORD})
            self.assertEqual(r.status, 403, r)
            self.assertIn("error", r.json())
        finally:
            server.cleanup()

    def test_production_refuses_weak_or_missing_secrets(self):
        server = Server({"BOING_ENV": "production", "JWT_SECRET": "your-secret-key-change-this"})
        try:
            out = subprocess.run([BINARY, "--listen", "127.0.0.1:0", "--data-dir", server.data_dir],
                                 env=server.env, capture_output=True, text=True, timeout=30)
            self.assertNotEqual(out.returncode, 0, out.stdout)
            text = out.stdout + out.stderr
            self.assertIn("JWT_SECRET", text)
            self.assertIn("ENCRYPTION_KEY", text)  # missing in production
        finally:
            server.cleanup()


if __name__ == "__main__":
    unittest.main()
